"""Float seconds <-> ROS time messages: a stamp survives the core's float clock exactly."""

from __future__ import annotations

import numpy as np
from builtin_interfaces.msg import Duration, Time

from smolvla_ros.nodes.ros_time import (
    time_from_nanoseconds, to_duration, to_nanoseconds, to_seconds, to_time,
)


def test_stamps_round_trip_exactly_through_float_seconds():
    rng = np.random.default_rng(0)
    for sec in (0, 12, 1_700_000_000, 1_795_703_381, 2_000_000_000):
        for nanosec in rng.integers(0, 10**9, 20000):
            seconds = to_seconds(Time(sec=sec, nanosec=int(nanosec)))
            assert to_seconds(to_time(seconds)) == seconds, (sec, nanosec)


def test_durations_and_edges():
    assert to_duration(1 / 30) == Duration(sec=0, nanosec=33333333)
    assert to_time(2.9999999999) == Time(sec=3, nanosec=0)
    assert to_time(0.0) == Time(sec=0, nanosec=0)


def test_stamps_as_integer_nanoseconds_are_exact():
    rng = np.random.default_rng(1)
    for sec in (0, 1_795_703_381, 2_000_000_000):
        for nanosec in rng.integers(0, 10**9, 20000):
            stamp = Time(sec=sec, nanosec=int(nanosec))
            assert time_from_nanoseconds(to_nanoseconds(stamp)) == stamp
