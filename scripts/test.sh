#!/usr/bin/env bash
# The test command: set up (idempotent, see setup.sh), then run the whole pytest suite with
# real rclpy over DDS. Extra arguments go to pytest (e.g. `-k doctor`, `-x`).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
"$ROOT/scripts/setup.sh"
# shellcheck source=scripts/env.sh
source "$ROOT/scripts/env.sh"
cd "$ROOT"
exec pytest "$@"
