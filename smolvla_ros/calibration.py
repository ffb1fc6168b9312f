"""Where LeRobot keeps calibration files, resolved exactly as LeRobot resolves it.

LeRobot reads ``$HF_LEROBOT_CALIBRATION`` (default ``$HF_LEROBOT_HOME/calibration``, where
``HF_LEROBOT_HOME`` defaults to ``$HF_HOME/lerobot`` and ``HF_HOME`` to
``$XDG_CACHE_HOME/huggingface``, i.e. ``~/.cache/huggingface``). We resolve it without
importing LeRobot so the hardware node and ``smolvla-ros doctor`` stay light.
"""

from __future__ import annotations

import os
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
