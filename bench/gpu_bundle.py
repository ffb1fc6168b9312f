"""Pack, as wheels, what bench/fast_modes.py needs on a CUDA machine with torch but no LeRobot.

The GPU machines lent here have torch, transformers and a data-science stack, and no package
index; they lack LeRobot, draccus, PyAV, HF datasets and a few more. This runs a tiny
inference through both of fast_modes' paths (LeRobot's direct call and PolicyRuntime) here,
so that every module they import is loaded, maps those modules to their distributions, and
rebuilds each one the target lacks as a wheel from this venv's installed files (their
RECORD included) in ``bench/.gpu_bundle/``. torch, CUDA, numpy and transformers are the
target's own (transformers' 47 MB would not fit the transfer; both paths then use the same
one, so the comparison stays like for like). This package's ROS-free modules travel with the
working tree.

    python bench/gpu_bundle.py            # writes bench/.gpu_bundle/*.whl (git-ignored), ~50 MB
    python bench/gpu_bundle.py --check    # then runs fast_modes seeing only those and a torch stack

On the GPU machine, from the repository root (the `device` tool: carry bench/.gpu_bundle):

    python3 -m pip install -q --no-deps --no-index --target /tmp/gpu_site bench/.gpu_bundle/*.whl
    PYTHONPATH=/tmp/gpu_site:. python3 bench/fast_modes.py --full-size --device cuda

or, for #12's measurement, the CUDA tests and the graph modes, one device call per part
(`bench/gpu_run.sh` holds the commands and writes its logs to $OUT):

    bash bench/gpu_run.sh eager           # the first device call
    bash bench/gpu_run.sh compiled        # the second
    bash bench/gpu_run.sh compiled-test   # a third, if device time is left
"""

from __future__ import annotations

import argparse
import importlib.metadata
import os
import runpy
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

BUNDLE = Path(__file__).resolve().parent / ".gpu_bundle"
REPO = Path(__file__).resolve().parent.parent
# What the GPU machines lent here hold (their image's package list, read 2026-11-17), and
# what stands in for ours there (opencv-python: the headless build has the same cv2).
TARGET_HAS = set("""
absl-py accelerate aiofiles aiohappyeyeballs aiohttp aiosignal annotated-doc anyio attrs botorch
build certifi charset-normalizer chex click cloudpickle cmake colorama contourpy coverage
cuda-bindings cuda-core cuda-pathfinder cuda-toolkit cupy-cuda13x cycler cython diffrax e3nn
einops equinox etils execnet filelock flatbuffers flax fonttools formulaic frozenlist fsspec
gpytorch grpcio h11 h5py hf-xet httpcore httpx huggingface-hub humanize hypothesis idna imageio
iniconfig interface-meta jax jaxlib jaxtyping jinja2 joblib kiwisolver lazy-loader lightning
lightning-utilities linear-operator lineax llvmlite lxml markdown markdown-it-py markupsafe
matplotlib mdurl meson ml-dtypes mpi4py mpmath msgpack multidict multipledispatch mypy-extensions
nanobind narwhals networkx ninja numba numba-cuda numpy numpyro nvidia-ml-py onnx onnx-ir
onnxruntime onnxscript opencv-python-headless optax opt-einsum opt-einsum-fx optimistix
orbax-checkpoint packaging pandas pathspec patsy peft pillow pip pluggy portalocker
prometheus-client propcache protobuf psutil pyarrow pybind11 py-cpuinfo pygments pyparsing
pyproject-hooks pyre-extensions pytest pytest-benchmark pytest-cov pytest-mock pytest-timeout
pytest-xdist python-dateutil pytorch-lightning pyyaml regex requests rich sacrebleu safetensors
scikit-build-core scikit-image scikit-learn scipy seaborn sentencepiece sentence-transformers
setuptools shellingham simplejson six sortedcontainers statsmodels sympy tabulate tensorboard
tensorboard-data-server tensorstore threadpoolctl tifffile tiktoken timm tokenizers toolz torch
torchaudio torchdiffeq torch-geometric torchmetrics torchvision tqdm transformers treescope triton
typer typing-extensions typing-inspect urllib3 uvloop wadler-lindig werkzeug wheel wrapt xarray
xxhash yarl zipp opencv-python
""".split())
TARGET_FAMILIES = ("nvidia-", "jax-", "torch")  # CUDA builds: always the target's own


def normalized(name: str) -> str:
    return name.lower().replace("_", "-").replace(".", "-")


def on_target(name: str) -> bool:
    key = normalized(name)
    return key in TARGET_HAS or key.startswith(TARGET_FAMILIES) or key.startswith("ros-")


def exercise() -> None:
    """Run fast_modes' two paths on a tiny checkpoint, so their imports are all loaded."""
    fast_modes = runpy.run_path(str(REPO / "bench" / "fast_modes.py"), run_name="bundle")
    from smolvla_ros.policy.tiny_checkpoint import make_test_checkpoint

    with tempfile.TemporaryDirectory() as folder:
        checkpoint = str(make_test_checkpoint(Path(folder) / "ckpt"))
        obs = fast_modes["observations"](1, 48, 64)
        fast_modes["lerobot_reference"](checkpoint, "cpu", obs)
        fast_modes["run_mode"](fast_modes["parse_mode"]("float32,static", checkpoint, "cpu"), obs)


def missing_distributions() -> list[importlib.metadata.Distribution]:
    """The distributions of the loaded modules that the target lacks."""
    by_top = importlib.metadata.packages_distributions()
    names = set()
    for module in list(sys.modules):
        top = module.split(".")[0]
        if top not in sys.stdlib_module_names and top != "smolvla_ros":
            names.update(by_top.get(top, []))
    return [importlib.metadata.distribution(name) for name in sorted(names) if not on_target(name)]


def wheel(dist: importlib.metadata.Distribution, folder: Path) -> Path:
    """The installed distribution as a wheel: its files and dist-info, named by its tag."""
    info = next(f for f in dist.files if f.parts[0].endswith(".dist-info"))
    tags = [line.split(":", 1)[1].strip() for line in
            Path(dist.locate_file(info.parent / "WHEEL")).read_text().splitlines()
            if line.startswith("Tag:")]
    # A compressed tag set (py2.py3-none-any): pip refuses a file named for one tag it lacks.
    parts = [".".join(dict.fromkeys(tag.split("-")[k] for tag in tags)) for k in range(3)]
    name = normalized(dist.metadata["Name"]).replace("-", "_")
    path = folder / f"{name}-{dist.version}-{'-'.join(parts)}.whl"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        for file in dist.files:
            source = Path(dist.locate_file(file))
            if file.parts[0] in ("..", "bin") or "__pycache__" in file.parts or not source.is_file():
                continue
            archive.write(source, str(file))
    return path


def check() -> int:
    """fast_modes on the tiny model in a Python that sees only the wheels (installed with the
    command the GPU machine runs, by the base interpreter's pip), this repository and what
    the target has (this venv's copies of TARGET_HAS)."""
    with tempfile.TemporaryDirectory() as folder:
        installed, stack = Path(folder) / "installed", Path(folder) / "stack"
        stack.mkdir()
        pip = [sys._base_executable, "-m", "pip", "install", "-q", "--no-deps", "--no-index",
               "--target", str(installed), *map(str, sorted(BUNDLE.glob("*.whl")))]
        if subprocess.run(pip).returncode:
            return 1
        for dist in importlib.metadata.distributions():
            if not on_target(dist.metadata["Name"]):
                continue
            for top in {Path(str(f)).parts[0] for f in dist.files or []} - {"..", "bin"}:
                source = Path(dist.locate_file(top))
                if source.exists() and not (stack / top).exists():
                    (stack / top).symlink_to(source)
        command = [sys.executable, "-S", str(REPO / "bench" / "fast_modes.py"), "--observations",
                   "2", "--mode", "float32", "--mode", "bfloat16,steps=5", "--mode", "float32,static",
                   "--image-size", "48x64"]
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(map(str, (installed, REPO, stack)))}
        print("check: fast_modes.py on the tiny model, seeing only the wheels and a torch stack",
              flush=True)
        return subprocess.run(command, env=env).returncode


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="then run fast_modes with only them")
    args = parser.parse_args()
    print("loading fast_modes' imports (a tiny inference)...", flush=True)
    exercise()
    shutil.rmtree(BUNDLE, ignore_errors=True)
    BUNDLE.mkdir()
    for dist in missing_distributions():
        path = wheel(dist, BUNDLE)
        print(f"  {path.name} ({path.stat().st_size / 2**20:.1f} MiB)")
    size = sum(f.stat().st_size for f in BUNDLE.glob("*.whl"))
    print(f"{size / 2**20:.1f} MiB in {BUNDLE}: carry bench/.gpu_bundle (the device tool's limit "
          "is 64 MiB with the working tree)")
    return check() if args.check else 0


if __name__ == "__main__":
    raise SystemExit(main())
