"""Cameras of checkpoints fine-tuned from smolvla_base, without ROS: named from the dataset
side of the saved rename map or by camera_map, and left out when nobody publishes them,
with LeRobot's own pipeline as the reference for the actions."""

from __future__ import annotations

import time

import numpy as np
import pytest
from conftest import wait_for
from test_policy_runtime import lerobot_direct

from smolvla_ros.feetech.emulator import MOCK_CALIBRATION
from smolvla_ros.policy.cameras import CameraMapError, resolve_cameras
from smolvla_ros.policy.controller import HOLDING, PolicyController, PolicyControllerConfig
from smolvla_ros.policy.runtime import PolicyLoadError, PolicyRuntime, PolicyRuntimeConfig
from smolvla_ros.units import SO101_JOINTS, ArmUnits

BASE_KEYS = [f"observation.images.camera{k}" for k in (1, 2, 3)]
RENAME = {"observation.images.front": "observation.images.camera1",
          "observation.images.wrist": "observation.images.camera2"}
rng = np.random.default_rng(5)
FRONT, WRIST = (rng.integers(0, 256, (48, 64, 3), dtype=np.uint8) for _ in range(2))
STATE = np.array([10.0, -20.0, 30.0, 5.0, -40.0, 25.0])
TASK = "pick up the cube"


def names(cameras) -> list[tuple[str, str]]:
    return [(camera.name, camera.key) for camera in cameras]


def test_cameras_are_named_from_the_dataset_side_of_the_rename_map():
    assert names(resolve_cameras(BASE_KEYS, {})) == [
        ("camera1", BASE_KEYS[0]), ("camera2", BASE_KEYS[1]), ("camera3", BASE_KEYS[2])]
    # Fed under the dataset's keys, as LeRobot feeds them: its saved rename step renames.
    assert names(resolve_cameras(BASE_KEYS, RENAME)) == [
        ("front", "observation.images.front"), ("wrist", "observation.images.wrist"),
        ("camera3", BASE_KEYS[2])]


@pytest.mark.parametrize("rename_map", [{}, RENAME])
def test_camera_map_names_a_camera_by_model_or_dataset_name(rename_map):
    fed = {key: next((s for s, t in rename_map.items() if t == key), key) for key in BASE_KEYS}
    by_model = resolve_cameras(BASE_KEYS, rename_map, ["top=camera1", "hand=camera2"])
    assert names(by_model) == [("top", fed[BASE_KEYS[0]]), ("hand", fed[BASE_KEYS[1]]),
                               ("camera3", BASE_KEYS[2])]
    if rename_map:  # the dataset-side names of the saved map work too
        assert names(resolve_cameras(BASE_KEYS, rename_map, ["top=front,hand=wrist"])) == names(by_model)


@pytest.mark.parametrize("rename_map, camera_map, message", [
    ({}, ["front=camera9"], "camera_map front=camera9: the checkpoint has no camera 'camera9' "
                            "(its cameras: camera1, camera2, camera3)"),
    (RENAME, ["x=top"], "the checkpoint has no camera 'top' (its cameras: camera1 (dataset name "
                        "'front'), camera2 (dataset name 'wrist'), camera3)"),
    ({}, ["front"], "camera_map entry 'front': expected ros_name=checkpoint_name"),
    ({}, ["a=camera1", "b=camera1"], "camera_map maps both a and b to 'camera1'"),
    ({}, ["camera2=camera1"], "cameras 'camera1' and 'camera2' would both read cameras/camera2/"),
    ({}, ["front cam=camera1"], "camera 'front cam' cannot name a topic"),
])
def test_a_wrong_camera_map_is_one_clear_line(rename_map, camera_map, message):
    with pytest.raises(CameraMapError, match=message.replace("(", r"\(").replace(")", r"\)")) as error:
        resolve_cameras(BASE_KEYS, rename_map, camera_map)
    assert "\n" not in str(error.value)


@pytest.fixture(scope="module")
def base_runtime(base_like_checkpoint):
    return PolicyRuntime(PolicyRuntimeConfig(str(base_like_checkpoint), device="cpu"))


def test_smolvla_base_layout_infers_on_the_cameras_present_like_lerobot(base_runtime,
                                                                        base_like_checkpoint):
    assert base_runtime.camera_names == ["camera1", "camera2", "camera3"]
    assert (base_runtime.state_dim, base_runtime.action_dim) == (6, 6)
    ours = base_runtime.infer({"camera1": FRONT, "camera2": WRIST}, STATE, TASK,
                              noise=base_runtime.make_noise(4))
    theirs = lerobot_direct(base_like_checkpoint, {"camera1": FRONT, "camera2": WRIST}, STATE, TASK,
                            base_runtime.make_noise(4))
    np.testing.assert_array_equal(ours, theirs.astype(np.float64))
    three = base_runtime.infer({"camera1": FRONT, "camera2": WRIST, "camera3": WRIST}, STATE, TASK,
                               noise=base_runtime.make_noise(4))
    assert not np.allclose(ours, three)  # the third image does reach the model when given
    with pytest.raises(ValueError, match="no camera image"):
        base_runtime.infer({}, STATE, TASK)
    with pytest.raises(ValueError, match=r"images for \['front'\]"):
        base_runtime.infer({"front": FRONT}, STATE, TASK)


def test_finetune_is_fed_the_dataset_names_and_lerobot_renames(finetuned_checkpoint):
    runtime = PolicyRuntime(PolicyRuntimeConfig(str(finetuned_checkpoint), device="cpu"))
    assert runtime.rename_map == RENAME
    assert runtime.camera_names == ["front", "wrist", "camera3"]
    ours = runtime.infer({"front": FRONT, "wrist": WRIST}, STATE, TASK, noise=runtime.make_noise(4))
    theirs = lerobot_direct(finetuned_checkpoint, {"front": FRONT, "wrist": WRIST}, STATE, TASK,
                            runtime.make_noise(4))
    np.testing.assert_array_equal(ours, theirs.astype(np.float64))


def test_camera_map_feeds_smolvla_base_from_other_names(base_like_checkpoint, base_runtime):
    runtime = PolicyRuntime(PolicyRuntimeConfig(str(base_like_checkpoint), device="cpu",
                                                camera_map=("front=camera1", "wrist=camera2")))
    assert runtime.camera_names == ["front", "wrist", "camera3"]
    assert [camera.describe() for camera in runtime.cameras] == ["front=camera1", "wrist=camera2",
                                                                 "camera3"]
    ours = runtime.infer({"front": FRONT, "wrist": WRIST}, STATE, TASK, noise=runtime.make_noise(4))
    direct = base_runtime.infer({"camera1": FRONT, "camera2": WRIST}, STATE, TASK,
                                noise=base_runtime.make_noise(4))
    np.testing.assert_array_equal(ours, direct)
    with pytest.raises(PolicyLoadError, match="the checkpoint has no camera 'front'"):
        PolicyRuntime(PolicyRuntimeConfig(str(base_like_checkpoint), device="cpu",
                                          camera_map=("front=front",)))


class Recorder:
    """The controller's publish and log callbacks, recorded."""

    def __init__(self):
        self.chunks, self.logs = [], []

    def publish(self, chunk) -> None:
        self.chunks.append(chunk)

    def log(self, level: str, message: str) -> None:
        self.logs.append((level, message))


def controller_for(runtime, recorder: Recorder) -> PolicyController:
    return PolicyController(runtime, ArmUnits(MOCK_CALIBRATION), PolicyControllerConfig(noise_seed=4),
                            recorder.publish, recorder.log, time.monotonic)


def test_controller_leaves_out_cameras_nobody_publishes(base_runtime, base_like_checkpoint):
    units, joints = ArmUnits(MOCK_CALIBRATION), np.array([0.1, -0.2, 0.3, -0.4, 0.5, 0.2])
    recorder = Recorder()
    controller = controller_for(base_runtime, recorder)
    try:
        now = time.monotonic()
        controller.update_joints(SO101_JOINTS, joints, round(now * 1e9))
        controller.tick(now)
        assert recorder.logs == []  # publishers not looked at yet: every camera is awaited
        controller.set_publishers({"camera1": 1, "camera2": 1, "camera3": 0})
        for _ in range(3):
            controller.tick(now)
        assert recorder.logs == [(  # once, not on every tick
            "info", "cameras in use: camera1 (cameras/camera1/image_raw), camera2 "
                    "(cameras/camera2/image_raw); absent, left out of the observation (no "
                    "publisher): camera3 (cameras/camera3/image_raw)")]
        assert controller.status.absent_cameras == ("camera3",)
        assert controller.status_message() == "absent cameras: camera3"

        now = time.monotonic()
        controller.update_joints(SO101_JOINTS, joints, round(now * 1e9))
        controller.update_image("camera1", FRONT, now)
        controller.update_image("camera2", WRIST, now)
        controller.set_instruction(TASK, now)
        assert wait_for(lambda: recorder.chunks, 30)
        expected = lerobot_direct(base_like_checkpoint, {"camera1": FRONT, "camera2": WRIST},
                                  units.radians_to_lerobot(joints), TASK, base_runtime.make_noise(4))
        expected[:, 5] = np.clip(expected[:, 5], 0.0, 100.0)  # the gripper's range, as LeRobot's arm
        published = np.array([units.radians_to_lerobot(p) for p in recorder.chunks[0].positions])
        np.testing.assert_allclose(published, expected, rtol=0, atol=1e-9)

        # A publisher appears: camera3 is awaited (the arm holds) and the new set is logged.
        controller.set_publishers({"camera1": 1, "camera2": 1, "camera3": 1})
        controller.tick(time.monotonic())
        assert recorder.logs[-2:] == [
            ("info", "cameras in use: camera1 (cameras/camera1/image_raw), camera2 "
                     "(cameras/camera2/image_raw), camera3 (cameras/camera3/image_raw)"),
            ("warn", "holding: no image yet from camera 'camera3' (waiting on "
                     "cameras/camera3/image_raw)")]
        assert controller.status.state == HOLDING and controller.status_message() == \
            "no image yet from camera 'camera3' (waiting on cameras/camera3/image_raw)"
    finally:
        controller.close()


def test_controller_with_no_camera_publishing_holds_and_says_so(base_runtime):
    recorder = Recorder()
    controller = controller_for(base_runtime, recorder)
    try:
        now = time.monotonic()
        controller.update_joints(SO101_JOINTS, np.zeros(6), round(now * 1e9))
        controller.set_publishers({"camera1": 0, "camera2": 0, "camera3": 0})
        controller.tick(now)
        assert recorder.logs == [("warn", "no camera publishes: holding until one of camera1 "
                                          "(cameras/camera1/image_raw), camera2 (cameras/camera2/"
                                          "image_raw), camera3 (cameras/camera3/image_raw) does "
                                          "(camera_map maps your camera names to the checkpoint's, "
                                          "e.g. front=camera1)")]
        assert controller.status_message() == "no camera publishes"  # idle, yet not silent
        controller.set_instruction(TASK, now)
        assert controller.status.state == HOLDING
        assert controller.status_message() == ("no camera publishes (waiting on cameras/camera1/"
                                               "image_raw, cameras/camera2/image_raw, "
                                               "cameras/camera3/image_raw)")
        assert all(len(chunk.positions) == 1 for chunk in recorder.chunks)  # holds only
    finally:
        controller.close()
