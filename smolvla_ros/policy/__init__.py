"""The policy side, ROS-free: LeRobot SmolVLA checkpoints, observations in, timed chunks out."""
