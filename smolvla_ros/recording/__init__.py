"""Recording demonstrations, ROS-free: episodes as rosbag2 (MCAP) bags, and their recovery."""
