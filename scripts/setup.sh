#!/usr/bin/env bash
# One-command set-up for a machine without a ROS install: makes .venv with the ROS 2 Jazzy
# wheels from PyPI, colcon, cmake and LeRobot (pinned in requirements/lock.txt), applies the
# known workarounds for the wheels, and runs `colcon build`.
#
# The venv itself lives in a cache outside the clone (SMOLVLA_ROS_CACHE, default
# ~/.cache/smolvla_ros), one per lock file and Python, and .venv links to it. That makes a
# second run, or a fresh clone on the same machine, take seconds instead of a 3 GB download,
# and it has to be outside the package's source tree anyway: CMake refuses to export include
# folders (numpy's, from the venv) that lie inside the source directory. The project itself
# is never installed into that shared venv; colcon installs it into ./install.
#
# Environment: PYTHON (a Python 3.12 interpreter), SMOLVLA_ROS_CACHE, SMOLVLA_ROS_SKIP_BUILD=1.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
CACHE="${SMOLVLA_ROS_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/smolvla_ros}"
LOCK="$ROOT/requirements/lock.txt"

say() { printf '[setup] %s\n' "$*"; }
die() { printf '[setup] error: %s\n' "$*" >&2; exit 1; }

find_python() {
  local candidate
  for candidate in "${PYTHON:-}" python3.12 \
      "$(command -v pyenv >/dev/null && echo "$(pyenv root)/versions/3.12.1/bin/python3.12")" \
      /usr/bin/python3.12; do
    [ -n "$candidate" ] || continue
    if "$candidate" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 12))' 2>/dev/null; then
      command -v "$candidate"
      return
    fi
  done
  die "no Python 3.12 found (ROS 2 Jazzy wheels need it). Install python3.12 (with venv) or set PYTHON=/path/to/python3.12."
}

# Workaround 1 (shared/ROS_ON_PIP.md): the wheels' CMake exports name the include folders of
# the machine they were built on (/opt/python/cp312-cp312/...), and CMake refuses to generate
# while those do not exist. Point them at this interpreter's real folders instead; this edits
# only files inside .venv (sed -i writes new files, so the hard-linked cache is untouched).
patch_cmake_exports() {
  local py_include numpy_include files
  py_include="$("$VENV/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["include"])')"
  numpy_include="$("$VENV/bin/python" -c 'import numpy; print(numpy.get_include())')"
  files="$(grep -rl --include='*.cmake' '/opt/python/cp312-cp312' "$VENV/share" || true)"
  [ -n "$files" ] || return 0
  say "pointing the ROS wheels' CMake exports at $py_include"
  # shellcheck disable=SC2086
  sed -i \
    -e "s#/opt/python/cp312-cp312/lib/python3.12/site-packages/numpy/_core/include#$numpy_include#g" \
    -e "s#/opt/python/cp312-cp312/include/python3.12#$py_include#g" \
    $files
}

PY="$(find_python)"
KEY="$(cat "$LOCK" <("$PY" -VV) | sha256sum | cut -c1-16)"
VENV="$CACHE/venvs/py$("$PY" -c 'import sys; print("%d.%d" % sys.version_info[:2])')-$KEY"
DONE="$VENV/.smolvla_ros_complete"

if [ ! -f "$DONE" ]; then
  mkdir -p "$CACHE/venvs"
  UV="$(PYTHON="$PY" "$ROOT/scripts/uv.sh")"
  say "creating $VENV with $("$PY" -V) (downloads cached in $CACHE/uv; the first run fetches ~3 GB)"
  "$UV" venv --quiet --allow-existing --python "$PY" "$VENV"
  UV_CACHE_DIR="$CACHE/uv" "$UV" pip sync --python "$VENV/bin/python" "$LOCK"
  patch_cmake_exports
  # The venv is an ament prefix (the wheels' share/ is there); an empty local_setup makes it
  # a proper underlay for colcon, whose environment scripts/env.sh sets.
  for shell in sh bash; do
    echo "# ament prefix of the ROS 2 wheels; the environment is set by smolvla_ros scripts/env.sh" \
      > "$VENV/local_setup.$shell"
  done
  touch "$DONE"
else
  say "reusing $VENV (matches requirements/lock.txt)"
fi
ln -sfn "$VENV" "$ROOT/.venv"

if [ "${SMOLVLA_ROS_SKIP_BUILD:-0}" != 1 ]; then
  # shellcheck source=scripts/env.sh
  source "$ROOT/scripts/env.sh"
  say "colcon build"
  # --symlink-install: the install space links to the sources, so edits need no rebuild.
  # Links to files since deleted or renamed would still import: drop them first.
  [ ! -d "$ROOT/install" ] || find "$ROOT/install" -xtype l -delete
  colcon build --symlink-install --base-paths "$ROOT" --build-base "$ROOT/build" --install-base "$ROOT/install" \
    --event-handlers console_cohesion- summary+ status- \
    --cmake-args -DPython3_EXECUTABLE="$VENV/bin/python" -DBUILD_TESTING=OFF
fi
say "done. Use it with: source scripts/env.sh"
