"""Episode bags: written from serialized messages, read back by an independent reader (mcap),
kept readable through kills and full disks."""

from __future__ import annotations

import signal
import subprocess
import sys

import yaml
from conftest import HELPERS, REPO_ROOT, ros_env
from mcap.reader import make_reader
from mcap_ros2.decoder import DecoderFactory
from rclpy.serialization import serialize_message
from sensor_msgs.msg import JointState
from std_msgs.msg import String

from smolvla_ros.msg import PolicyStatus
from smolvla_ros.recording.episode import (
    EpisodeInfo, EpisodeWriter, is_unfinished, make_typestore, msg_definitions, recover_episode,
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
    assert is_unfinished(folder)

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
