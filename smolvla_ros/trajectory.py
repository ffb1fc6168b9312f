"""Trajectory execution, ROS-free: one implementation for the hardware and the simulation.

Semantics follow ros2_control's joint_trajectory_controller, which users already know:

- points are timed from the trajectory's start time (``header.stamp``; zero means "now"),
  so a chunk computed from an old observation starts where it should be by now;
- points already in the past are skipped;
- between points the target is interpolated linearly at the control rate, starting from the
  target in force when the trajectory arrived (no jump);
- a new trajectory replaces the rest of the old one from its start time: the old one keeps
  running until then;
- after the last point the target holds there.

All times are seconds on one clock (the node's ROS clock), positions in radians.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np


class TrajectoryError(ValueError):
    """A trajectory that must be rejected whole; the message is one line for the log."""


@dataclass(frozen=True)
class Trajectory:
    joint_names: tuple[str, ...]
    start: float  # seconds; 0.0 = start on arrival
    times: np.ndarray  # (N,) seconds from start, strictly increasing
    positions: np.ndarray  # (N, len(joint_names)) radians


def make_trajectory(joint_names: Sequence[str], start: float, times: Sequence[float],
                    positions: Sequence[Sequence[float]], known_joints: Sequence[str]) -> Trajectory:
    """Validate message contents and build a Trajectory, or raise TrajectoryError."""
    names = tuple(joint_names)
    unknown = [name for name in names if name not in known_joints]
    if unknown:
        raise TrajectoryError(f"unknown joint name(s) {unknown}; this arm has {list(known_joints)}")
    if len(set(names)) != len(names):
        raise TrajectoryError(f"joint names repeat: {list(names)}")
    if not names:
        raise TrajectoryError("no joint names")
    if not len(times):
        raise TrajectoryError("no points")
    bad_rows = [k for k, row in enumerate(positions) if len(row) != len(names)]
    if bad_rows:
        raise TrajectoryError(
            f"point {bad_rows[0]} has {len(positions[bad_rows[0]])} positions for {len(names)} joints")
    times_array = np.asarray(times, dtype=float)
    positions_array = np.asarray(positions, dtype=float).reshape(len(times_array), len(names))
    if not np.all(np.isfinite(positions_array)):
        k = int(np.argwhere(~np.isfinite(positions_array))[0][0])
        raise TrajectoryError(f"point {k} has a NaN or infinite position")
    if not np.all(np.isfinite(times_array)) or not math.isfinite(start):
        raise TrajectoryError("a time is NaN or infinite")
    if np.any(np.diff(times_array) <= 0):
        raise TrajectoryError("time_from_start must increase strictly from point to point")
    return Trajectory(names, float(start), times_array, positions_array)


class TrajectoryExecutor:
    """Holds the active path and samples it. Not thread-safe: callers hold one lock."""

    def __init__(self, joint_names: Sequence[str]):
        self.joint_names = tuple(joint_names)
        self._knot_times = np.empty(0)
        self._knots = np.empty((0, len(self.joint_names)))

    @property
    def has_target(self) -> bool:
        return len(self._knot_times) > 0

    def is_moving(self, now: float) -> bool:
        """True while a trajectory still has points ahead of ``now``."""
        return self.has_target and now < self._knot_times[-1]

    def clear(self) -> None:
        """Forget every trajectory (e.g. after torque off or a reconnect)."""
        self._knot_times = np.empty(0)
        self._knots = np.empty((0, len(self.joint_names)))

    def replace(self, trajectory: Trajectory, now: float, current: Sequence[float]) -> int:
        """Make ``trajectory`` the path from its start on; returns how many points were skipped.

        ``current`` is the measured position, used when nothing was commanded yet.
        Raises TrajectoryError if every point is already in the past.
        """
        start = trajectory.start if trajectory.start > 0 else now
        times = start + trajectory.times
        future = times > now
        if not future.any():
            raise TrajectoryError(
                f"all {len(times)} points are in the past (last one {now - times[-1]:.3f} s ago)")
        in_force = self.sample(now)
        anchor = np.asarray(current, dtype=float) if in_force is None else in_force

        columns = [self.joint_names.index(name) for name in trajectory.joint_names]
        knot_times, knots = [np.array([now])], [anchor[None, :]]
        if start > now:  # the old path (or the hold) runs until the new one starts
            if self.has_target:
                keep = (self._knot_times > now) & (self._knot_times < start)
                knot_times.append(self._knot_times[keep])
                knots.append(self._knots[keep])
            knot_times.append(np.array([start]))
            knots.append((anchor if in_force is None else self.sample(start))[None, :])
        # Vectorised: a long trajectory must not hold the caller's lock (the control loop's).
        new = np.repeat(knots[-1][-1:], int(future.sum()), axis=0)  # left-out joints keep target
        new[:, columns] = trajectory.positions[future]
        self._knot_times = np.concatenate([*knot_times, times[future]])
        self._knots = np.concatenate([*knots, new])
        return int((~future).sum())

    def sample(self, now: float) -> np.ndarray | None:
        """The target at ``now``; None when no trajectory was ever given (caller holds)."""
        if not self.has_target:
            return None
        if now >= self._knot_times[-1]:
            return self._knots[-1].copy()
        if now <= self._knot_times[0]:
            return self._knots[0].copy()
        k = int(np.searchsorted(self._knot_times, now, side="right"))
        t0, t1 = self._knot_times[k - 1], self._knot_times[k]
        alpha = (now - t0) / (t1 - t0)
        return self._knots[k - 1] + alpha * (self._knots[k] - self._knots[k - 1])
