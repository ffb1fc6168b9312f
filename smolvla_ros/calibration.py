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

# Where LeRobot keeps each role's files, under calibration_root(). LeRobot >= 0.4.3 uses the
# first folder; older versions the second. Both are read; new files go to the first.
CALIBRATION_FOLDERS = {
    "follower": ("robots/so_follower", "robots/so101_follower"),
    "leader": ("teleoperators/so_leader", "teleoperators/so101_leader"),
}


def calibration_root() -> Path:
    """LeRobot's calibration folder for this environment (it may not exist)."""
    if "HF_LEROBOT_CALIBRATION" in os.environ:
        return Path(os.environ["HF_LEROBOT_CALIBRATION"]).expanduser()
    hf_home = os.environ.get(
        "HF_HOME", os.path.join(os.environ.get("XDG_CACHE_HOME", "~/.cache"), "huggingface")
    )
    lerobot_home = os.environ.get("HF_LEROBOT_HOME", os.path.join(hf_home, "lerobot"))
    return Path(lerobot_home).expanduser() / "calibration"


def calibration_files(root: Path | None = None) -> list[Path]:
    """Every SO-101 calibration JSON (follower and leader) under ``root``."""
    root = calibration_root() if root is None else root
    return sorted(
        path
        for folders in CALIBRATION_FOLDERS.values()
        for folder in folders
        for path in (root / folder).glob("*.json")
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
    return calibration_from_json(Path(path).read_text(), f"{path}")


def save_calibration(calibration: Calibration, path: Path) -> None:
    """Write the calibration as LeRobot does (same keys, indent 4), creating folders."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as file:
        json.dump({name: asdict(motor) for name, motor in calibration.items()}, file, indent=4)


def calibration_path(robot_id: str, role: str = "follower", calibration_dir: str | Path = "") -> Path:
    """Where the calibration of ``robot_id`` is (or will be written).

    ``calibration_dir`` has LeRobot's meaning: the folder that holds ``<robot_id>.json``;
    empty means LeRobot's default folder for the role (the older folder if only it has one).
    """
    if calibration_dir:
        return Path(calibration_dir).expanduser() / f"{robot_id}.json"
    candidates = [calibration_root() / folder / f"{robot_id}.json" for folder in CALIBRATION_FOLDERS[role]]
    return next((path for path in candidates if path.is_file()), candidates[0])


MOCK_ROBOT_ID = "mock"  # the emulated bus's and the simulated arm's built-in calibration


def robot_calibration(robot_id: str, role: str = "follower", calibration_dir: str | Path = "") -> Calibration:
    """The calibration of ``robot_id`` (its file, see ``calibration_path``), or for ``mock`` the
    emulated and simulated arm's own. Raises FileNotFoundError or ValueError like
    ``load_calibration``."""
    if robot_id == MOCK_ROBOT_ID:
        from smolvla_ros.feetech.emulator import MOCK_CALIBRATION
        return MOCK_CALIBRATION
    return load_calibration(calibration_path(robot_id, role, calibration_dir))


def calibration_to_json(calibration: Calibration) -> str:
    """The text LeRobot writes for this calibration (its JSON file's content, indent 4), so a
    recording can carry the calibration it was made with and a converter elsewhere can use it."""
    return json.dumps({name: asdict(motor) for name, motor in calibration.items()}, indent=4)


def calibration_from_json(text: str, source: str = "calibration") -> Calibration:
    """A calibration from LeRobot JSON text (a file's content, or one stored in a recording);
    ``source`` names it in errors. Raises ValueError on anything ``load_calibration`` refuses."""
    try:
        data = json.loads(text)
        calibration = {name: MotorCalibration(**fields) for name, fields in data.items()}
    except (json.JSONDecodeError, TypeError, AttributeError) as error:
        raise ValueError(f"{source} is not a LeRobot motor calibration file: {error}") from None
    for name, motor in calibration.items():
        if motor.range_min >= motor.range_max:
            raise ValueError(
                f"{source}: motor '{name}' has range_min {motor.range_min} >= range_max {motor.range_max}"
            )
    return calibration
