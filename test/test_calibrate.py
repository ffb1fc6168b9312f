"""`smolvla-ros calibrate` runs LeRobot's procedure on the (emulated) arm and writes its file."""

from __future__ import annotations

import subprocess

from conftest import ros_env, wait_for

from smolvla_ros.calibration import MotorCalibration, load_calibration
from smolvla_ros.feetech.bus import SO101_MOTORS
from smolvla_ros.feetech.emulator import EmulatedBus
from smolvla_ros.units import SO101_JOINTS

# Raw encoder positions (offset 0) of a person's hands: the middle pose, then each joint's
# extremes. wrist_roll is not swept: it keeps the full turn.
MIDDLE = {"shoulder_pan": 2100, "shoulder_lift": 1900, "elbow_flex": 2000, "wrist_flex": 2050,
          "wrist_roll": 1500, "gripper": 2300}
SWEEP = {"shoulder_pan": (900, 3300), "shoulder_lift": (700, 3200), "elbow_flex": (800, 3000),
         "wrist_flex": (950, 3150), "gripper": (2000, 3400)}


def calibrate(args, stdin_steps, emulator, tmp_path):
    process = subprocess.Popen(
        ["smolvla-ros", "calibrate", "--port", emulator.port, "--calibration-dir", str(tmp_path),
         *args], stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True, env=ros_env())
    output = []
    for prompt, action in stdin_steps:
        line = ""
        while prompt not in line:
            line = process.stdout.readline()
            assert line, "".join(output) + process.stderr.read()
            output.append(line)
        action()
        process.stdin.write("\n")
        process.stdin.flush()
    out, err = process.communicate(timeout=60)
    return process.returncode, "".join(output) + out, err


def test_calibrate_follows_lerobots_procedure(tmp_path):
    with EmulatedBus() as emulator:
        for name, servo_id in SO101_MOTORS.items():
            emulator.set_register(servo_id, "Homing_Offset", 321)  # an old calibration
            emulator.move_by_hand(servo_id, MIDDLE[name] - 321)  # encoder at MIDDLE

        def sweep():
            packets = emulator.packets_received
            for name, (low, high) in SWEEP.items():
                offset = MIDDLE[name] - 2047
                for raw in (low, high, MIDDLE[name]):
                    emulator.move_by_hand(SO101_MOTORS[name], raw - offset)
                    before = emulator.packets_received  # let the recorder see this pose
                    assert wait_for(lambda before=before: emulator.packets_received > before + 2)
            assert emulator.packets_received > packets

        code, out, err = calibrate(["--robot-id", "my_arm"], [
            ("middle of its range", lambda: None),
            ("Press ENTER to stop", sweep),
        ], emulator, tmp_path)
        assert code == 0, out + err
        calibration = load_calibration(tmp_path / "my_arm.json")
        assert f"Calibration saved to {tmp_path / 'my_arm.json'}" in out

        for name in SO101_JOINTS:
            offset = MIDDLE[name] - 2047
            low, high = (0, 4095) if name == "wrist_roll" else (
                SWEEP[name][0] - offset, SWEEP[name][1] - offset)
            assert calibration[name] == MotorCalibration(SO101_MOTORS[name], 0, offset, low, high)
            servo_id = SO101_MOTORS[name]
            assert emulator.register(servo_id, "Homing_Offset") == offset
            assert emulator.register(servo_id, "Min_Position_Limit") == low
            assert emulator.register(servo_id, "Max_Position_Limit") == high
            assert emulator.register(servo_id, "Torque_Enable") == 0


def test_calibrate_refuses_a_joint_that_never_moved(tmp_path):
    with EmulatedBus() as emulator:
        code, out, err = calibrate(["--robot-id", "lazy", "--leader"], [
            ("middle of its range", lambda: None),
            ("Press ENTER to stop", lambda: None),
        ], emulator, tmp_path)
        assert code == 1
        assert "shoulder_pan did not move" in err
        assert not (tmp_path / "lazy.json").exists()


def test_calibrate_wrong_port_is_one_clear_line(tmp_path):
    result = subprocess.run(
        ["smolvla-ros", "calibrate", "--port", str(tmp_path / "ttyUSB9"), "--robot-id", "x"],
        capture_output=True, text=True, env=ros_env(), stdin=subprocess.DEVNULL)
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"calibrate: cannot open {tmp_path / 'ttyUSB9'}: ")
    assert "No such file or directory" in lines[0]
