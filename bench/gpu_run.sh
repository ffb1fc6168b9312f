#!/usr/bin/env bash
# #12's GPU measurement on a machine lent by the device tool (torch there, no LeRobot), from
# the repository root, with bench/.gpu_bundle carried (`python bench/gpu_bundle.py` makes it):
#   bash bench/gpu_run.sh eager          # the CUDA tests, then the modes that compile nothing
#   bash bench/gpu_run.sh compiled       # the compiled modes (Triton compiles a minute or two each)
#   bash bench/gpu_run.sh compiled-test  # the compiled CUDA graph test, if device time is left
# One device call each, in that order: a session's 15 minutes of device time, start-up
# included, fit the first two. The logs are written to $OUT (the device tool's folder) as
# they grow, so a part stopped by its limit still brings back what it printed.
set -uo pipefail
part=${1:-}
if [ "$part" != eager ] && [ "$part" != compiled ] && [ "$part" != compiled-test ]; then
  echo "usage: bash bench/gpu_run.sh eager|compiled|compiled-test" >&2
  exit 2
fi
out=${OUT:-/tmp/gpu_run}
mkdir -p "$out"
python3 -m pip install -q --no-deps --no-index --target /tmp/gpu_site bench/.gpu_bundle/*.whl || exit 1
export PYTHONPATH=/tmp/gpu_site:.
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | tee "$out/gpu.txt"
full=(--full-size --device cuda --observations 20)
case "$part" in
  eager)
    python3 -u -m pytest -q -p no:cacheprovider test/test_policy_runtime.py \
      -k "cuda_graph_gives and not True or as_bytes or tf32 or capture" 2>&1 | tee "$out/tests.log"
    python3 -u bench/fast_modes.py "${full[@]}" --mode float32 --mode float32,cudagraph \
      --mode float32,tf32,cudagraph --mode bfloat16,cudagraph 2>&1 | tee "$out/eager.log" ;;
  compiled)
    python3 -u bench/fast_modes.py "${full[@]}" --mode float32,compile,cudagraph \
      --mode float32,tf32,compile,cudagraph --mode bfloat16,compile,cudagraph 2>&1 | tee "$out/compiled.log" ;;
  compiled-test)
    python3 -u -m pytest -q -p no:cacheprovider test/test_policy_runtime.py \
      -k "cuda_graph_gives and True" 2>&1 | tee "$out/tests_compiled.log" ;;
esac
