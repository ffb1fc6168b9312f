#!/usr/bin/env bash
# Prints the path of the pinned uv, installing it once into the cache if needed.
# Used by setup.sh and lock_requirements.sh. PYTHON: the interpreter to host it.
set -euo pipefail
UV_VERSION=0.13.8
CACHE="${SMOLVLA_ROS_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/smolvla_ros}"
HOME_DIR="$CACHE/tools/uv-$UV_VERSION"
if [ ! -x "$HOME_DIR/bin/uv" ]; then
  echo "[setup] installing uv $UV_VERSION into $CACHE/tools" >&2
  "${PYTHON:-python3}" -m venv "$HOME_DIR"
  "$HOME_DIR/bin/python" -m pip install --quiet --disable-pip-version-check "uv==$UV_VERSION" >&2
fi
echo "$HOME_DIR/bin/uv"
