"""An emulated bus of STS3215 servos on a pseudo-terminal.

The real feetech-servo-sdk opens the pty's path exactly as it would open a USB adapter, so
tests exercise the real SDK and our driver byte for byte, and ``port:=mock`` runs the
hardware node with no arm. The emulator parses instruction packets (ping, read, write,
reg-write/action, sync read, sync write) with checksums, keeps a register file per servo,
answers with status packets, and moves Present_Position toward Goal_Position at a bounded
speed while torque is on. Faults can be injected: drop or corrupt replies, silence a servo,
unplug and re-plug the port.

The port is a symlink to the current pty (``EmulatedBus.port``), so a re-plugged port comes
back under the same path, as a udev name does.
"""

from __future__ import annotations

import collections
import os
import select
import tempfile
import threading
import time
import tty
from collections.abc import Iterable
from pathlib import Path

from smolvla_ros.feetech import protocol
from smolvla_ros.calibration import Calibration, MotorCalibration
from smolvla_ros.feetech.protocol import CONTROL_TABLE, address, decode, encode

TICKS_PER_TURN = 4096
DEFAULT_SPEED = 4000.0  # ticks/s, about an STS3215 at 12 V with no load

# The emulated arm's own calibration (a real SO-101's numbers), so `port:=mock` needs no file.
MOCK_CALIBRATION: Calibration = {
    "shoulder_pan": MotorCalibration(1, 0, -1470, 758, 3292),
    "shoulder_lift": MotorCalibration(2, 0, 157, 612, 3401),
    "elbow_flex": MotorCalibration(3, 0, 1105, 889, 3102),
    "wrist_flex": MotorCalibration(4, 0, -1145, 831, 3197),
    "wrist_roll": MotorCalibration(5, 0, 58, 0, 4095),
    "gripper": MotorCalibration(6, 0, 1122, 2033, 3439),
}


class EmulatedServo:
    """One STS3215: its register file and the physical position of its encoder."""

    def __init__(self, servo_id: int, encoder: float = 2048.0):
        self.id = servo_id
        self.registers = bytearray(256)
        self.encoder = float(encoder)  # absolute position, ticks
        self.silent = False
        for name, value in (("Model_Number", protocol.STS3215_MODEL_NUMBER), ("ID", servo_id),
                            ("Return_Delay_Time", 250), ("Min_Position_Limit", 0),
                            ("Max_Position_Limit", 4095), ("Max_Torque_Limit", 1000),
                            ("Phase", 0x10), ("P_Coefficient", 32), ("D_Coefficient", 32),
                            ("Protection_Current", 500), ("Overload_Torque", 80),
                            ("Torque_Limit", 1000), ("Lock", 1), ("Present_Voltage", 121),
                            ("Present_Temperature", 31), ("Maximum_Acceleration", 0)):
            self.set(name, value)
        self.set("Goal_Position", self.present_position())
        self._sync_present()

    def get(self, name: str) -> int:
        addr, n = CONTROL_TABLE[name]
        return decode(name, int.from_bytes(self.registers[addr:addr + n], "little"))

    def set(self, name: str, value: int) -> None:
        addr, n = CONTROL_TABLE[name]
        self.registers[addr:addr + n] = encode(name, value).to_bytes(n, "little")

    def present_position(self) -> int:
        return int(round(self.encoder - self.get("Homing_Offset"))) % TICKS_PER_TURN

    def advance(self, dt: float, speed: float) -> None:
        """Move toward the goal for dt seconds if torque is on, then refresh Present_*."""
        velocity = 0.0
        if self.get("Torque_Enable"):
            goal = self.get("Goal_Position")
            lower, upper = self.get("Min_Position_Limit"), self.get("Max_Position_Limit")
            if lower < upper:
                goal = min(max(goal, lower), upper)
            error = goal - (self.encoder - self.get("Homing_Offset"))
            step = max(-speed * dt, min(speed * dt, error))
            self.encoder += step
            velocity = step / dt if dt > 0 else 0.0
        self._sync_present(velocity)

    def _sync_present(self, velocity: float = 0.0) -> None:
        self.set("Present_Position", self.present_position())
        self.set("Present_Velocity", int(velocity))
        self.set("Moving", int(abs(velocity) > 0))


class EmulatedBus:
    """Servos on a pty, served by a background thread. Use as a context manager."""

    def __init__(self, ids: Iterable[int] = range(1, 7), speed: float = DEFAULT_SPEED,
                 port: str | Path | None = None):
        self.servos = {servo_id: EmulatedServo(servo_id) for servo_id in ids}
        self.speed = speed
        self._own_dir = None if port else tempfile.TemporaryDirectory(prefix="smolvla_ros_bus_")
        self.port = str(port or Path(self._own_dir.name) / "ttyEMU0")
        self.writes: collections.Counter[tuple[int, str]] = collections.Counter()
        self.packets_received = 0
        self._drop: collections.deque[int | None] = collections.deque()
        self._corrupt: collections.deque[int | None] = collections.deque()
        self._lock = threading.RLock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._master = self._slave = -1
        self._last_advance = time.monotonic()

    # --- life cycle -------------------------------------------------------------------
    def start(self) -> EmulatedBus:
        self._plug()
        self._stop.clear()
        self._thread = threading.Thread(target=self._serve, name="emulated-feetech-bus", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread:
            self._thread.join(timeout=5)
        self._unplug_fds()
        if self._own_dir:
            self._own_dir.cleanup()

    def __enter__(self) -> EmulatedBus:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    # --- faults and hands-on access for tests -----------------------------------------
    def drop_replies(self, count: int = 1, servo_id: int | None = None) -> None:
        """Swallow the next ``count`` replies (of ``servo_id`` only, if given)."""
        with self._lock:
            self._drop.extend([servo_id] * count)

    def corrupt_replies(self, count: int = 1, servo_id: int | None = None) -> None:
        """Send the next ``count`` replies with a wrong checksum."""
        with self._lock:
            self._corrupt.extend([servo_id] * count)

    def silence(self, servo_id: int, silent: bool = True) -> None:
        with self._lock:
            self.servos[servo_id].silent = silent

    def unplug(self) -> None:
        """Like pulling the USB cable: the port disappears and the open handle fails."""
        with self._lock:
            self._unplug_fds()

    def replug(self) -> None:
        """Plug the port back in (a new pty under the same path); refused while plugged in."""
        with self._lock:
            if self._master >= 0:
                raise ValueError(f"port {self.port} is plugged in already")
            self._plug()

    def load_calibration(self, calibration: Calibration) -> None:
        """Write a calibration into the servos' EEPROM, each joint resting mid-range."""
        with self._lock:
            for motor in calibration.values():
                servo = self.servos[motor.id]
                servo.set("Homing_Offset", motor.homing_offset)
                servo.set("Min_Position_Limit", motor.range_min)
                servo.set("Max_Position_Limit", motor.range_max)
                servo.encoder = float(round(motor.mid) + motor.homing_offset)
                servo.set("Goal_Position", servo.present_position())
                servo.advance(0.0, self.speed)

    def register(self, servo_id: int, name: str) -> int:
        with self._lock:
            return self.servos[servo_id].get(name)

    def set_register(self, servo_id: int, name: str, value: int) -> None:
        with self._lock:
            self.servos[servo_id].set(name, value)

    def move_by_hand(self, servo_id: int, present_position: int) -> None:
        """Put a servo (torque off, say) at a Present_Position, as a person's hand would."""
        with self._lock:
            servo = self.servos[servo_id]
            servo.encoder = float(present_position + servo.get("Homing_Offset"))
            servo.advance(0.0, self.speed)

    # --- the pty ------------------------------------------------------------------------
    def _plug(self) -> None:
        self._master, self._slave = os.openpty()
        tty.setraw(self._slave)  # no echo, no CR/LF translation: bytes pass as they are
        tmp_link = f"{self.port}.new"
        os.symlink(os.ttyname(self._slave), tmp_link)
        os.replace(tmp_link, self.port)

    def _unplug_fds(self) -> None:
        if self._master < 0:
            return
        for fd in (self._master, self._slave):
            os.close(fd)
        self._master = self._slave = -1
        Path(self.port).unlink(missing_ok=True)

    def _serve(self) -> None:
        buffer = bytearray()
        while not self._stop.is_set():
            master = self._master
            if master < 0:
                buffer.clear()
                time.sleep(0.01)
                continue
            try:
                ready, _, _ = select.select([master], [], [], 0.05)
                if not ready:
                    continue
                buffer += os.read(master, 4096)
            except OSError:  # unplugged under our feet
                continue
            with self._lock:
                self._handle_buffer(buffer)

    def _handle_buffer(self, buffer: bytearray) -> None:
        while True:
            start = buffer.find(b"\xff\xff")
            if start < 0:
                buffer.clear()
                return
            del buffer[:start]
            if len(buffer) < 4:
                return
            total = buffer[3] + 4
            if len(buffer) < total:
                return
            frame = bytes(buffer[:total])
            if protocol.checksum(frame[2:-1]) != frame[-1]:
                del buffer[:1]  # a real servo ignores a bad packet; resynchronise
                continue
            del buffer[:total]
            self.packets_received += 1
            self._execute(frame[2], frame[4], frame[5:-1])

    # --- instructions ---------------------------------------------------------------------
    def _advance_all(self) -> None:
        now = time.monotonic()
        dt, self._last_advance = now - self._last_advance, now
        for servo in self.servos.values():
            servo.advance(dt, self.speed)

    def _execute(self, servo_id: int, instruction: int, params: bytes) -> None:
        self._advance_all()
        if instruction == protocol.SYNC_READ and servo_id == protocol.BROADCAST_ID:
            addr, length = params[0], params[1]
            for target in params[2:]:
                servo = self.servos.get(target)
                if servo and not servo.silent:
                    self._reply(servo, servo.registers[addr:addr + length])
            return
        if instruction == protocol.SYNC_WRITE and servo_id == protocol.BROADCAST_ID:
            addr, length = params[0], params[1]
            for i in range(2, len(params), length + 1):
                servo = self.servos.get(params[i])
                if servo:
                    self._write(servo, addr, params[i + 1:i + 1 + length])
            return
        targets = list(self.servos.values()) if servo_id == protocol.BROADCAST_ID else (
            [self.servos[servo_id]] if servo_id in self.servos else [])
        for servo in targets:
            if servo.silent:
                continue
            reply = b""
            if instruction == protocol.READ:
                reply = servo.registers[params[0]:params[0] + params[1]]
            elif instruction in (protocol.WRITE, protocol.REG_WRITE):
                self._write(servo, params[0], params[1:])
            elif instruction not in (protocol.PING, protocol.ACTION):
                continue  # unknown instruction: no reply
            if servo_id != protocol.BROADCAST_ID:
                self._reply(servo, reply)

    def _write(self, servo: EmulatedServo, addr: int, data: bytes) -> None:
        servo.registers[addr:addr + len(data)] = data
        for name, (reg_addr, _size) in CONTROL_TABLE.items():
            if addr <= reg_addr < addr + len(data):
                self.writes[(servo.id, name)] += 1
        if addr <= address("Homing_Offset") < addr + len(data) or addr == address("Torque_Enable"):
            servo.advance(0.0, self.speed)  # Present_Position follows the new offset at once

    def _reply(self, servo: EmulatedServo, params: bytes) -> None:
        if self._take(self._drop, servo.id):
            return
        reply = bytearray(protocol.packet(servo.id, 0, params))
        if self._take(self._corrupt, servo.id):
            reply[-1] ^= 0xFF
        try:
            os.write(self._master, reply)
        except OSError:
            pass  # unplugged while answering

    @staticmethod
    def _take(queue: collections.deque[int | None], servo_id: int) -> bool:
        """Consume one pending fault that applies to servo_id, if any."""
        for i, target in enumerate(queue):
            if target is None or target == servo_id:
                del queue[i]
                return True
        return False


FAULT_COMMANDS = """\
  silence ID        servo ID stops answering      speak ID         it answers again
  drop N [ID]       swallow the next N replies    corrupt N [ID]   N replies with a bad checksum
  unplug            the port vanishes (USB out)   replug           it comes back, same path
  help              this list"""


def parse_fault(line: str) -> tuple[str, list[int]]:
    """One fault command (``FAULT_COMMANDS``) as (name, integer arguments); ValueError if wrong."""
    words = line.split()
    if not words:
        return "", []
    try:
        values = [int(word) for word in words[1:]]
    except ValueError:
        raise ValueError(f"{line.strip()!r}: arguments must be integers") from None
    counts = {"silence": (1,), "speak": (1,), "drop": (1, 2), "corrupt": (1, 2), "unplug": (0,),
              "replug": (0,), "help": (0,)}
    if words[0] not in counts or len(values) not in counts[words[0]]:
        raise ValueError(f"unknown command {line.strip()!r}; commands:\n{FAULT_COMMANDS}")
    return words[0], values


def fault_command(bus: EmulatedBus, line: str) -> str:
    """Apply one fault command to ``bus``; returns what happened. ValueError if wrong."""
    name, values = parse_fault(line)
    if name in ("silence", "speak"):
        if values[0] not in bus.servos:
            raise ValueError(f"no servo {values[0]}; ids {sorted(bus.servos)}")
        bus.silence(values[0], name == "silence")
        return f"servo {values[0]} {'silent' if name == 'silence' else 'answers again'}"
    if name in ("drop", "corrupt"):
        servo = values[1] if len(values) == 2 else None
        (bus.drop_replies if name == "drop" else bus.corrupt_replies)(values[0], servo)
        return f"next {values[0]} replies{f' of servo {servo}' if servo else ''}: {name}"
    if name in ("unplug", "replug"):
        (bus.unplug if name == "unplug" else bus.replug)()
        return f"port {bus.port} {name}ged"
    return FAULT_COMMANDS if name == "help" else ""


def main(argv: list[str] | None = None) -> int:
    """Serve an emulated SO-101 (calibrated like MOCK_CALIBRATION: ``robot_id:=mock``) until
    Ctrl-C or SIGTERM.

    ``python -m smolvla_ros.feetech.emulator --port /tmp/ttySO101`` gives any Feetech tool
    (LeRobot included) an arm to talk to at that path. Faults can be rehearsed by hand: type a
    command (``help`` lists them) while it runs, or schedule one with ``--at SECONDS COMMAND``.
    """
    import argparse
    import signal
    import sys

    parser = argparse.ArgumentParser(description=main.__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog="fault commands:\n" + FAULT_COMMANDS)
    parser.add_argument("--port", required=True, help="path of the symlink to create")
    parser.add_argument("--speed", type=float, default=DEFAULT_SPEED, help="ticks per second")
    parser.add_argument("--at", nargs=2, action="append", default=[], metavar=("SECONDS", "COMMAND"),
                        help="run a fault command SECONDS after start, e.g. --at 5 unplug --at 8 replug")
    args = parser.parse_args(argv)
    schedule = []
    for seconds, command in args.at:
        try:
            parse_fault(command)  # a typo is an error now, not when its time comes
            schedule.append((float(seconds), command))
        except ValueError as error:
            parser.error(f"--at {seconds} {command!r}: {error}")
    schedule.sort()
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    with EmulatedBus(speed=args.speed, port=args.port) as bus:
        bus.load_calibration(MOCK_CALIBRATION)
        print(f"emulated SO-101 on {bus.port} (robot_id:=mock); type 'help' for fault commands",
              flush=True)

        def read_commands():
            for line in sys.stdin:
                try:
                    print(fault_command(bus, line), flush=True)
                except (ValueError, OSError) as error:
                    print(error, flush=True)

        threading.Thread(target=read_commands, name="fault-commands", daemon=True).start()
        started = time.monotonic()
        while not stop.wait(0.05):
            while schedule and time.monotonic() - started >= schedule[0][0]:
                _, command = schedule.pop(0)
                try:
                    print(f"{command}: {fault_command(bus, command)}", flush=True)
                except (ValueError, OSError) as error:
                    print(f"{command}: {error}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
