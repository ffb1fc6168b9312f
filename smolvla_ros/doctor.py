"""``smolvla-ros doctor``: is this environment able to run smolvla_ros?

Each check prints one line with a verdict and, when something is wrong, one hint that says
what to do. The exit status is non-zero when any check fails, so scripts can gate on it.
Checks import their subject lazily so one broken package cannot hide the others.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.metadata
import os
import platform
import sys
from dataclasses import dataclass
from typing import Callable

from smolvla_ros.calibration import calibration_files, calibration_root

OK, WARN, FAIL = "ok", "warn", "FAIL"

# The LeRobot release this package is built and tested against (requirements/lock.txt).
LEROBOT_TESTED = "0.6.1"
SUPPORTED_ROS_DISTROS = ("jazzy", "kilted")
ROS_HINT = (
    "source /opt/ros/jazzy/setup.bash (system ROS 2) or `source scripts/env.sh` "
    "(after scripts/setup.sh)"
)
PIP_HINT = "run scripts/setup.sh, or pip install -r requirements/lock.txt"


@dataclass
class Check:
    name: str
    verdict: str
    detail: str
    hint: str = ""


def _version(distribution: str) -> str | None:
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return None


def _import_error(module: str) -> str | None:
    """None when ``module`` imports, else the error in one line."""
    try:
        importlib.import_module(module)
    except Exception as error:  # any import-time failure is what we report
        return f"cannot import {module}: {type(error).__name__}: {error}".splitlines()[0]
    return None


def check_python() -> Check:
    version = platform.python_version()
    if sys.version_info[:2] == (3, 12):
        return Check("python", OK, f"{version} ({sys.executable})")
    return Check(
        "python", WARN, f"{version} ({sys.executable})",
        "ROS 2 Jazzy and Kilted on Ubuntu 24.04 use Python 3.12; other versions are untested",
    )


def check_ros_distro() -> Check:
    distro = os.environ.get("ROS_DISTRO")
    if not distro:
        return Check("ros distro", FAIL, "ROS_DISTRO is not set", ROS_HINT)
    if distro not in SUPPORTED_ROS_DISTROS:
        return Check(
            "ros distro", WARN, distro,
            f"tested with {', '.join(SUPPORTED_ROS_DISTROS)}; other distros may work",
        )
    return Check("ros distro", OK, distro)


def check_rclpy() -> Check:
    error = _import_error("rclpy")
    if error:
        return Check("rclpy", FAIL, error, ROS_HINT)
    import rclpy

    return Check("rclpy", OK, os.path.dirname(rclpy.__file__))


def check_rmw() -> Check:
    try:
        from rclpy.utilities import get_rmw_implementation_identifier

        rmw = get_rmw_implementation_identifier()
    except Exception as error:
        return Check("rmw", FAIL, f"no RMW implementation loads: {error}".splitlines()[0],
                     "install ros-jazzy-rmw-fastrtps-cpp, or set RMW_IMPLEMENTATION to one you have")
    domain = os.environ.get("ROS_DOMAIN_ID", "0")
    return Check("rmw", OK, f"{rmw} (ROS_DOMAIN_ID={domain})")


def check_messages() -> Check:
    error = _import_error("smolvla_ros.msg")
    if error:
        return Check(
            "smolvla_ros.msg", FAIL, error,
            "build the package with colcon and source install/local_setup.bash "
            "(scripts/setup.sh does both)",
        )
    return Check("smolvla_ros.msg", OK, "PolicyStatus, EpisodeStatus")


def check_torch() -> Check:
    error = _import_error("torch")
    if error:
        return Check("torch", FAIL, error, PIP_HINT)
    import torch

    if torch.cuda.is_available():
        device = f"CUDA {torch.version.cuda}, {torch.cuda.get_device_name(0)}"
    else:
        device = "CPU only (no CUDA device visible): SmolVLA runs, slowly"
    return Check("torch", OK, f"{torch.__version__}, {device}")


def check_fast_modes() -> Check:
    """Which of policy_node's opt-in speed-ups (dtype, tf32, quantize, compile, prepack,
    num_steps, vision_runtime, expert_runtime, static_cache, cuda_graph) this machine runs
    natively; README "Inference modes" has their measured speed and deviation."""
    if _import_error("torch"):
        return Check("fast modes", WARN, "unknown: torch does not import")
    import importlib.util
    import shutil

    import torch

    from smolvla_ros.policy.openvino_cache import cache_dir, cpu_flags

    flags = cpu_flags()
    modes = ["num_steps", "static_cache"]
    if torch.cuda.is_available():
        modes.append("cuda_graph")
        if torch.cuda.get_device_capability() >= (8, 0):  # TF32 tensor cores: Ampere and later
            modes.append("tf32 (CUDA)")
        if torch.cuda.is_bf16_supported():
            modes.append("dtype bfloat16 (CUDA)")
        if importlib.util.find_spec("triton"):
            modes.append("compile (CUDA, triton)")
    if flags & {"avx512_bf16", "amx_bf16"}:
        modes.append("dtype bfloat16 (CPU " + "+".join(sorted(flags & {"avx512_bf16", "amx_bf16"})) + ")")
    if "fbgemm" in torch.backends.quantized.supported_engines or \
            "x86" in torch.backends.quantized.supported_engines:
        modes.append("quantize int8 (CPU" + (", VNNI)" if flags & {"avx512_vnni", "avx_vnni"} else ")"))
    if shutil.which("c++") or shutil.which("g++"):
        modes.append("compile (CPU, C++ compiler found)")
    from smolvla_ros.policy import packed_linear

    if packed_linear.available():
        modes.append("prepack (CPU, oneDNN)")
    if importlib.util.find_spec("openvino"):
        graphs = cache_dir()
        modes.append("vision_runtime openvino (CPU)")
        modes.append("expert_runtime openvino (CPU)")
        modes.append("quantize int8 on the OpenVINO runtimes (CPU, float32 or bfloat16)")
        modes.append(f"OpenVINO graphs cached in {graphs}" if graphs
                     else "OpenVINO graphs converted at every load (no cache)")
    slow = [] if flags & {"avx512_bf16", "amx_bf16"} or torch.cuda.is_available() else \
        ["bfloat16 runs emulated on this CPU: slower than float32"]
    return Check("fast modes", OK, "; ".join(modes + slow))


def _check_distribution(name: str, module: str, expected: str | None = None) -> Check:
    error = _import_error(module)
    if error:
        return Check(name, FAIL, error, PIP_HINT)
    version = _version(name) or "unknown version"
    if expected and version != expected:
        return Check(name, WARN, version, f"smolvla_ros is tested with {name} {expected}")
    return Check(name, OK, version)


def check_numpy() -> Check:
    return _check_distribution("numpy", "numpy")


def check_transformers() -> Check:
    return _check_distribution("transformers", "transformers")


def check_lerobot() -> Check:
    return _check_distribution("lerobot", "lerobot", LEROBOT_TESTED)


def check_video() -> Check:
    """LeRobot decodes dataset videos with torchcodec, which needs a system FFmpeg (4 to 8);
    without one it falls back to PyAV, which works but decodes slower when training."""
    error = _import_error("av")
    if error:
        return Check("video", FAIL, error, PIP_HINT)
    if _import_error("torchcodec"):
        return Check("video", WARN, "PyAV only: torchcodec cannot load a system FFmpeg",
                     "datasets still load (LeRobot falls back to PyAV); for faster decoding "
                     "while training: sudo apt install ffmpeg")
    return Check("video", OK, "torchcodec with the system FFmpeg, and PyAV")


def check_calibration() -> Check:
    root = calibration_root()
    files = calibration_files(root)
    if files:
        names = ", ".join(f"{path.parent.name}/{path.stem}" for path in files)
        return Check("calibration", OK, f"{root}: {names}")
    # Only real hardware needs one: the simulation and the emulated bus bring their own.
    return Check(
        "calibration", WARN, f"no SO-101 calibration under {root}",
        "needed for a real arm only: `smolvla-ros calibrate --port <port> --robot-id <id>` "
        "(or lerobot-calibrate) writes one there",
    )


CHECKS: tuple[Callable[[], Check], ...] = (
    check_python,
    check_ros_distro,
    check_rclpy,
    check_rmw,
    check_messages,
    check_numpy,
    check_torch,
    check_fast_modes,
    check_transformers,
    check_lerobot,
    check_video,
    check_calibration,
)


def run_checks() -> list[Check]:
    results = []
    for check in CHECKS:
        rclpy_failed = any(r.name == "rclpy" and r.verdict == FAIL for r in results)
        if check is check_rmw and rclpy_failed:
            continue  # no rclpy, no RMW to ask: the rclpy line already says why
        results.append(check())
    return results


def format_check(check: Check) -> str:
    line = f"[{check.verdict:^4}] {check.name:<16} {check.detail}"
    if check.hint:
        line += f"\n       {'':<16} hint: {check.hint}"
    return line


def add_arguments(parser: argparse.ArgumentParser) -> None:
    del parser  # doctor takes no options


def run(args: argparse.Namespace) -> int:
    del args
    results = run_checks()
    for check in results:
        print(format_check(check), flush=True)
    failed = [check.name for check in results if check.verdict == FAIL]
    if failed:
        print(f"doctor: {len(failed)} problem(s): {', '.join(failed)}")
        return 1
    print("doctor: all checks passed")
    return 0
