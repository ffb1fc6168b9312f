"""The Feetech STS3215 servo bus: protocol facts, a driver on feetech-servo-sdk, and an
emulated bus on a pseudo-terminal for tests and for running with no arm. ROS-free."""
