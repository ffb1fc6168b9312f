"""``smolvla-ros calibrate``: LeRobot's SO-101 calibration, without LeRobot.

The same procedure as ``lerobot-calibrate`` for the SO follower and leader, with the same
result: torque off, position mode; the arm is put in the middle of its range and each
servo's Homing_Offset is set so that pose reads 2047 (half a turn); then every joint but
wrist_roll is moved through its whole range while the extremes are recorded (wrist_roll
keeps the full turn, 0..4095). The offsets and ranges are written to the servos' EEPROM
and to LeRobot's calibration JSON, where LeRobot and so101_node both find it.
"""

from __future__ import annotations

import argparse
import os
import select
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

from smolvla_ros.calibration import Calibration, MotorCalibration, calibration_path, save_calibration

if TYPE_CHECKING:
    from smolvla_ros.feetech.bus import FeetechBus

FULL_TURN_MOTOR = "wrist_roll"
HALF_TURN = 2047  # (resolution - 1) / 2, as LeRobot computes it
FULL_RANGE = (0, 4095)


class Calibrator:
    """The procedure's steps on a connected bus; the caller decides when each step ends."""

    def __init__(self, bus: FeetechBus):
        self.bus = bus
        self.homing_offsets: dict[str, int] = {}
        self.mins: dict[str, int] = {}
        self.maxes: dict[str, int] = {}

    def prepare(self) -> None:
        self.bus.set_torque(False)
        for name in self.bus.motors:
            self.bus.write("Operating_Mode", name, 0)

    def set_half_turn_homings(self) -> dict[str, int]:
        """LeRobot's set_half_turn_homings: reset, then offset = position - 2047."""
        for name in self.bus.motors:
            self.bus.write("Homing_Offset", name, 0)
            self.bus.write("Min_Position_Limit", name, FULL_RANGE[0])
            self.bus.write("Max_Position_Limit", name, FULL_RANGE[1])
        positions = self.bus.sync_read("Present_Position")
        self.homing_offsets = {name: position - HALF_TURN for name, position in positions.items()}
        for name, offset in self.homing_offsets.items():
            self.bus.write("Homing_Offset", name, offset)
        return self.homing_offsets

    def record(self) -> dict[str, int]:
        """One reading of the range recording; returns the positions read."""
        positions = self.bus.sync_read("Present_Position")
        for name, position in positions.items():
            self.mins[name] = min(position, self.mins.get(name, position))
            self.maxes[name] = max(position, self.maxes.get(name, position))
        return positions

    def result(self) -> Calibration:
        calibration = {}
        for name, servo_id in self.bus.motors.items():
            low, high = (FULL_RANGE if name == FULL_TURN_MOTOR
                         else (self.mins[name], self.maxes[name]))
            if low >= high:
                raise ValueError(f"{name} did not move (stayed at {low}): move every joint "
                                 "through its whole range while recording")
            calibration[name] = MotorCalibration(servo_id, 0, self.homing_offsets[name], low, high)
        return calibration


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--port", required=True, help="serial port of the bus adapter")
    parser.add_argument("--robot-id", required=True, help="name of this arm (LeRobot's robot id)")
    parser.add_argument("--leader", action="store_true", help="calibrate a leader arm")
    parser.add_argument("--calibration-dir", default="",
                        help="folder for <robot-id>.json (default: LeRobot's calibration folder)")


def _read_line() -> None:
    """Consume one line of stdin straight from the fd (no Python buffer for select to miss)."""
    fd = sys.stdin.fileno()
    while os.read(fd, 1) not in (b"\n", b""):
        pass


def _enter_pressed() -> bool:
    if select.select([sys.stdin], [], [], 0)[0]:
        _read_line()
        return True
    return False


def _wait_enter(prompt: str) -> None:
    print(prompt, flush=True)
    _read_line()


def _table(calibrator: Calibrator, positions: dict[str, int]) -> str:
    rows = [f"{'NAME':<15} | {'MIN':>6} | {'POS':>6} | {'MAX':>6}"]
    rows += [f"{name:<15} | {calibrator.mins[name]:>6} | {pos:>6} | {calibrator.maxes[name]:>6}"
             for name, pos in positions.items()]
    return "\n".join(rows)


def run_procedure(calibrator: Calibrator, period_s: float = 0.02) -> Calibration:
    calibrator.prepare()
    _wait_enter("Move the arm to the middle of its range of motion and press ENTER...")
    calibrator.set_half_turn_homings()
    print(f"Move every joint except '{FULL_TURN_MOTOR}' through its whole range of motion.\n"
          "Recording positions. Press ENTER to stop...", flush=True)
    live = sys.stdout.isatty()
    last_print = 0.0
    while True:
        positions = calibrator.record()
        if live and time.monotonic() - last_print > 0.2:
            table = _table(calibrator, positions)
            print(f"\x1b[{table.count(chr(10)) + 1}F\x1b[J{table}" if last_print else table, flush=True)
            last_print = time.monotonic()
        if _enter_pressed():
            break
        time.sleep(period_s)
    print(_table(calibrator, positions), flush=True)
    calibration = calibrator.result()
    calibrator.bus.write_calibration(calibration)
    return calibration


def run(args: argparse.Namespace) -> int:
    # Imported here so `smolvla-ros doctor` works where the servo SDK is missing.
    from smolvla_ros.feetech.bus import BusConfig, BusError, FeetechBus

    role = "leader" if args.leader else "follower"
    path: Path = calibration_path(args.robot_id, role, args.calibration_dir)
    bus = FeetechBus(BusConfig(port=args.port))
    try:
        bus.connect()
        calibration = run_procedure(Calibrator(bus))
    except (BusError, ValueError) as error:
        print(f"calibrate: {error}", file=sys.stderr)
        return 1
    finally:
        bus.close()
    save_calibration(calibration, path)
    print(f"Calibration saved to {path}")
    return 0
