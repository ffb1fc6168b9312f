"""so101_node over real DDS, driving an emulated servo bus through the real SDK.

The emulator runs in the test process and the node in its own, opening the emulator's pty
as it would open /dev/ttyACM0, so the test can watch every register the node writes.
"""

from __future__ import annotations

import statistics

import numpy as np
import pytest
from builtin_interfaces.msg import Duration
from rclpy.serialization import serialize_message
from conftest import REPO_ROOT, wait_for
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus
from ros_probe import NodeProcess, RosProbe
from sensor_msgs.msg import JointState
from std_srvs.srv import Trigger
from trajectory_msgs.msg import JointTrajectory, JointTrajectoryPoint

from smolvla_ros.calibration import save_calibration
from smolvla_ros.feetech.bus import SO101_MOTORS
from smolvla_ros.feetech.emulator import MOCK_CALIBRATION
from smolvla_ros.nodes.ros_time import to_seconds
from smolvla_ros.units import RADIANS_PER_TICK, SO101_JOINTS, ArmUnits

UNITS = ArmUnits(MOCK_CALIBRATION)
RATE_HZ = 50.0


@pytest.fixture
def probe():
    probe = RosProbe()
    yield probe
    probe.close()


@pytest.fixture
def calibration_dir(tmp_path):
    save_calibration(MOCK_CALIBRATION, tmp_path / "arm.json")
    return tmp_path


def start_node(emulator, calibration_dir, *params: str) -> NodeProcess:
    node = NodeProcess("so101_node", "-p", f"port:={emulator.port}", "-p", "robot_id:=arm",
                       "-p", f"calibration_dir:={calibration_dir}", "-p", f"rate_hz:={RATE_HZ}",
                       *[arg for param in params for arg in ("-p", param)])
    node.wait_for_output("connected to")
    return node


@pytest.fixture
def follower(emulator, calibration_dir, probe):
    probe.subscribe(JointState, "joint_states")
    node = start_node(emulator, calibration_dir)
    yield node
    assert node.stop() == 0, node.output()


def present_radians(emulator) -> np.ndarray:
    return UNITS.ticks_to_radians([emulator.register(SO101_MOTORS[n], "Present_Position")
                                   for n in SO101_JOINTS])


def goal_radians(emulator) -> np.ndarray:
    return UNITS.ticks_to_radians([emulator.register(SO101_MOTORS[n], "Goal_Position")
                                   for n in SO101_JOINTS])


def chunk(positions, times, stamp: float = 0.0, names=SO101_JOINTS) -> JointTrajectory:
    msg = JointTrajectory(joint_names=list(names))
    msg.header.stamp.sec = int(stamp)
    msg.header.stamp.nanosec = int(round((stamp % 1) * 1e9))
    for position, t in zip(positions, times):
        msg.points.append(JointTrajectoryPoint(
            positions=[float(v) for v in position],
            time_from_start=Duration(sec=int(t), nanosec=int(round((t % 1) * 1e9)))))
    return msg


def test_joint_states_in_radians_at_the_set_rate(emulator, follower, probe):
    messages = probe.wait_for_messages("joint_states", 40)
    first = messages[-1]
    assert list(first.name) == list(SO101_JOINTS)
    np.testing.assert_allclose(first.position, present_radians(emulator), atol=1e-9)
    assert len(first.velocity) == 6
    stamps = [to_seconds(m.header.stamp) for m in messages]
    assert all(b > a for a, b in zip(stamps, stamps[1:]))
    # The node schedules ticks at rate_hz: the typical spacing of its stamps says so.
    assert statistics.median(np.diff(stamps)) == pytest.approx(1 / RATE_HZ, rel=0.5)


def test_trajectory_moves_servos_along_the_interpolated_path(emulator, follower, probe):
    probe.wait_for_messages("joint_states")
    start = present_radians(emulator)
    target = start.copy()
    target[0] += 0.6
    target[5] += 0.3
    seen_goals = []
    probe.publish(JointTrajectory, "action_chunk",
                  chunk([start + (target - start) * 0.5, target], [0.5, 1.0]))
    assert wait_for(lambda: seen_goals.append(goal_radians(emulator)[0]) or
                    np.allclose(present_radians(emulator), target, atol=2e-3), 20)
    # The goal crossed many intermediate values (interpolation at the control rate).
    intermediate = {round(g, 4) for g in seen_goals if start[0] + 0.05 < g < target[0] - 0.05}
    assert len(intermediate) >= 5, sorted(intermediate)
    assert all(b >= a - 1e-9 for a, b in zip(seen_goals, seen_goals[1:]))  # never backwards


def test_replacing_trajectory_takes_over(emulator, follower, probe):
    probe.wait_for_messages("joint_states")
    start = present_radians(emulator)
    far, back = start.copy(), start.copy()
    far[1] += 0.8
    back[1] -= 0.3
    probe.publish(JointTrajectory, "action_chunk", chunk([far], [3.0]))
    assert wait_for(lambda: goal_radians(emulator)[1] > start[1] + 0.05, 20)
    probe.publish(JointTrajectory, "action_chunk", chunk([back], [0.5]))
    assert wait_for(lambda: np.allclose(present_radians(emulator), back, atol=2e-3), 20)
    assert goal_radians(emulator)[1] < start[1] + 0.8 - 0.1  # never reached the old target


def test_past_points_are_skipped(emulator, follower, probe):
    probe.wait_for_messages("joint_states")
    start = present_radians(emulator)
    past, future = start.copy(), start.copy()
    past[2] += 0.9
    future[2] += 0.3
    # Stamped 2 s ago: the point at +1 s is long past, the one at +3 s is 1 s ahead.
    msg = chunk([past, future], [1.0, 3.0], stamp=probe.now() - 2.0)
    goals = []
    probe.publish(JointTrajectory, "action_chunk", msg)
    assert wait_for(lambda: goals.append(goal_radians(emulator)[2]) or
                    np.allclose(present_radians(emulator), future, atol=2e-3), 20)
    assert max(goals) <= future[2] + RADIANS_PER_TICK  # never headed for the past point


@pytest.mark.parametrize("mutate, message", [
    (lambda m: m.joint_names.__setitem__(0, "elbow"), "unknown joint name"),
    (lambda m: m.points[0].positions.__setitem__(3, float("nan")), "NaN"),
    (lambda m: m.points[1].positions.pop(), "point 1 has 5 positions for 6 joints"),
])
def test_bad_trajectories_are_rejected_whole(emulator, follower, probe, mutate, message):
    probe.wait_for_messages("joint_states")
    start = present_radians(emulator)
    goals_before = goal_radians(emulator)
    msg = chunk([start + 0.2, start + 0.4], [0.5, 1.0])
    mutate(msg)
    probe.publish(JointTrajectory, "action_chunk", msg)
    follower.wait_for_output("trajectory rejected")
    assert message in follower.output()
    np.testing.assert_array_equal(goal_radians(emulator), goals_before)
    assert len(probe.messages("joint_states")) > 0 and follower.process.poll() is None


def test_torque_services(emulator, follower, probe):
    assert all(emulator.register(i, "Torque_Enable") == 1 for i in SO101_MOTORS.values())
    response = probe.call(Trigger, "disable_torque")
    assert response.success and response.message == "torque off"
    assert all(emulator.register(i, "Torque_Enable") == 0 for i in SO101_MOTORS.values())
    assert probe.call(Trigger, "enable_torque").success
    assert all(emulator.register(i, "Torque_Enable") == 1 for i in SO101_MOTORS.values())


def test_torque_off_on_shutdown(emulator, calibration_dir, probe):
    node = start_node(emulator, calibration_dir)
    assert emulator.register(1, "Torque_Enable") == 1
    assert node.stop() == 0
    assert all(emulator.register(i, "Torque_Enable") == 0 for i in SO101_MOTORS.values())


def test_leader_mode_publishes_and_never_writes_goals(emulator, calibration_dir, probe):
    (calibration_dir / "arm.json").rename(calibration_dir / "leader_arm.json")
    probe.subscribe(JointState, "leader/joint_states")
    node = NodeProcess("so101_node", "-p", f"port:={emulator.port}", "-p", "mode:=leader",
                       "-p", "robot_id:=leader_arm", "-p", f"calibration_dir:={calibration_dir}")
    try:
        probe.wait_for_messages("leader/joint_states", 5)
        emulator.move_by_hand(4, 2400)  # a person moves the leader's wrist_flex
        expected = UNITS.ticks_to_radians([2400] * 6)[3]
        assert wait_for(lambda: abs(probe.messages("leader/joint_states")[-1].position[3]
                                    - expected) < 1e-9)
        assert not any(emulator.writes[(i, "Goal_Position")] for i in SO101_MOTORS.values())
        assert all(emulator.register(i, "Torque_Enable") == 0 for i in SO101_MOTORS.values())
        assert not probe.call(Trigger, "enable_torque").success
    finally:
        assert node.stop() == 0, node.output()


def test_follower_mirrors_a_leader_topic(emulator, calibration_dir, probe):
    node = start_node(emulator, calibration_dir, "mirror_topic:=leader/joint_states",
                      "leader_id:=arm")
    try:
        target = present_radians(emulator)
        target[0] -= 0.25
        probe.publish(JointState, "leader/joint_states",
                      JointState(name=list(SO101_JOINTS), position=target.tolist()))
        assert wait_for(lambda: np.allclose(present_radians(emulator), target, atol=2e-3), 20)
    finally:
        assert node.stop() == 0, node.output()


def latest_diagnostic(probe) -> DiagnosticStatus:
    return probe.messages("diagnostics")[-1].status[0]


def test_silent_servo_and_lost_port_are_reported_and_survived(emulator, calibration_dir, probe):
    probe.subscribe(DiagnosticArray, "diagnostics")
    probe.subscribe(JointState, "joint_states")
    node = start_node(emulator, calibration_dir, "diagnostics_period_s:=0.2",
                      "reconnect_period_s:=0.2")
    try:
        assert wait_for(lambda: probe.messages("diagnostics") and
                        latest_diagnostic(probe).level == DiagnosticStatus.OK and
                        "temperature_c.gripper" in
                        {v.key for v in latest_diagnostic(probe).values}, 30)
        values = {v.key: v.value for v in latest_diagnostic(probe).values}
        assert values["temperature_c.gripper"] == "31" and values["voltage_v.gripper"] == "12.1"
        assert values["connected"] == "True" and values["errors"] == "0"
        emulator.silence(5)
        assert wait_for(lambda: latest_diagnostic(probe).level == DiagnosticStatus.WARN, 30)
        assert "wrist_roll" in latest_diagnostic(probe).message
        node.wait_for_output("no reply from wrist_roll (id 5)")
        emulator.silence(5, False)

        emulator.unplug()
        assert wait_for(lambda: latest_diagnostic(probe).level == DiagnosticStatus.ERROR, 30)
        assert latest_diagnostic(probe).message.startswith("disconnected:")
        emulator.replug()
        assert wait_for(lambda: latest_diagnostic(probe).level == DiagnosticStatus.OK, 30)
        count = len(probe.messages("joint_states"))
        probe.wait_for_messages("joint_states", count + 5)  # publishing again
        assert node.process.poll() is None
    finally:
        assert node.stop() == 0, node.output()


def test_without_calibration_the_real_arm_is_never_moved(emulator, tmp_path, probe):
    probe.subscribe(DiagnosticArray, "diagnostics")
    node = NodeProcess("so101_node", "-p", f"port:={emulator.port}", "-p", "robot_id:=nobody",
                       "-p", f"calibration_dir:={tmp_path}")
    try:
        node.wait_for_output("refusing to drive the arm")
        assert "smolvla-ros calibrate" in node.output()
        probe.wait_for_messages("diagnostics")
        assert latest_diagnostic(probe).level == DiagnosticStatus.ERROR
        assert emulator.packets_received == 0
    finally:
        assert node.stop() == 0, node.output()


@pytest.mark.parametrize("params_file", [False, True], ids=["defaults", "config_so101_yaml"])
def test_mock_port_runs_with_nothing_else(probe, params_file):
    probe.subscribe(JointState, "joint_states")
    extra = ["--params-file", str(REPO_ROOT / "config" / "so101.yaml")] if params_file else []
    node = NodeProcess("so101_node", *extra, "-p", "port:=mock")
    try:
        messages = probe.wait_for_messages("joint_states", 5)
        np.testing.assert_allclose(messages[-1].position, UNITS.ticks_to_radians(
            [round(m.mid) for m in MOCK_CALIBRATION.values()]), atol=1e-9)
    finally:
        assert node.stop() == 0, node.output()


def test_calibration_mismatch_keeps_torque_off_until_the_file_is_written(emulator, calibration_dir,
                                                                        probe):
    probe.subscribe(JointState, "joint_states")
    probe.subscribe(DiagnosticArray, "diagnostics")
    emulator.set_register(1, "Homing_Offset", -1400)
    emulator.set_register(6, "Max_Position_Limit", 3000)
    node = start_node(emulator, calibration_dir)
    try:
        node.wait_for_output("calibration file and servo EEPROM differ")
        line = next(l for l in node.lines if "EEPROM differ" in l)
        assert "shoulder_pan.homing_offset: file -1470, servo -1400" in line
        assert "gripper.range_max: file 3439, servo 3000" in line
        assert "write_calibration" in line and "smolvla-ros calibrate" in line  # both ways out
        assert wait_for(lambda: probe.messages("diagnostics") and
                        latest_diagnostic(probe).level == DiagnosticStatus.ERROR, 10)
        assert all(emulator.register(i, "Torque_Enable") == 0 for i in SO101_MOTORS.values())
        assert not probe.messages("joint_states")  # wrong positions are not published
        probe.publish(JointTrajectory, "action_chunk", chunk([present_radians(emulator)], [0.5]))
        node.wait_for_output("trajectory rejected")
        refused = probe.call(Trigger, "enable_torque")
        assert not refused.success and "write_calibration" in refused.message
        assert not any(emulator.writes[(i, "Goal_Position")] for i in SO101_MOTORS.values())
        assert all(emulator.register(i, "Torque_Enable") == 0 for i in SO101_MOTORS.values())

        result = probe.call(Trigger, "write_calibration")
        assert result.success, result.message
        assert emulator.register(1, "Homing_Offset") == -1470
        assert emulator.register(6, "Max_Position_Limit") == 3439
        assert all(emulator.register(i, "Torque_Enable") == 1 for i in SO101_MOTORS.values())
        probe.wait_for_messages("joint_states", 5)
        assert wait_for(lambda: latest_diagnostic(probe).level == DiagnosticStatus.OK, 10)
    finally:
        assert node.stop() == 0, node.output()


def test_robot_id_mock_is_the_emulators_calibration_on_any_port(emulator, probe):
    """`robot_id:=mock` needs no file wherever the emulator serves, not only with port:=mock."""
    probe.subscribe(JointState, "joint_states")
    node = NodeProcess("so101_node", "-p", f"port:={emulator.port}", "-p", "robot_id:=mock")
    try:
        node.wait_for_output("connected to")
        messages = probe.wait_for_messages("joint_states", 5)
        np.testing.assert_allclose(messages[-1].position, present_radians(emulator), atol=1e-9)
        assert all(emulator.register(i, "Torque_Enable") == 1 for i in SO101_MOTORS.values())
    finally:
        assert node.stop() == 0, node.output()


@pytest.mark.parametrize("limit", [None, 1_000_000], ids=["refused", "accepted"])
def test_a_huge_trajectory_does_not_stall_the_control_loop(emulator, calibration_dir, probe, limit):
    """200000 valid points. Before, the control loop waited on its lock while the executor
    took them point by point in Python: its reads paused 0.42-0.52 s (measured here). Such a
    message is now refused unread by default (max_trajectory_points), and one under a raised
    limit is taken in a few vectorised operations."""
    probe.subscribe(JointState, "joint_states")
    # Serialized up front: building it holds this process's GIL, and the emulator's with it.
    huge = serialize_message(chunk([[0.0] * 6] * 200000, [0.01 * (k + 1) for k in range(200000)]))
    node = start_node(emulator, calibration_dir,
                      *([f"max_trajectory_points:={limit}"] if limit else []))
    try:
        probe.wait_for_messages("joint_states", 10)
        before = len(probe.messages("joint_states"))
        probe.publish(JointTrajectory, "action_chunk", huge)
        if limit:
            assert wait_for(lambda: emulator.writes[(1, "Goal_Position")] > 1, 30)  # followed
        else:
            node.wait_for_output("200000 points, more than max_trajectory_points (10000)")
        probe.wait_for_messages("joint_states", len(probe.messages("joint_states")) + int(RATE_HZ))
        stamps = [to_seconds(m.header.stamp) for m in probe.messages("joint_states")[before - 1:]]
        # The loop's own read stamps at 50 Hz: a stall shows as a gap (0.42-0.52 s before;
        # measured after: 0.07 s refused, 0.10 s accepted).
        assert max(np.diff(stamps)) < 0.35, max(np.diff(stamps))
        if not limit:
            assert not any(emulator.writes[(i, "Goal_Position")] > 1 for i in SO101_MOTORS.values())
    finally:
        assert node.stop() == 0, node.output()
