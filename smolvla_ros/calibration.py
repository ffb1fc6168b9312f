"""LeRobot's motor calibration files: where they live, and what they hold.

A calibration maps each motor name to its servo id, drive mode, homing offset and the raw
range the joint moved through; every unit conversion in smolvla_ros derives from it.

LeRobot reads ``$HF_LEROBOT_CALIBRATION`` (default ``$HF_LEROBOT_HOME/calibration``, where
``HF_LEROBOT_HOME`` defaults to ``$HF_HOME/lerobot`` and ``HF_HOME`` to
``$XDG_CACHE_HOME/huggingface``, i.e. ``~/.cache/huggingface``). We resolve it without
importing LeRobot so the hardware node and ``smolvla-ros doctor`` stay light.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path

# LeRobot >= 0.4.3 writes follower calibrations under so_follower; older versions used
# so101_follower. Both are read.
FOLLOWER_CALIBRATION_FOLDERS = ("so_follower", "so101_follower")


def calibration_root() -> Path:
    """LeRobot's calibration folder for this environment (it may not exist)."""
    if "HF_LEROBOT_CALIBRATION" in os.environ:
        return Path(os.environ["HF_LEROBOT_CALIBRATION"]).expanduser()
    hf_home = os.environ.get(
        "HF_HOME", os.path.join(os.environ.get("XDG_CACHE_HOME", "~/.cache"), "huggingface")
    )
    lerobot_home = os.environ.get("HF_LEROBOT_HOME", os.path.join(hf_home, "lerobot"))
    return Path(lerobot_home).expanduser() / "calibration"


def follower_calibration_files(root: Path | None = None) -> list[Path]:
    """Every SO follower calibration JSON under ``root`` (default: calibration_root())."""
    root = calibration_root() if root is None else root
    return sorted(
        path
        for folder in FOLLOWER_CALIBRATION_FOLDERS
        for path in (root / "robots" / folder).glob("*.json")
    )


@dataclass(frozen=True)
class MotorCalibration:
    """One servo's entry in LeRobot's calibration JSON, field for field."""

    id: int
    drive_mode: int
    homing_offset: int
    range_min: int
    range_max: int

    @property
    def mid(self) -> float:
        """The zero of the joint: the middle of the calibrated range, in raw ticks."""
        return (self.range_min + self.range_max) / 2


Calibration = dict[str, MotorCalibration]


def load_calibration(path: Path) -> Calibration:
    """Read a LeRobot calibration JSON (``{motor: {id, drive_mode, homing_offset, ...}}``)."""
    with open(path) as file:
        data = json.load(file)
    try:
        calibration = {name: MotorCalibration(**fields) for name, fields in data.items()}
    except TypeError as error:
        raise ValueError(f"{path} is not a LeRobot motor calibration file: {error}") from None
    for name, motor in calibration.items():
        if motor.range_min >= motor.range_max:
            raise ValueError(
                f"{path}: motor '{name}' has range_min {motor.range_min} >= range_max {motor.range_max}"
            )
    return calibration


def save_calibration(calibration: Calibration, path: Path) -> None:
    """Write the calibration as LeRobot does (same keys, indent 4), creating folders."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as file:
        json.dump({name: asdict(motor) for name, motor in calibration.items()}, file, indent=4)


def find_follower_calibration(robot_id: str, root: Path | None = None) -> Path | None:
    """The calibration file of follower ``robot_id``: so_follower first, then so101_follower."""
    root = calibration_root() if root is None else root
    for folder in FOLLOWER_CALIBRATION_FOLDERS:
        path = root / "robots" / folder / f"{robot_id}.json"
        if path.is_file():
            return path
    return None
