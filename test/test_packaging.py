"""`pip install .` gives the ROS-free core and the `smolvla-ros` command."""

from __future__ import annotations

import os
import pkgutil
import subprocess
import sys

from conftest import REPO_ROOT, ros_env

import smolvla_ros

# Importing any of these means a module is not ROS-free.
ROS_MODULES = ("rclpy", "rosidl_runtime_py", "std_msgs", "sensor_msgs", "trajectory_msgs",
               "builtin_interfaces", "diagnostic_msgs", "std_srvs", "smolvla_ros.msg")
NODE_PACKAGES = ("smolvla_ros.nodes",)


def core_modules() -> list[str]:
    return sorted(
        info.name
        for info in pkgutil.walk_packages([str(REPO_ROOT / "smolvla_ros")], prefix="smolvla_ros.")
        if not info.name.startswith(NODE_PACKAGES)
    )


def test_core_modules_import_without_ros():
    modules = core_modules()
    assert {"smolvla_ros.cli", "smolvla_ros.doctor", "smolvla_ros.calibration"} <= set(modules)
    blocker = (
        "import sys\n"
        f"for name in {ROS_MODULES!r}: sys.modules[name] = None  # import now raises\n"
        f"for module in {modules!r}: __import__(module)\n"
        "leaked = sorted(m for m in sys.modules if m.split('.')[0] in "
        f"{tuple(m.split('.')[0] for m in ROS_MODULES[:-1])!r} and sys.modules[m] is not None)\n"
        "print(leaked)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", blocker], env=ros_env(PYTHONPATH=str(REPO_ROOT)),
        capture_output=True, text=True, cwd=REPO_ROOT,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def test_pip_install_gives_core_library_and_command(tmp_path):
    uv = subprocess.run([REPO_ROOT / "scripts" / "uv.sh"], capture_output=True, text=True,
                        check=True).stdout.strip()
    target = tmp_path / "site"
    subprocess.run(
        [uv, "pip", "install", "--quiet", "--no-deps", "--python", sys.executable,
         "--target", str(target), str(REPO_ROOT)],
        check=True, env=ros_env(), capture_output=True,
    )
    installed = target / "smolvla_ros"
    assert (installed / "cli.py").is_file() and (installed / "doctor.py").is_file()
    assert not (installed / "msg").exists()  # messages come only from a colcon build
    result = subprocess.run(
        [sys.executable, str(target / "bin" / "smolvla-ros"), "--version"],
        env=ros_env(PYTHONPATH=str(target)), capture_output=True, text=True, cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"smolvla-ros {smolvla_ros.__version__}"
    assert os.access(target / "bin" / "smolvla-ros", os.X_OK)
