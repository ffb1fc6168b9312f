"""Which ROS camera feeds which image input of a checkpoint.

A checkpoint declares its image inputs under the model's names (``lerobot/smolvla_base``:
``camera1``..``camera3``). A fine-tune made with ``lerobot-train --rename_map`` keeps those
names in its config and saves the map (dataset key -> model key) in its preprocessor; at
inference LeRobot feeds the dataset's keys and lets that saved rename step rename them. We
do the same: a camera's ROS name is its dataset-side name, and the observation carries the
dataset-side key, so LeRobot's own step does the renaming. ``camera_map`` entries
(``ros_name=checkpoint_name``, the direction of LeRobot's rename_map) rename further on the
ROS side, for checkpoints (smolvla_base itself) whose names no camera topic uses.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

IMAGE_PREFIX = "observation.images."
_TOPIC_TOKEN = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")


class CameraMapError(ValueError):
    """camera_map (or a camera name) cannot be used; the message is one line."""


@dataclass(frozen=True)
class Camera:
    name: str  # ROS side: the topic cameras/<name>/image_raw
    key: str  # the observation key fed to the preprocessor (dataset side when renamed)
    model_key: str  # the checkpoint's input feature it ends up as

    def describe(self) -> str:
        """``front=camera1`` when the names differ (camera_map's syntax), else ``camera3``."""
        model = short_name(self.model_key)
        return self.name if self.name == model else f"{self.name}={model}"


def short_name(key: str) -> str:
    return key[len(IMAGE_PREFIX):] if key.startswith(IMAGE_PREFIX) else key


def saved_rename_map(preprocessor) -> dict[str, str]:
    """The rename map saved in a loaded preprocessor pipeline (empty if it has none)."""
    for step in preprocessor.steps:
        if type(step).__name__ == "RenameObservationsProcessorStep":
            return dict(step.rename_map)
    return {}


def fed_key(rename_map: dict[str, str], model_key: str) -> str:
    """The key to feed so that the saved rename step yields ``model_key``."""
    return next((source for source, target in rename_map.items() if target == model_key), model_key)


def parse_camera_map(entries) -> list[tuple[str, str]]:
    """``["front=camera1", "wrist=camera2"]`` (or one comma-separated string) as pairs."""
    pairs = []
    for entry in (item for raw in entries for item in str(raw).split(",")):
        if not entry.strip():
            continue
        ros_name, sep, checkpoint_name = (part.strip() for part in entry.partition("="))
        if not sep or not ros_name or not checkpoint_name:
            raise CameraMapError(f"camera_map entry {entry!r}: expected ros_name=checkpoint_name, "
                                 "e.g. front=camera1")
        pairs.append((ros_name, checkpoint_name))
    return pairs


def resolve_cameras(image_keys, rename_map: dict[str, str], camera_map=()) -> list[Camera]:
    """One Camera per image input, in the checkpoint's order; raises CameraMapError."""
    image_keys = list(image_keys)
    fed = {key: fed_key(rename_map, key) for key in image_keys}
    names = {key: short_name(fed[key]) for key in image_keys}
    known = {}  # checkpoint name (model side or dataset side) -> model key
    for key in image_keys:
        known.setdefault(short_name(key), key)
        known.setdefault(short_name(fed[key]), key)
    mapped = {}
    for ros_name, checkpoint_name in parse_camera_map(camera_map):
        key = known.get(short_name(checkpoint_name))
        if key is None:
            raise CameraMapError(
                f"camera_map {ros_name}={checkpoint_name}: the checkpoint has no camera "
                f"'{short_name(checkpoint_name)}' (its cameras: {_listing(image_keys, fed)})")
        if key in mapped:
            raise CameraMapError(f"camera_map maps both {mapped[key]} and {ros_name} to "
                                 f"'{short_name(key)}'")
        mapped[key] = names[key] = ros_name
    for key in image_keys:
        if not _TOPIC_TOKEN.match(names[key]):
            raise CameraMapError(f"camera '{names[key]}' cannot name a topic cameras/<name>/image_raw "
                                 f"(letters, digits, _): set camera_map, e.g. "
                                 f"front={short_name(fed[key])}")
    taken = {}
    for key in image_keys:
        if names[key] in taken:
            raise CameraMapError(
                f"cameras '{short_name(taken[names[key]])}' and '{short_name(key)}' would both "
                f"read cameras/{names[key]}/image_raw: fix camera_map")
        taken[names[key]] = key
    return [Camera(names[key], fed[key], key) for key in image_keys]


def _listing(image_keys, fed) -> str:
    return ", ".join(short_name(key) if fed[key] == key
                     else f"{short_name(key)} (dataset name '{short_name(fed[key])}')"
                     for key in image_keys)
