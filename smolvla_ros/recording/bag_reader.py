"""What a converter needs from one bag, read in one pass with rosbags (no ROS install).

Reads our recorder's episodes and bags from plain ``ros2 bag record`` alike (MCAP or sqlite3
storage): topics are matched by name relative to an optional namespace, so ``/joint_states``,
``joint_states`` and ``/arm/joint_states`` (namespace ``arm``) are the same topic. (The
recorder stores fully qualified names and its namespace in custom_data; before, it stored
names relative to its namespace.) Joint states, instructions and action chunks are small and
kept decoded; camera images are not kept, only their stamps and where they are, for a
second, streaming pass (``iter_images``).

Times are the messages' header stamps (when the data was measured), or the bag's receive
time for messages without one, in nanoseconds.
"""

from __future__ import annotations

import re
import struct
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import yaml

from smolvla_ros.policy.images import compressed_to_rgb, image_to_rgb
from smolvla_ros.trajectory import Trajectory, TrajectoryError, make_trajectory

JOINT_STATES = "joint_states"
LEADER_JOINT_STATES = "leader/joint_states"
TASK_INSTRUCTION = "task_instruction"
ACTION_CHUNK = "action_chunk"
CAMERA_TOPIC = re.compile(r"^cameras/([^/]+)/image_raw(/compressed)?$")


class BagError(RuntimeError):
    """A bag that cannot be converted; the message names the bag and what is missing."""


@dataclass
class JointSeries:
    """One joint_states topic: stamps (ns, sorted) and positions (radians, ``joints`` order)."""

    stamps: np.ndarray
    positions: np.ndarray


@dataclass
class CameraSeries:
    """One camera: stamps (ns) and each image's place in the bag, (connection id, ordinal)."""

    topic: str
    shape: tuple[int, int, int]
    stamps: np.ndarray
    places: list[tuple[int, int]]


@dataclass
class BagContents:
    path: Path
    topics: list[str]
    custom_data: dict[str, str]
    namespace: str = ""  # the one topics were read relative to
    follower: JointSeries | None = None
    leader: JointSeries | None = None
    cameras: dict[str, CameraSeries] = field(default_factory=dict)
    instructions: list[tuple[int, str]] = field(default_factory=list)  # (receive ns, text)
    # (receive ns, start ns from the header, 0 = on arrival; the path with start 0)
    chunks: list[tuple[int, int, Trajectory]] = field(default_factory=list)
    rejected_chunks: int = 0


def relative_topic(topic: str, namespace: str) -> str:
    name = topic.strip("/")
    prefix = namespace.strip("/")
    if prefix and name.startswith(prefix + "/"):
        name = name[len(prefix) + 1:]
    return name


def header_stamp_ns(raw: bytes) -> int:
    """The header stamp of a CDR message that starts with std_msgs/Header (after the
    4-byte encapsulation): read without decoding the rest, e.g. a whole image."""
    sec, nanosec = struct.unpack_from("<iI", raw, 4)
    return sec * 1_000_000_000 + nanosec


def custom_data(path: Path) -> dict[str, str]:
    """The bag's custom data (our episodes keep their task, calibrations and namespace there)."""
    metadata = Path(path) / "metadata.yaml"
    if not metadata.is_file():
        return {}
    info = yaml.safe_load(metadata.read_text()).get("rosbag2_bagfile_information", {})
    return dict(info.get("custom_data") or {})


def _open(path: Path):
    from rosbags.highlevel import AnyReader, AnyReaderError
    from rosbags.typesys import Stores, get_typestore

    try:
        reader = AnyReader([Path(path)], default_typestore=get_typestore(Stores.ROS2_JAZZY))
        reader.open()
    except (AnyReaderError, OSError) as error:
        raise BagError(f"{path}: not a readable rosbag2 bag: {error}") from None
    return reader


def read_bag(path: Path, joints: tuple[str, ...], namespace: str = "") -> BagContents:
    """Everything but the images, in one pass over the bag. Topics are read relative to
    ``namespace``, or else to the recorder's namespace stored in the bag."""
    stored = custom_data(path)
    namespace = namespace or stored.get("namespace", "")
    reader = _open(path)
    try:
        by_topic: dict[str, list] = {}
        for connection in reader.connections:
            by_topic.setdefault(relative_topic(connection.topic, namespace), []).append(connection)
        contents = BagContents(Path(path), sorted(by_topic), stored, namespace)
        wanted = [c for topic, conns in by_topic.items() for c in conns
                  if topic in (JOINT_STATES, LEADER_JOINT_STATES, TASK_INSTRUCTION, ACTION_CHUNK)
                  or CAMERA_TOPIC.match(topic)]
        joint_rows: dict[str, list] = {JOINT_STATES: [], LEADER_JOINT_STATES: []}
        camera_rows: dict[str, list] = {}
        counters: dict[int, int] = {}
        for connection, receive_ns, raw in reader.messages(connections=wanted):
            topic = relative_topic(connection.topic, namespace)
            camera = CAMERA_TOPIC.match(topic)
            if camera:
                ordinal = counters[connection.id] = counters.get(connection.id, -1) + 1
                name = camera.group(1)
                if name not in camera_rows:
                    shape = _decode_image(reader, connection, raw).shape
                    contents.cameras[name] = CameraSeries(topic, shape, np.empty(0), [])
                    camera_rows[name] = []
                stamp = header_stamp_ns(raw) or receive_ns
                camera_rows[name].append((stamp, (connection.id, ordinal)))
                continue
            message = deserialize(reader.typestore, raw, connection.msgtype)
            if topic in joint_rows:
                stamp = _stamp(message) or receive_ns
                joint_rows[topic].append((stamp, _by_name(message, joints, topic, path)))
            elif topic == TASK_INSTRUCTION:
                contents.instructions.append((receive_ns, message.data.strip()))
            else:
                chunk = _trajectory(message, joints)
                if chunk is None:
                    contents.rejected_chunks += 1
                else:
                    contents.chunks.append((receive_ns, _stamp(message), chunk))
    finally:
        reader.close()
    for topic, rows in joint_rows.items():
        if rows:
            rows.sort(key=lambda row: row[0])
            series = JointSeries(np.array([r[0] for r in rows], dtype=np.int64),
                                 np.array([r[1] for r in rows], dtype=float))
            setattr(contents, "follower" if topic == JOINT_STATES else "leader", series)
    for name, rows in camera_rows.items():
        rows.sort(key=lambda row: row[0])
        contents.cameras[name].stamps = np.array([r[0] for r in rows], dtype=np.int64)
        contents.cameras[name].places = [r[1] for r in rows]
    return contents


def iter_images(path: Path, cameras: dict[str, CameraSeries], namespace: str = ""
                ) -> Iterator[tuple[str, tuple[int, int], np.ndarray]]:
    """(camera name, place, RGB image) for every image of ``cameras``, in bag order."""
    topics = {series.topic: name for name, series in cameras.items()}
    reader = _open(path)
    try:
        connections = [c for c in reader.connections if relative_topic(c.topic, namespace) in topics]
        counters: dict[int, int] = {}
        for connection, _, raw in reader.messages(connections=connections):
            ordinal = counters[connection.id] = counters.get(connection.id, -1) + 1
            name = topics[relative_topic(connection.topic, namespace)]
            yield name, (connection.id, ordinal), _decode_image(reader, connection, raw)
    finally:
        reader.close()


def deserialize(typestore, raw: bytes, msgtype: str):
    """CDR to a rosbags message, allowing trailing bytes after the message.

    rmw_fastrtps hands out serialized messages with up to 8 bytes of slack after the data
    (seen in every JointState from rclpy's serializer), which rosbags' own
    ``deserialize_cdr`` refuses as a size mismatch; what the slack holds is never read.
    """
    if len(raw) < 4 or bytes(raw[:2]) not in (b"\x00\x00", b"\x00\x01"):
        raise BagError(f"a {msgtype} message is not CDR-encoded")
    msgdef = typestore.get_msgdef(msgtype)
    decode = msgdef.deserialize_cdr_le if raw[1] else msgdef.deserialize_cdr_be
    try:
        return decode(memoryview(raw)[4:], 0, msgdef.cls, typestore)[0]
    except (struct.error, UnicodeDecodeError, ValueError) as error:
        raise BagError(f"a {msgtype} message does not decode: {error}") from None


def _decode_image(reader, connection, raw: bytes) -> np.ndarray:
    message = deserialize(reader.typestore, raw, connection.msgtype)
    if connection.msgtype.endswith("CompressedImage"):
        return compressed_to_rgb(bytes(message.data))
    return image_to_rgb(message.encoding, message.height, message.width, message.step,
                        bytes(message.data))


def _stamp(message) -> int:
    return message.header.stamp.sec * 1_000_000_000 + message.header.stamp.nanosec


def _by_name(message, joints: tuple[str, ...], topic: str, path: Path) -> list[float]:
    positions = dict(zip(message.name, message.position))
    missing = [joint for joint in joints if joint not in positions]
    if missing:
        raise BagError(f"{path}: {topic} has no position for joint(s) {missing} "
                       f"(names in the bag: {list(message.name)})")
    return [float(positions[joint]) for joint in joints]


def _trajectory(message, joints: tuple[str, ...]) -> Trajectory | None:
    """An action chunk as the arm's trajectory executor would take it; None if it would not.
    Its start is left at 0: the caller puts it on its own time axis."""
    times = [p.time_from_start.sec + p.time_from_start.nanosec * 1e-9 for p in message.points]
    try:
        return make_trajectory(message.joint_names, 0.0, times,
                               [list(p.positions) for p in message.points], joints)
    except TrajectoryError:
        return None
