"""Conversions between ROS time messages and float seconds (the core's clock unit)."""

import math

from builtin_interfaces.msg import Duration, Time


def to_seconds(stamp: Time | Duration) -> float:
    return stamp.sec + stamp.nanosec * 1e-9


def _split(seconds: float) -> tuple[int, int]:
    """(sec, nanosec) such that ``to_seconds`` gives ``seconds`` back exactly.

    ``round(seconds * 1e9)`` is not: near today's epoch (1.8e9 s) the product's float spacing
    is 256 ns, and one stamp in 14 came back different, so a chunk's header.stamp did not
    equal the stamp of the observation it was computed from. ``seconds - sec`` is exact.
    """
    sec = math.floor(seconds)
    nanosec = round((seconds - sec) * 1e9)
    return (sec + 1, 0) if nanosec == 1_000_000_000 else (sec, nanosec)


def to_time(seconds: float) -> Time:
    sec, nanosec = _split(seconds)
    return Time(sec=sec, nanosec=nanosec)


def to_duration(seconds: float) -> Duration:
    sec, nanosec = _split(seconds)
    return Duration(sec=sec, nanosec=nanosec)


def to_nanoseconds(stamp: Time) -> int:
    """A stamp as integer nanoseconds: exact, where float seconds near today's epoch resolve
    only ~238 ns (a chunk's stamp must equal its observation's, field for field)."""
    return stamp.sec * 1_000_000_000 + stamp.nanosec


def time_from_nanoseconds(nanoseconds: int) -> Time:
    sec, nanosec = divmod(int(nanoseconds), 1_000_000_000)
    return Time(sec=sec, nanosec=nanosec)


def now_seconds(node) -> float:
    """The node's clock (ROS time, sim time when used), in float seconds."""
    return node.get_clock().now().nanoseconds * 1e-9
