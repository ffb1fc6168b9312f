"""Our messages and trajectory_msgs cross real DDS between two processes, unchanged."""

from __future__ import annotations

import signal
import subprocess
import time

import pytest
from builtin_interfaces.msg import Duration, Time
from conftest import HELPERS, run_python
from rclpy.executors import SingleThreadedExecutor
from trajectory_msgs.msg import JointTrajectory, JointTrajectoryPoint

from smolvla_ros.msg import EpisodeStatus, PolicyStatus

DEADLINE_S = 60.0  # only to fail instead of hanging; discovery normally takes < 1 s


def make_policy_status() -> PolicyStatus:
    status = PolicyStatus(
        state=PolicyStatus.STATE_RUNNING,
        message="",
        instruction="pick up the cube",
        model_id="lerobot/smolvla_base",
        inference_latency=0.125,
        observation_age=0.0333,
        chunks_published=7,
    )
    status.header.stamp = Time(sec=1_700_000_000, nanosec=123)
    status.header.frame_id = "base_link"
    return status


def make_trajectory() -> JointTrajectory:
    names = ["shoulder_pan", "shoulder_lift", "elbow_flex", "wrist_flex", "wrist_roll", "gripper"]
    trajectory = JointTrajectory(joint_names=names)
    trajectory.header.stamp = Time(sec=1_700_000_001, nanosec=5)
    for k in range(50):
        point = JointTrajectoryPoint(
            positions=[0.01 * k + 0.1 * j for j in range(len(names))],
            time_from_start=Duration(sec=k // 30, nanosec=int((k % 30) * 1e9 / 30)),
        )
        trajectory.points.append(point)
    return trajectory


def make_episode_status() -> EpisodeStatus:
    return EpisodeStatus(
        state=EpisodeStatus.STATE_RECORDING, episode_index=3, task="stack the blocks",
        frames=1234, dropped=0, duration=12.5, output_path="/tmp/episode_000003",
    )


@pytest.fixture
def echo_process():
    process = run_python(
        HELPERS / "echo_node.py",
        "smolvla_ros.msg/PolicyStatus:policy_status:policy_status_echo",
        "smolvla_ros.msg/EpisodeStatus:episode_status:episode_status_echo",
        "trajectory_msgs.msg/JointTrajectory:action_chunk:action_chunk_echo",
    )
    assert process.stdout.readline().strip() == "ready", process.stderr.read()
    yield process
    process.send_signal(signal.SIGINT)  # Ctrl-C, as a user stops a node
    try:
        _, stderr = process.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        process.send_signal(signal.SIGUSR1)  # the helper prints its threads' stacks
        time.sleep(2)
        process.kill()
        _, stderr = process.communicate()
        pytest.fail(f"echo node still running 30 s after Ctrl-C; its stacks:\n{stderr}")
    assert process.returncode == 0, stderr


def test_messages_round_trip_between_processes(rclpy_context, echo_process):
    import rclpy

    node = rclpy.create_node("round_trip_test", context=rclpy_context)
    executor = SingleThreadedExecutor(context=rclpy_context)
    executor.add_node(node)
    sent = {
        "policy_status": (PolicyStatus, make_policy_status()),
        "episode_status": (EpisodeStatus, make_episode_status()),
        "action_chunk": (JointTrajectory, make_trajectory()),
    }
    received: dict[str, object] = {}
    publishers = {}
    for topic, (msg_type, _) in sent.items():
        publishers[topic] = node.create_publisher(msg_type, topic, 10)
        node.create_subscription(
            msg_type, f"{topic}_echo", lambda msg, t=topic: received.setdefault(t, msg), 10
        )

    deadline = time.monotonic() + DEADLINE_S
    while len(received) < len(sent) and time.monotonic() < deadline:
        for topic, (_, message) in sent.items():
            if topic not in received:
                publishers[topic].publish(message)
        executor.spin_once(timeout_sec=0.1)

    assert received.keys() == sent.keys(), f"no echo on {set(sent) - set(received)}"
    for topic, (_, message) in sent.items():
        assert received[topic] == message, topic
    executor.shutdown()
    node.destroy_node()
