"""Shared fixtures: every test run gets its own isolated ROS 2 graph.

A run picks one ROS_DOMAIN_ID, keeps discovery on this host
(ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST) and logs into a temp folder, so tests never see
another run's nodes or write into ~/.ros. Subprocesses inherit all of it through
``ros_env()``, which also keeps LD_LIBRARY_PATH and _ROS_WHEELS_BOOTSTRAP_COMPLETE together
(without both, the ROS wheels re-execute the interpreter on start).
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent
HELPERS = Path(__file__).resolve().parent / "helpers"

# Fast DDS maps a domain to UDP ports; ids 1..100 are safe on Linux. Spread concurrent runs.
_DOMAIN_ID = str(1 + os.getpid() % 100)
_LOG_DIR = tempfile.mkdtemp(prefix="smolvla_ros_test_logs_")
os.environ.update(
    HF_HUB_OFFLINE="1",  # no Hub here: fail fast instead of waiting on the network
    ROS_DOMAIN_ID=_DOMAIN_ID,
    ROS_AUTOMATIC_DISCOVERY_RANGE="LOCALHOST",
    ROS_LOG_DIR=_LOG_DIR,
    MUJOCO_GL="egl",  # headless: chosen when mujoco is first imported, whichever test does it
    # OpenVINO graphs converted at every load, as the tests of their actions expect; the
    # cache's own tests (test_openvino_cache.py) give it a folder. Nothing in ~/.cache.
    SMOLVLA_ROS_OPENVINO_CACHE="none",
)


def ros_env(**overrides: str) -> dict[str, str]:
    """The environment for a subprocess that joins this run's ROS graph."""
    env = dict(os.environ)
    env.update(overrides)
    if "_ROS_WHEELS_BOOTSTRAP_COMPLETE" in env and "LD_LIBRARY_PATH" not in env:
        raise RuntimeError("LD_LIBRARY_PATH lost: the ROS wheels' bootstrap would be skipped")
    return env


def run_bench(script: str, *args: str) -> str:
    """bench/<script> run as a user runs it; its output, once it exited 0."""
    result = subprocess.run([sys.executable, str(REPO_ROOT / "bench" / script), *args],
                            env=ros_env(), capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result.stdout


def run_python(script: str | Path, *args: str, **kwargs) -> subprocess.Popen:
    """Start a helper script with this interpreter, in this run's ROS graph."""
    return subprocess.Popen(
        [sys.executable, str(script), *args],
        env=kwargs.pop("env", None) or ros_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        **kwargs,
    )


@pytest.fixture
def emulator():
    """An emulated SO-101 bus on a pty, calibrated like the mock arm."""
    from smolvla_ros.feetech.emulator import MOCK_CALIBRATION, EmulatedBus

    with EmulatedBus() as emu:
        emu.load_calibration(MOCK_CALIBRATION)
        yield emu


@pytest.fixture
def rclpy_context():
    """An initialised rclpy context of its own, shut down after the test."""
    import rclpy

    context = rclpy.Context()
    rclpy.init(context=context)
    yield context
    context.try_shutdown()


def wait_for(predicate, timeout_s: float = 10.0, period_s: float = 0.01) -> bool:
    """Poll ``predicate`` until true; False after timeout_s (a deadline to fail, not a timing test)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(period_s)
    return bool(predicate())


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory) -> Path:
    """The offline tiny SmolVLA checkpoint (cameras front and wrist), made once per run."""
    from smolvla_ros.policy.tiny_checkpoint import make_test_checkpoint

    return make_test_checkpoint(tmp_path_factory.mktemp("checkpoint") / "tiny_smolvla")


@pytest.fixture(scope="session")
def base_like_checkpoint(tmp_path_factory) -> Path:
    """Tiny, with lerobot/smolvla_base's features: cameras camera1..3 (3x256x256), 6-dim
    state and action (`make-test-checkpoint --like-smolvla-base`)."""
    from smolvla_ros.policy.tiny_checkpoint import (
        SMOLVLA_BASE_CAMERAS, SMOLVLA_BASE_IMAGE_SHAPE, make_test_checkpoint,
    )

    return make_test_checkpoint(tmp_path_factory.mktemp("checkpoint") / "smolvla_base_like",
                                SMOLVLA_BASE_CAMERAS, SMOLVLA_BASE_IMAGE_SHAPE)


@pytest.fixture(scope="session")
def finetuned_checkpoint(tmp_path_factory) -> Path:
    """A fine-tune of the smolvla_base-like checkpoint on a dataset with cameras front and
    wrist: its preprocessor saves the rename map front -> camera1, wrist -> camera2, as
    `lerobot-train --rename_map` does (`--like-smolvla-base --rename-map ...`)."""
    from smolvla_ros.policy.tiny_checkpoint import (
        SMOLVLA_BASE_CAMERAS, SMOLVLA_BASE_IMAGE_SHAPE, make_test_checkpoint, parse_rename_map,
    )

    return make_test_checkpoint(tmp_path_factory.mktemp("checkpoint") / "finetuned",
                                SMOLVLA_BASE_CAMERAS, SMOLVLA_BASE_IMAGE_SHAPE,
                                rename_map=parse_rename_map("front=camera1,wrist=camera2"))
