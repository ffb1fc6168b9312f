"""recorder_node over real DDS: episodes read back complete by an independent reader."""

from __future__ import annotations

import os
import shutil
import signal
import time

import numpy as np
import pytest
import yaml
from arm_fixtures import FOLLOWER, LEADER, LeRobotArm, radians, random_ticks
from conftest import wait_for
from rclpy.duration import Duration
from rclpy.qos import DurabilityPolicy, QoSProfile
from ros_probe import NodeProcess, RosProbe
from sensor_msgs.msg import Image, JointState
from std_msgs.msg import String
from std_srvs.srv import Trigger
from test_episode import read_back

from smolvla_ros.calibration import calibration_from_json, save_calibration
from smolvla_ros.msg import EpisodeStatus, PolicyStatus
from smolvla_ros.policy.images import compressed_to_rgb
from smolvla_ros.recording.to_dataset import ConvertConfig, plan_all
from smolvla_ros.units import SO101_JOINTS

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
        # Matched on the recorder's side too: until then a message sent is lost to it (a
        # reliable reader that matches late starts after what was sent; CI lost 3 of 5 frames).
        assert probe.acked(topic, 30), topic


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
    assert topics.count("/joint_states") == 30 and topics.count("/cameras/front/image_raw") == 30
    assert topics.count("/policy_status") == 30  # fully qualified names, as `ros2 bag record`
    assert [m.data for t, m, _ in messages if t == "/task_instruction"] == ["put it in the box"]
    assert [m.position[0] for t, m, _ in messages if t == "/joint_states"] == \
        pytest.approx([0.01 * k for k in range(30)])
    custom = custom_data(folder)
    assert custom["task"] == "put it in the box" and custom["ended_by"] == "stop"
    assert custom["robot_type"] == "so_follower"  # LeRobot's SOFollower.name, as lerobot-record stores
    assert custom["leader_calibration_id"] == ""  # no leader_id: no leader arm
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
    images = [m for t, m, _ in read_back(folder) if t == "/cameras/front/image_raw"]
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
              if t == "/cameras/front/image_raw/compressed"]
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


# --- bags as `ros2 bag record` writes them, carrying each arm's calibration -------------------

QOS_KEYS = {"history", "depth", "reliability", "durability", "deadline", "lifespan", "liveliness",
            "liveliness_lease_duration", "avoid_ros_namespace_conventions"}  # rosbag2 version 9
INFINITE = {"sec": 9223372036, "nsec": 854775807}  # RMW_DURATION_INFINITE


def metadata(folder):
    return yaml.safe_load((folder / "metadata.yaml").read_text())["rosbag2_bagfile_information"]


def joint_state(probe, positions) -> JointState:
    msg = JointState(name=list(SO101_JOINTS), position=positions)
    msg.header.stamp = probe.node.get_clock().now().to_msg()
    return msg


def test_a_namespaced_episode_is_a_ros2_bag_that_converts_to_lerobots_values_anywhere(
        tmp_path, probe, monkeypatch):
    """Fully qualified topics, each publisher's QoS and ros_distro in the metadata, every message
    decoded by the mcap reader, both calibrations stored: converted where no calibration file
    exists, state and action equal LeRobot's values of the ticks each arm published."""
    calibrations = tmp_path / "calibrations"
    save_calibration(FOLLOWER, calibrations / "arm_f.json")
    save_calibration(LEADER, calibrations / "arm_l.json")
    node = NodeProcess("recorder_node", "-r", "__ns:=/arm1", "-p", f"output_dir:={tmp_path / 'episodes'}",
                       "-p", "robot_id:=arm_f", "-p", "leader_id:=arm_l",
                       "-p", f"calibration_dir:={calibrations}")
    topics = {"/arm1/joint_states": JointState, "/arm1/leader/joint_states": JointState,
              "/arm1/cameras/front/image_raw": Image, "/arm1/policy_status": PolicyStatus,
              "/arm1/task_instruction": String}
    latched = probe.node.create_publisher(  # a second publisher, other QoS; it never publishes
        PolicyStatus, "/arm1/policy_status",
        QoSProfile(depth=1, durability=DurabilityPolicy.TRANSIENT_LOCAL,
                   deadline=Duration(seconds=1.5), lifespan=Duration(seconds=3)))
    follower_ticks, leader_ticks = random_ticks(FOLLOWER, 40, 3), random_ticks(LEADER, 40, 4)
    truth = {"follower": [], "leader": []}
    try:
        for topic, kind in topics.items():
            probe.publish(kind, topic, kind(), wait_for_subscriber=False)
        for topic in topics:
            assert wait_for(lambda t=topic: probe.subscription_count(t) > 0, 30), topic
        probe.publish(String, "/arm1/task_instruction", String(data="pick up the cube"))
        time.sleep(0.3)
        assert probe.call(Trigger, "/arm1/start_episode").success
        for k in range(40):
            for role, ticks, calibration, topic in (
                    ("follower", follower_ticks[k], FOLLOWER, "/arm1/joint_states"),
                    ("leader", leader_ticks[k], LEADER, "/arm1/leader/joint_states")):
                msg = joint_state(probe, radians(calibration, ticks))
                probe.publish(JointState, topic, msg)
                truth[role].append((msg.header.stamp.sec * 10**9 + msg.header.stamp.nanosec, ticks))
            if k % 2 == 0:
                image = Image(height=8, width=8, encoding="rgb8", step=24, data=bytes([k] * 192))
                image.header.stamp = probe.node.get_clock().now().to_msg()
                probe.publish(Image, "/arm1/cameras/front/image_raw", image)
            probe.publish(PolicyStatus, "/arm1/policy_status", PolicyStatus(chunks_published=k))
            time.sleep(0.02)
        time.sleep(0.5)
        assert probe.call(Trigger, "/arm1/stop_episode").success
    finally:
        assert node.stop() == 0, node.output()
        probe.node.destroy_publisher(latched)
    assert "[WARN]" not in node.output()  # both calibrations read
    folder = tmp_path / "episodes" / "episode_000000"

    info = metadata(folder)
    assert info["version"] == 9 and info["ros_distro"] == (os.environ.get("ROS_DISTRO") or "jazzy")
    offered = {t["topic_metadata"]["name"]: t["topic_metadata"]["offered_qos_profiles"]
               for t in info["topics_with_message_count"]}
    assert set(offered) == {"/arm1/joint_states", "/arm1/leader/joint_states",
                            "/arm1/cameras/front/image_raw", "/arm1/policy_status"}
    for name, profiles in offered.items():
        assert all(set(profile) == QOS_KEYS for profile in profiles)
        if name == "/arm1/policy_status":  # one profile per publisher
            (other,) = [profile for profile in profiles if profile["durability"] == "transient_local"]
            assert other["reliability"] == "reliable"
            assert other["deadline"] == {"sec": 1, "nsec": 500_000_000}
            assert other["lifespan"] == {"sec": 3, "nsec": 0}
            profiles = [profile for profile in profiles if profile is not other]
        (default,) = profiles
        assert (default["reliability"], default["durability"], default["liveliness"]) == \
            ("reliable", "volatile", "automatic")
        assert default["deadline"] == default["lifespan"] == default["liveliness_lease_duration"] == INFINITE

    custom = info["custom_data"]
    assert custom["namespace"] == "/arm1" and custom["robot_type"] == "so_follower"
    assert (custom["calibration_id"], custom["leader_calibration_id"]) == ("arm_f", "arm_l")
    assert calibration_from_json(custom["calibration_json"]) == FOLLOWER
    assert calibration_from_json(custom["leader_calibration_json"]) == LEADER

    messages = read_back(folder)  # every message decoded by mcap + mcap_ros2, ours included
    names = [topic for topic, _, _ in messages]
    assert names.count("/arm1/joint_states") == names.count("/arm1/leader/joint_states") == 40
    assert names.count("/arm1/cameras/front/image_raw") == 20 and names.count("/arm1/policy_status") == 40
    assert [m.chunks_published for t, m, _ in messages if t == "/arm1/policy_status"] == list(range(40))
    assert [bytes(m.data)[0] for t, m, _ in messages if t == "/arm1/cameras/front/image_raw"] == \
        list(range(0, 40, 2))
    assert [list(m.position) for t, m, _ in messages if t == "/arm1/leader/joint_states"] == \
        [radians(LEADER, ticks) for ticks in leader_ticks]

    shutil.rmtree(calibrations)  # another machine: no calibration files anywhere
    monkeypatch.setenv("HF_LEROBOT_CALIBRATION", str(tmp_path / "empty"))
    (plan,) = plan_all([folder], ConvertConfig(output=tmp_path / "dataset", fps=20))  # no --namespace
    assert plan.action_source == "leader" and plan.frames >= 10 and plan.warnings == []
    follower = LeRobotArm("follower", FOLLOWER, tmp_path / "lerobot")
    leader = LeRobotArm("leader", LEADER, tmp_path / "lerobot")
    for k, t in enumerate(plan.times_ns):
        latest = {role: max((item for item in rows if item[0] <= t), key=lambda item: item[0])[1]
                  for role, rows in truth.items()}
        np.testing.assert_array_equal(plan.state[k], follower.normalised(latest["follower"]))
        np.testing.assert_array_equal(plan.action[k], leader.normalised(latest["leader"]))


def test_a_missing_calibration_is_one_warning_and_episodes_still_record(tmp_path, probe):
    calibrations = tmp_path / "calibrations"
    save_calibration(FOLLOWER, calibrations / "arm_f.json")
    node = start_recorder(tmp_path / "episodes", "robot_id:=arm_f", "leader_id:=absent",
                          f"calibration_dir:={calibrations}")
    try:
        wait_until_recorded(probe)
        for _ in range(2):
            assert probe.call(Trigger, "start_episode").success
            publish_all(probe, 1)
            time.sleep(0.3)
            assert probe.call(Trigger, "stop_episode").success
    finally:
        assert node.stop() == 0, node.output()
    warnings = [line for line in node.lines if line.startswith("[WARN]")]
    assert len(warnings) == 1, node.output()  # once, not once per episode
    assert "leader calibration 'absent'" in warnings[0] and "--leader-id" in warnings[0]
    assert str(calibrations / "absent.json") in warnings[0]
    for index in range(2):
        folder = tmp_path / "episodes" / f"episode_00000{index}"
        custom = custom_data(folder)
        assert custom["leader_calibration_id"] == "absent" and custom["leader_calibration_json"] == ""
        assert calibration_from_json(custom["calibration_json"]) == FOLLOWER
        assert [t for t, _, _ in read_back(folder)].count("/joint_states") == 1


def test_a_best_effort_camera_driver_is_recorded(tmp_path, probe):
    """Camera drivers often publish with sensor-data QoS (best effort), which a reliable
    subscription never matches: the recorder asks for what the publishers offer, as rosbag2."""
    from rclpy.qos import qos_profile_sensor_data

    node = start_recorder(tmp_path)
    # Seen first through a subscriber (policy_node's, say): the recorder waits for the offer.
    probe.node.create_subscription(Image, "cameras/side/image_raw", lambda _: None,
                                   qos_profile_sensor_data)
    node.wait_for_output("ready: episodes go to")
    time.sleep(2.5)  # two discovery passes with the topic there and no publisher
    publisher = probe.node.create_publisher(Image, "cameras/side/image_raw", qos_profile_sensor_data)
    image = Image(height=4, width=4, encoding="rgb8", step=12, data=bytes(48))
    try:
        # Matched by the recorder, besides this probe's own subscription.
        assert wait_for(lambda: publisher.get_subscription_count() >= 2, 30)
        assert probe.call(Trigger, "start_episode").success
        for _ in range(5):
            publisher.publish(image)
            time.sleep(0.05)
        time.sleep(0.5)
        assert probe.call(Trigger, "stop_episode").success
    finally:
        assert node.stop() == 0, node.output()
    stored = [m for t, m, _ in read_back(tmp_path / "episode_000000") if t == "/cameras/side/image_raw"]
    assert len(stored) == 5
    metadata = yaml.safe_load((tmp_path / "episode_000000" / "metadata.yaml").read_text())
    topics = {t["topic_metadata"]["name"]: t["topic_metadata"]
              for t in metadata["rosbag2_bagfile_information"]["topics_with_message_count"]}
    assert topics["/cameras/side/image_raw"]["offered_qos_profiles"][0]["reliability"] == "best_effort"


@pytest.fixture
def small_disk(tmp_path):
    """A 6 MiB tmpfs that a test can fill: a real full disk (ENOSPC). Needs root (CI is)."""
    import subprocess

    disk = tmp_path / "disk"
    disk.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=6m", "tmpfs", str(disk)],
                             capture_output=True, text=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here (needs root): {mounted.stderr.strip()}")
    yield disk
    subprocess.run(["umount", "-l", str(disk)], check=False)


def fill(disk) -> None:
    """Take every byte left on the disk."""
    with open(disk / "filler", "wb", buffering=0) as file:
        try:
            while True:
                file.write(b"\0" * 4096)
        except OSError:
            pass


def test_a_full_disk_loses_no_episode_and_never_stops_the_recorder(small_disk, probe):
    episodes = small_disk / "episodes"
    node = start_recorder(episodes)
    big = Image(height=120, width=160, encoding="rgb8", step=480,
                data=np.random.default_rng(1).integers(0, 256, 57600, np.uint8).tobytes())
    try:
        wait_until_recorded(probe)
        assert probe.call(Trigger, "start_episode").success
        for _ in range(40):  # 2.3 MB over 2 s: complete MCAP chunks, flushed each second
            probe.publish(Image, "cameras/front/image_raw", big)
            time.sleep(0.05)
        fill(small_disk)
        for _ in range(40):  # the disk refuses: the episode ends with an error
            probe.publish(Image, "cameras/front/image_raw", big)
            time.sleep(0.02)
        assert wait_for(lambda: probe.messages("episode_status")[-1].state == EpisodeStatus.STATE_ERROR, 30)
    finally:
        assert node.stop() == 0, node.output()
    original = episodes / "episode_000000"
    assert not (original / "metadata.yaml").exists()  # unfinished: it could not be closed
    before = {path.name: path.stat().st_size for path in original.iterdir()}

    # Restart on the still-full disk: the recovery cannot complete; nothing is lost or moved.
    for _ in range(2):
        node = start_recorder(episodes)
        try:
            node.wait_for_output("ready: episodes go to")
            assert node.output().count("cannot recover") == 1
            assert f"its data stays in {original}" in node.output()
            response = probe.call(Trigger, "start_episode")  # fails, and leaves no folder
            assert not response.success and "cannot create episode" in response.message
            assert node.process.poll() is None
        finally:
            assert node.stop() == 0, node.output()
        assert sorted(path.name for path in episodes.iterdir()) == ["episode_000000"]
        assert {path.name: path.stat().st_size for path in original.iterdir()} == before

    # With space again, the next start recovers it.
    (small_disk / "filler").unlink()
    node = start_recorder(episodes)
    try:
        node.wait_for_output("recovered")
    finally:
        assert node.stop() == 0, node.output()
    images = [m for t, m, _ in read_back(original) if t == "/cameras/front/image_raw"]
    assert len(images) >= 5 and (episodes / "episode_000000.partial").is_dir()
