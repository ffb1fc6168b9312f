"""Benchmark: an action chunk to serialized bytes (policy_node) and back (the executors).

- Reading: so101_node and sim_node take action_chunk on a raw subscription. The bytes become
  the core's Trajectory through rclpy (``deserialize_message``, then the message's points
  read back into lists: how both nodes did it before) or through ``trajectory_from_cdr``.
- Writing: policy_node's chunk becomes bytes through rclpy (its JointTrajectory, points
  reused, then rclpy's serialization, which ``publish`` of a message does) or through
  ``trajectory_to_cdr``, which ``publish`` of bytes hands on unchanged.

Both sides of each run in this process, alternating, on the same chunk; their results are
checked equal first.

Printed, not asserted:  python bench/trajectory_parse.py [--repeats 2000]
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
from builtin_interfaces.msg import Duration, Time
from rclpy.serialization import deserialize_message, serialize_message
from trajectory_msgs.msg import JointTrajectory, JointTrajectoryPoint

from smolvla_ros.nodes.ros_time import to_seconds
from smolvla_ros.trajectory import Trajectory, make_trajectory
from smolvla_ros.trajectory_cdr import trajectory_from_cdr, trajectory_to_cdr
from smolvla_ros.units import SO101_JOINTS

JOINTS = list(SO101_JOINTS)


def through_rclpy(raw: bytes, known_joints=JOINTS) -> Trajectory:
    """The executors' path before trajectory_from_cdr: rclpy's message, then make_trajectory."""
    msg = deserialize_message(raw, JointTrajectory)
    return make_trajectory(msg.joint_names, to_seconds(msg.header.stamp),
                           [to_seconds(point.time_from_start) for point in msg.points],
                           [list(point.positions) for point in msg.points], known_joints)


def chunk_times(points: int) -> tuple[np.ndarray, np.ndarray]:
    """time_from_start (sec, nanosec) of a 30 fps chunk's points."""
    ticks = np.arange(1, points + 1)
    return (ticks // 30).astype(np.int32), (ticks % 30 * 33_333_333).astype(np.uint32)


def policy_like_message(positions: np.ndarray) -> JointTrajectory:
    """As policy_node built a chunk: 6 joints, positions and time_from_start only."""
    seconds, nanoseconds = chunk_times(len(positions))
    msg = JointTrajectory(joint_names=JOINTS, points=[
        JointTrajectoryPoint(time_from_start=Duration(sec=int(s), nanosec=int(n)))
        for s, n in zip(seconds, nanoseconds)])
    msg.header.stamp = Time(sec=1_764_000_000, nanosec=1)
    return msg


def write_through_rclpy(msg: JointTrajectory, positions: np.ndarray) -> bytes:
    """policy_node's publish before trajectory_to_cdr: its reused points filled, serialized."""
    for point, row in zip(msg.points, positions.tolist()):
        point.positions = row
    return serialize_message(msg)


def write_ours(positions: np.ndarray) -> bytes:
    return trajectory_to_cdr(JOINTS, (1_764_000_000, 1), *chunk_times(len(positions)), positions)


def median_ms(function, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return 1e3 * statistics.median(times)


def compare(title: str, theirs, ours, repeats: int) -> None:
    a, b = [], []
    for _ in range(3):  # alternate, so drift on a busy machine hits both
        a.append(median_ms(theirs, repeats // 3))
        b.append(median_ms(ours, repeats // 3))
    a, b = statistics.median(a), statistics.median(b)
    print(f"{title:<34} {a:>9.3f} {b:>8.3f} {a / b:>7.2f}x")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=2000)
    args = parser.parse_args()
    print(f"{'':<34} {'rclpy ms':>9} {'ours ms':>8} {'speed-up':>8}")
    for points in (50, 1000, 10000):
        positions = np.random.default_rng(0).normal(size=(points, len(JOINTS)))
        msg = policy_like_message(positions)
        raw = write_through_rclpy(msg, positions)
        assert deserialize_message(write_ours(positions), JointTrajectory) == \
            deserialize_message(raw, JointTrajectory)
        ours, theirs = trajectory_from_cdr(raw, JOINTS, points), through_rclpy(raw)
        assert ours.times.tobytes() == theirs.times.tobytes()
        assert ours.positions.tobytes() == theirs.positions.tobytes()
        repeats = max(30, args.repeats * 50 // points)
        compare(f"{points:>5} points, chunk -> bytes", lambda: write_through_rclpy(msg, positions),
                lambda: write_ours(positions), repeats)
        compare(f"{points:>5} points, bytes -> Trajectory", lambda: through_rclpy(raw),
                lambda: trajectory_from_cdr(raw, JOINTS, points), repeats)


if __name__ == "__main__":
    main()
