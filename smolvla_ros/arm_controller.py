"""The SO-101 control cycle, ROS-free: read the servos, follow the trajectory, stay safe.

One ``step()`` per control tick reads position and velocity in one sync read, samples the
trajectory executor, clamps the target (calibrated joint limits, then LeRobot's
``max_relative_target`` in LeRobot units) and writes all goals in one sync write. Failures
never escape a step: a servo that stays silent is reported by name and the cycle goes on; a
lost port is reported once, torque state is forgotten and the port is retried every
``reconnect_period_s``. Leader mode keeps torque off and never writes a goal.

A calibration file that disagrees with the servos' EEPROM is not driven: torque stays off and
nothing is read or published until the file is written to the servos (``write_calibration``,
what LeRobot does when the user confirms) or the arm is recalibrated.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from smolvla_ros.calibration import Calibration
from smolvla_ros.feetech.bus import BusError, FeetechBus, PortError
from smolvla_ros.trajectory import Trajectory, TrajectoryExecutor
from smolvla_ros.units import RADIANS_PER_TICK, ArmUnits, safe_goal_ticks

FOLLOWER, LEADER = "follower", "leader"


@dataclass
class ArmControllerConfig:
    mode: str = FOLLOWER
    torque_on_start: bool = True  # follower: torque on after configuration, as LeRobot does
    disable_torque_on_shutdown: bool = True  # LeRobot's disable_torque_on_disconnect
    # LeRobot's SO follower value, in LeRobot units (degrees or -100..100; gripper 0..100):
    # the furthest a goal may lie from the present position. One number, one per joint, or None.
    max_relative_target: float | tuple[float, ...] | None = None
    reconnect_period_s: float = 1.0
    health_period_s: float = 1.0  # temperatures and voltages, read by the control cycle itself


@dataclass
class ArmReading:
    """One control tick's measurement, in radians and rad/s, joint order of the units."""

    stamp: float
    positions: np.ndarray
    velocities: np.ndarray


@dataclass
class ArmHealth:
    connected: bool = False
    torque: bool = False
    last_error: str = ""
    silent_motors: tuple[str, ...] = ()
    calibration_mismatch: list[str] = field(default_factory=list)
    temperatures: dict[str, int] = field(default_factory=dict)
    voltages: dict[str, float] = field(default_factory=dict)


Log = Callable[[str, str], None]  # (level, message); level in "info", "warn", "error"


class ArmController:
    def __init__(self, bus: FeetechBus, calibration: Calibration, units: ArmUnits,
                 config: ArmControllerConfig, log: Log):
        if config.mode not in (FOLLOWER, LEADER):
            raise ValueError(f"mode must be '{FOLLOWER}' or '{LEADER}', not '{config.mode}'")
        self.bus = bus
        self.calibration = calibration
        self.units = units
        self.config = config
        self.health = ArmHealth()
        self.executor = TrajectoryExecutor(units.joints)
        self._log = log
        self._lock = threading.Lock()
        self._lower, self._upper = units.radian_limits()
        self._last_connect_try = -float("inf")
        self._last_health = -float("inf")
        self._last_present: np.ndarray | None = None
        self._torque_wanted = config.mode == FOLLOWER and config.torque_on_start

    # --- connection ---------------------------------------------------------------------
    def connect(self, now: float) -> bool:
        """Connect, configure and check calibration; False (and logged) if it failed."""
        self._last_connect_try = now
        try:
            self.bus.connect()
            self.bus.configure()
            self._check_calibration()
            if self.health.calibration_mismatch:
                self.bus.set_torque(False)
            elif self.config.mode == FOLLOWER:
                self._goal_here()
                self.bus.set_torque(self._torque_wanted)
        except BusError as error:  # PortError included
            self._fail(str(error))
            self.bus.close()
            return False
        self.health.connected = True
        self.health.torque = (self._torque_wanted and self.config.mode == FOLLOWER
                              and not self.health.calibration_mismatch)
        self.health.last_error = ""
        self._log("info", f"connected to {self.bus.config.port} ({self.config.mode}, "
                          f"torque {'on' if self.health.torque else 'off'})")
        return True

    def _check_calibration(self) -> None:
        """Compare file and EEPROM as LeRobot's ``is_calibrated`` does (offsets and ranges)."""
        in_eeprom = self.bus.read_calibration()
        mismatches = []
        for name, expected in self.calibration.items():
            actual = in_eeprom[name]
            for key in ("homing_offset", "range_min", "range_max"):
                if getattr(actual, key) != getattr(expected, key):
                    mismatches.append(f"{name}.{key}: file {getattr(expected, key)}, "
                                      f"servo {getattr(actual, key)}")
        self.health.calibration_mismatch = mismatches
        if mismatches:
            self._log("error", "calibration file and servo EEPROM differ (" + "; ".join(mismatches)
                      + "): torque stays off and nothing is published. Either write the file to "
                      "the servos (service write_calibration, as LeRobot does when you confirm) "
                      "or recalibrate (stop this node, run `smolvla-ros calibrate`)")

    def write_calibration(self) -> str:
        """Write the calibration file to the servos' EEPROM (torque off, as LeRobot does),
        check it took, then run as after a normal connect. Raises RuntimeError if refused."""
        with self._lock:
            if not self.health.connected:
                raise RuntimeError(f"not connected to {self.bus.config.port}")
            try:
                self.bus.set_torque(False)
                self.bus.write_calibration(self.calibration)
                self._check_calibration()
                if self.health.calibration_mismatch:
                    raise RuntimeError("the servos did not keep the calibration: "
                                       + "; ".join(self.health.calibration_mismatch))
                if self.config.mode == FOLLOWER and self._torque_wanted:
                    self.executor.clear()
                    self._goal_here()
                    self.bus.set_torque(True)
                    self.health.torque = True
            except BusError as error:
                # The EEPROM may hold part of it now: unverified until checked again on connect.
                self.health.torque = False
                self.health.calibration_mismatch = self.health.calibration_mismatch or [
                    f"writing the calibration failed ({error})"]
                self._fail(str(error), error.motors)
                if isinstance(error, PortError):  # as in step(): reconnect, and check again
                    self.health.connected = False
                    self.bus.close()
                raise RuntimeError(str(error)) from None
        self._log("info", "calibration file written to the servos; "
                          f"torque {'on' if self.health.torque else 'off'}")
        return "calibration written to the servos"

    # --- the control cycle -----------------------------------------------------------------
    def step(self, now: float) -> ArmReading | None:
        """One control tick. Returns the measurement, or None when there is none this tick."""
        with self._lock:
            if not self.health.connected:
                if now - self._last_connect_try < self.config.reconnect_period_s:
                    return None
                if not self.connect(now):
                    return None
            if self.health.calibration_mismatch:
                return None  # positions would be wrong: nothing read, nothing published
            try:
                span = self.bus.sync_read_span(("Present_Position", "Present_Velocity"))
                present_ticks = [span["Present_Position"][name] for name in self.units.joints]
                present = self.units.ticks_to_radians(present_ticks)
                velocities = np.array(
                    [span["Present_Velocity"][name] for name in self.units.joints]) * RADIANS_PER_TICK
                self._last_present = present
                if self.config.mode == FOLLOWER and self.health.torque:
                    target = self.executor.sample(now)
                    if target is not None:
                        self.bus.sync_write("Goal_Position", self._goal_ticks(target, present_ticks))
                if now - self._last_health >= self.config.health_period_s:
                    self._last_health = now
                    self._read_health()
            except PortError as error:
                self._fail(str(error))
                self.health.connected = self.health.torque = False
                self.executor.clear()  # do not resume an old path on reconnect
                return None
            except BusError as error:
                self._fail(str(error), error.motors)
                return None
            self.health.silent_motors = ()
            return ArmReading(now, present, velocities)

    def _goal_ticks(self, target: np.ndarray, present_ticks: list[int]) -> dict[str, int]:
        """Within the calibrated range (as the servos' own EEPROM limits), then no further
        from the present position than LeRobot's ``max_relative_target``."""
        ticks = safe_goal_ticks(self.units, np.clip(target, self._lower, self._upper),
                                present_ticks, self.config.max_relative_target)
        return dict(zip(self.units.joints, (int(t) for t in ticks)))

    def _goal_here(self) -> None:
        """Goal = where the arm is, before torque goes on: it holds instead of jumping."""
        ticks = self.bus.sync_read("Present_Position")
        self.bus.sync_write("Goal_Position", {name: ticks[name] for name in self.units.joints})

    def _fail(self, message: str, motors: tuple[str, ...] = ()) -> None:
        if message != self.health.last_error:  # one line per new problem, not per tick
            self._log("error", message)
        self.health.last_error = message
        self.health.silent_motors = motors

    # --- commands from the node ------------------------------------------------------------------
    def submit(self, trajectory: Trajectory, now: float) -> int:
        """Follow ``trajectory``; returns skipped points. Raises TrajectoryError / RuntimeError."""
        with self._lock:
            if self.config.mode != FOLLOWER:
                raise RuntimeError("leader mode: trajectories are not executed")
            current = self._last_present
            if current is None:
                raise RuntimeError("no joint reading yet: cannot start a trajectory")
            return self.executor.replace(trajectory, now, current)

    def set_torque(self, enabled: bool) -> str:
        """Enable or disable torque; returns a one-line result. Raises RuntimeError if refused."""
        with self._lock:
            if enabled and self.config.mode == LEADER:
                raise RuntimeError("leader mode keeps torque off")
            if not self.health.connected:
                raise RuntimeError(f"not connected to {self.bus.config.port}")
            if enabled and self.health.calibration_mismatch:
                raise RuntimeError("the calibration file differs from the servos' EEPROM: call "
                                   "write_calibration or recalibrate first")
            try:
                if enabled:
                    self.executor.clear()  # hold here, not at an old target
                    self._goal_here()
                self.bus.set_torque(enabled)
            except BusError as error:
                self._fail(str(error), error.motors)
                raise RuntimeError(str(error)) from None
            self._torque_wanted = self.health.torque = enabled
            if not enabled:
                self.executor.clear()
            return f"torque {'on' if enabled else 'off'}"

    def _read_health(self) -> None:
        """Temperatures and voltages in one sync read, on the control thread (so a silent
        servo's timeouts never stall the cycle from another thread)."""
        span = self.bus.sync_read_span(("Present_Voltage", "Present_Temperature"))
        self.health.voltages = {n: v / 10 for n, v in span["Present_Voltage"].items()}
        self.health.temperatures = dict(span["Present_Temperature"])

    def shutdown(self) -> None:
        with self._lock:
            if self.health.connected and self.config.disable_torque_on_shutdown:
                try:
                    self.bus.set_torque(False)
                except BusError as error:
                    self._log("error", f"could not disable torque on shutdown: {error}")
            self.bus.close()
            self.health.connected = self.health.torque = False
