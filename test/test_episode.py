"""Episode bags: written from serialized messages, read back by an independent reader (mcap),
kept readable through kills and full disks."""

from __future__ import annotations

import signal
import subprocess
import sys

import pytest
import yaml
from arm_fixtures import FOLLOWER, LEADER
from conftest import HELPERS, REPO_ROOT, ros_env
from lerobot.teleoperators.so_leader import SO101Leader, SO101LeaderConfig
from mcap.reader import make_reader
from mcap_ros2.decoder import DecoderFactory
from rclpy.serialization import serialize_message
from sensor_msgs.msg import Image, JointState
from std_msgs.msg import String

from smolvla_ros.calibration import calibration_from_json, calibration_to_json
from smolvla_ros.msg import PolicyStatus
from smolvla_ros.recording.episode import (
    EpisodeInfo, EpisodeWriter, make_typestore, msg_definitions, recover_episode,
    unfinished_episodes,
)

TYPESTORE = make_typestore(msg_definitions(REPO_ROOT / "msg"))


def read_back(folder):
    """(topic, decoded message, log time) for every message, via the mcap library."""
    (path,) = folder.glob("*.mcap")
    with open(path, "rb") as file:
        reader = make_reader(file, decoder_factories=[DecoderFactory()])
        return [(channel.topic, decoded, message.log_time)
                for _, channel, message, decoded in reader.iter_decoded_messages()]


def test_episode_reads_back_complete_with_its_task(tmp_path):
    folder = tmp_path / "episode_000003"
    writer = EpisodeWriter(folder, EpisodeInfo(episode_index=3, task="pick up the cube",
                                               calibration_id="arm"), TYPESTORE)
    writer.set_task("pick up the cube", 1_000)
    for k in range(20):
        joints = JointState(name=["shoulder_pan"], position=[0.01 * k])
        writer.write("joint_states", "sensor_msgs/msg/JointState", 1_000 + k * 10,
                     serialize_message(joints))
    writer.set_task("put it in the box", 1_100)
    writer.write("task_instruction", "std_msgs/msg/String", 1_100,
                 serialize_message(String(data="put it in the box")))
    status = PolicyStatus(state=PolicyStatus.STATE_RUNNING, instruction="put it in the box",
                          chunks_published=4)
    writer.write("policy_status", "smolvla_ros/msg/PolicyStatus", 1_150, serialize_message(status))
    writer.close("stop")

    messages = read_back(folder)
    assert [t for t, _, _ in messages].count("joint_states") == 20
    assert [m.position[0] for t, m, _ in messages if t == "joint_states"] == \
        [0.01 * k for k in range(20)]
    (status_back,) = [m for t, m, _ in messages if t == "policy_status"]  # our type, decoded
    assert status_back.instruction == "put it in the box" and status_back.chunks_published == 4
    metadata = yaml.safe_load((folder / "metadata.yaml").read_text())["rosbag2_bagfile_information"]
    assert metadata["storage_identifier"] == "mcap"
    assert metadata["message_count"] == 22
    custom = metadata["custom_data"]
    assert custom["task"] == "put it in the box" and custom["episode_index"] == "3"
    assert custom["calibration_id"] == "arm" and custom["ended_by"] == "stop"
    assert [tuple(x) for x in yaml.safe_load(custom["tasks"])] == \
        [(1_000, "pick up the cube"), (1_100, "put it in the box")]
    assert (custom["start_ns"], custom["end_ns"]) == ("1000", "1190")


def test_killed_writer_leaves_a_recoverable_episode(tmp_path):
    folder = tmp_path / "episode_000007"
    process = subprocess.Popen(
        [sys.executable, str(HELPERS / "episode_writer_proc.py"), str(folder), str(REPO_ROOT / "msg")],
        stdout=subprocess.PIPE, text=True, env=ros_env())
    flushed = 0
    for line in process.stdout:
        flushed = int(line.split()[1])
        if flushed >= 30:
            break
    process.send_signal(signal.SIGKILL)
    process.wait()
    process.stdout.close()
    assert unfinished_episodes(folder.parent) == [folder]

    recovered = recover_episode(folder, TYPESTORE)
    assert recovered >= 30 - 4  # at most the open chunk (~1 MiB: 4 of these images) is lost
    messages = read_back(folder)
    assert len(messages) == recovered
    assert [int(m.header.frame_id) for _, m, _ in messages] == list(range(recovered))
    custom = yaml.safe_load((folder / "metadata.yaml").read_text())[
        "rosbag2_bagfile_information"]["custom_data"]
    assert custom["task"] == "stack the blocks" and custom["episode_index"] == "7"
    assert custom["ended_by"].startswith("recovered")
    assert (tmp_path / "episode_000007.partial").is_dir()  # the original is kept


def test_full_disk_ends_the_episode_with_a_clear_error_and_keeps_earlier_ones(tmp_path):
    earlier = tmp_path / "episode_000000"
    writer = EpisodeWriter(earlier, EpisodeInfo(0, "first"), TYPESTORE)
    writer.write("task_instruction", "std_msgs/msg/String", 5, serialize_message(String(data="a")))
    writer.close("stop")

    result = subprocess.run(
        [sys.executable, str(HELPERS / "episode_writer_proc.py"), str(tmp_path / "episode_000001"),
         str(REPO_ROOT / "msg"), str(5 * 2**20)],
        capture_output=True, text=True, env=ros_env(), timeout=120)
    assert result.returncode == 0, result.stderr
    assert "error: writing" in result.stdout and "File too large" in result.stdout
    assert len(read_back(earlier)) == 1  # earlier episodes intact


# --- the bag as `ros2 bag record` (Jazzy, metadata version 9) writes it ----------------------

INFINITE = {"sec": 9223372036, "nsec": 854775807}  # RMW_DURATION_INFINITE


def qos(reliability: str, durability: str, deadline=INFINITE) -> dict:
    """One offered profile as rosbag2 writes it in metadata.yaml (version 9)."""
    return {"history": "unknown", "depth": 0, "reliability": reliability, "durability": durability,
            "deadline": deadline, "lifespan": INFINITE, "liveliness": "automatic",
            "liveliness_lease_duration": INFINITE, "avoid_ros_namespace_conventions": False}


def metadata(folder):
    return yaml.safe_load((folder / "metadata.yaml").read_text())["rosbag2_bagfile_information"]


@pytest.mark.parametrize("distro", ["jazzy", "rolling", None], ids=["jazzy", "rolling", "unset"])
def test_bag_metadata_has_the_offered_qos_and_ros_distro(tmp_path, monkeypatch, distro):
    if distro:
        monkeypatch.setenv("ROS_DISTRO", distro)
    else:
        monkeypatch.delenv("ROS_DISTRO", raising=False)
    folder = tmp_path / "episode_000000"
    camera = [qos("best_effort", "volatile")]
    instruction = [qos("reliable", "volatile"),
                   qos("reliable", "transient_local", {"sec": 1, "nsec": 500_000_000})]
    writer = EpisodeWriter(folder, EpisodeInfo(0, "wave"), TYPESTORE)
    writer.add_topic("/cameras/front/image_raw", "sensor_msgs/msg/Image", camera)
    writer.add_topic("/task_instruction", "std_msgs/msg/String", instruction)
    writer.write("/task_instruction", "std_msgs/msg/String", 10, serialize_message(String(data="wave")))
    writer.write("/joint_states", "sensor_msgs/msg/JointState", 20, serialize_message(JointState()))
    writer.close("stop")

    info = metadata(folder)
    expected_distro = distro or "jazzy"
    assert info["version"] == 9 and info["ros_distro"] == expected_distro
    offered = {t["topic_metadata"]["name"]: t["topic_metadata"]["offered_qos_profiles"]
               for t in info["topics_with_message_count"]}
    assert offered == {"/cameras/front/image_raw": camera, "/task_instruction": instruction,
                       "/joint_states": []}  # written without add_topic: no profiles
    # The MCAP file's own records say the same (rosbag2 reads them when metadata.yaml is lost).
    with open(folder / "episode_000000.mcap", "rb") as file:
        reader = make_reader(file)
        channels = {c.topic: yaml.safe_load(c.metadata["offered_qos_profiles"]) or []
                    for c in reader.get_summary().channels.values()}
        (stored,) = [yaml.safe_load(m.metadata["serialized_metadata"]) for m in reader.iter_metadata()
                     if m.name == "rosbag2"]
    assert channels == offered and stored["ros_distro"] == expected_distro
    # rosbags' reader parses the profiles back into QoS policies.
    from rosbags.interfaces import QosDurability, QosReliability
    from rosbags.rosbag2 import Reader
    with Reader(folder) as reader:
        parsed = {c.topic: c.ext.offered_qos_profiles for c in reader.connections}
    assert [p.reliability for p in parsed["/cameras/front/image_raw"]] == [QosReliability.BEST_EFFORT]
    assert [p.durability for p in parsed["/task_instruction"]] == \
        [QosDurability.VOLATILE, QosDurability.TRANSIENT_LOCAL]
    assert parsed["/task_instruction"][1].deadline == (1, 500_000_000)


def test_each_arms_calibration_is_stored_as_lerobot_json(tmp_path):
    info = EpisodeInfo(0, "wave", calibration_id="arm_f", calibration_json=calibration_to_json(FOLLOWER),
                       leader_calibration_id="arm_l", leader_calibration_json=calibration_to_json(LEADER),
                       namespace="/arm1")
    writer = EpisodeWriter(tmp_path / "episode_000000", info, TYPESTORE)
    writer.close("stop")
    custom = metadata(tmp_path / "episode_000000")["custom_data"]
    assert custom["robot_type"] == "so_follower" and custom["namespace"] == "/arm1"
    assert (custom["calibration_id"], custom["leader_calibration_id"]) == ("arm_f", "arm_l")
    assert calibration_from_json(custom["calibration_json"]) == FOLLOWER
    assert calibration_from_json(custom["leader_calibration_json"]) == LEADER
    # The text is a LeRobot calibration file: saved as one, LeRobot's leader loads it.
    (tmp_path / "lerobot").mkdir()
    (tmp_path / "lerobot" / "arm_l.json").write_text(custom["leader_calibration_json"])
    loaded = SO101Leader(SO101LeaderConfig(port="/dev/null", id="arm_l",
                                           calibration_dir=tmp_path / "lerobot")).calibration
    assert {name: vars(m) for name, m in loaded.items()} == {name: vars(m) for name, m in LEADER.items()}
    with pytest.raises(ValueError, match="stored in the bag is not a LeRobot motor calibration"):
        calibration_from_json('{"gripper": {"id": 6}}', "stored in the bag")
    with pytest.raises(ValueError, match="range_min 9 >= range_max 9"):
        calibration_from_json('{"gripper": {"id": 6, "drive_mode": 0, "homing_offset": 0, '
                              '"range_min": 9, "range_max": 9}}')


def test_recovery_keeps_the_offered_qos_and_the_calibrations(tmp_path):
    folder = tmp_path / "episode_000002"
    info = EpisodeInfo(2, "wave", calibration_id="arm_f", calibration_json=calibration_to_json(FOLLOWER))
    writer = EpisodeWriter(folder, info, TYPESTORE)
    writer.FLUSH_PERIOD_S = 0.0
    writer.add_topic("/cameras/front/image_raw", "sensor_msgs/msg/Image", [qos("best_effort", "volatile")])
    image = Image(height=240, width=320, encoding="rgb8", step=960, data=bytes(240 * 320 * 3))
    for k in range(12):  # several complete MCAP chunks (1 MiB each), flushed
        writer.write("/cameras/front/image_raw", "sensor_msgs/msg/Image", 1_000 + k, serialize_message(image))
    assert unfinished_episodes(folder.parent) == [folder]  # the writer is abandoned here, as if killed...
    writer._writer.storage.bio.close()  # ...and its file closed, as the OS would

    assert recover_episode(folder, TYPESTORE) >= 8
    info = metadata(folder)
    (topic,) = info["topics_with_message_count"]
    assert topic["topic_metadata"]["offered_qos_profiles"] == [qos("best_effort", "volatile")]
    assert calibration_from_json(info["custom_data"]["calibration_json"]) == FOLLOWER
