"""so101_node: the SO-101 arm on its Feetech bus, as a ROS 2 node.

Follower mode publishes ``joint_states`` (radians) at ``rate_hz`` and executes
``action_chunk`` trajectories; leader mode keeps torque off and publishes
``leader/joint_states`` for teleoperation. A follower mirroring a leader maps the leader's
reading as LeRobot's teleoperation does: normalised with the leader's calibration
(``leader_id``), written through its own. ``port:=mock`` runs on an emulated bus with its
own calibration. All bus work happens on one control thread; callbacks only hand over
trajectories and commands.
"""

from __future__ import annotations

import threading
import time

import numpy as np

from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from rclpy.node import Node
from sensor_msgs.msg import JointState
from std_srvs.srv import Trigger
from trajectory_msgs.msg import JointTrajectory

from smolvla_ros.arm_controller import FOLLOWER, LEADER, ArmController, ArmControllerConfig
from smolvla_ros.calibration import calibration_path, robot_calibration
from smolvla_ros.feetech.bus import SO101_MOTORS, BusConfig, FeetechBus
from smolvla_ros.feetech.emulator import MOCK_CALIBRATION, EmulatedBus
from smolvla_ros.nodes.common import (
    MAX_TRAJECTORY_POINTS, core_logger, declare_parameters, run,
)
from smolvla_ros.nodes.ros_time import now_seconds
from smolvla_ros.trajectory import TrajectoryError, make_trajectory
from smolvla_ros.trajectory_cdr import trajectory_from_cdr
from smolvla_ros.units import SO101_JOINTS, ArmUnits, leader_to_follower_ticks

MOCK_PORT = "mock"

# name: (default, description). config/so101.yaml lists the same, for --params-file.
PARAMETERS = {
    "port": ("/dev/ttyACM0", "serial port of the bus adapter; 'mock' = emulated bus"),
    "robot_id": ("so101_follower", "LeRobot robot id: the calibration file is <robot_id>.json; "
                                   "'mock' = the emulated arm's calibration"),
    "calibration_dir": ("", "folder holding <robot_id>.json (and <leader_id>.json); empty = "
                            "LeRobot's default folders"),
    "mode": (FOLLOWER, "'follower' executes trajectories; 'leader' only publishes (torque off)"),
    "rate_hz": (100.0, "control loop and joint_states rate"),
    "mirror_topic": ("", "follower only: follow this leader JointState topic (e.g. "
                         "leader/joint_states); needs leader_id"),
    "leader_id": ("", "with mirror_topic: the leader arm's calibration id, to map its reading "
                      "as LeRobot's teleoperation does"),
    "use_degrees": (True, "LeRobot units of the mirror mapping and max_relative_target: degrees "
                          "(LeRobot >= 0.4.3) or the older -100..100"),
    "torque_on_start": (True, "follower: enable torque after configuration, as LeRobot does"),
    "disable_torque_on_shutdown": (True, "disable torque when the node stops (LeRobot's default)"),
    "max_relative_target": (0.0, "LeRobot's max_relative_target, in LeRobot units (degrees or "
                                 "-100..100, gripper 0..100): the furthest a goal may lie from "
                                 "the present position; one number or one per joint; 0 = none"),
    "read_retries": (2, "extra attempts for a failed read (LeRobot uses 2)"),
    "reply_timeout_ms": (50.0, "how long to wait for a servo's reply"),
    MAX_TRAJECTORY_POINTS[0]: MAX_TRAJECTORY_POINTS[1],
    "reconnect_period_s": (1.0, "how often to retry a lost or missing port"),
    "diagnostics_period_s": (1.0, "how often to publish diagnostics and read temperatures/voltages"),
    "return_delay_time": (0, "written on connect (LeRobot: 0)"),
    "acceleration": (254, "written on connect (LeRobot: 254)"),
    "maximum_acceleration": (254, "written on connect (LeRobot: 254)"),
    "p_coefficient": (16, "position P gain written on connect (LeRobot: 16)"),
    "i_coefficient": (0, "position I gain written on connect (LeRobot: 0)"),
    "d_coefficient": (32, "position D gain written on connect (LeRobot: 32)"),
    "gripper_max_torque_limit": (500, "gripper Max_Torque_Limit (LeRobot: 500)"),
    "gripper_protection_current": (250, "gripper Protection_Current (LeRobot: 250)"),
    "gripper_overload_torque": (25, "gripper Overload_Torque (LeRobot: 25)"),
}
BUS_PARAMETERS = ("read_retries", "reply_timeout_ms", "return_delay_time", "acceleration",
                  "maximum_acceleration", "p_coefficient", "i_coefficient", "d_coefficient",
                  "gripper_max_torque_limit", "gripper_protection_current",
                  "gripper_overload_torque")


def max_relative_target(value) -> float | tuple[float, ...] | None:
    """The parameter as LeRobot's SOFollowerConfig takes it: None, one number, or one per joint."""
    values = [value] if isinstance(value, (int, float)) else list(value)
    if len(values) not in (1, len(SO101_JOINTS)) or any(v < 0 for v in values):
        raise ValueError(f"max_relative_target must be one number >= 0 or {len(SO101_JOINTS)} "
                         f"({', '.join(SO101_JOINTS)}), not {value!r}")
    if len(values) == 1:
        return float(values[0]) or None
    return tuple(float(v) for v in values)


class SO101Node(Node):
    def __init__(self):
        super().__init__("so101_node")
        p = declare_parameters(self, PARAMETERS, dynamic=("max_relative_target",))
        self.mode = p["mode"]
        if self.mode not in (FOLLOWER, LEADER):
            raise ValueError(f"parameter mode must be '{FOLLOWER}' or '{LEADER}', not '{self.mode}'")
        self.period_s = 1.0 / p["rate_hz"]
        self.port = p["port"]
        topic = "joint_states" if self.mode == FOLLOWER else "leader/joint_states"
        # Keep 3 s of history: under camera load a sample lost from a full UDP socket is
        # re-sent on the next DDS heartbeat (~3 s with Fast DDS) only while it is still held.
        self.joint_state_pub = self.create_publisher(JointState, topic, max(10, int(3 * p["rate_hz"])))
        self.diagnostics_pub = self.create_publisher(DiagnosticArray, "diagnostics", 10)
        self.emulator: EmulatedBus | None = None
        self.controller: ArmController | None = None
        self.refusal = ""
        self._ticks = 0
        self._rate_hz = 0.0
        self._stop = threading.Event()

        limit = max_relative_target(p["max_relative_target"])
        if p["mirror_topic"] and not p["leader_id"]:
            raise ValueError("mirror_topic needs leader_id: the leader's calibration maps its "
                             "reading to this arm as LeRobot's teleoperation does "
                             "(leader_id:=mock for an emulated leader)")
        calibration = self._load_calibration(p["robot_id"], self.mode, p)
        leader = self._load_calibration(p["leader_id"], LEADER, p) if p["mirror_topic"] else None
        if calibration is None or (p["mirror_topic"] and leader is None):
            self.create_timer(p["diagnostics_period_s"], self._publish_diagnostics)
            return
        self.leader_units = ArmUnits(leader, p["use_degrees"]) if leader else None
        bus_config = BusConfig(port=self.port, **{name: p[name] for name in BUS_PARAMETERS})
        if self.port == MOCK_PORT:
            self.emulator = EmulatedBus().start()
            self.emulator.load_calibration(calibration)
            bus_config.port = self.emulator.port
        self.controller = ArmController(
            FeetechBus(bus_config), calibration, ArmUnits(calibration, p["use_degrees"]),
            ArmControllerConfig(
                mode=self.mode, torque_on_start=p["torque_on_start"],
                disable_torque_on_shutdown=p["disable_torque_on_shutdown"],
                max_relative_target=limit,
                reconnect_period_s=p["reconnect_period_s"],
                health_period_s=p["diagnostics_period_s"]),
            core_logger(self))

        if self.mode == FOLLOWER:
            self.max_trajectory_points = p["max_trajectory_points"]
            self.create_subscription(JointTrajectory, "action_chunk", self._on_trajectory, 10,
                                     raw=True)  # sized before it is deserialized
            if p["mirror_topic"]:
                self.create_subscription(JointState, p["mirror_topic"], self._on_mirror, 10)
        self.create_service(Trigger, "enable_torque", lambda req, res: self._on_torque(True, res))
        self.create_service(Trigger, "disable_torque", lambda req, res: self._on_torque(False, res))
        self.create_service(Trigger, "write_calibration", self._on_write_calibration)
        self.create_timer(p["diagnostics_period_s"], self._publish_diagnostics)
        self._control_thread = threading.Thread(target=self._control_loop, name="so101-control",
                                                daemon=True)
        self._control_thread.start()

    def _load_calibration(self, robot_id: str, role: str, p: dict):
        """The calibration of ``robot_id`` in ``role``; None (and why, logged) when unusable."""
        if self.port == MOCK_PORT and role == self.mode:
            return MOCK_CALIBRATION  # the emulated bus is calibrated like the mock arm
        try:
            return robot_calibration(robot_id, role, p["calibration_dir"])
        except FileNotFoundError:
            path = calibration_path(robot_id, role, p["calibration_dir"])
            self.refusal = (
                f"no calibration file {path}: refusing to drive the arm. Calibrate with "
                f"`smolvla-ros calibrate --port {self.port if role == self.mode else '<its port>'} "
                f"--robot-id {robot_id}"
                f"{' --leader' if role == LEADER else ''}`, or set calibration_dir/"
                f"{'leader_id' if role != self.mode else 'robot_id'}")
        except ValueError as error:
            self.refusal = f"refusing to drive the arm: {error}"
        self.get_logger().error(self.refusal)
        return None

    # --- control thread -------------------------------------------------------------------
    def _control_loop(self) -> None:
        names = list(self.controller.units.joints)
        next_tick = time.monotonic()
        window_start, window_ticks = next_tick, 0
        while not self._stop.is_set():
            now = self.get_clock().now()
            try:
                reading = self.controller.step(now.nanoseconds * 1e-9)
            except Exception as error:  # a bug must not silently end the control loop
                self.get_logger().error(f"control step failed: {error!r}",
                                        throttle_duration_sec=5.0)
                reading = None
            if reading is not None:
                msg = JointState(name=names, position=reading.positions.tolist(),
                                 velocity=reading.velocities.tolist())
                msg.header.stamp = now.to_msg()
                self.joint_state_pub.publish(msg)
                window_ticks += 1
            next_tick += self.period_s
            delay = next_tick - time.monotonic()
            if delay < -self.period_s:  # fell behind (a failing read blocked): do not burst
                next_tick = time.monotonic()
            self._stop.wait(max(delay, 0.0))
            if time.monotonic() - window_start >= 1.0:
                elapsed = time.monotonic() - window_start
                self._rate_hz = window_ticks / elapsed
                window_start, window_ticks = time.monotonic(), 0

    # --- callbacks (executor thread) ------------------------------------------------------------
    def _on_trajectory(self, raw: bytes) -> None:
        try:
            trajectory = trajectory_from_cdr(raw, SO101_MOTORS, self.max_trajectory_points)
            skipped = self.controller.submit(trajectory, now_seconds(self))
        except (TrajectoryError, RuntimeError) as error:
            self.get_logger().error(f"trajectory rejected: {error}")
            return
        if skipped:
            self.get_logger().debug(f"trajectory: skipped {skipped} past point(s)")

    def _on_mirror(self, msg: JointState) -> None:
        """Follow a leader: the goal ticks LeRobot's teleoperation would write for its latest
        reading, reached by the next control tick."""
        try:
            by_name = dict(zip(msg.name, msg.position))
            missing = [name for name in SO101_JOINTS if name not in by_name]
            if missing:
                raise TrajectoryError(f"leader joint state lacks {missing}")
            leader = np.array([by_name[name] for name in SO101_JOINTS], dtype=float)
            if not np.all(np.isfinite(leader)):
                raise TrajectoryError("leader joint state holds NaN or infinite positions")
            units = self.controller.units
            goal = units.ticks_to_radians(leader_to_follower_ticks(self.leader_units, units, leader))
            trajectory = make_trajectory(SO101_JOINTS, 0.0, [self.period_s], [goal], SO101_MOTORS)
            self.controller.submit(trajectory, now_seconds(self))
        except (TrajectoryError, RuntimeError) as error:
            self.get_logger().error(f"mirror message rejected: {error}",
                                    throttle_duration_sec=5.0)

    def _on_write_calibration(self, _, response: Trigger.Response) -> Trigger.Response:
        try:
            response.message = self.controller.write_calibration()
            response.success = True
        except RuntimeError as error:
            response.success, response.message = False, str(error)
        return response

    def _on_torque(self, enabled: bool, response: Trigger.Response) -> Trigger.Response:
        try:
            response.message = self.controller.set_torque(enabled)
            response.success = True
        except RuntimeError as error:
            response.success, response.message = False, str(error)
        return response

    def _publish_diagnostics(self) -> None:
        status = DiagnosticStatus(name=f"{self.get_name()}: SO-101 bus", hardware_id=self.port)
        if self.controller is None:
            status.level, status.message = DiagnosticStatus.ERROR, self.refusal
        else:
            health, stats = self.controller.health, self.controller.bus.stats
            if not health.connected:
                status.level = DiagnosticStatus.ERROR
                status.message = f"disconnected: {health.last_error}"
            elif health.calibration_mismatch:
                status.level = DiagnosticStatus.ERROR
                status.message = ("calibration file differs from the servos' EEPROM: torque off; "
                                  "call write_calibration or recalibrate")
            elif health.silent_motors:
                status.level = DiagnosticStatus.WARN
                status.message = f"no reply from {', '.join(health.silent_motors)}"
            else:
                status.level, status.message = DiagnosticStatus.OK, f"{self.mode}, running"
            values = {
                "mode": self.mode, "connected": health.connected, "torque": health.torque,
                "loop_rate_hz": f"{self._rate_hz:.1f}", "transactions": stats.transactions,
                "failed_attempts": stats.failures, "retries": stats.retries,
                "errors": stats.errors, "last_error": stats.last_error,
                "calibration_mismatch": "; ".join(health.calibration_mismatch),
                **{f"temperature_c.{n}": t for n, t in health.temperatures.items()},
                **{f"voltage_v.{n}": v for n, v in health.voltages.items()},
            }
            status.values = [KeyValue(key=k, value=str(v)) for k, v in values.items()]
        array = DiagnosticArray(status=[status])
        array.header.stamp = self.get_clock().now().to_msg()
        self.diagnostics_pub.publish(array)

    def destroy_node(self) -> None:
        self._stop.set()
        if self.controller is not None:
            self._control_thread.join(timeout=5)
            self.controller.shutdown()
        if self.emulator is not None:
            self.emulator.stop()
        super().destroy_node()


def main(args: list[str] | None = None) -> int:
    return run(SO101Node, args)
