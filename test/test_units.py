"""The units module equals LeRobot's own MotorsBus normalisation, value for value."""

from __future__ import annotations

import math

import draccus
import numpy as np
import pytest
from lerobot.motors import Motor, MotorNormMode
from lerobot.motors import MotorCalibration as LeRobotMotorCalibration
from lerobot.motors.feetech import FeetechMotorsBus

from smolvla_ros.calibration import (
    MotorCalibration,
    calibration_path,
    load_calibration,
    save_calibration,
)
from smolvla_ros.feetech.emulator import MOCK_CALIBRATION
from smolvla_ros.units import (
    SO101_JOINTS,
    ArmUnits,
    NormMode,
    lerobot_modes,
    lerobot_to_ticks,
    ticks_to_lerobot,
)

# A real SO-101 calibration (the emulated arm's), plus a variant that exercises drive_mode
# and an odd range sum (mid on a half tick).
REAL = MOCK_CALIBRATION
FLIPPED = {name: MotorCalibration(m.id, 1, m.homing_offset, m.range_min, m.range_max + 1)
           for name, m in REAL.items()}
CALIBRATIONS = {"real": REAL, "drive_mode_odd_range": FLIPPED}
TO_LEROBOT_MODE = {NormMode.DEGREES: MotorNormMode.DEGREES,
                   NormMode.RANGE_M100_100: MotorNormMode.RANGE_M100_100,
                   NormMode.RANGE_0_100: MotorNormMode.RANGE_0_100}


def lerobot_bus(calibration, use_degrees: bool) -> FeetechMotorsBus:
    modes = lerobot_modes(use_degrees)
    motors = {name: Motor(m.id, "sts3215", TO_LEROBOT_MODE[modes[name]])
              for name, m in calibration.items()}
    lerobot_calibration = {name: LeRobotMotorCalibration(**vars(m)) for name, m in calibration.items()}
    return FeetechMotorsBus(port="/dev/null", motors=motors, calibration=lerobot_calibration)


@pytest.mark.parametrize("use_degrees", [True, False], ids=["degrees", "m100_100"])
@pytest.mark.parametrize("calibration_name", CALIBRATIONS)
def test_normalize_and_unnormalize_equal_lerobot(calibration_name, use_degrees):
    calibration = CALIBRATIONS[calibration_name]
    bus = lerobot_bus(calibration, use_degrees)
    modes = lerobot_modes(use_degrees)
    for name, motor in calibration.items():
        mode = modes[name]
        raws = range(motor.range_min - 40, motor.range_max + 41)  # outside too: clamping
        theirs = [bus._normalize({motor.id: raw})[motor.id] for raw in raws]
        ours = [ticks_to_lerobot(raw, motor, mode) for raw in raws]
        assert ours == theirs, name  # bit-identical floats

        values = sorted(set(theirs) | set(np.linspace(min(theirs) - 5, max(theirs) + 5, 997)))
        theirs_back = [bus._unnormalize({motor.id: value})[motor.id] for value in values]
        ours_back = [lerobot_to_ticks(value, motor, mode) for value in values]
        assert ours_back == theirs_back, name

        # Round trips are exact exactly where LeRobot's are.
        for raw in range(motor.range_min, motor.range_max + 1):
            lerobot_exact = bus._unnormalize(bus._normalize({motor.id: raw}))[motor.id] == raw
            ours_exact = lerobot_to_ticks(ticks_to_lerobot(raw, motor, mode), motor, mode) == raw
            assert ours_exact == lerobot_exact, (name, raw)


@pytest.mark.parametrize("calibration_name", CALIBRATIONS)
def test_radians_follow_rep103_and_round_trip_ticks_exactly(calibration_name):
    calibration = CALIBRATIONS[calibration_name]
    units = ArmUnits(calibration)
    span = max(m.range_max - m.range_min for m in calibration.values())
    for offset in range(span + 1):
        ticks = [min(m.range_min + offset, m.range_max) for m in units.motors]
        radians = units.ticks_to_radians(ticks)
        expected = [(t - m.mid) * 2 * math.pi / 4096 for t, m in zip(ticks, units.motors)]
        np.testing.assert_array_equal(radians, expected)
        np.testing.assert_array_equal(units.radians_to_ticks(radians), ticks)


@pytest.mark.parametrize("use_degrees", [True, False], ids=["degrees", "m100_100"])
def test_radians_to_lerobot_matches_lerobot_on_ticks(use_degrees):
    units = ArmUnits(REAL, use_degrees=use_degrees)
    bus = lerobot_bus(REAL, use_degrees)
    rng = np.random.default_rng(0)
    for _ in range(5000):
        ticks = [int(rng.integers(m.range_min, m.range_max + 1)) for m in units.motors]
        lerobot = bus._normalize(dict(zip([m.id for m in units.motors], ticks)))
        expected = [lerobot[m.id] for m in units.motors]
        # Bit-identical: a real arm's radians come from integer ticks, and map back to them.
        assert units.radians_to_lerobot(units.ticks_to_radians(ticks)).tolist() == expected
        # ...and back to the same radians (the float path has no truncation).
        np.testing.assert_allclose(units.lerobot_to_radians(expected),
                                   units.ticks_to_radians(ticks), rtol=0, atol=1e-12)


@pytest.mark.parametrize("calibration", CALIBRATIONS.values(), ids=CALIBRATIONS.keys())
@pytest.mark.parametrize("use_degrees", [True, False], ids=["degrees", "m100_100"])
def test_a_chunk_converts_to_the_same_bits_as_its_actions_one_by_one(calibration, use_degrees):
    """The policy converts whole chunks at once; each row must equal the per-action path,
    clamping (beyond -100..100 and 0..100) and drive_mode included."""
    units = ArmUnits(calibration, use_degrees=use_degrees)
    chunk = np.random.default_rng(1).uniform(-130.0, 130.0, (50, len(SO101_JOINTS)))
    chunk[0] = [-100.0, 100.0, 0.0, 180.0, -180.0, 100.0]
    expected = np.array([units.lerobot_to_radians(action) for action in chunk])
    np.testing.assert_array_equal(units.lerobot_chunk_to_radians(chunk), expected)
    with pytest.raises(ValueError, match="chunk"):
        units.lerobot_chunk_to_radians(chunk[:, :5])
    chunk[1] = np.nan  # a broken model's output stays broken, not clamped to a joint limit
    assert np.isnan(units.lerobot_chunk_to_radians(chunk)[1]).all()


def test_arm_units_checks_its_inputs():
    with pytest.raises(ValueError, match="gripper"):
        ArmUnits({name: m for name, m in REAL.items() if name != "gripper"})
    with pytest.raises(ValueError, match="expected 6 values"):
        ArmUnits(REAL).ticks_to_radians([2048] * 5)
    assert ArmUnits(REAL).joints == SO101_JOINTS


def test_calibration_json_is_lerobots_format(tmp_path):
    ours = tmp_path / "ours.json"
    save_calibration(REAL, ours)
    with open(ours) as file, draccus.config_type("json"):
        loaded_by_lerobot = draccus.load(dict[str, LeRobotMotorCalibration], file)
    assert {name: vars(m) for name, m in loaded_by_lerobot.items()} == \
        {name: vars(m) for name, m in REAL.items()}

    theirs = tmp_path / "theirs.json"
    with open(theirs, "w") as file, draccus.config_type("json"):
        draccus.dump(loaded_by_lerobot, file, indent=4)
    assert load_calibration(theirs) == REAL
    assert theirs.read_text() == ours.read_text()


def test_bad_calibration_file_is_a_clear_error(tmp_path):
    path = tmp_path / "bad.json"
    path.write_text('{"gripper": {"id": 6, "range_min": 10}}')
    with pytest.raises(ValueError, match="not a LeRobot motor calibration file"):
        load_calibration(path)
    path.write_text('{"gripper": {"id": 6, "drive_mode": 0, "homing_offset": 0, '
                    '"range_min": 10, "range_max": 10}}')
    with pytest.raises(ValueError, match="range_min 10 >= range_max 10"):
        load_calibration(path)


def test_calibration_path_follows_lerobots_folders(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_LEROBOT_CALIBRATION", str(tmp_path))
    new = tmp_path / "robots" / "so_follower" / "arm.json"
    old = tmp_path / "robots" / "so101_follower" / "arm.json"
    assert calibration_path("arm") == new  # where a new file goes
    save_calibration(REAL, old)
    assert calibration_path("arm") == old  # LeRobot < 0.4.3's folder is read too
    save_calibration(REAL, new)
    assert calibration_path("arm") == new
    assert calibration_path("lead", "leader") == tmp_path / "teleoperators" / "so_leader" / "lead.json"
    assert calibration_path("arm", calibration_dir=tmp_path / "mine") == tmp_path / "mine" / "arm.json"
