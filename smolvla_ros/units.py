"""Unit conversions between servo ticks, ROS radians and LeRobot's normalised units.

This is the one place that knows the units contract:

- ROS side (every topic, REP-103): radians, ``(raw - mid) * 2*pi / 4096`` for all six joints,
  ``mid = (range_min + range_max) / 2`` from the calibration file.
- LeRobot side (what SmolVLA checkpoints and LeRobotDatasets hold), as
  ``lerobot.motors.MotorsBus._normalize`` / ``_unnormalize`` compute it, operation for
  operation so results are bit-identical: body joints in degrees ``(raw - mid) * 360 / 4095``
  (LeRobot >= 0.4.3) or the older ``RANGE_M100_100``; the gripper in ``RANGE_0_100``.
  Range modes clamp to the calibrated range and honour ``drive_mode``; degrees do neither,
  exactly like LeRobot.

Radians to LeRobot units go through *float* ticks (no rounding), so a simulated arm's
continuous angles keep their precision; a real arm's radians come from integer ticks and
map back to them exactly.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from enum import Enum

import numpy as np

from smolvla_ros.calibration import Calibration, MotorCalibration

TICKS_PER_TURN = 4096  # STS3215 resolution
LEROBOT_MAX_RES = TICKS_PER_TURN - 1  # LeRobot divides by resolution - 1 in DEGREES mode
RADIANS_PER_TICK = 2 * math.pi / TICKS_PER_TURN

SO101_JOINTS = ("shoulder_pan", "shoulder_lift", "elbow_flex", "wrist_flex", "wrist_roll", "gripper")
GRIPPER = "gripper"


class NormMode(str, Enum):
    """LeRobot's MotorNormMode values, by the same names."""

    DEGREES = "degrees"
    RANGE_M100_100 = "range_m100_100"
    RANGE_0_100 = "range_0_100"


def ticks_to_radians(raw: float, motor: MotorCalibration) -> float:
    return (raw - motor.mid) * RADIANS_PER_TICK


TICK_SNAP = 1e-6  # ticks: a float round trip of an integer tick lands this close to it


def radians_to_float_ticks(radians: float, motor: MotorCalibration) -> float:
    """Radians to ticks without rounding. A value within TICK_SNAP of an integer is that
    integer: a real arm's radians come from integer ticks, and the float round trip must not
    turn tick 2048 into 2047.9999999999998, which LeRobot's truncating ``int()`` would make
    2047 on its way to a servo. (A simulated arm's continuous angles move by < 2e-9 rad.)"""
    ticks = radians / RADIANS_PER_TICK + motor.mid
    nearest = round(ticks)
    return float(nearest) if abs(ticks - nearest) < TICK_SNAP else ticks


def radians_to_ticks(radians: float, motor: MotorCalibration) -> int:
    """Nearest integer tick: exact inverse of ticks_to_radians for integer ticks."""
    return round(radians_to_float_ticks(radians, motor))


def ticks_to_lerobot(raw: float, motor: MotorCalibration, mode: NormMode) -> float:
    """LeRobot's ``MotorsBus._normalize`` for one value."""
    min_, max_ = motor.range_min, motor.range_max
    if mode is NormMode.DEGREES:
        mid = (min_ + max_) / 2
        return (raw - mid) * 360 / LEROBOT_MAX_RES
    bounded = min(max_, max(min_, raw))
    if mode is NormMode.RANGE_M100_100:
        norm = (((bounded - min_) / (max_ - min_)) * 200) - 100
        return -norm if motor.drive_mode else norm
    norm = ((bounded - min_) / (max_ - min_)) * 100
    return 100 - norm if motor.drive_mode else norm


def lerobot_to_ticks(value: float, motor: MotorCalibration, mode: NormMode) -> int:
    """LeRobot's ``MotorsBus._unnormalize`` for one value (it truncates with int())."""
    min_, max_ = motor.range_min, motor.range_max
    if mode is NormMode.DEGREES:
        mid = (min_ + max_) / 2
        return int((value * LEROBOT_MAX_RES / 360) + mid)
    if mode is NormMode.RANGE_M100_100:
        value = -value if motor.drive_mode else value
        bounded = min(100.0, max(-100.0, value))
        return int(((bounded + 100) / 200) * (max_ - min_) + min_)
    value = 100 - value if motor.drive_mode else value
    bounded = min(100.0, max(0.0, value))
    return int((bounded / 100) * (max_ - min_) + min_)


def _clamp(value: float, low: float, high: float) -> float:
    return min(high, max(low, value))


def _clamp_array(value: np.ndarray, low: float, high: float) -> np.ndarray:
    """``_clamp`` element by element, the same bits for finite values; NaN stays NaN."""
    return np.minimum(high, np.maximum(low, value))


def lerobot_to_float_ticks(value, motor: MotorCalibration, mode: NormMode, clamp=_clamp):
    """``lerobot_to_ticks`` without the truncation, for continuous (simulated) joints. With
    ``clamp=_clamp_array``, ``value`` is a whole column of actions (a numpy array)."""
    min_, max_ = motor.range_min, motor.range_max
    if mode is NormMode.DEGREES:
        return value * LEROBOT_MAX_RES / 360 + motor.mid
    if mode is NormMode.RANGE_M100_100:
        value = -value if motor.drive_mode else value
        return ((clamp(value, -100.0, 100.0) + 100) / 200) * (max_ - min_) + min_
    value = 100 - value if motor.drive_mode else value
    return (clamp(value, 0.0, 100.0) / 100) * (max_ - min_) + min_


def lerobot_modes(use_degrees: bool = True, joints: Sequence[str] = SO101_JOINTS) -> dict[str, NormMode]:
    """The SO follower's modes: body joints in degrees (or -100..100), gripper 0..100."""
    body = NormMode.DEGREES if use_degrees else NormMode.RANGE_M100_100
    return {name: NormMode.RANGE_0_100 if name == GRIPPER else body for name in joints}


class ArmUnits:
    """Conversions for a whole arm, joint vectors in ``joints`` order.

    Built from the calibration file and LeRobot's unit convention (``use_degrees``), it is
    what nodes use: ``joint_states`` radians <-> servo ticks <-> the LeRobot units of the
    checkpoint's ``observation.state`` and ``action``.
    """

    def __init__(self, calibration: Calibration, use_degrees: bool = True,
                 joints: Sequence[str] = SO101_JOINTS):
        missing = [name for name in joints if name not in calibration]
        if missing:
            raise ValueError(f"calibration has no entry for joint(s) {missing}")
        self.joints = tuple(joints)
        self.motors = tuple(calibration[name] for name in self.joints)
        self.modes = tuple(lerobot_modes(use_degrees, self.joints)[name] for name in self.joints)

    def _per_joint(self, convert, values: Sequence[float], with_mode: bool = False) -> list:
        if len(values) != len(self.joints):
            raise ValueError(
                f"expected {len(self.joints)} values ({', '.join(self.joints)}), got {len(values)}"
            )
        if with_mode:
            return [convert(float(v), m, mode) for v, m, mode in zip(values, self.motors, self.modes)]
        return [convert(float(v), m) for v, m in zip(values, self.motors)]

    def ticks_to_radians(self, ticks: Sequence[float]) -> np.ndarray:
        return np.array(self._per_joint(ticks_to_radians, ticks))

    def radians_to_ticks(self, radians: Sequence[float]) -> np.ndarray:
        return np.array(self._per_joint(radians_to_ticks, radians), dtype=np.int64)

    def ticks_to_lerobot(self, ticks: Sequence[float]) -> np.ndarray:
        return np.array(self._per_joint(ticks_to_lerobot, ticks, with_mode=True))

    def lerobot_to_ticks(self, values: Sequence[float]) -> np.ndarray:
        return np.array(self._per_joint(lerobot_to_ticks, values, with_mode=True), dtype=np.int64)

    def radians_to_lerobot(self, radians: Sequence[float]) -> np.ndarray:
        return self.ticks_to_lerobot(self._per_joint(radians_to_float_ticks, radians))

    def lerobot_to_radians(self, values: Sequence[float]) -> np.ndarray:
        return self.ticks_to_radians(self._per_joint(lerobot_to_float_ticks, values, with_mode=True))

    def lerobot_chunk_to_radians(self, chunk) -> np.ndarray:
        """A whole action chunk (n, joints) in LeRobot units to radians, column by column:
        the same operations in the same order as ``lerobot_to_radians`` on each row, so the
        same bits for every finite value (tested), without 2 x n x joints Python calls on the
        policy's hot path. A NaN stays NaN, where the scalar clamp (Python's max) turns
        it into the end of the range: a model's NaN must not become a goal at a joint limit,
        and the arm nodes refuse non-finite points."""
        chunk = np.asarray(chunk, dtype=np.float64)
        if chunk.ndim != 2 or chunk.shape[1] != len(self.joints):
            raise ValueError(f"expected an (n, {len(self.joints)}) chunk, got shape {chunk.shape}")
        radians = np.empty_like(chunk)
        for j, (motor, mode) in enumerate(zip(self.motors, self.modes)):
            ticks = lerobot_to_float_ticks(chunk[:, j], motor, mode, clamp=_clamp_array)
            radians[:, j] = ticks_to_radians(ticks, motor)
        return radians

    def radian_limits(self) -> tuple[np.ndarray, np.ndarray]:
        """Each joint's calibrated range in radians: (lower, upper)."""
        return (self.ticks_to_radians([m.range_min for m in self.motors]),
                self.ticks_to_radians([m.range_max for m in self.motors]))


def leader_to_follower_ticks(leader: ArmUnits, follower: ArmUnits, leader_radians) -> np.ndarray:
    """LeRobot's teleoperation step: the leader's reading, normalised with the leader's own
    calibration (``SOLeader.get_action``), written through the follower's calibration
    (``SOFollower.send_action`` -> ``MotorsBus`` unnormalise): the follower's goal ticks.

    The two arms' ranges differ (the leader's trigger and the follower's jaw above all), so
    copying radians would not do: the gripper's 0..100 spans each arm's own range."""
    return follower.lerobot_to_ticks(leader.radians_to_lerobot(leader_radians))


def safe_goal_ticks(units: ArmUnits, goal_radians, present_ticks, max_relative_target) -> np.ndarray:
    """The goal ticks to write, with LeRobot's ``ensure_safe_goal_position``: in LeRobot units
    (degrees or -100..100, gripper 0..100), no joint's goal lies further than
    ``max_relative_target`` (one number, or one per joint) from its present position.

    A joint within the limit keeps its own nearest tick; a capped one is written as LeRobot
    writes it (present + cap, unnormalised with truncation)."""
    goal_ticks = units.radians_to_ticks(goal_radians)
    if max_relative_target is None:
        return goal_ticks
    present = units.ticks_to_lerobot(present_ticks)
    goal = units.radians_to_lerobot(goal_radians)
    cap = np.broadcast_to(np.asarray(max_relative_target, dtype=float), goal.shape)
    diff = goal - present
    safe_diff = np.maximum(np.minimum(diff, cap), -cap)  # LeRobot's min, then max
    capped = safe_diff != diff
    if not capped.any():
        return goal_ticks
    return np.where(capped, units.lerobot_to_ticks(present + safe_diff), goal_ticks)
