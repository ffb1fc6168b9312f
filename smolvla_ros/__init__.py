"""smolvla_ros: ROS 2 nodes around LeRobot's SmolVLA policy for the SO-101 arm.

The package root and every module outside ``smolvla_ros.nodes`` are ROS-free: they import
neither rclpy nor generated messages, so ``pip install .`` gives a usable core library on a
machine with no ROS install. ``smolvla_ros.msg`` exists only in a colcon install space.
"""

import pkgutil

# The generated messages are installed by colcon next to our modules in the install space.
# When this source folder is imported first (running from a checkout), let the package span
# both folders so `smolvla_ros.msg` is still found there.
__path__ = pkgutil.extend_path(__path__, __name__)

__version__ = "0.1.0"
