"""Bags -> LeRobotDataset: round trip through LeRobot's own loader, values checked frame by frame
against LeRobot's own arms (state and action as lerobot-record would store them)."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import yaml
from arm_fixtures import (
    FOLLOWER, FOLLOWER_B, LEADER, LEADER_B, LeRobotArm, radians, random_ticks, same_angle_ticks,
)
from builtin_interfaces.msg import Duration, Time
from conftest import REPO_ROOT, ros_env
from rclpy.serialization import serialize_message
from sensor_msgs.msg import Image, JointState
from std_msgs.msg import String
from trajectory_msgs.msg import JointTrajectory, JointTrajectoryPoint

from smolvla_ros.calibration import calibration_to_json, save_calibration
from smolvla_ros.feetech.emulator import MOCK_CALIBRATION
from smolvla_ros.recording.bag_reader import BagError
from smolvla_ros.recording.to_dataset import ConvertConfig, convert, plan_all
from smolvla_ros.recording.episode import EpisodeInfo, EpisodeWriter, make_typestore, msg_definitions
from smolvla_ros.units import SO101_JOINTS, ArmUnits

TYPESTORE = make_typestore(msg_definitions(REPO_ROOT / "msg"))
UNITS = ArmUnits(MOCK_CALIBRATION)
T0 = 1_700_000_000 * 10**9  # a realistic epoch, so precision problems would show
FPS = 10


def stamp(ns: int) -> Time:
    return Time(sec=ns // 10**9, nanosec=ns % 10**9)


def joints(ns: int, value: float) -> JointState:
    """Joint k at value + 0.1 k radians (the gripper kept inside its calibrated range)."""
    return joint_state(ns, [value + 0.1 * k for k in range(6)])


def joint_state(ns: int, positions) -> JointState:
    msg = JointState(name=list(SO101_JOINTS), position=[float(x) for x in positions])
    msg.header.stamp = stamp(ns)
    return msg


def gray(ns: int, level: int) -> Image:
    msg = Image(height=24, width=32, encoding="rgb8", step=96, data=bytes([level] * 24 * 32 * 3))
    msg.header.stamp = stamp(ns)
    return msg


class Recording:
    """Messages with their stamps, written to a bag and kept to compute what frames must hold."""

    def __init__(self):
        self.messages = []  # (topic, msgtype, receive ns, message)

    def add(self, topic: str, msgtype: str, ns: int, message, delay_ns: int = 2_000_000):
        self.messages.append((topic, msgtype, ns + delay_ns, message))

    def write_episode(self, folder, task: str = "", tasks=(), namespace: str = "", **info):
        """Like recorder_node: fully qualified topics; by default both arms the mock arm, its
        calibration stored (``info`` overrides EpisodeInfo fields)."""
        mock = calibration_to_json(MOCK_CALIBRATION)
        fields = {"calibration_id": "mock", "calibration_json": mock, "leader_calibration_id": "mock",
                  "leader_calibration_json": mock, "namespace": namespace or "/", **info}
        writer = EpisodeWriter(folder, EpisodeInfo(episode_index=0, task=task, **fields), TYPESTORE)
        for ns, text in tasks:
            writer.set_task(text, ns)
        for topic, msgtype, ns, message in sorted(self.messages, key=lambda m: m[2]):
            writer.write(f"{namespace.rstrip('/')}/{topic}", msgtype, ns, serialize_message(message))
        writer.close("stop")
        return folder

    def write_landed_episode(self, folder, task: str, calibration_id: str):
        """As the recorder wrote bags before recordings carried calibrations: topics relative
        to its namespace, and custom_data with only these fields."""
        from rosbags.rosbag2 import StoragePlugin, Writer

        custom = {"episode_index": "0", "task": task, "robot_type": "so101_follower",
                  "calibration_id": calibration_id, "start_ns": str(min(m[2] for m in self.messages)),
                  "end_ns": str(max(m[2] for m in self.messages)), "tasks": f'[[{T0}, "{task}"]]',
                  "ended_by": "stop"}
        with Writer(folder, version=9, storage_plugin=StoragePlugin.MCAP) as writer:
            connections = {}
            for topic, msgtype, ns, message in sorted(self.messages, key=lambda m: m[2]):
                if topic not in connections:
                    connections[topic] = writer.add_connection(topic, msgtype, typestore=TYPESTORE)
                writer.write(connections[topic], ns, serialize_message(message))
            for key, value in custom.items():
                writer.set_custom_data(key, value)
        return folder

    def write_plain(self, folder, storage: str):
        """Like ``ros2 bag record``: absolute topic names, no custom data."""
        from rosbags.rosbag2 import StoragePlugin, Writer

        plugin = StoragePlugin.SQLITE3 if storage == "sqlite3" else StoragePlugin.MCAP
        with Writer(folder, version=9, storage_plugin=plugin) as writer:
            connections = {}
            for topic, msgtype, ns, message in sorted(self.messages, key=lambda m: m[2]):
                if topic not in connections:
                    connections[topic] = writer.add_connection(f"/{topic}", msgtype, typestore=TYPESTORE)
                writer.write(connections[topic], ns, serialize_message(message))
        return folder


def teleop_recording(seconds: float = 3.0) -> tuple[Recording, list]:
    """Follower at ~100 Hz with jitter and a 0.35 s hole, leader at 50 Hz, two cameras at 30 Hz."""
    rng = np.random.default_rng(1)
    rec = Recording()
    truth = {"follower": [], "leader": [], "front": [], "wrist": []}
    ns = T0
    while ns < T0 + seconds * 1e9:
        if not (T0 + 1.2e9 < ns < T0 + 1.55e9):
            value = 0.2 * np.sin((ns - T0) * 1e-9)
            rec.add("joint_states", "sensor_msgs/msg/JointState", ns, joints(ns, value))
            truth["follower"].append((ns, value))
        ns += int(10e6 + rng.integers(-2e6, 2e6))
    for k in range(int(seconds * 50)):
        ns = T0 + 30_000_000 + k * 20_000_000
        value = 0.3 * np.cos((ns - T0) * 1e-9)
        rec.add("leader/joint_states", "sensor_msgs/msg/JointState", ns, joints(ns, value))
        truth["leader"].append((ns, value))
    for k in range(int(seconds * 30)):
        for name, offset in (("front", 50_000_000), ("wrist", 60_000_000)):
            ns = T0 + offset + k * 33_333_333
            level = 20 + (k * 37) % 200
            rec.add(f"cameras/{name}/image_raw", "sensor_msgs/msg/Image", ns, gray(ns, level))
            truth[name].append((ns, level))
    return rec, truth


def latest(series, t):
    return max((item for item in series if item[0] <= t), key=lambda item: item[0])[1]


def load(root):
    from lerobot.datasets.lerobot_dataset import LeRobotDataset
    return LeRobotDataset("local/test", root=root, video_backend="pyav")


def test_teleop_episode_round_trips_through_lerobot(tmp_path):
    rec, truth = teleop_recording()
    tasks = [(T0 - 10**9, "pick up the cube"), (T0 + 2 * 10**9, "put it in the box")]
    rec.add("task_instruction", "std_msgs/msg/String", T0 + 2 * 10**9, String(data="put it in the box"), 0)
    bag = rec.write_episode(tmp_path / "episode_000000", "put it in the box", tasks)

    plans, _ = convert([bag], ConvertConfig(output=tmp_path / "dataset", fps=FPS))
    dataset = load(tmp_path / "dataset")

    first = max(truth[name][0][0] for name in truth)  # every topic has data from here on
    last = min(truth[name][-1][0] for name in truth)
    expected_times = [first + round(k * 1e9 / FPS) for k in range(int((last - first) * FPS // 1e9) + 1)]
    assert dataset.num_episodes == 1 and dataset.num_frames == len(expected_times)
    assert plans[0].action_source == "leader"
    assert any("joint_states: 1 gap(s)" in gap for gap in plans[0].gaps), plans[0].gaps
    for k, t in enumerate(expected_times):
        item = dataset[k]
        assert float(item["timestamp"]) == pytest.approx(k / FPS)
        assert item["task"] == ("pick up the cube" if t < T0 + 2 * 10**9 else "put it in the box")
        follower = latest(truth["follower"], t)
        state = UNITS.radians_to_lerobot([follower + 0.1 * j for j in range(6)]).astype(np.float32)
        np.testing.assert_array_equal(item["observation.state"].numpy(), state)
        leader = latest(truth["leader"], t)
        action = UNITS.radians_to_lerobot([leader + 0.1 * j for j in range(6)]).astype(np.float32)
        np.testing.assert_array_equal(item["action"].numpy(), action)
        for name in ("front", "wrist"):
            image = item[f"observation.images.{name}"].numpy()  # (3, H, W) floats in 0..1
            assert image.shape == (3, 24, 32)
            assert abs(image.mean() * 255 - latest(truth[name], t)) < 8, (k, name)


def test_without_video_lerobot_reads_back_the_exact_pixels(tmp_path):
    """--no-video: each frame is the camera's image itself (noise, which video would blur)."""
    rng = np.random.default_rng(7)
    rec = Recording()
    sent = {}
    for k in range(30):  # 1 s: follower, leader and two noise cameras at 30 Hz
        ns = T0 + k * 33_333_333
        rec.add("joint_states", "sensor_msgs/msg/JointState", ns, joints(ns, 0.1))
        rec.add("leader/joint_states", "sensor_msgs/msg/JointState", ns, joints(ns, 0.2))
        for name in ("front", "wrist"):
            pixels = rng.integers(0, 256, (24, 32, 3), dtype=np.uint8)
            msg = Image(height=24, width=32, encoding="rgb8", step=96, data=pixels.tobytes())
            msg.header.stamp = stamp(ns)
            rec.add(f"cameras/{name}/image_raw", "sensor_msgs/msg/Image", ns, msg)
            sent[name, ns] = pixels
    bag = rec.write_episode(tmp_path / "episode_000000", "pick up the cube")

    plans, _ = convert([bag], ConvertConfig(output=tmp_path / "dataset", fps=30, video=False))
    dataset = load(tmp_path / "dataset")
    assert dataset.meta.features["observation.images.front"]["dtype"] == "image"
    assert not (tmp_path / "dataset" / "videos").exists()
    assert dataset.num_frames == plans[0].frames >= 25
    for k, t in enumerate(plans[0].times_ns):
        for name in ("front", "wrist"):
            expected = latest([(ns, px) for (n, ns), px in sent.items() if n == name], t)
            image = dataset[k][f"observation.images.{name}"].numpy()  # (3, H, W) in 0..1
            np.testing.assert_array_equal(np.round(image * 255).astype(np.uint8).transpose(1, 2, 0),
                                          expected)


def test_executed_trajectory_is_the_action_without_a_leader(tmp_path):
    rec = Recording()
    for k in range(300):  # 3 s of follower states at 100 Hz
        ns = T0 + k * 10_000_000
        rec.add("joint_states", "sensor_msgs/msg/JointState", ns, joints(ns, 0.0))
    targets = {}
    for i in range(5):  # a chunk every 0.5 s: points 0.1..0.5 s after its stamp, all at p_i
        ns = T0 + 200_000_000 + i * 500_000_000
        p = 0.05 * (i + 1)
        chunk = JointTrajectory(joint_names=list(SO101_JOINTS))
        chunk.header.stamp = stamp(ns)
        chunk.points = [JointTrajectoryPoint(positions=[p + 0.1 * j for j in range(6)],
                                             time_from_start=Duration(nanosec=100_000_000 * (m + 1)))
                        for m in range(5)]
        rec.add("action_chunk", "trajectory_msgs/msg/JointTrajectory", ns, chunk, 1_000_000)
        targets[ns] = p
    bag = rec.write_plain(tmp_path / "plain", "mcap")

    plans, _ = convert([bag], ConvertConfig(output=tmp_path / "dataset", fps=20, task="wave",
                                            robot_id="mock"))
    dataset = load(tmp_path / "dataset")
    assert plans[0].action_source == "trajectory"
    checked = 0
    for k, t in enumerate(plans[0].times_ns):
        started = [ns for ns in targets if ns + 1_000_000 <= t]
        if started and t >= max(started) + 100_000_000:  # past the first point of the newest chunk
            p = targets[max(started)]
            expected = UNITS.radians_to_lerobot([p + 0.1 * j for j in range(6)]).astype(np.float32)
            np.testing.assert_allclose(dataset[k]["action"].numpy(), expected, rtol=1e-6)
            checked += 1
        assert dataset[k]["task"] == "wave"
    assert checked > 30


@pytest.mark.parametrize("storage", ["sqlite3", "mcap"])
def test_plain_ros2_bags_convert_with_a_task_flag(tmp_path, storage):
    rec, _ = teleop_recording(seconds=1.5)
    bag = rec.write_plain(tmp_path / "plain", storage)
    with pytest.raises(BagError, match="no task"):
        convert([bag], ConvertConfig(output=tmp_path / "d1", robot_id="mock"))
    assert not (tmp_path / "d1").exists()  # checked before anything is written
    plans, _ = convert([bag], ConvertConfig(output=tmp_path / "d2", robot_id="mock", task="wave"))
    assert load(tmp_path / "d2").num_frames == plans[0].frames > 30


def test_missing_topic_is_named_and_nothing_is_written(tmp_path):
    rec = Recording()
    ns = T0
    rec.add("leader/joint_states", "sensor_msgs/msg/JointState", ns, joints(ns, 0.0))
    bag = rec.write_episode(tmp_path / "episode_000000", "wave", [(T0, "wave")])
    with pytest.raises(BagError, match="no 'joint_states' topic"):
        convert([bag], ConvertConfig(output=tmp_path / "dataset"))
    assert not (tmp_path / "dataset").exists()


def test_cli_shows_progress_and_a_summary(tmp_path):
    rec, _ = teleop_recording(seconds=1.5)
    bags = [rec.write_episode(tmp_path / f"episode_00000{i}", "wave", [(T0, "wave")]) for i in range(2)]
    command = [sys.executable, "-m", "smolvla_ros.cli", "convert", *map(str, bags),
               "--output", str(tmp_path / "dataset"), "--fps", "15"]
    result = subprocess.run(command, capture_output=True, text=True, env=ros_env(), timeout=600)
    assert result.returncode == 0, result.stderr
    assert "converting" in result.stderr and "frame" in result.stderr  # the progress bar
    assert "episode 1:" in result.stdout and "LeRobotDataset written to" in result.stdout
    assert "calibration: follower mock (stored in the bag), leader mock (stored in the bag)" in result.stdout
    assert "warning" not in result.stderr
    assert load(tmp_path / "dataset").num_episodes == 2
    missing = subprocess.run([*command[:4], str(tmp_path), "--output", str(tmp_path / "other")],
                             capture_output=True, text=True, env=ros_env(), timeout=600)
    assert missing.returncode == 1 and "convert:" in missing.stderr


# --- each arm's own calibration, as lerobot-record stores state and action -------------------

def two_arm_recording(seconds: float = 2.0, seed: int = 0) -> tuple[Recording, dict]:
    """Follower at 50 Hz and leader at 40 Hz, each publishing radians of integer ticks of its
    own calibration, as so101_node does."""
    rec = Recording()
    truth = {"follower": [], "leader": []}
    for role, calibration, period_ns, offset_ns in (("follower", FOLLOWER, 20_000_000, 0),
                                                    ("leader", LEADER, 25_000_000, 7_000_000)):
        topic = "joint_states" if role == "follower" else "leader/joint_states"
        for k, ticks in enumerate(random_ticks(calibration, int(seconds * 1e9 / period_ns), seed)):
            ns = T0 + offset_ns + k * period_ns
            rec.add(topic, "sensor_msgs/msg/JointState", ns, joint_state(ns, radians(calibration, ticks)))
            truth[role].append((ns, ticks))
        seed += 1
    return rec, truth


def stored(follower=FOLLOWER, leader=LEADER) -> dict:
    """EpisodeInfo fields of a recorder with robot_id:=arm_f leader_id:=arm_l."""
    return {"calibration_id": "arm_f", "calibration_json": calibration_to_json(follower),
            "leader_calibration_id": "arm_l", "leader_calibration_json": calibration_to_json(leader)}


def assert_lerobot_values(plan, truth, follower: LeRobotArm, leader: LeRobotArm, values=None):
    """Every frame's state and action (``values``: (state, action) rows, default the plan's)
    equal LeRobot's normalisation of the latest ticks of each arm."""
    assert plan.frames >= 8
    for k, t in enumerate(plan.times_ns):
        state, action = values(k) if values else (plan.state[k], plan.action[k])
        np.testing.assert_array_equal(state, follower.normalised(latest(truth["follower"], t)),
                                      err_msg=f"state, frame {k}")
        np.testing.assert_array_equal(action, leader.normalised(latest(truth["leader"], t)),
                                      err_msg=f"action, frame {k}")


@pytest.mark.parametrize("use_degrees", [True, False], ids=["degrees", "m100_100"])
def test_state_and_action_are_lerobots_values_of_each_arms_ticks(tmp_path, monkeypatch, use_degrees):
    """Converted on a machine with no calibration files: the bag's own calibrations give
    exactly LeRobot's values (the leader's with the leader's calibration, as lerobot-record's
    get_action), through LeRobot's loader, and LeRobot's robot_type."""
    monkeypatch.setenv("HF_LEROBOT_CALIBRATION", str(tmp_path / "no_calibrations_here"))
    rec, truth = two_arm_recording()
    bag = rec.write_episode(tmp_path / "episode_000000", "wave", [(T0, "wave")], **stored())

    plans, _ = convert([bag], ConvertConfig(output=tmp_path / "dataset", fps=FPS, use_degrees=use_degrees))
    dataset = load(tmp_path / "dataset")
    follower = LeRobotArm("follower", FOLLOWER, tmp_path / "lerobot", use_degrees)
    leader = LeRobotArm("leader", LEADER, tmp_path / "lerobot", use_degrees)
    assert plans[0].calibrations == {"follower": "arm_f (stored in the bag)",
                                     "leader": "arm_l (stored in the bag)"}
    assert plans[0].warnings == []
    assert dataset.num_frames == plans[0].frames
    assert_lerobot_values(plans[0], truth, follower, leader, lambda k: (
        dataset[k]["observation.state"].numpy(), dataset[k]["action"].numpy()))
    assert dataset.meta.robot_type == follower.device.name == "so_follower"


def test_calibration_precedence_option_then_stored_calibration_then_stored_id(tmp_path, monkeypatch):
    files = tmp_path / "calibration"  # this machine's LeRobot calibration folder
    monkeypatch.setenv("HF_LEROBOT_CALIBRATION", str(files))
    save_calibration(FOLLOWER_B, files / "robots" / "so_follower" / "arm_f.json")
    save_calibration(LEADER_B, files / "teleoperators" / "so_leader" / "arm_l.json")
    rec, truth = two_arm_recording(seconds=1.0)
    with_calibrations = rec.write_episode(tmp_path / "stored", "wave", [(T0, "wave")], **stored())
    ids_only = rec.write_episode(tmp_path / "ids_only", "wave", [(T0, "wave")],  # files were missing
                                 **{**stored(), "calibration_json": "", "leader_calibration_json": ""})
    arms = {name: LeRobotArm(role, calibration, tmp_path / "lerobot" / name)
            for name, role, calibration in (("f", "follower", FOLLOWER), ("l", "leader", LEADER),
                                            ("fb", "follower", FOLLOWER_B), ("lb", "leader", LEADER_B))}

    def plan(bag, **options):
        (plan,) = plan_all([bag], ConvertConfig(output=tmp_path / "dataset", fps=30, **options))
        return plan

    # What the bag stores wins over this machine's files of the same ids...
    assert_lerobot_values(plan(with_calibrations), truth, arms["f"], arms["l"])
    # ...and the options' files win over what the bag stores. The same angles are other ticks
    # of arms calibrated like these files.
    pairs = {"follower": (FOLLOWER, FOLLOWER_B), "leader": (LEADER, LEADER_B)}
    truth_b = {role: [(ns, same_angle_ticks(ticks, *pairs[role])) for ns, ticks in truth[role]]
               for role in pairs}
    chosen = plan(with_calibrations, robot_id="arm_f", leader_id="arm_l")
    assert_lerobot_values(chosen, truth_b, arms["fb"], arms["lb"])
    assert chosen.calibrations["leader"].endswith("so_leader/arm_l.json)")
    # A bag that stores only the ids: their files here.
    assert_lerobot_values(plan(ids_only), truth_b, arms["fb"], arms["lb"])
    mine = tmp_path / "mine"
    save_calibration(FOLLOWER, mine / "arm_f.json")
    save_calibration(LEADER, mine / "lead.json")
    assert_lerobot_values(plan(ids_only, leader_id="lead", calibration_dir=str(mine)), truth,
                          arms["f"], arms["l"])
    # No file for a stored id: one error naming the option; nothing is written.
    (files / "teleoperators" / "so_leader" / "arm_l.json").unlink()
    with pytest.raises(BagError, match="stores the id 'arm_l' but not its calibration.*--leader-id"):
        convert([ids_only], ConvertConfig(output=tmp_path / "dataset"))
    assert not (tmp_path / "dataset").exists()


def test_bags_of_the_landed_recorder_still_convert(tmp_path, monkeypatch):
    """Relative topic names, a follower calibration id and no leader calibration: the leader's
    radians go through the follower's calibration, as before, with a warning; --leader-id
    gives the leader's own; --robot-type replaces the bag's so101_follower."""
    files = tmp_path / "calibration"
    monkeypatch.setenv("HF_LEROBOT_CALIBRATION", str(files))  # the CLI subprocess inherits it
    save_calibration(FOLLOWER, files / "robots" / "so_follower" / "arm_f.json")
    save_calibration(LEADER, files / "teleoperators" / "so_leader" / "arm_l.json")
    rec, truth = two_arm_recording(seconds=1.0)
    bag = rec.write_landed_episode(tmp_path / "episode_000000", "wave", "arm_f")

    result = subprocess.run(
        [sys.executable, "-m", "smolvla_ros.cli", "convert", str(bag), "--output", str(tmp_path / "dataset"),
         "--fps", str(FPS), "--robot-type", "so_follower"],
        capture_output=True, text=True, env=ros_env(), timeout=600)
    assert result.returncode == 0, result.stderr
    warnings = [line for line in result.stderr.splitlines() if line.startswith("convert: warning:")]
    assert len(warnings) == 1 and "no leader calibration" in warnings[0] and "--leader-id" in warnings[0]
    assert "calibration: follower arm_f (" in result.stdout and "leader the follower's" in result.stdout
    dataset = load(tmp_path / "dataset")
    assert dataset.meta.robot_type == "so_follower"

    (plan,) = plan_all([bag], ConvertConfig(output=tmp_path / "unused", fps=FPS))
    assert dataset.num_frames == plan.frames
    follower = LeRobotArm("follower", FOLLOWER, tmp_path / "lerobot")
    follower_units = ArmUnits(FOLLOWER)  # the landed converter's units for the leader
    for k, t in enumerate(plan.times_ns):
        np.testing.assert_array_equal(dataset[k]["observation.state"].numpy(),
                                      follower.normalised(latest(truth["follower"], t)))
        leader_radians = radians(LEADER, latest(truth["leader"], t))
        np.testing.assert_array_equal(dataset[k]["action"].numpy(),
                                      follower_units.radians_to_lerobot(leader_radians).astype(np.float32))

    (own,) = plan_all([bag], ConvertConfig(output=tmp_path / "unused", fps=FPS, leader_id="arm_l"))
    assert own.warnings == []
    assert_lerobot_values(own, truth, follower, LeRobotArm("leader", LEADER, tmp_path / "lerobot"))


def test_a_namespaced_recording_converts_without_the_namespace_option(tmp_path):
    rec, truth = two_arm_recording(seconds=1.0)
    bag = rec.write_episode(tmp_path / "episode_000000", "wave", [(T0, "wave")], namespace="/arm1",
                            **stored())
    metadata = yaml.safe_load((bag / "metadata.yaml").read_text())["rosbag2_bagfile_information"]
    assert {t["topic_metadata"]["name"] for t in metadata["topics_with_message_count"]} == \
        {"/arm1/joint_states", "/arm1/leader/joint_states"}
    (plan,) = plan_all([bag], ConvertConfig(output=tmp_path / "dataset", fps=FPS))
    assert_lerobot_values(plan, truth, LeRobotArm("follower", FOLLOWER, tmp_path / "lerobot"),
                          LeRobotArm("leader", LEADER, tmp_path / "lerobot"))
