"""policy_node over real DDS with checkpoints shaped like lerobot/smolvla_base and its
fine-tunes: camera topics named from the saved rename map or camera_map, cameras nobody
publishes left out (and said so), chunks equal to LeRobot's own pipeline's."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import wait_for
from diagnostic_msgs.msg import DiagnosticArray
from test_policy_node import (  # noqa: F401 (probe is a fixture)
    IMAGES, Feeder, as_lerobot, expected_actions, instruct, latest_status, probe, start_policy,
)

from smolvla_ros.msg import PolicyStatus

TASK = "pick up the cube"
# The same two pictures under smolvla_base's own camera names.
BASE_IMAGES = {"camera1": IMAGES["front"], "camera2": IMAGES["wrist"]}
ABSENT_CAMERA3 = ("cameras in use: {} (/cameras/{}/image_raw), {} (/cameras/{}/image_raw); absent, "
                  "left out of the observation (no publisher): camera3 (/cameras/camera3/image_raw)")


def first_chunk(probe):
    return next(c for c in probe.wait_for_messages("action_chunk") if len(c.points) > 1)


def run_policy(checkpoint, probe, feeder: Feeder, *params: str):
    """Start the feeder, then the node (its publishers are known when the node looks)."""
    feeder.start()
    node = start_policy(checkpoint, *params)
    node.wait_for_output("loaded ")
    return node


def test_smolvla_base_layout_runs_without_camera3(base_like_checkpoint, probe):
    probe.subscribe(DiagnosticArray, "diagnostics")
    feeder = Feeder(probe, cameras=["camera1", "camera2"], images=BASE_IMAGES)
    node = run_policy(base_like_checkpoint, probe, feeder)
    try:
        line = ABSENT_CAMERA3.format("camera1", "camera1", "camera2", "camera2")
        node.wait_for_output(line)
        assert wait_for(lambda: latest_status(probe).message == "absent cameras: camera3", 30)
        instruct(probe, TASK)
        chunk = first_chunk(probe)
        np.testing.assert_allclose(as_lerobot(chunk), expected_actions(
            base_like_checkpoint, TASK, BASE_IMAGES), rtol=0, atol=1e-9)
        assert wait_for(lambda: latest_status(probe).state == PolicyStatus.STATE_RUNNING, 30)
        assert latest_status(probe).message.endswith("; absent cameras: camera3")

        def diagnostics() -> dict:
            arrays = probe.messages("diagnostics")
            return {kv.key: kv.value for kv in arrays[-1].status[0].values} if arrays else {}
        assert wait_for(lambda: diagnostics().get("chunks_published", "0") != "0", 30)
        assert diagnostics()["cameras"] == ("camera1 (/cameras/camera1/image_raw), "
                                            "camera2 (/cameras/camera2/image_raw)")
        assert diagnostics()["absent_cameras"] == "camera3 (/cameras/camera3/image_raw)"
        assert diagnostics()["mode"] == "float32, 10 steps"
        probe.wait_for_messages("action_chunk", 3)
        assert node.output().count(line) == 1  # said once, while the set stays the same
    finally:
        feeder.stop()
        assert node.stop() == 0, node.output()


def test_finetune_reads_the_dataset_camera_topics(finetuned_checkpoint, probe):
    feeder = Feeder(probe)  # cameras/front and cameras/wrist, as in the fine-tune's dataset
    node = run_policy(finetuned_checkpoint, probe, feeder)
    try:
        node.wait_for_output("cameras (ros name=checkpoint name): front=camera1, wrist=camera2, "
                             "camera3")
        node.wait_for_output(ABSENT_CAMERA3.format("front", "front", "wrist", "wrist"))
        assert wait_for(lambda: probe.subscription_count("cameras/front/image_raw") == 1 and
                        probe.subscription_count("cameras/wrist/image_raw") == 1, 30)
        instruct(probe, TASK)
        # LeRobot's own pipeline fed the dataset's names; its saved rename step renames them.
        np.testing.assert_allclose(as_lerobot(first_chunk(probe)),
                                   expected_actions(finetuned_checkpoint, TASK, IMAGES),
                                   rtol=0, atol=1e-9)
    finally:
        feeder.stop()
        assert node.stop() == 0, node.output()


def test_camera_map_runs_smolvla_base_on_the_sim_cameras(base_like_checkpoint, probe):
    feeder = Feeder(probe)  # what the simulation publishes: cameras/front and cameras/wrist
    node = run_policy(base_like_checkpoint, probe, feeder, "camera_map:=[front=camera1,wrist=camera2]")
    try:
        node.wait_for_output(ABSENT_CAMERA3.format("front", "front", "wrist", "wrist"))
        instruct(probe, TASK)
        np.testing.assert_allclose(as_lerobot(first_chunk(probe)),
                                   expected_actions(base_like_checkpoint, TASK, BASE_IMAGES),
                                   rtol=0, atol=1e-9)
    finally:
        feeder.stop()
        assert node.stop() == 0, node.output()


def test_no_camera_published_holds_and_says_so(base_like_checkpoint, probe):
    feeder = Feeder(probe, cameras=[])  # joint states only
    node = run_policy(base_like_checkpoint, probe, feeder)
    try:
        node.wait_for_output("no camera publishes: holding until one of camera1 "
                             "(/cameras/camera1/image_raw)")
        instruct(probe, TASK)
        # its status says so once joint_states have arrived too (before, it names both)
        assert wait_for(lambda: latest_status(probe).state == PolicyStatus.STATE_HOLDING and
                        latest_status(probe).message.startswith(
                            "no camera publishes (waiting on /cameras/camera1/image_raw"), 30), \
            latest_status(probe)
        assert all(len(c.points) == 1 for c in probe.messages("action_chunk"))  # holds only
    finally:
        feeder.stop()
        assert node.stop() == 0, node.output()


def test_wrong_camera_map_name_is_one_error_line(base_like_checkpoint, probe):
    node = start_policy(base_like_checkpoint, "camera_map:=[front=camera9]")
    try:
        node.wait_for_output("camera_map front=camera9: the checkpoint has no camera 'camera9' "
                             "(its cameras: camera1, camera2, camera3)")
        assert wait_for(lambda: probe.messages("policy_status") and
                        latest_status(probe).state == PolicyStatus.STATE_ERROR, 30)
        assert "Traceback" not in node.output() and node.process.poll() is None
    finally:
        assert node.stop() == 0, node.output()


@pytest.mark.parametrize("value, line", [
    ("camera_map:=front=camera1", "camera_map must be a string array"),
    ("camera_map:=[front]", "camera_map entry 'front': expected ros_name=checkpoint_name"),
])
def test_malformed_camera_map_is_one_fatal_line(base_like_checkpoint, value, line):
    node = start_policy(base_like_checkpoint, value)
    assert node.process.wait(timeout=60) == 1
    node.stop()
    assert line in node.output() and "Traceback" not in node.output()
