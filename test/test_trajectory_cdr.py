"""trajectory_from_cdr reads what rclpy serializes, and gives exactly what rclpy's own
deserialization gives (the executors' path before it), refusals included; trajectory_to_cdr
writes what rclpy reads back as policy_node's message."""

from __future__ import annotations

import math
import struct
import sys

import numpy as np
import pytest
from builtin_interfaces.msg import Duration, Time
from conftest import REPO_ROOT
from rclpy.serialization import deserialize_message, serialize_message
from trajectory_msgs.msg import JointTrajectory, JointTrajectoryPoint

from smolvla_ros.trajectory import TrajectoryError
from smolvla_ros.trajectory_cdr import trajectory_from_cdr, trajectory_to_cdr

sys.path.insert(0, str(REPO_ROOT / "bench"))
from trajectory_parse import JOINTS, through_rclpy  # noqa: E402  (the reference: rclpy's path)


def outcome(read, raw: bytes):
    try:
        return read(raw)
    except TrajectoryError as error:
        return f"TrajectoryError: {error}"


def assert_same(ours, theirs) -> None:
    if isinstance(theirs, str):
        assert ours == theirs
        return
    assert ours.joint_names == theirs.joint_names
    assert ours.start == theirs.start
    assert ours.times.tobytes() == theirs.times.tobytes()  # bit for bit
    assert ours.positions.tobytes() == theirs.positions.tobytes()


def random_message(rng: np.random.Generator) -> JointTrajectory:
    names = list(rng.permutation(JOINTS)[:rng.integers(1, len(JOINTS) + 1)])
    msg = JointTrajectory(joint_names=names)
    msg.header.frame_id = "x" * int(rng.integers(0, 8))  # shifts every later alignment
    msg.header.stamp = Time(sec=int(rng.integers(0, 2**31)), nanosec=int(rng.integers(0, 10**9)))
    elapsed = 0
    for _ in range(int(rng.integers(1, 60))):
        elapsed += int(rng.integers(1, 10**9))
        point = JointTrajectoryPoint(positions=list(rng.normal(size=len(names)) * 3),
                                     time_from_start=Duration(sec=elapsed // 10**9,
                                                              nanosec=elapsed % 10**9))
        if rng.random() < 0.3:  # other recorders and planners fill these; the executor skips them
            point.velocities = list(rng.normal(size=int(rng.integers(0, 7))))
            point.accelerations = list(rng.normal(size=int(rng.integers(0, 3))))
            point.effort = list(rng.normal(size=int(rng.integers(0, 2))))
        msg.points.append(point)
    return msg


def test_random_messages_read_as_rclpy_reads_them():
    rng = np.random.default_rng(7)
    for _ in range(300):
        raw = serialize_message(random_message(rng))
        assert_same(trajectory_from_cdr(raw, JOINTS, 10000), through_rclpy(raw))


def chunk(positions, times, names=JOINTS) -> JointTrajectory:
    return JointTrajectory(joint_names=names, points=[
        JointTrajectoryPoint(positions=row, time_from_start=Duration(
            sec=int(t), nanosec=round((t - int(t)) * 1e9))) for row, t in zip(positions, times)])


@pytest.mark.parametrize("msg", [
    chunk([[0.0] * 6], [0.1], names=JOINTS[:5] + ["elbow"]),  # unknown joint
    chunk([[0.0] * 6], [0.1], names=JOINTS[:5] + [JOINTS[0]]),  # repeated joint
    chunk([[0.0] * 6, [0.0] * 5], [0.1, 0.2]),  # a short point
    chunk([[0.0] * 6, [math.nan] * 6], [0.1, 0.2]),
    chunk([[0.0] * 6, [math.inf] * 6], [0.1, 0.2]),
    chunk([[0.0] * 6] * 2, [0.2, 0.2]),  # not increasing
    chunk([], []),  # no points
    JointTrajectory(),  # no names, no points
], ids=["unknown", "repeated", "short", "nan", "inf", "equal-times", "no-points", "empty"])
def test_refused_as_rclpy_path_refuses(msg):
    raw = serialize_message(msg)
    ours = outcome(lambda r: trajectory_from_cdr(r, JOINTS, 10000), raw)
    assert ours.startswith("TrajectoryError")
    assert ours == outcome(through_rclpy, raw)


def test_too_many_points_is_refused_before_they_are_read():
    raw = serialize_message(chunk([[0.0] * 6] * 20, [0.1 * (k + 1) for k in range(20)]))
    with pytest.raises(TrajectoryError, match=r"^20 points, more than max_trajectory_points \(19\)$"):
        trajectory_from_cdr(raw, JOINTS, 19)
    assert len(trajectory_from_cdr(raw, JOINTS, 20).times) == 20


def test_other_encapsulations_are_refused_not_misread():
    """XCDR2 aligns doubles to 4 bytes, not 8: read as XCDR1 its positions would be garbage
    that the arm then executes. Only plain CDR (0x0000, 0x0001) is read."""
    raw = serialize_message(chunk([[0.1] * 6], [0.5]))
    for header in (b"\x00\x07", b"\x00\x09", b"\x00\x0b", b"\x00\x03", b"\x01\x01"):
        with pytest.raises(TrajectoryError, match="is not plain CDR"):
            trajectory_from_cdr(header + raw[2:], JOINTS, 10000)


def test_every_truncation_is_a_clear_error():
    msg = random_message(np.random.default_rng(3))
    msg.points = msg.points[:3]
    msg.points[1].velocities = [1.0, 2.0]
    raw = serialize_message(msg)
    # rclpy's buffer can run on past the message's last field (12 bytes here, this rmw): a
    # cut there still holds the whole message
    end = len(CdrWriter("<").trajectory(msg))
    whole = trajectory_from_cdr(raw, list(msg.joint_names), 10000)
    for cut in range(len(raw)):
        if cut < end:
            with pytest.raises(TrajectoryError, match="^malformed JointTrajectory message$"):
                trajectory_from_cdr(raw[:cut], list(msg.joint_names), 10000)
        else:
            assert_same(trajectory_from_cdr(raw[:cut], list(msg.joint_names), 10000), whole)


class CdrWriter:
    """JointTrajectory in CDR with either byte order: rclpy reads its little-endian bytes
    back as the message, so its big-endian ones are the message rclpy never writes here."""

    def __init__(self, endian: str):
        self.endian = endian
        self.out = bytearray(b"\x00\x01\x00\x00" if endian == "<" else b"\x00\x00\x00\x00")

    def put(self, fmt: str, *values, align: int) -> None:
        self.out += b"\x00" * (-(len(self.out) - 4) % align)
        self.out += struct.pack(self.endian + fmt, *values)

    def string(self, text: str) -> None:
        data = text.encode() + b"\x00"
        self.put("I", len(data), align=4)
        self.out += data

    def doubles(self, values) -> None:
        self.put("I", len(values), align=4)
        if len(values):
            self.put(f"{len(values)}d", *values, align=8)

    def trajectory(self, msg: JointTrajectory) -> bytes:
        self.put("iI", msg.header.stamp.sec, msg.header.stamp.nanosec, align=4)
        self.string(msg.header.frame_id)
        self.put("I", len(msg.joint_names), align=4)
        for name in msg.joint_names:
            self.string(name)
        self.put("I", len(msg.points), align=4)
        for point in msg.points:
            for values in (point.positions, point.velocities, point.accelerations, point.effort):
                self.doubles(values)
            self.put("iI", point.time_from_start.sec, point.time_from_start.nanosec, align=4)
        return bytes(self.out)


def test_big_endian_messages_read_the_same():
    rng = np.random.default_rng(11)
    for _ in range(50):
        msg = random_message(rng)
        written = CdrWriter("<").trajectory(msg)
        assert deserialize_message(written, JointTrajectory) == msg  # (padding bytes differ)
        big = CdrWriter(">").trajectory(msg)
        assert_same(trajectory_from_cdr(big, JOINTS, 10000),
                    through_rclpy(serialize_message(msg)))


@pytest.mark.parametrize("dtype", [np.float64, np.float32])  # runtimes hand back either
def test_written_chunks_are_what_rclpy_would_serialize(dtype):
    """policy_node's chunk, serialized by trajectory_to_cdr, is the message it used to build:
    rclpy reads the bytes back as exactly that message, and so does trajectory_from_cdr."""
    rng = np.random.default_rng(5)
    for _ in range(100):
        names = list(rng.permutation(JOINTS)[:rng.integers(1, len(JOINTS) + 1)])
        points = int(rng.choice([0, 1, 2, 3, 50]))
        positions = (rng.normal(size=(points, len(names))) * 3).astype(dtype)
        seconds = np.arange(points, dtype=np.int32) // 30
        nanoseconds = (np.arange(points, dtype=np.uint32) % 30) * np.uint32(33_333_333)
        stamp = (int(rng.integers(0, 2**31)), int(rng.integers(0, 10**9)))
        raw = trajectory_to_cdr(names, stamp, seconds, nanoseconds, positions)
        built = JointTrajectory(joint_names=names, points=[
            JointTrajectoryPoint(positions=row, time_from_start=Duration(sec=int(s), nanosec=int(n)))
            for row, s, n in zip(positions.tolist(), seconds, nanoseconds)])
        built.header.stamp = Time(sec=stamp[0], nanosec=stamp[1])
        assert deserialize_message(raw, JointTrajectory) == built
        if points:
            assert_same(trajectory_from_cdr(raw, JOINTS, 10000),
                        through_rclpy(serialize_message(built)))


def test_writer_refuses_positions_that_do_not_fit_the_names():
    times = np.zeros(2, np.int32), np.zeros(2, np.uint32)
    with pytest.raises(ValueError, match="2x5 positions"):
        trajectory_to_cdr(JOINTS, (0, 0), *times, np.zeros((2, 5)))
    with pytest.raises(ValueError, match="3x6 positions, 2/2 times"):
        trajectory_to_cdr(JOINTS, (0, 0), *times, np.zeros((3, 6)))
