"""The simulated SO-101 (MuJoCo), ROS-free: the arm, its cameras and a scripted expert."""
