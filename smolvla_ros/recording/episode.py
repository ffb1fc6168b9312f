"""One episode as one rosbag2 bag (a folder with metadata.yaml and an MCAP file).

Messages arrive already serialized (CDR, as DDS delivers them) and are written as they come,
so memory stays flat however long the episode. Message definitions are embedded for every
type, ours included, so any MCAP or rosbag2 reader decodes them. The episode's task text,
index, robot type, calibration id and start/end stamps go into the bag's ``custom_data``;
an ``episode.json`` beside the MCAP file holds the same from the first moment, so a bag whose
writer was killed can be recovered with its metadata (``recover_episode``).
"""

from __future__ import annotations

import json
import struct
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

EPISODE_JSON = "episode.json"


class EpisodeWriteError(RuntimeError):
    """Writing failed (a full disk, say): the episode is over, what was written is kept."""


@dataclass
class EpisodeInfo:
    episode_index: int
    task: str
    robot_type: str = "so101_follower"
    calibration_id: str = ""
    start_ns: int = 0
    end_ns: int = 0
    tasks: list[tuple[int, str]] = field(default_factory=list)  # (stamp_ns, text) changes
    ended_by: str = ""  # stop, duration, shutdown, error: ...

    def custom_data(self) -> dict[str, str]:
        """All values as strings, as rosbag2's custom_data requires."""
        return {key: value if isinstance(value, str) else json.dumps(value)
                for key, value in asdict(self).items()}


class EpisodeWriter:
    """Writes one episode; ``typestore`` (rosbags) knows every message type it will see."""

    FLUSH_PERIOD_S = 1.0

    def __init__(self, folder: Path, info: EpisodeInfo, typestore):
        from rosbags.rosbag2 import StoragePlugin, Writer, WriterError

        self.folder = Path(folder)
        self.info = info
        self.typestore = typestore
        self.messages = 0
        self.dropped = 0
        self.bytes = 0
        self._connections = {}
        self._last_flush = time.monotonic()
        try:
            self._writer = Writer(self.folder, version=9, storage_plugin=StoragePlugin.MCAP)
            self._writer.open()
            self._save_info()
        except (OSError, WriterError) as error:
            raise EpisodeWriteError(f"cannot create episode {self.folder}: {error}") from None

    def set_task(self, text: str, stamp_ns: int) -> None:
        """The instruction in force changed (kept with its time, also as the bag's task)."""
        self.info.tasks.append((stamp_ns, text))
        self.info.task = text
        try:
            self._save_info()
        except OSError as error:
            raise EpisodeWriteError(f"writing {self.folder / EPISODE_JSON} failed: {error}") from None

    def write(self, topic: str, msgtype: str, stamp_ns: int, data: bytes) -> None:
        """Write one serialized message; raises EpisodeWriteError if the disk refuses."""
        try:
            connection = self._connections.get(topic)
            if connection is None:
                connection = self._connections[topic] = self._writer.add_connection(
                    topic, msgtype, typestore=self.typestore)
            self._writer.write(connection, stamp_ns, data)
            if time.monotonic() - self._last_flush > self.FLUSH_PERIOD_S:
                self._flush()
        except OSError as error:
            self.dropped += 1
            raise EpisodeWriteError(f"writing {self.folder} failed: {error}") from None
        self.messages += 1
        self.bytes += len(data)
        if not self.info.start_ns or stamp_ns < self.info.start_ns:
            self.info.start_ns = stamp_ns
        self.info.end_ns = max(self.info.end_ns, stamp_ns)

    def close(self, ended_by: str) -> None:
        """Finish the bag: MCAP summary, metadata.yaml with the episode's custom data."""
        self.info.ended_by = ended_by
        for key, value in self.info.custom_data().items():
            self._writer.set_custom_data(key, value)
        try:
            self._writer.close()
            self._save_info()
        except OSError as error:
            raise EpisodeWriteError(f"closing {self.folder} failed: {error}") from None

    def _flush(self) -> None:
        """Push written chunks to the OS, so a killed process loses at most the open chunk."""
        self._writer.storage.bio.flush()
        self._last_flush = time.monotonic()

    def _save_info(self) -> None:
        path = self.folder / EPISODE_JSON
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(asdict(self.info), indent=2))
        tmp.replace(path)


def read_info(folder: Path) -> EpisodeInfo:
    data = json.loads((Path(folder) / EPISODE_JSON).read_text())
    data["tasks"] = [tuple(item) for item in data["tasks"]]
    return EpisodeInfo(**data)


def make_typestore(own_definitions: dict[str, str]):
    """ROS 2 Jazzy's standard messages plus ours (``{"pkg/msg/Name": .msg text}``)."""
    from rosbags.typesys import Stores, get_types_from_msg, get_typestore

    store = get_typestore(Stores.ROS2_JAZZY)
    for msgtype, text in own_definitions.items():
        store.register(get_types_from_msg(text, msgtype))
    return store


def msg_definitions(msg_folder: Path, package: str = "smolvla_ros") -> dict[str, str]:
    """The .msg files of ``package`` (its source msg/ or installed share/<package>/msg)."""
    return {f"{package}/msg/{path.stem}": path.read_text() for path in sorted(Path(msg_folder).glob("*.msg"))}


PARTIAL_SUFFIX = ".partial"


def is_unfinished(folder: Path) -> bool:
    """An episode whose writer never closed it (killed): MCAP data but no metadata.yaml.
    The ``.partial`` originals that recovery keeps are not episodes."""
    folder = Path(folder)
    return (not folder.name.endswith(PARTIAL_SUFFIX) and (folder / EPISODE_JSON).is_file()
            and not (folder / "metadata.yaml").is_file())


def recover_episode(folder: Path, typestore) -> int:
    """Turn a killed episode back into a closed, readable bag; returns messages recovered.

    The unfinished folder is kept beside it as ``<name>.partial`` (nothing is deleted); every
    message in its complete MCAP chunks is written to a new bag at the original path, with
    the episode's info from episode.json.
    """
    from mcap.exceptions import McapError
    from mcap.records import Channel, Message, Schema
    from mcap.stream_reader import StreamReader

    folder = Path(folder)
    partial = folder.with_name(folder.name + PARTIAL_SUFFIX)
    folder.rename(partial)
    info = read_info(partial)
    info.start_ns = info.end_ns = 0  # recomputed from the recovered messages
    writer = EpisodeWriter(folder, info, typestore)
    schemas, channels = {}, {}
    with open(partial / f"{folder.name}.mcap", "rb") as file:
        try:  # streamed: one message in memory at a time
            for record in StreamReader(file).records:
                if isinstance(record, Schema):
                    schemas[record.id] = record.name
                elif isinstance(record, Channel):
                    channels[record.id] = (record.topic, schemas[record.schema_id])
                elif isinstance(record, Message):
                    topic, msgtype = channels[record.channel_id]
                    writer.write(topic, msgtype, record.log_time, record.data)
        except (McapError, EOFError, ValueError, KeyError, struct.error):
            pass  # the kill cut the file here: everything before it is kept
    writer.close(f"recovered after the recorder stopped without closing ({info.ended_by or 'killed'})")
    return writer.messages
