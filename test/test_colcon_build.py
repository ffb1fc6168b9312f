"""`colcon build` of a clean checkout installs what a ROS 2 user expects."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import REPO_ROOT, ros_env

# Names of the node executables CMakeLists.txt installs (`ros2 run smolvla_ros <node>`).
NODES_IN_CMAKE = (
    (REPO_ROOT / "CMakeLists.txt").read_text().split("set(SMOLVLA_ROS_NODES", 1)[1].split(")")[0].split()
)


def checkout_files() -> list[str]:
    """What a clone of this working tree would hold: tracked and not-ignored files."""
    listing = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"],
        cwd=REPO_ROOT, check=True, capture_output=True, text=True,
    ).stdout
    return [name for name in listing.split("\0") if name and (REPO_ROOT / name).is_file()]


def without_repo_install(env: dict[str, str]) -> dict[str, str]:
    """Drop this checkout's own install space from the paths, so the clean build stands alone."""
    own_install = str(REPO_ROOT / "install")
    for name in ("AMENT_PREFIX_PATH", "CMAKE_PREFIX_PATH", "PYTHONPATH", "PATH", "COLCON_PREFIX_PATH"):
        if name in env:
            env[name] = os.pathsep.join(
                part for part in env[name].split(os.pathsep) if not part.startswith(own_install)
            )
    return env


@pytest.fixture(scope="module")
def clean_install(tmp_path_factory) -> Path:
    workspace = tmp_path_factory.mktemp("ws")
    source = workspace / "src" / "smolvla_ros"
    for name in checkout_files():
        (source / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(REPO_ROOT / name, source / name)
    build = subprocess.run(
        ["colcon", "build", "--event-handlers", "console_direct+",
         "--cmake-args", f"-DPython3_EXECUTABLE={sys.executable}", "-DBUILD_TESTING=OFF"],
        cwd=workspace, env=without_repo_install(ros_env()), capture_output=True, text=True,
    )
    assert build.returncode == 0, build.stdout[-4000:] + build.stderr[-4000:]
    return workspace / "install"


def in_install(install: Path, command: str) -> subprocess.CompletedProcess:
    """Run a shell command with the clean install space sourced, outside the source tree."""
    return subprocess.run(
        ["bash", "-c", f"source {install}/local_setup.bash && {command}"],
        cwd="/", env=without_repo_install(ros_env()), capture_output=True, text=True,
    )


def test_python_package_and_messages_import_from_install_space(clean_install):
    result = in_install(clean_install, (
        f"{sys.executable} -c 'import smolvla_ros, smolvla_ros.doctor;"
        " from smolvla_ros.msg import PolicyStatus, EpisodeStatus;"
        " print(smolvla_ros.__file__); print(PolicyStatus.__module__, EpisodeStatus.__module__)'"
    ))
    assert result.returncode == 0, result.stderr
    package_file, modules = result.stdout.splitlines()
    assert Path(package_file).is_relative_to(clean_install)
    assert modules == "smolvla_ros.msg._policy_status smolvla_ros.msg._episode_status"


def test_share_folder_holds_launch_config_and_manifest(clean_install):
    share = clean_install / "smolvla_ros" / "share" / "smolvla_ros"
    assert (share / "package.xml").is_file()
    assert (share / "launch").is_dir() and (share / "config").is_dir()
    assert (share / "msg" / "PolicyStatus.msg").is_file()
    assert (share / "msg" / "EpisodeStatus.msg").is_file()


def test_one_executable_per_node_and_the_cli(clean_install):
    lib = clean_install / "smolvla_ros" / "lib" / "smolvla_ros"
    for node in NODES_IN_CMAKE:
        assert os.access(lib / node, os.X_OK), f"no executable for {node}"
    result = in_install(clean_install, "smolvla-ros --version")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "smolvla-ros 0.1.0"
