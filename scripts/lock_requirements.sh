#!/usr/bin/env bash
# Re-resolve requirements/base.in into the fully pinned requirements/lock.txt that
# scripts/setup.sh installs. Run after editing base.in; commit both files.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
"$("$ROOT/scripts/uv.sh")" pip compile --quiet --python-version 3.12 \
  --python-platform x86_64-manylinux_2_28 --custom-compile-command scripts/lock_requirements.sh \
  requirements/base.in -o requirements/lock.txt
echo "requirements/lock.txt updated; run scripts/setup.sh to install it"
