"""trajectory_msgs/JointTrajectory straight to and from its serialized (CDR) bytes, ROS-free.

Action chunks cross the graph as bytes handled here instead of as rclpy message objects:
- policy_node publishes a chunk serialized by ``trajectory_to_cdr`` (rclpy otherwise converts
  50 point objects one field at a time);
- the executors (so101_node, sim_node) take chunks on a raw subscription and read them with
  ``trajectory_from_cdr``: a huge message is refused by its point count before its points are
  read (rclpy's deserialization of 200000 points holds the GIL for seconds), and a chunk
  becomes arrays without Python point objects on the way, time the control loop's thread
  gets back. Speed: ``bench/trajectory_parse.py``.

The format is plain CDR (XCDR1) as rmw_fastrtps_cpp, the default rmw, writes it: a 4-byte
encapsulation header (0x0001 little endian, 0x0000 big endian), then each field aligned to
its own size, counted from the end of that header; sequences and strings are a uint32 count,
strings with their terminating NUL. The tests check both directions against the serializer of the rmw in
use (``RMW_IMPLEMENTATION``), so another rmw is checked by running them under it.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence

import numpy as np

from smolvla_ros.trajectory import Trajectory, TrajectoryError, make_trajectory

MALFORMED = "malformed JointTrajectory message"


class _Reader:
    def __init__(self, raw: bytes):
        if len(raw) < 4:
            raise TrajectoryError(MALFORMED)
        if raw[0] != 0 or raw[1] not in (0, 1):  # CDR_BE, CDR_LE; not XCDR2's 4-byte doubles
            raise TrajectoryError(f"{MALFORMED}: encapsulation 0x{raw[0]:02x}{raw[1]:02x} is not "
                                  "plain CDR (XCDR1)")
        self.raw = raw
        self.endian = "<" if raw[1] else ">"
        self.uint32_format = struct.Struct(self.endian + "I")
        self.time_format = struct.Struct(self.endian + "iI")  # builtin_interfaces Time, Duration
        self.at = 4

    def align(self, size: int) -> None:
        self.at += -(self.at - 4) % size

    def unpack(self, layout: struct.Struct) -> tuple:
        values = layout.unpack_from(self.raw, self.at)
        self.at += layout.size
        return values

    def uint32(self) -> int:
        self.align(4)
        return self.unpack(self.uint32_format)[0]

    def string(self) -> str:
        size = self.uint32()
        end = self.at + size
        if size == 0 or end > len(self.raw) or self.raw[end - 1] != 0:
            raise TrajectoryError(MALFORMED)
        text = bytes(self.raw[self.at:end - 1]).decode("utf-8", errors="replace")
        self.at = end
        return text

    def skip_doubles(self) -> None:
        count = self.uint32()
        if count:
            self.align(8)
        self.at += 8 * count  # (past the end: the next read fails)


def trajectory_from_cdr(raw: bytes, known_joints: Sequence[str], max_points: int) -> Trajectory:
    """The Trajectory a serialized JointTrajectory holds, or TrajectoryError. One with more
    than ``max_points`` points is refused before its points are read. Times equal rclpy's
    (``sec + nanosec * 1e-9`` in float64) and positions are the message's, bit for bit;
    velocities, accelerations and effort are skipped (the executors interpolate positions)."""
    try:
        reader = _Reader(raw)
        sec, nanosec = reader.unpack(reader.time_format)
        reader.string()  # header.frame_id
        names = [reader.string() for _ in range(reader.uint32())]
        count = reader.uint32()
        if count > max_points:
            raise TrajectoryError(f"{count} points, more than max_trajectory_points ({max_points})")
        starts, lengths, seconds, nanoseconds = _read_points(reader, count)
        # Every double of the message is 8-aligned from the data's start (byte 4): one view
        # over them all, and each point's positions are a run of it.
        doubles = np.frombuffer(raw, dtype=reader.endian + "f8", count=(len(raw) - 4) // 8,
                                offset=4)
        first = (np.array(starts, dtype=np.int64) - 4) // 8
        if lengths and min(lengths) == max(lengths):
            positions = doubles[first[:, None] + np.arange(lengths[0])]
        else:  # points of different lengths: make_trajectory names the first wrong one
            positions = [doubles[k:k + n] for k, n in zip(first, lengths)]
    except TrajectoryError:
        raise
    except (IndexError, struct.error, ValueError):  # read past the end (numpy: ValueError)
        raise TrajectoryError(MALFORMED) from None
    times = np.array(seconds, dtype=np.int64) + np.array(nanoseconds, dtype=np.int64) * 1e-9
    return make_trajectory(names, sec + nanosec * 1e-9, times, positions, known_joints)


def _read_points(reader: _Reader, count: int):
    """Where each point's positions start and how many there are, and its time_from_start.

    The loop is the hot part, so it is written flat. After a point's positions (4-aligned)
    come the counts of velocities, accelerations and effort, then time_from_start: a policy
    chunk leaves the three empty, and one unpack reads all five."""
    raw, at, uint32 = reader.raw, reader.at, reader.uint32_format
    tail = struct.Struct(reader.endian + "IIIiI")
    starts, lengths, seconds, nanoseconds = [], [], [], []
    for _ in range(count):
        at += -(at - 4) % 4
        length = uint32.unpack_from(raw, at)[0]
        at += 4
        if length:
            at += -(at - 4) % 8
        starts.append(at)
        lengths.append(length)
        at += 8 * length
        values = tail.unpack_from(raw, at)  # (a well-formed point has these 20 bytes or more)
        if values[0] or values[1] or values[2]:
            reader.at = at
            for _ in range(3):
                reader.skip_doubles()  # velocities, accelerations, effort: not executed
            point_sec, point_nanosec = reader.unpack(reader.time_format)
            at = reader.at
        else:
            point_sec, point_nanosec = values[3], values[4]
            at += tail.size
        seconds.append(point_sec)
        nanoseconds.append(point_nanosec)
    return starts, lengths, seconds, nanoseconds


def trajectory_to_cdr(joint_names: Sequence[str], stamp: tuple[int, int], seconds: np.ndarray,
                      nanoseconds: np.ndarray, positions: np.ndarray) -> bytes:
    """A JointTrajectory (empty frame_id; positions and time_from_start per point) serialized
    as rclpy would, little endian, for ``Publisher.publish(bytes)``.

    Built with numpy instead of 50 point objects that rclpy converts one field at a time.
    Every point is ``count, [pad], positions, three empty counts, sec, nanosec``; after the
    first, each starts 4 bytes past an 8-byte boundary, so the rest are one packed array."""
    points, width = positions.shape
    if width != len(joint_names) or not len(seconds) == len(nanoseconds) == points:
        raise ValueError(f"{points}x{width} positions, {len(seconds)}/{len(nanoseconds)} times "
                         f"for {len(joint_names)} joints")
    seconds, nanoseconds = np.asarray(seconds, np.int32), np.asarray(nanoseconds, np.uint32)
    out = bytearray(b"\x00\x01\x00\x00")

    def put(fmt: str, *values, align: int) -> None:
        out.extend(bytes(-(len(out) - 4) % align))
        out.extend(struct.pack("<" + fmt, *values))

    put("iI", *stamp, align=4)
    put("I", 1, align=4)
    out.append(0)  # frame_id: ""
    put("I", len(joint_names), align=4)
    for name in joint_names:
        encoded = name.encode() + b"\x00"
        put("I", len(encoded), align=4)
        out.extend(encoded)
    put("I", points, align=4)
    for k in range(min(points, 1)):  # the first point: its positions may need 4 pad bytes
        put("I", width, align=4)
        if width:
            put(f"{width}d", *positions[k], align=8)
        put("IIIiI", 0, 0, 0, int(seconds[k]), int(nanoseconds[k]), align=4)
    if points > 1:
        packed = np.zeros(points - 1, dtype=np.dtype([
            ("count", "<u4"), ("positions", "<f8", (width,)), ("empty", "<u4", (3,)),
            ("sec", "<i4"), ("nanosec", "<u4")]))
        packed["count"] = width
        packed["positions"] = positions[1:]
        packed["sec"], packed["nanosec"] = seconds[1:], nanoseconds[1:]
        out.extend(packed.tobytes())
    return bytes(out)
