#!/usr/bin/env bash
# The main job: set up (idempotent, see setup.sh), then check the environment with
# `smolvla-ros doctor`. Grows into the simulated bringup as the nodes land.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
"$ROOT/scripts/setup.sh"
# shellcheck source=scripts/env.sh
source "$ROOT/scripts/env.sh"
smolvla-ros doctor
