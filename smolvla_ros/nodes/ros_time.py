"""Conversions between ROS time messages and float seconds (the core's clock unit)."""

from builtin_interfaces.msg import Duration, Time


def to_seconds(stamp: Time | Duration) -> float:
    return stamp.sec + stamp.nanosec * 1e-9
