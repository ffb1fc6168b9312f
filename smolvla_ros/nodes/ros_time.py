"""Conversions between ROS time messages and float seconds (the core's clock unit)."""

from builtin_interfaces.msg import Duration, Time


def to_seconds(stamp: Time | Duration) -> float:
    return stamp.sec + stamp.nanosec * 1e-9


def to_time(seconds: float) -> Time:
    sec, nanosec = divmod(round(seconds * 1e9), 1_000_000_000)
    return Time(sec=sec, nanosec=nanosec)


def to_duration(seconds: float) -> Duration:
    sec, nanosec = divmod(round(seconds * 1e9), 1_000_000_000)
    return Duration(sec=sec, nanosec=nanosec)


def now_seconds(node) -> float:
    """The node's clock (ROS time, sim time when used), in float seconds."""
    return node.get_clock().now().nanoseconds * 1e-9
