"""Teleoperation and the follower's safety limit equal LeRobot's, with two different arms.

LeRobot's teleoperation reads the leader normalised by the leader's own calibration and
writes it through the follower's (``SOLeader.get_action`` -> ``SOFollower.send_action`` ->
``MotorsBus`` unnormalise), capped by ``max_relative_target`` in LeRobot units. The leader
and follower here have different calibrations, their grippers' ranges far apart, and the
reference is LeRobot's own code: its bus math, and its SOLeader/SOFollower on emulated buses
beside our two so101_node processes over DDS.
"""

from __future__ import annotations

import numpy as np
import pytest
from conftest import wait_for
from lerobot.robots.so_follower import SOFollower, SOFollowerRobotConfig
from lerobot.robots.utils import ensure_safe_goal_position
from lerobot.teleoperators.so_leader import SOLeader, SOLeaderTeleopConfig
from ros_probe import NodeProcess, RosProbe
from test_units import lerobot_bus

from smolvla_ros.calibration import MotorCalibration, save_calibration
from smolvla_ros.feetech.bus import SO101_MOTORS
from smolvla_ros.feetech.emulator import MOCK_CALIBRATION, EmulatedBus
from smolvla_ros.units import SO101_JOINTS, ArmUnits, leader_to_follower_ticks, safe_goal_ticks

FOLLOWER = MOCK_CALIBRATION  # a real SO-101 follower's numbers; gripper 2033..3439
LEADER = {  # another arm: other offsets and ranges, a narrow trigger, one joint reversed
    "shoulder_pan": MotorCalibration(1, 0, -900, 700, 3400),
    "shoulder_lift": MotorCalibration(2, 0, 300, 800, 3300),
    "elbow_flex": MotorCalibration(3, 0, 900, 1000, 3001),
    "wrist_flex": MotorCalibration(4, 1, -1000, 900, 3100),
    "wrist_roll": MotorCalibration(5, 0, 0, 0, 4095),
    "gripper": MotorCalibration(6, 0, 1500, 1900, 2500),
}
IDS = [SO101_MOTORS[name] for name in SO101_JOINTS]
MODES = pytest.mark.parametrize("use_degrees", [True, False], ids=["degrees", "m100_100"])


def lerobot_teleop_ticks(leader_ticks, use_degrees: bool) -> list[int]:
    """LeRobot's bus math: normalise with the leader's calibration, unnormalise with the follower's."""
    normalised = lerobot_bus(LEADER, use_degrees)._normalize(dict(zip(IDS, leader_ticks)))
    return [lerobot_bus(FOLLOWER, use_degrees)._unnormalize(normalised)[i] for i in IDS]


@MODES
def test_leader_to_follower_equals_lerobots_math_for_every_tick(use_degrees):
    leader, follower = ArmUnits(LEADER, use_degrees), ArmUnits(FOLLOWER, use_degrees)
    width = max(m.range_max - m.range_min for m in LEADER.values())
    for offset in range(-20, width + 21):  # every tick of each range, and a little outside
        ticks = [m.range_min + min(offset, m.range_max - m.range_min + 20) for m in leader.motors]
        ours = leader_to_follower_ticks(leader, follower, leader.ticks_to_radians(ticks))
        assert ours.tolist() == lerobot_teleop_ticks(ticks, use_degrees), ticks


@MODES
@pytest.mark.parametrize("cap", [7.5, (3.0, 5.0, 8.0, 2.0, 40.0, 12.5)], ids=["one", "per_joint"])
def test_max_relative_target_is_lerobots_in_lerobot_units(use_degrees, cap):
    units = ArmUnits(FOLLOWER, use_degrees)
    bus = lerobot_bus(FOLLOWER, use_degrees)
    lerobot_cap = cap if isinstance(cap, float) else dict(zip(SO101_JOINTS, cap))
    rng = np.random.default_rng(4)
    capped = 0
    for _ in range(300):
        present = [int(rng.integers(m.range_min, m.range_max + 1)) for m in units.motors]
        goal = [int(rng.integers(m.range_min, m.range_max + 1)) for m in units.motors]
        norm_present = bus._normalize(dict(zip(IDS, present)))
        norm_goal = bus._normalize(dict(zip(IDS, goal)))
        safe = ensure_safe_goal_position(
            {name: (norm_goal[i], norm_present[i]) for name, i in zip(SO101_JOINTS, IDS)}, lerobot_cap)
        expected = bus._unnormalize({i: safe[name] for name, i in zip(SO101_JOINTS, IDS)})
        ours = safe_goal_ticks(units, units.ticks_to_radians(goal), present, cap)
        # A joint within the cap keeps its tick (LeRobot's int() round trip may lose one).
        within = [abs(norm_goal[i] - norm_present[i]) <= c
                  for i, c in zip(IDS, np.broadcast_to(cap, 6))]
        assert ours.tolist() == [g if w else expected[i] for g, w, i in zip(goal, within, IDS)]
        capped += 6 - sum(within)
    assert capped > 300  # the cap did bite, often
    assert safe_goal_ticks(units, units.ticks_to_radians(goal), present, None).tolist() == goal


# --- LeRobot's SOLeader/SOFollower beside our nodes, each pair on its own emulated buses ----------
POSES = [  # leader ticks: the trigger at both ends of its range, body joints around the middle
    [1900, 2000, 1800, 2200, 1000, 1900],
    [2500, 2300, 2300, 1700, 3000, 2500],
    [2100, 1700, 2150, 2050, 2048, 2230],
]


@pytest.fixture
def arms(tmp_path):
    """Four emulated buses: a leader and a follower for LeRobot, the same for our nodes."""
    save_calibration(LEADER, tmp_path / "leader_arm.json")
    save_calibration(FOLLOWER, tmp_path / "follower_arm.json")
    buses = {}
    for name, calibration, speed in (("lr_leader", LEADER, 4000.0), ("lr_follower", FOLLOWER, 0.0),
                                     ("our_leader", LEADER, 4000.0), ("our_follower", FOLLOWER, 0.0)):
        # Followers stand still (speed 0): the cap is then applied against a known position.
        buses[name] = EmulatedBus(speed=speed).start()
        buses[name].load_calibration(calibration)
    yield tmp_path, buses
    for bus in buses.values():
        bus.stop()


def goals(bus: EmulatedBus) -> list[int]:
    return [bus.register(i, "Goal_Position") for i in IDS]


@MODES
@pytest.mark.parametrize("cap", [None, 10.0], ids=["no_cap", "cap_10"])
def test_follower_writes_the_goal_ticks_lerobots_teleoperation_writes(arms, use_degrees, cap):
    folder, buses = arms
    leader = SOLeader(SOLeaderTeleopConfig(port=buses["lr_leader"].port, id="leader_arm",
                                           calibration_dir=folder, use_degrees=use_degrees))
    follower = SOFollower(SOFollowerRobotConfig(port=buses["lr_follower"].port, id="follower_arm",
                                                calibration_dir=folder, use_degrees=use_degrees,
                                                max_relative_target=cap))
    leader.connect()
    follower.connect()
    common = ("-p", f"calibration_dir:={folder}", "-p", f"use_degrees:={str(use_degrees).lower()}")
    our_leader = NodeProcess("so101_node", "-p", f"port:={buses['our_leader'].port}",
                             "-p", "mode:=leader", "-p", "robot_id:=leader_arm", *common)
    our_follower = NodeProcess(
        "so101_node", "-p", f"port:={buses['our_follower'].port}", "-p", "robot_id:=follower_arm",
        "-p", "mirror_topic:=leader/joint_states", "-p", "leader_id:=leader_arm",
        "-p", f"max_relative_target:={cap or 0.0}", *common)
    probe = RosProbe()
    try:
        our_follower.wait_for_output("connected to")
        for pose in POSES:
            for servo_id, ticks in zip(IDS, pose):
                buses["lr_leader"].move_by_hand(servo_id, ticks)
                buses["our_leader"].move_by_hand(servo_id, ticks)
            follower.send_action(leader.get_action())
            # A sync write has no reply: read the goals back through LeRobot's bus, after it.
            written = follower.bus.sync_read("Goal_Position", normalize=False)
            expected = [written[name] for name in SO101_JOINTS]
            assert expected == goals(buses["lr_follower"])
            if cap is None:
                assert expected == lerobot_teleop_ticks(pose, use_degrees)
            assert wait_for(lambda: goals(buses["our_follower"]) == expected, 20), (
                pose, goals(buses["our_follower"]), expected)
        # The two grippers' ranges differ: the follower's jaw spans its own whole range.
        if cap is None:
            assert {FOLLOWER["gripper"].range_min, FOLLOWER["gripper"].range_max} <= {
                lerobot_teleop_ticks(pose, use_degrees)[5] for pose in POSES}
    finally:
        probe.close()
        leader.disconnect()
        follower.disconnect()
        assert our_follower.stop() == 0, our_follower.output()
        assert our_leader.stop() == 0, our_leader.output()


def test_mirroring_without_the_leaders_calibration_is_refused(emulator):
    node = NodeProcess("so101_node", "-p", f"port:={emulator.port}", "-p", "robot_id:=mock",
                       "-p", "mirror_topic:=leader/joint_states")
    assert node.process.wait(timeout=30) == 1  # a bad parameter: one fatal line, exit 1
    node.stop()
    assert "mirror_topic needs leader_id" in node.output()
