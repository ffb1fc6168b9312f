"""recorder_node over real DDS: episodes read back complete by an independent reader."""

from __future__ import annotations

import signal
import time

import numpy as np
import pytest
import yaml
from conftest import wait_for
from ros_probe import NodeProcess, RosProbe
from sensor_msgs.msg import Image, JointState
from std_msgs.msg import String
from std_srvs.srv import Trigger
from test_episode import read_back

from smolvla_ros.msg import EpisodeStatus, PolicyStatus
from smolvla_ros.policy.images import compressed_to_rgb

TOPICS = {"joint_states": JointState, "cameras/front/image_raw": Image,
          "task_instruction": String, "policy_status": PolicyStatus}


@pytest.fixture
def probe():
    probe = RosProbe()
    probe.subscribe(EpisodeStatus, "episode_status")
    yield probe
    probe.close()


def start_recorder(output_dir, *params: str) -> NodeProcess:
    return NodeProcess("recorder_node", "-p", f"output_dir:={output_dir}",
                       *[a for p in params for a in ("-p", p)])


def publish_all(probe, k: int) -> None:
    """One message on each topic (an instruction every 10th round)."""
    joints = JointState(name=["shoulder_pan"], position=[0.01 * k])
    joints.header.stamp = probe.node.get_clock().now().to_msg()
    probe.publish(JointState, "joint_states", joints)
    image = Image(height=4, width=4, encoding="rgb8", step=12, data=bytes([k % 256] * 48))
    probe.publish(Image, "cameras/front/image_raw", image)
    probe.publish(PolicyStatus, "policy_status", PolicyStatus(chunks_published=k))


def wait_until_recorded(probe) -> None:
    """The recorder discovers topics once a second; wait until it listens to all of ours."""
    for topic, kind in TOPICS.items():
        probe.publish(kind, topic, kind(), wait_for_subscriber=False)
    for topic in TOPICS:
        assert wait_for(lambda t=topic: probe.subscription_count(t) > 0, 30), topic


def custom_data(folder):
    return yaml.safe_load((folder / "metadata.yaml").read_text())[
        "rosbag2_bagfile_information"]["custom_data"]


def test_episode_holds_every_message_and_the_task_changes(tmp_path, probe):
    node = start_recorder(tmp_path)
    try:
        wait_until_recorded(probe)
        probe.publish(String, "task_instruction", String(data="pick up the cube"))
        time.sleep(0.3)
        assert probe.call(Trigger, "start_episode").success
        for k in range(30):
            if k == 15:
                probe.publish(String, "task_instruction", String(data="put it in the box"))
            publish_all(probe, k)
            time.sleep(0.01)
        time.sleep(0.5)
        response = probe.call(Trigger, "stop_episode")
        assert response.success and "0 dropped" in response.message
    finally:
        assert node.stop() == 0, node.output()
    folder = tmp_path / "episode_000000"
    messages = read_back(folder)
    topics = [topic for topic, _, _ in messages]
    assert topics.count("joint_states") == 30 and topics.count("cameras/front/image_raw") == 30
    assert topics.count("policy_status") == 30
    assert [m.data for t, m, _ in messages if t == "task_instruction"] == ["put it in the box"]
    assert [m.position[0] for t, m, _ in messages if t == "joint_states"] == \
        pytest.approx([0.01 * k for k in range(30)])
    custom = custom_data(folder)
    assert custom["task"] == "put it in the box" and custom["ended_by"] == "stop"
    assert [text for _, text in yaml.safe_load(custom["tasks"])] == \
        ["pick up the cube", "put it in the box"]
    statuses = probe.messages("episode_status")
    assert any(s.state == EpisodeStatus.STATE_RECORDING for s in statuses)
    assert statuses[-1].state == EpisodeStatus.STATE_IDLE and statuses[-1].frames == len(messages)


@pytest.mark.parametrize("kill", [signal.SIGTERM, signal.SIGKILL], ids=["sigterm", "sigkill"])
def test_stopped_mid_episode_the_bag_stays_readable(tmp_path, probe, kill):
    node = start_recorder(tmp_path, "start_on_instruction:=true")
    wait_until_recorded(probe)
    probe.publish(String, "task_instruction", String(data="wave"))
    assert wait_for(lambda: probe.messages("episode_status") and
                    probe.messages("episode_status")[-1].state == EpisodeStatus.STATE_RECORDING, 30)
    big = Image(height=300, width=400, encoding="rgb8", step=1200,
                data=np.random.default_rng(0).integers(0, 256, 360000, np.uint8).tobytes())
    for _ in range(12):  # several MiB: complete MCAP chunks exist before the kill
        probe.publish(Image, "cameras/front/image_raw", big)
        time.sleep(0.05)
    time.sleep(1.5)  # the writer flushes chunks each second
    node.process.send_signal(kill)
    node.process.wait(timeout=30)
    node.stop()
    if kill == signal.SIGTERM:  # a clean stop, the episode closed on the way out
        assert node.process.returncode == 0, node.output()
    folder = tmp_path / "episode_000000"
    if kill == signal.SIGKILL:
        assert not (folder / "metadata.yaml").exists()
        restarted = start_recorder(tmp_path)  # recovers unfinished episodes on start
        restarted.wait_for_output("recovered")
        assert restarted.stop() == 0
        again = start_recorder(tmp_path)  # the kept .partial original is not recovered again
        try:
            again.wait_for_output("ready: episodes go to")
        finally:
            assert again.stop() == 0, again.output()
        assert "recovered" not in again.output()
    images = [m for t, m, _ in read_back(folder) if t == "cameras/front/image_raw"]
    assert len(images) >= (12 if kill == signal.SIGTERM else 8)
    assert custom_data(folder)["task"] == "wave"


def test_discard_removes_the_episode(tmp_path, probe):
    node = start_recorder(tmp_path)
    try:
        wait_until_recorded(probe)
        assert probe.call(Trigger, "start_episode").success
        publish_all(probe, 1)
        assert probe.call(Trigger, "discard_episode").success
        assert not (tmp_path / "episode_000000").exists()
        assert not probe.call(Trigger, "stop_episode").success  # nothing is recording
    finally:
        assert node.stop() == 0, node.output()


@pytest.mark.parametrize("fmt", ["jpeg", "png"])
def test_camera_images_can_be_stored_compressed(tmp_path, probe, fmt):
    node = start_recorder(tmp_path, f"compress_images:={fmt}")
    rgb = np.zeros((32, 48, 3), np.uint8)
    rgb[:, :24] = (200, 40, 10)
    try:
        wait_until_recorded(probe)
        assert probe.call(Trigger, "start_episode").success
        for _ in range(5):
            probe.publish(Image, "cameras/front/image_raw",
                          Image(height=32, width=48, encoding="rgb8", step=144, data=rgb.tobytes()))
        time.sleep(0.5)
        assert probe.call(Trigger, "stop_episode").success
    finally:
        assert node.stop() == 0, node.output()
    stored = [m for t, m, _ in read_back(tmp_path / "episode_000000")
              if t == "cameras/front/image_raw/compressed"]
    assert len(stored) == 5 and stored[0].format == f"rgb8; {fmt} compressed bgr8"
    decoded = compressed_to_rgb(bytes(stored[0].data))
    error = np.abs(decoded.astype(int) - rgb)
    if fmt == "png":
        assert error.max() == 0  # lossless
    else:
        assert error.mean() < 3  # lossy, ringing only at the colour edge


def test_timed_episodes_follow_each_other_after_a_reset_pause(tmp_path, probe):
    node = start_recorder(tmp_path, "episode_duration_s:=1.0", "reset_duration_s:=0.5",
                          "num_episodes:=2", "status_period_s:=0.1")
    try:
        wait_until_recorded(probe)
        probe.publish(String, "task_instruction", String(data="stack the blocks"))
        time.sleep(0.3)
        assert probe.call(Trigger, "start_episode").success
        assert wait_for(lambda: (tmp_path / "episode_000001" / "metadata.yaml").exists(), 30)
        time.sleep(1.0)
        assert not (tmp_path / "episode_000002").exists()  # num_episodes reached
    finally:
        assert node.stop() == 0, node.output()
    for folder in (tmp_path / "episode_000000", tmp_path / "episode_000001"):
        custom = custom_data(folder)
        assert custom["ended_by"] == "duration" and custom["task"] == "stack the blocks"
    states = [s.state for s in probe.messages("episode_status")]
    first_reset = states.index(EpisodeStatus.STATE_RESETTING)
    assert EpisodeStatus.STATE_RECORDING in states[first_reset:]  # recording again after it
    assert states[-1] == EpisodeStatus.STATE_IDLE


def test_stop_during_the_reset_pause_ends_the_sequence(tmp_path, probe):
    node = start_recorder(tmp_path, "episode_duration_s:=0.5", "reset_duration_s:=30.0")
    try:
        wait_until_recorded(probe)
        assert probe.call(Trigger, "start_episode").success
        assert wait_for(lambda: probe.messages("episode_status") and
                        probe.messages("episode_status")[-1].state == EpisodeStatus.STATE_RESETTING, 30)
        response = probe.call(Trigger, "stop_episode")
        assert response.success and "cancelled" in response.message
        assert wait_for(lambda: probe.messages("episode_status")[-1].state == EpisodeStatus.STATE_IDLE, 10)
    finally:
        assert node.stop() == 0, node.output()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["episode_000000"]
