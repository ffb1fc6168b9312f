"""Trajectory execution semantics (joint_trajectory_controller's), on plain numbers."""

from __future__ import annotations

import numpy as np
import pytest

from smolvla_ros.trajectory import (
    TrajectoryError,
    TrajectoryExecutor,
    make_trajectory,
)

JOINTS = ("a", "b")


def trajectory(start, times, positions, names=JOINTS):
    return make_trajectory(names, start, times, positions, JOINTS)


def test_no_trajectory_means_hold():
    executor = TrajectoryExecutor(JOINTS)
    assert executor.sample(10.0) is None and not executor.is_moving(10.0)


def test_points_are_timed_from_start_and_interpolated():
    executor = TrajectoryExecutor(JOINTS)
    skipped = executor.replace(trajectory(100.0, [1.0, 2.0], [[1, 10], [2, 20]]), now=100.0,
                               current=[0, 0])
    assert skipped == 0
    np.testing.assert_allclose(executor.sample(100.0), [0, 0])  # from the current position
    np.testing.assert_allclose(executor.sample(100.5), [0.5, 5])
    np.testing.assert_allclose(executor.sample(101.0), [1, 10])
    np.testing.assert_allclose(executor.sample(101.25), [1.25, 12.5])
    assert executor.is_moving(101.9)
    np.testing.assert_allclose(executor.sample(105.0), [2, 20])  # holds the last point
    assert not executor.is_moving(105.0)


def test_zero_stamp_starts_on_arrival():
    executor = TrajectoryExecutor(JOINTS)
    executor.replace(trajectory(0.0, [1.0], [[4, 4]]), now=50.0, current=[0, 0])
    np.testing.assert_allclose(executor.sample(50.5), [2, 2])


def test_past_points_are_skipped():
    executor = TrajectoryExecutor(JOINTS)
    # Stamped 1.5 s ago: points at +1 s and +1.5 s are past, +2 s and +3 s remain.
    skipped = executor.replace(trajectory(98.5, [1.0, 1.5, 2.0, 3.0],
                                          [[9, 9], [9, 9], [2, 2], [3, 3]]), now=100.0,
                               current=[1, 1])
    assert skipped == 2
    np.testing.assert_allclose(executor.sample(100.0), [1, 1])  # no jump to a past point
    np.testing.assert_allclose(executor.sample(100.25), [1.5, 1.5])
    np.testing.assert_allclose(executor.sample(101.5), [3, 3])


def test_all_points_past_is_rejected_and_old_path_kept():
    executor = TrajectoryExecutor(JOINTS)
    executor.replace(trajectory(100.0, [1.0], [[1, 1]]), now=100.0, current=[0, 0])
    with pytest.raises(TrajectoryError, match="all 2 points are in the past"):
        executor.replace(trajectory(90.0, [1.0, 2.0], [[5, 5], [6, 6]]), now=100.0, current=[0, 0])
    np.testing.assert_allclose(executor.sample(101.0), [1, 1])


def test_new_trajectory_replaces_the_rest_from_its_start():
    executor = TrajectoryExecutor(JOINTS)
    executor.replace(trajectory(100.0, [1.0, 2.0], [[10, 10], [20, 20]]), now=100.0, current=[0, 0])
    # Arrives at 100.5, starts at 101.0: the old path runs until 101.0, then the new one.
    executor.replace(trajectory(101.0, [1.0], [[0, 0]]), now=100.5, current=[0, 0])
    np.testing.assert_allclose(executor.sample(100.75), [7.5, 7.5])  # still the old path
    np.testing.assert_allclose(executor.sample(101.0), [10, 10])
    np.testing.assert_allclose(executor.sample(101.5), [5, 5])  # toward the new point
    np.testing.assert_allclose(executor.sample(102.0), [0, 0])
    np.testing.assert_allclose(executor.sample(103.0), [0, 0])  # old point at +2 s is gone


def test_immediate_replacement_starts_from_target_in_force():
    executor = TrajectoryExecutor(JOINTS)
    executor.replace(trajectory(100.0, [1.0], [[10, 10]]), now=100.0, current=[0, 0])
    executor.replace(trajectory(0.0, [1.0], [[-10, -10]]), now=100.5, current=[99, 99])
    np.testing.assert_allclose(executor.sample(100.5), [5, 5])
    np.testing.assert_allclose(executor.sample(101.0), [-2.5, -2.5])


def test_subset_of_joints_keeps_the_others():
    executor = TrajectoryExecutor(JOINTS)
    executor.replace(trajectory(0.0, [1.0], [[7]], names=("b",)), now=0.0, current=[3, 0])
    np.testing.assert_allclose(executor.sample(1.0), [3, 7])


@pytest.mark.parametrize("names, times, positions, message", [
    (("a", "z"), [1.0], [[0, 0]], r"unknown joint name\(s\) \['z'\]"),
    (("a", "a"), [1.0], [[0, 0]], "joint names repeat"),
    (JOINTS, [], [], "no points"),
    (JOINTS, [1.0, 2.0], [[0, 0], [0]], "point 1 has 1 positions for 2 joints"),
    (JOINTS, [1.0, 2.0], [[0, 0], [0, float("nan")]], "point 1 has a NaN"),
    (JOINTS, [1.0, 1.0], [[0, 0], [0, 0]], "must increase strictly"),
    (JOINTS, [float("inf")], [[0, 0]], "NaN or infinite"),
])
def test_bad_trajectories_are_rejected_with_one_line(names, times, positions, message):
    with pytest.raises(TrajectoryError, match=message) as error:
        make_trajectory(names, 0.0, times, positions, JOINTS)
    assert "\n" not in str(error.value)

