#!/usr/bin/env bash
# The main job: set up (idempotent, see setup.sh), check the environment, then bring the
# simulated SO-101 graph up with a policy, give it an instruction, record the episode, and
# print a summary (chunks published, inference latency, arm motion, bag path).
#   DEMO_POLICY=lerobot/smolvla_base  use a real checkpoint (default: an offline tiny one)
#   DEMO_SECONDS=30                   how long the graph runs
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
"$ROOT/scripts/setup.sh"
# shellcheck source=scripts/env.sh
source "$ROOT/scripts/env.sh"
smolvla-ros doctor
WORK="${DEMO_DIR:-$(mktemp -d -t smolvla_demo_XXXX)}"
POLICY="${DEMO_POLICY:-}"
if [ -z "$POLICY" ]; then
  POLICY="$WORK/tiny_smolvla"
  smolvla-ros make-test-checkpoint "$POLICY"  # random weights: it moves, it does not pick
fi
smolvla-ros bringup --robot sim --policy-path "$POLICY" --instruction "pick up the cube" \
  --duration "${DEMO_SECONDS:-30}" --record "$WORK/episodes"
echo "[demo] done; convert the episode with: smolvla-ros convert $WORK/episodes/episode_000000 --output $WORK/dataset"
