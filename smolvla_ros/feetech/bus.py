"""Driver for a bus of STS3215 servos (the SO-101) on feetech-servo-sdk.

It does what LeRobot's ``FeetechMotorsBus`` does for the SO follower (same connect-time
configuration, same registers, same sign-magnitude encoding, same retry policy) but keeps
failures as values a control loop can survive: a corrupt or missing reply is retried, a
servo that stays silent is named in a ``BusError``, and a vanished port raises
``PortError`` so the caller can reconnect when it comes back.

Around the SDK's known pitfalls (shared/FEETECH_NOTES.md): the input buffer is dropped
before each transaction (the SDK's clearPort does not, so a late reply would answer the
next read), reads block in short slices instead of spinning at full CPU, the reply timeout
is configurable, and a sync read's result code is checked, not only ``isAvailable``.
"""

from __future__ import annotations

import termios
from dataclasses import dataclass, field

import scservo_sdk as scs
import serial

from smolvla_ros.calibration import Calibration, MotorCalibration
from smolvla_ros.feetech import protocol
from smolvla_ros.feetech.protocol import CONTROL_TABLE, decode, encode

SO101_MOTORS = {"shoulder_pan": 1, "shoulder_lift": 2, "elbow_flex": 3, "wrist_flex": 4,
                "wrist_roll": 5, "gripper": 6}
RESULT_TEXT = {scs.COMM_RX_TIMEOUT: "no reply", scs.COMM_RX_CORRUPT: "corrupt reply",
               scs.COMM_TX_FAIL: "write to port failed", scs.COMM_PORT_BUSY: "port busy"}


class BusError(RuntimeError):
    """A transaction failed after its retries. ``motors`` names the servos at fault."""

    def __init__(self, message: str, motors: tuple[str, ...] = ()):
        super().__init__(message)
        self.motors = motors


class PortError(BusError):
    """The serial port is missing, closed or broken (USB unplugged): reconnect later."""


@dataclass
class BusConfig:
    """Bus settings; the defaults are what LeRobot's SO follower writes on connect."""

    port: str
    motors: dict[str, int] = field(default_factory=lambda: dict(SO101_MOTORS))
    reply_timeout_ms: float = 50.0  # LeRobot's patched SDK timeout
    read_retries: int = 2  # LeRobot's SOFollowerConfig.num_read_retries
    return_delay_time: int = 0
    acceleration: int = 254
    maximum_acceleration: int = 254
    operating_mode: int = 0  # position mode
    p_coefficient: int = 16
    i_coefficient: int = 0
    d_coefficient: int = 32
    gripper: str = "gripper"
    gripper_max_torque_limit: int = 500
    gripper_protection_current: int = 250
    gripper_overload_torque: int = 25


@dataclass
class BusStats:
    transactions: int = 0
    failures: int = 0  # attempts that failed (each retry counts)
    retries: int = 0
    errors: int = 0  # transactions that failed for good
    last_error: str = ""


class _PortHandler(scs.PortHandler):
    """The SDK's port, with the fixes above. Reads block for at most READ_SLICE_S."""

    READ_SLICE_S = 0.001

    def __init__(self, port_name: str, reply_timeout_ms: float):
        super().__init__(port_name)
        self.reply_timeout_ms = reply_timeout_ms

    def setupPort(self, cflag_baud):  # noqa: N802 (SDK name)
        if self.is_open:
            self.closePort()
        self.ser = serial.Serial(port=self.port_name, baudrate=self.baudrate,
                                 bytesize=serial.EIGHTBITS, timeout=self.READ_SLICE_S)
        self.is_open = True
        self.ser.reset_input_buffer()
        self.tx_time_per_byte = (1000.0 / self.baudrate) * 10.0
        return True

    def clearPort(self):  # noqa: N802
        self.ser.reset_input_buffer()

    def setPacketTimeout(self, packet_length):  # noqa: N802
        self.packet_start_time = self.getCurrentTime()
        self.packet_timeout = self.tx_time_per_byte * (packet_length + 3) + self.reply_timeout_ms


class FeetechBus:
    """The servos of one arm, addressed by motor name."""

    def __init__(self, config: BusConfig):
        self.config = config
        self.motors = dict(config.motors)
        self.names = {servo_id: name for name, servo_id in self.motors.items()}
        self.stats = BusStats()
        self._port: _PortHandler | None = None
        self._packets = scs.PacketHandler(0)  # protocol 0: STS/SMS, little-endian words
        self._sync_readers: dict[tuple[str, ...], scs.GroupSyncRead] = {}
        self._sync_writers: dict[str, scs.GroupSyncWrite] = {}

    # --- connection ---------------------------------------------------------------------
    @property
    def is_connected(self) -> bool:
        return self._port is not None and self._port.is_open

    def connect(self) -> None:
        """Open the port and check every servo answers as an STS3215."""
        self.close()
        port = _PortHandler(self.config.port, self.config.reply_timeout_ms)
        try:
            port.openPort()
            port.setBaudRate(protocol.BAUD_RATE)
        except (serial.SerialException, OSError) as error:
            raise PortError(f"cannot open {self.config.port}: {error}") from None
        self._port = port
        self._sync_readers.clear()  # they hold the old port
        self._sync_writers.clear()
        missing, wrong = [], []
        for name, servo_id in self.motors.items():
            try:
                model = self.read("Model_Number", name)
            except PortError:
                self.close()
                raise
            except BusError:
                missing.append(name)
                continue
            if model != protocol.STS3215_MODEL_NUMBER:
                wrong.append(f"{name} (id {servo_id}) is model {model}")
        if missing or wrong:
            self.close()
            problems = []
            if missing:
                problems.append("no answer from " + ", ".join(
                    f"{name} (id {self.motors[name]})" for name in missing))
            if wrong:
                problems.append("not an STS3215: " + ", ".join(wrong))
            raise BusError(f"{self.config.port}: " + "; ".join(problems), tuple(missing))

    def close(self) -> None:
        if self._port is not None:
            try:
                self._port.closePort()
            except (serial.SerialException, OSError, AttributeError, termios.error):
                pass  # already gone
            self._port = None

    def configure(self) -> None:
        """Write LeRobot's SO-follower settings, torque off while doing it (as LeRobot does)."""
        c = self.config
        self.set_torque(False)
        for name in self.motors:
            self.write("Return_Delay_Time", name, c.return_delay_time)
            self.write("Maximum_Acceleration", name, c.maximum_acceleration)
            self.write("Acceleration", name, c.acceleration)
            phase = self.read("Phase", name)
            if phase & 0x10:  # angle feedback mode 0: positions stay within 0..4095
                self.write("Phase", name, phase & ~0x10)
            self.write("Operating_Mode", name, c.operating_mode)
            self.write("P_Coefficient", name, c.p_coefficient)
            self.write("I_Coefficient", name, c.i_coefficient)
            self.write("D_Coefficient", name, c.d_coefficient)
            if name == c.gripper:
                self.write("Max_Torque_Limit", name, c.gripper_max_torque_limit)
                self.write("Protection_Current", name, c.gripper_protection_current)
                self.write("Overload_Torque", name, c.gripper_overload_torque)

    def set_torque(self, enabled: bool, motors: list[str] | None = None) -> None:
        """Torque on = Torque_Enable 1 then Lock 1; off = 0 and 0 (LeRobot's order)."""
        for name in motors or list(self.motors):
            self.write("Torque_Enable", name, int(enabled))
            self.write("Lock", name, int(enabled))

    # --- calibration ------------------------------------------------------------------------
    def read_calibration(self) -> Calibration:
        """What the servos' EEPROM holds (drive_mode is not stored there: 0)."""
        return {
            name: MotorCalibration(
                id=servo_id, drive_mode=0,
                homing_offset=self.read("Homing_Offset", name),
                range_min=self.read("Min_Position_Limit", name),
                range_max=self.read("Max_Position_Limit", name),
            )
            for name, servo_id in self.motors.items()
        }

    def write_calibration(self, calibration: Calibration) -> None:
        for name, motor in calibration.items():
            self.write("Homing_Offset", name, motor.homing_offset)
            self.write("Min_Position_Limit", name, motor.range_min)
            self.write("Max_Position_Limit", name, motor.range_max)

    # --- single-servo access ------------------------------------------------------------------
    def read(self, register: str, motor: str) -> int:
        addr, size = CONTROL_TABLE[register]
        servo_id = self.motors[motor]

        def attempt():
            data, result, _error = self._packets.readTxRx(self._require_port(), servo_id, addr, size)
            return result, data

        data = self._transact(attempt, f"read {register}", (motor,), self.config.read_retries)
        return decode(register, int.from_bytes(bytes(data), "little"))

    def write(self, register: str, motor: str, value: int) -> None:
        addr, size = CONTROL_TABLE[register]
        servo_id = self.motors[motor]
        data = list(encode(register, int(value)).to_bytes(size, "little"))

        def attempt():
            result, _error = self._packets.writeTxRx(self._require_port(), servo_id, addr, size, data)
            return result, None

        self._transact(attempt, f"write {register}", (motor,), self.config.read_retries)

    # --- every servo at once, every control cycle ------------------------------------------------
    def sync_read(self, register: str) -> dict[str, int]:
        """One SYNC_READ of ``register`` from all servos, retried; values decoded."""
        return self.sync_read_span((register,))[register]

    def sync_read_span(self, registers: tuple[str, ...]) -> dict[str, dict[str, int]]:
        """One SYNC_READ covering adjacent registers (e.g. position and velocity), retried.

        Returns ``{register: {motor: value}}``.
        """
        first = CONTROL_TABLE[registers[0]][0]
        span = sum(CONTROL_TABLE[name][1] for name in registers)
        if CONTROL_TABLE[registers[-1]][0] + CONTROL_TABLE[registers[-1]][1] - first != span:
            raise ValueError(f"registers {registers} are not adjacent")
        reader = self._sync_readers.get(registers)
        if reader is None:
            reader = scs.GroupSyncRead(self._require_port(), self._packets, first, span)
            for servo_id in self.motors.values():
                reader.addParam(servo_id)
            self._sync_readers[registers] = reader

        def attempt():
            result = reader.txRxPacket()
            if result != scs.COMM_SUCCESS:
                # The SDK stops at the first failed servo, whose data it leaves empty.
                failed = tuple(self.names[i] for i, data in reader.data_dict.items() if not data)
                return result, failed
            return result, None

        self._transact(attempt, f"sync read {'+'.join(registers)}", None, self.config.read_retries)
        values: dict[str, dict[str, int]] = {}
        for name in registers:
            addr, size = CONTROL_TABLE[name]
            values[name] = {
                self.names[servo_id]: decode(name, reader.getData(servo_id, addr, size))
                for servo_id in self.motors.values()
            }
        return values

    def sync_write(self, register: str, values: dict[str, int]) -> None:
        """One SYNC_WRITE (no replies, so no retries): all servos get their value at once."""
        addr, size = CONTROL_TABLE[register]
        writer = self._sync_writers.get(register)
        if writer is None:  # one per register, reused every cycle like the readers
            writer = scs.GroupSyncWrite(self._require_port(), self._packets, addr, size)
            self._sync_writers[register] = writer
        writer.clearParam()
        for name, value in values.items():
            writer.addParam(self.motors[name], list(encode(register, int(value)).to_bytes(size, "little")))

        def attempt():
            return writer.txPacket(), None

        self._transact(attempt, f"sync write {register}", tuple(values), 0)

    # --- plumbing -------------------------------------------------------------------------------
    def _require_port(self) -> _PortHandler:
        if self._port is None:
            raise PortError(f"{self.config.port} is not connected")
        return self._port

    def _transact(self, attempt, what: str, motors: tuple[str, ...] | None, retries: int):
        """Run ``attempt`` until it succeeds or retries run out; returns its payload."""
        self.stats.transactions += 1
        failed_motors: tuple[str, ...] = motors or ()
        result = scs.COMM_SUCCESS
        for try_index in range(retries + 1):
            if try_index:
                self.stats.retries += 1
            port = self._require_port()
            try:
                port.is_using = False  # a previous exception may have left it set
                result, payload = attempt()
            except (serial.SerialException, OSError, TypeError, termios.error) as error:
                # A vanished device: pyserial raises SerialException (TypeError from a closed
                # fd inside it), and flushing a hung-up line raises termios.error.
                self.stats.errors += 1
                self.close()
                message = f"{self.config.port} lost during {what}: {error}"
                self.stats.last_error = message
                raise PortError(message) from None
            if result == scs.COMM_SUCCESS:
                return payload
            self.stats.failures += 1
            if motors is None and payload:
                failed_motors = payload
        self.stats.errors += 1
        who = ", ".join(f"{name} (id {self.motors[name]})" for name in failed_motors) or "a servo"
        message = f"{what}: {RESULT_TEXT.get(result, f'result {result}')} from {who} " \
                  f"after {retries + 1} attempt(s)"
        self.stats.last_error = message
        raise BusError(message, failed_motors)

