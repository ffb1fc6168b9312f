#!/usr/bin/env bash
# The main job: set up (idempotent, see setup.sh), check the environment, then bring the
# simulated SO-101 graph up with a policy, give it an instruction, record the episode, and
# print a summary (chunks published, inference latency, arm motion, bag path).
#   DEMO_POLICY=lerobot/smolvla_base  use a real checkpoint (default: an offline tiny one)
#   DEMO_CAMERA_MAP="front=camera1 wrist=camera2"  sim cameras -> the checkpoint's (smolvla_base)
#   DEMO_SECONDS=30                   how long the graph runs
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
"$ROOT/scripts/setup.sh"
# shellcheck source=scripts/env.sh
source "$ROOT/scripts/env.sh"
smolvla-ros doctor
WORK="${DEMO_DIR:-$(mktemp -d -t smolvla_demo_XXXX)}"
POLICY="${DEMO_POLICY:-}"
MAP=()
for entry in ${DEMO_CAMERA_MAP:-}; do MAP+=(--camera-map "$entry"); done
if [ "$POLICY" = lerobot/smolvla_base ] && [ ${#MAP[@]} -eq 0 ]; then
  MAP=(--camera-map front=camera1 --camera-map wrist=camera2)
fi
if [ -z "$POLICY" ]; then
  POLICY="$WORK/tiny_smolvla"
  smolvla-ros make-test-checkpoint "$POLICY"  # random weights: it moves, it does not pick
fi
smolvla-ros bringup --robot sim --policy-path "$POLICY" "${MAP[@]}" --instruction "pick up the cube" \
  --duration "${DEMO_SECONDS:-30}" --record "$WORK/episodes"
echo "[demo] done; convert the episode with: smolvla-ros convert $WORK/episodes/episode_000000 --output $WORK/dataset"
