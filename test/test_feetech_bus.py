"""The driver, through the real feetech-servo-sdk, against the emulated servo bus on a pty."""

from __future__ import annotations

import time

import pytest
from conftest import wait_for

from smolvla_ros.feetech import protocol
from smolvla_ros.feetech.bus import SO101_MOTORS, BusConfig, BusError, FeetechBus, PortError
from smolvla_ros.feetech.emulator import MOCK_CALIBRATION


@pytest.fixture
def bus(emulator):
    bus = FeetechBus(BusConfig(port=emulator.port))
    bus.connect()
    yield bus
    bus.close()


def test_sign_magnitude_encoding():
    assert protocol.encode("Homing_Offset", -1470) == 1470 | 1 << 11
    assert protocol.decode("Homing_Offset", 1470 | 1 << 11) == -1470
    assert protocol.encode("Goal_Position", -5) == 5 | 1 << 15
    assert protocol.encode("Min_Position_Limit", 758) == 758
    with pytest.raises(ValueError):
        protocol.encode("Homing_Offset", 4096)


def test_connect_checks_every_servo_and_its_model(emulator):
    emulator.silence(4)
    bus = FeetechBus(BusConfig(port=emulator.port, read_retries=0))
    with pytest.raises(BusError, match=r"no answer from wrist_flex \(id 4\)") as error:
        bus.connect()
    assert error.value.motors == ("wrist_flex",)
    emulator.silence(4, False)
    emulator.set_register(2, "Model_Number", 1234)
    with pytest.raises(BusError, match=r"not an STS3215: shoulder_lift \(id 2\) is model 1234"):
        bus.connect()
    assert not bus.is_connected


def test_wrong_port_is_a_port_error(tmp_path):
    with pytest.raises(PortError, match="cannot open .*/ttyNOPE"):
        FeetechBus(BusConfig(port=str(tmp_path / "ttyNOPE"))).connect()


def test_configure_writes_lerobots_so_follower_settings(emulator, bus):
    bus.set_torque(True)
    bus.configure()
    for name, servo_id in SO101_MOTORS.items():
        reg = lambda register, servo_id=servo_id: emulator.register(servo_id, register)  # noqa: E731
        assert reg("Torque_Enable") == 0 and reg("Lock") == 0
        assert reg("Return_Delay_Time") == 0
        assert reg("Acceleration") == 254 and reg("Maximum_Acceleration") == 254
        assert reg("Operating_Mode") == 0
        assert (reg("P_Coefficient"), reg("I_Coefficient"), reg("D_Coefficient")) == (16, 0, 32)
        assert reg("Phase") & 0x10 == 0
        gripper = name == "gripper"
        assert reg("Max_Torque_Limit") == (500 if gripper else 1000)
        assert reg("Protection_Current") == (250 if gripper else 500)
        assert reg("Overload_Torque") == (25 if gripper else 80)


def test_calibration_round_trip_through_eeprom(emulator, bus):
    assert bus.read_calibration() == MOCK_CALIBRATION
    changed = dict(MOCK_CALIBRATION)
    changed["gripper"] = MOCK_CALIBRATION["gripper"].__class__(6, 0, -300, 1900, 3000)
    bus.write_calibration(changed)
    assert emulator.register(6, "Homing_Offset") == -300
    assert bus.read_calibration() == changed


def test_sync_read_write_round_trip(emulator, bus):
    present = bus.sync_read("Present_Position")
    assert present == {name: round(m.mid) for name, m in MOCK_CALIBRATION.items()}
    goals = {name: value + 50 - 20 * i for i, (name, value) in enumerate(present.items())}
    bus.set_torque(True)
    bus.sync_write("Goal_Position", goals)  # no reply: wait until the servos have it
    assert wait_for(lambda: all(emulator.register(servo_id, "Goal_Position") == goals[name]
                                for name, servo_id in SO101_MOTORS.items()))
    assert wait_for(lambda: bus.sync_read("Present_Position") == goals)


def test_negative_goal_uses_sign_magnitude_on_the_wire(emulator, bus):
    bus.sync_write("Goal_Position", {"wrist_roll": -3})
    wire = (3 | 1 << 15).to_bytes(2, "little")
    assert wait_for(lambda: emulator.servos[5].registers[42:44] == wire)


@pytest.mark.parametrize("fault", ["drop", "corrupt"])
def test_failed_read_is_retried(emulator, bus, fault):
    inject = emulator.drop_replies if fault == "drop" else emulator.corrupt_replies
    inject(2, servo_id=3)
    assert bus.sync_read("Present_Position")["elbow_flex"] == round(MOCK_CALIBRATION["elbow_flex"].mid)
    assert bus.stats.retries == 2 and bus.stats.errors == 0
    inject(1)
    assert bus.read("Present_Temperature", "gripper") == 31
    assert bus.stats.retries == 3


def test_silent_servo_is_named_and_bus_keeps_working(emulator, bus):
    emulator.silence(6)
    with pytest.raises(BusError, match=r"no reply from gripper \(id 6\) after 3 attempt"):
        bus.sync_read("Present_Position")
    assert bus.stats.errors == 1
    emulator.silence(6, False)
    assert len(bus.sync_read("Present_Position")) == 6


def test_unplugged_port_is_reported_and_reconnects(emulator, bus):
    emulator.unplug()
    with pytest.raises(PortError, match="lost during sync read"):
        bus.sync_read("Present_Position")
    assert not bus.is_connected
    with pytest.raises(PortError, match="cannot open"):
        bus.connect()
    emulator.replug()
    bus.connect()
    assert len(bus.sync_read("Present_Position")) == 6


def test_one_sync_read_covers_adjacent_registers(emulator, bus):
    before = emulator.packets_received
    values = bus.sync_read_span(("Present_Voltage", "Present_Temperature"))
    assert emulator.packets_received == before + 1
    assert values == {"Present_Voltage": {name: 121 for name in SO101_MOTORS},
                      "Present_Temperature": {name: 31 for name in SO101_MOTORS}}
    with pytest.raises(ValueError, match="not adjacent"):
        bus.sync_read_span(("Present_Position", "Present_Voltage"))


@pytest.mark.parametrize("operation", ["write", "read", "sync_read"])
def test_every_transaction_on_an_unplugged_port_is_a_port_error(emulator, bus, operation):
    # (A sync write expects no reply; on a hung-up pty it can pass unnoticed until the next read.)
    emulator.unplug()
    time.sleep(0.2)  # let the line hang up: flushing it then fails in termios, not in pyserial
    with pytest.raises(PortError, match="lost during"):
        {"write": lambda: bus.write("Torque_Enable", "gripper", 0),
         "read": lambda: bus.read("Present_Position", "gripper"),
         "sync_read": lambda: bus.sync_read("Present_Position")}[operation]()
    assert not bus.is_connected


def test_emulator_command_line_rehearses_faults_by_hand(tmp_path):
    """`python -m smolvla_ros.feetech.emulator`: scheduled (--at) and typed fault commands."""
    import subprocess
    import sys

    from conftest import ros_env

    port = str(tmp_path / "ttySO101")
    process = subprocess.Popen(
        [sys.executable, "-m", "smolvla_ros.feetech.emulator", "--port", port, "--at", "0", "silence 3"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        env=ros_env(PYTHONUNBUFFERED="1"))
    lines = []

    def type_and_wait(command: str, answer: str) -> None:
        process.stdin.write(command + "\n")
        process.stdin.flush()
        while answer not in (line := process.stdout.readline()):
            lines.append(line)
            assert line, "".join(lines)

    try:
        while "silence 3: servo 3 silent" not in (line := process.stdout.readline()):
            lines.append(line)
            assert line, "".join(lines)
        bus = FeetechBus(BusConfig(port=port, read_retries=0))
        with pytest.raises(BusError, match="elbow_flex"):
            bus.connect()
        type_and_wait("speak 3", "servo 3 answers again")
        bus.connect()
        assert bus.read("Homing_Offset", "gripper") == MOCK_CALIBRATION["gripper"].homing_offset
        type_and_wait("corrupt 1 6", "next 1 replies of servo 6: corrupt")
        with pytest.raises(BusError, match="corrupt"):
            bus.read("Present_Position", "gripper")
        type_and_wait("unplug", "unplugged")
        with pytest.raises(PortError):
            bus.read("Present_Position", "gripper")
        type_and_wait("replug", "replugged")
        bus.close()
        bus.connect()
        type_and_wait("jump 3", "unknown command 'jump 3'")
        bus.close()
    finally:
        process.terminate()
        code = process.wait(timeout=10)
        process.stdin.close()
        process.stdout.close()
    assert code == 0, "".join(lines)

    bad = subprocess.run([sys.executable, "-m", "smolvla_ros.feetech.emulator", "--port", port,
                          "--at", "1", "silence x"], capture_output=True, text=True, env=ros_env())
    assert bad.returncode == 2 and "arguments must be integers" in bad.stderr
