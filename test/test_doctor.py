"""`smolvla-ros doctor` passes in the set-up environment and fails clearly without rclpy."""

from __future__ import annotations

import subprocess
import sys

from conftest import REPO_ROOT, ros_env


def test_doctor_passes_in_set_up_environment(tmp_path):
    result = subprocess.run(
        ["smolvla-ros", "doctor"], env=ros_env(SMOLVLA_ROS_OPENVINO_CACHE=str(tmp_path)),
        capture_output=True, text=True, cwd="/"
    )
    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    for name in ("python", "ros distro", "rclpy", "rmw", "smolvla_ros.msg", "numpy", "torch",
                 "fast modes", "transformers", "lerobot", "video", "calibration"):
        assert any(line[7:].startswith(name) for line in lines), f"no '{name}' line"
    assert lines[-1] == "doctor: all checks passed"
    fast = next(line for line in lines if line[7:].startswith("fast modes"))
    assert "num_steps" in fast and "quantize int8" in fast  # every x86 torch build has fbgemm
    import torch

    assert "static_cache" in fast and ("cuda_graph" in fast) == torch.cuda.is_available()
    assert ("tf32 (CUDA)" in fast) == (torch.cuda.is_available()
                                       and torch.cuda.get_device_capability() >= (8, 0))
    assert ("prepack (CPU, oneDNN)" in fast) == torch.backends.mkldnn.is_available()
    assert "vision_runtime openvino (CPU)" in fast  # requirements/base.in brings openvino
    assert "expert_runtime openvino (CPU)" in fast
    assert "quantize int8 on the OpenVINO runtimes (CPU, float32 or bfloat16)" in fast
    assert f"OpenVINO graphs cached in {tmp_path}" in fast


def test_doctor_fails_with_a_clear_line_when_rclpy_cannot_be_imported(tmp_path):
    # -S: no site-packages at all, like a Python where ROS 2 was never sourced or installed.
    result = subprocess.run(
        [sys._base_executable, "-S", "-m", "smolvla_ros.cli", "doctor"],
        env=ros_env(PYTHONPATH=str(REPO_ROOT)), capture_output=True, text=True, cwd=tmp_path,
    )
    assert result.returncode == 1, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    rclpy_line = next(i for i, line in enumerate(lines) if line.startswith("[FAIL] rclpy"))
    assert "cannot import rclpy: ModuleNotFoundError" in lines[rclpy_line]
    assert "hint: source /opt/ros/jazzy/setup.bash" in lines[rclpy_line + 1]
    assert not any(line.startswith("[") and " rmw " in line for line in lines)
    assert lines[-1].startswith("doctor: ") and "rclpy" in lines[-1]
