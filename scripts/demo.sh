#!/usr/bin/env bash
# The main job: set up (idempotent, see setup.sh), check the environment with
# `smolvla-ros doctor`, then run the SO-101 node on its emulated bus for a few seconds.
# Grows into the simulated bringup as the nodes land.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
"$ROOT/scripts/setup.sh"
# shellcheck source=scripts/env.sh
source "$ROOT/scripts/env.sh"
smolvla-ros doctor
echo "[demo] so101_node on the emulated bus (port:=mock) for 3 s"
status=0
timeout --signal=INT 3 "$ROOT/install/smolvla_ros/lib/smolvla_ros/so101_node" \
  --ros-args -p port:=mock || status=$?
[ "$status" -eq 0 ] || [ "$status" -eq 124 ]  # 124: stopped by the timeout, as planned
echo "[demo] done"
