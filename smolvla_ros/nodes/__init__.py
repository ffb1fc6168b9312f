"""Thin rclpy shells around the ROS-free core: parameters, topics, services and timers only.
Each module has ``main()``, installed as ``lib/smolvla_ros/<module>`` by CMakeLists.txt."""
