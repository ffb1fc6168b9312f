"""Asymmetric SO-101 arms for recording tests, and LeRobot's own arms as the reference.

The follower and the leader differ everywhere a mix-up would show: other ranges and mids,
the grippers far apart (follower 2000..3400, leader 1900..2500), ``drive_mode`` 1 on a
follower body joint (seen in -100..100 units) and on the leader's gripper (seen always).
LeRobot's ``SOFollower`` / ``SOLeader`` load the same calibration from a file with their own
loader, and their bus normalises integer ticks: what ``lerobot-record`` stores.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from smolvla_ros.calibration import MotorCalibration, save_calibration
from smolvla_ros.units import SO101_JOINTS, ArmUnits


def arm(*motors: tuple[int, int, int, int]) -> dict[str, MotorCalibration]:
    """(drive_mode, homing_offset, range_min, range_max) per joint, ids 1..6."""
    return {name: MotorCalibration(k + 1, *fields)
            for k, (name, fields) in enumerate(zip(SO101_JOINTS, motors))}


FOLLOWER = arm((0, -1180, 705, 3390), (0, 312, 820, 3270), (0, -40, 905, 3105),
               (1, 96, 850, 3245), (0, 0, 0, 4095), (0, -1500, 2000, 3400))
LEADER = arm((0, 530, 610, 3480), (0, -260, 1010, 2995), (0, 18, 700, 2890),
             (0, -75, 1105, 3090), (0, 4, 120, 3930), (1, 1200, 1900, 2500))
# A second pair, for files that must win over (or lose to) what a bag stores. Each mid is a
# whole number of ticks away from the first pair's, so an angle is whole ticks of both.
FOLLOWER_B = arm((0, 0, 500, 3601), (0, 0, 700, 3400), (0, 0, 800, 3000),
                 (0, 0, 900, 3101), (0, 0, 50, 4001), (0, 0, 2100, 3300))
LEADER_B = arm((0, 0, 400, 3700), (0, 0, 900, 3101), (0, 0, 600, 2700),
               (0, 0, 1000, 3201), (0, 0, 0, 4094), (0, 0, 1800, 2600))


def random_ticks(calibration, count: int, seed: int) -> np.ndarray:
    """(count, 6) integer ticks, mostly inside each joint's range, some just outside it."""
    rng = np.random.default_rng(seed)
    motors = [calibration[name] for name in SO101_JOINTS]
    low = np.array([max(0, m.range_min - 30) for m in motors])
    high = np.array([min(4095, m.range_max + 30) for m in motors])
    return rng.integers(low, high + 1, size=(count, len(motors)))


def same_angle_ticks(ticks, calibration, other) -> np.ndarray:
    """The ticks of an arm calibrated as ``other`` at the same joint angles (same radians)."""
    shift = [other[name].mid - calibration[name].mid for name in SO101_JOINTS]
    assert all(float(x).is_integer() for x in shift), shift
    return np.asarray(ticks) + np.array(shift, dtype=int)


def radians(calibration, ticks) -> list[float]:
    """What so101_node publishes for these ticks: (raw - mid) * 2π / 4096 of this arm."""
    return [float(x) for x in ArmUnits(calibration).ticks_to_radians(ticks)]


class LeRobotArm:
    """LeRobot's SO-101 follower or leader, built from a calibration file, never connected."""

    def __init__(self, role: str, calibration, folder: Path, use_degrees: bool = True):
        folder = Path(folder)
        save_calibration(calibration, folder / f"{role}.json")
        if role == "follower":
            from lerobot.robots.so_follower import SO101Follower, SO101FollowerConfig
            self.device = SO101Follower(SO101FollowerConfig(
                port="/dev/null", id=role, calibration_dir=folder, use_degrees=use_degrees))
        else:
            from lerobot.teleoperators.so_leader import SO101Leader, SO101LeaderConfig
            self.device = SO101Leader(SO101LeaderConfig(
                port="/dev/null", id=role, calibration_dir=folder, use_degrees=use_degrees))
        bus = self.device.bus
        assert {name: vars(m) for name, m in bus.calibration.items()} == \
            {name: vars(m) for name, m in calibration.items()}  # LeRobot read the same file

    def normalised(self, ticks) -> np.ndarray:
        """LeRobot's ``MotorsBus._normalize`` of one row of raw ticks, as a dataset's float32."""
        bus = self.device.bus
        ids = [bus.motors[name].id for name in SO101_JOINTS]
        values = bus._normalize({motor_id: int(raw) for motor_id, raw in zip(ids, ticks)})
        return np.array([values[motor_id] for motor_id in ids], dtype=np.float32)
