"""``pip install .``: the ROS-free core library and the ``smolvla-ros`` command.

colcon ignores this file (package.xml declares ament_cmake, which also generates the
messages); it serves people who use smolvla_ros's core without a ROS workspace.
``pip install .[ros]`` adds the ROS 2 Jazzy wheels from PyPI for machines without ROS.
"""

import re
from pathlib import Path

from setuptools import find_packages, setup

HERE = Path(__file__).parent
VERSION = re.search(r'__version__ = "([^"]+)"', (HERE / "smolvla_ros/__init__.py").read_text())[1]

ROS_WHEELS = [
    "ros-jazzy-rclpy",
    "ros-jazzy-rmw-fastrtps-cpp",
    "ros-jazzy-std-msgs",
    "ros-jazzy-sensor-msgs",
    "ros-jazzy-trajectory-msgs",
    "ros-jazzy-builtin-interfaces",
    "ros-jazzy-diagnostic-msgs",
    "ros-jazzy-std-srvs",
]

setup(
    name="smolvla_ros",
    version=VERSION,
    description="ROS 2 nodes around LeRobot's SmolVLA policy for the SO-101 arm",
    long_description=(HERE / "README.md").read_text(encoding="utf-8"),
    long_description_content_type="text/markdown",
    license="Apache-2.0",
    python_requires=">=3.10",
    packages=find_packages(include=["smolvla_ros", "smolvla_ros.*"]),
    install_requires=["numpy>=2,<2.3", "lerobot[smolvla,feetech,async]==0.6.1", "feetech-servo-sdk==1.0.0"],
    extras_require={"ros": ROS_WHEELS, "test": ["pytest", "pytest-timeout"],
                    "openvino": ["openvino"]},  # policy_node vision_runtime:=openvino
    entry_points={"console_scripts": ["smolvla-ros = smolvla_ros.cli:main"]},
)
