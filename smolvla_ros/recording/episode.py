"""One episode as one rosbag2 bag (a folder with metadata.yaml and an MCAP file).

Messages arrive already serialized (CDR, as DDS delivers them) and are written as they come,
so memory stays flat however long the episode. Message definitions are embedded for every
type, ours included, so any MCAP or rosbag2 reader decodes them. The bag looks like one from
``ros2 bag record`` on Jazzy (metadata version 9): topics by their fully qualified names, the
publishers' offered QoS profiles per topic, and ``ros_distro``. The episode's task text,
index, robot type, the calibration of each arm (id and LeRobot JSON, so conversion elsewhere
needs no calibration files) and start/end stamps go into the bag's ``custom_data``; an
``episode.json`` beside the MCAP file holds the same from the first moment, so a bag whose
writer was killed can be recovered with its metadata (``recover_episode``).
"""

from __future__ import annotations

import json
import os
import shutil
import struct
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from io import StringIO
from pathlib import Path

EPISODE_JSON = "episode.json"
DEFAULT_ROS_DISTRO = "jazzy"  # what the ROS wheels here are; rosbag2 writes $ROS_DISTRO
ROBOT_TYPE = "so_follower"  # LeRobot's robot.name for SO-100/SO-101 followers (0.6.1)

# One publisher's offered QoS as rosbag2 (metadata version 9) writes it in metadata.yaml:
# {history: keep_last, depth: 10, reliability: reliable, durability: volatile,
#  deadline: {sec, nsec}, lifespan: ..., liveliness: automatic, liveliness_lease_duration: ...,
#  avoid_ros_namespace_conventions: false}
QosProfile = dict


class EpisodeWriteError(RuntimeError):
    """Writing failed (a full disk, say): the episode is over, what was written is kept."""


@dataclass
class EpisodeInfo:
    """What an episode records besides its messages (all of it in custom_data).

    The calibrations are LeRobot's JSON text as in force when recording started, so a converter
    on another machine turns the radians back into exactly the ticks (and LeRobot units) of the
    arm that produced them. ``''`` means unknown: no such arm, or its file was missing."""

    episode_index: int
    task: str
    robot_type: str = ROBOT_TYPE
    calibration_id: str = ""  # the follower's (observation.state)
    calibration_json: str = ""
    leader_calibration_id: str = ""  # the leader's (action in teleoperation); '' = no leader arm
    leader_calibration_json: str = ""
    namespace: str = ""  # the recorder's; topic names in the bag are fully qualified
    start_ns: int = 0
    end_ns: int = 0
    tasks: list[tuple[int, str]] = field(default_factory=list)  # (stamp_ns, text) changes
    ended_by: str = ""  # stop, duration, shutdown, error: ...

    def custom_data(self) -> dict[str, str]:
        """All values as strings, as rosbag2's custom_data requires."""
        return {key: value if isinstance(value, str) else json.dumps(value)
                for key, value in asdict(self).items()}


def ros_distro() -> str:
    """The distro a bag records, as rosbag2 does: ``$ROS_DISTRO`` (here: jazzy if unset)."""
    return os.environ.get("ROS_DISTRO") or DEFAULT_ROS_DISTRO


def _with_ros_distro(metadata_yaml: str, distro: str, key: str | None = None) -> str:
    """rosbags writes ``ros_distro: rosbags``; put the real distro in (YAML in, YAML out)."""
    from ruamel.yaml import YAML

    yaml = YAML(typ="safe")
    yaml.default_flow_style = False
    data = yaml.load(metadata_yaml)
    (data[key] if key else data)["ros_distro"] = distro
    out = StringIO()
    yaml.dump(data, out)
    return out.getvalue()


def _make_writer(folder: Path, distro: str):
    """rosbags' rosbag2 writer (version 9, MCAP) that records ``distro`` as ``ros_distro`` in
    metadata.yaml and in the MCAP file's own copy of the metadata, as rosbag2 does."""
    from rosbags.rosbag2 import StoragePlugin, Writer

    class Rosbag2Writer(Writer):
        def close(self) -> None:
            storage = self.storage
            close_storage = storage.close
            storage.close = lambda version, metadata: close_storage(
                version, _with_ros_distro(metadata, distro).strip())
            super().close()
            tmp = self.metapath.with_suffix(".yaml.tmp")
            tmp.write_text(_with_ros_distro(self.metapath.read_text(), distro,
                                            "rosbag2_bagfile_information"))
            tmp.replace(self.metapath)

    return Rosbag2Writer(folder, version=9, storage_plugin=StoragePlugin.MCAP)


class EpisodeWriter:
    """Writes one episode; ``typestore`` (rosbags) knows every message type it will see.

    Topics are named as given: the recorder passes fully qualified names, like ``ros2 bag
    record``. ``add_topic`` records a topic's offered QoS profiles; ``write`` on a topic not
    added yet adds it without (rosbag2 then falls back to its default QoS on playback)."""

    FLUSH_PERIOD_S = 1.0

    def __init__(self, folder: Path, info: EpisodeInfo, typestore):
        from rosbags.rosbag2 import WriterError

        self.folder = Path(folder)
        self.info = info
        self.typestore = typestore
        self.messages = 0
        self.dropped = 0
        self.bytes = 0
        self._connections = {}
        self._last_flush = time.monotonic()
        existed = self.folder.exists()
        try:
            self._writer = _make_writer(self.folder, ros_distro())
            self._writer.open()
            self._save_info()
        except (OSError, WriterError) as error:
            if not existed:  # a start that failed (a full disk) leaves no empty episode behind
                shutil.rmtree(self.folder, ignore_errors=True)
            raise EpisodeWriteError(f"cannot create episode {self.folder}: {error}") from None

    def has_topic(self, topic: str) -> bool:
        return topic in self._connections

    def add_topic(self, topic: str, msgtype: str, offered_qos: Sequence[QosProfile] = ()) -> None:
        """Register ``topic`` with its publishers' offered QoS (rosbag2 version-9 dicts)."""
        try:
            self._add(topic, msgtype, offered_qos)
        except OSError as error:
            raise EpisodeWriteError(f"writing {self.folder} failed: {error}") from None

    def _add(self, topic: str, msgtype: str, offered_qos: Sequence[QosProfile]) -> None:
        from rosbags.rosbag2.metadata import parse_qos

        self._connections[topic] = self._writer.add_connection(
            topic, msgtype, typestore=self.typestore, offered_qos_profiles=parse_qos(list(offered_qos)))

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
            if topic not in self._connections:
                self._add(topic, msgtype, ())
            self._writer.write(self._connections[topic], stamp_ns, data)
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

    def abort(self) -> None:
        """Let go of the files without finishing the bag (its folder is to be removed)."""
        try:
            self._writer.abort()
        except OSError:
            pass  # the disk that failed the bag may fail this too: the handles are closed

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
STAGING = ".recovering"  # under the output folder: where a rebuilt bag is written first


def unfinished_episodes(output_dir: Path) -> list[Path]:
    """Episodes whose writer never closed them, by the path their bag belongs at: a folder
    with episode.json and MCAP data but no metadata.yaml (the recorder was killed), or a
    ``.partial`` original whose rebuilt bag is missing (an older recovery ran out of disk)."""
    found = set()
    for folder in Path(output_dir).glob("episode_*"):
        if folder.name.endswith(PARTIAL_SUFFIX):
            target = folder.with_name(folder.name[: -len(PARTIAL_SUFFIX)])
            if not (target / "metadata.yaml").is_file():
                found.add(target)
        elif (folder / EPISODE_JSON).is_file() and not (folder / "metadata.yaml").is_file():
            found.add(folder)
    return sorted(found)


def recover_episode(folder: Path, typestore) -> int:
    """Turn a killed episode back into a closed, readable bag at ``folder``; returns the
    messages recovered.

    Every message in the original's complete MCAP chunks is written to a new bag, with the
    episode's info from its episode.json, first under ``<output>/.recovering/``: only once
    that bag is closed does it take the episode's place, and the original is kept beside it as
    ``<name>.partial`` (nothing is deleted). A recovery that cannot complete (a full disk)
    raises EpisodeWriteError and leaves the original where it was, to be tried again.
    """
    from mcap.exceptions import McapError
    from mcap.records import Channel, Message, Schema
    from mcap.stream_reader import StreamReader

    folder = Path(folder)
    partial = folder.with_name(folder.name + PARTIAL_SUFFIX)
    source = partial if partial.is_dir() else folder
    staging = folder.parent / STAGING / folder.name
    try:
        info = read_info(source)
    except (OSError, ValueError, TypeError):  # episode.json itself was cut short
        info = EpisodeInfo(episode_index=int(folder.name.split("_")[1]), task="")
    info.start_ns = info.end_ns = 0  # recomputed from the recovered messages
    writer = None
    moved = False  # the original renamed to .partial: from then on the data is there
    try:
        shutil.rmtree(staging, ignore_errors=True)  # what an earlier attempt left
        staging.parent.mkdir(exist_ok=True)
        writer = EpisodeWriter(staging, info, typestore)
        schemas, channels = {}, {}
        with open(next(source.glob("*.mcap")), "rb") as file:
            try:  # streamed: one message in memory at a time
                for record in StreamReader(file).records:
                    if isinstance(record, Schema):
                        schemas[record.id] = record.name
                    elif isinstance(record, Channel):
                        channels[record.id] = (record.topic, schemas[record.schema_id])
                        if not writer.has_topic(record.topic):
                            writer.add_topic(record.topic, schemas[record.schema_id],
                                             _stored_qos(record.metadata.get("offered_qos_profiles", "")))
                    elif isinstance(record, Message):
                        topic, msgtype = channels[record.channel_id]
                        writer.write(topic, msgtype, record.log_time, record.data)
            except (McapError, EOFError, ValueError, KeyError, struct.error):
                pass  # the kill cut the file here: everything before it is kept
        writer.close(f"recovered after the recorder stopped without closing "
                     f"({info.ended_by or 'killed'})")
        if source == folder:
            folder.rename(partial)
            moved = True
        elif folder.exists():
            shutil.rmtree(folder)  # an older recovery's cut-short rebuild; the data is in .partial
        staging.rename(folder)
    except (EpisodeWriteError, OSError, StopIteration) as error:
        if writer is not None:
            writer.abort()  # its open file would keep the space a full disk needs freed
        shutil.rmtree(staging, ignore_errors=True)
        reason = "no MCAP file" if isinstance(error, StopIteration) else str(error)
        raise EpisodeWriteError(f"cannot recover {folder} now ({reason}); its data stays in "
                                f"{partial if moved else source} and recovery is tried again at "
                                "the next start") from None
    finally:
        try:
            staging.parent.rmdir()
        except OSError:
            pass  # not empty (another episode's staging) or already gone
    return writer.messages


def _stored_qos(text: str) -> list[QosProfile]:
    """The QoS profiles an MCAP channel keeps (rosbag2 YAML; '' for none), as dicts again."""
    import yaml

    try:
        profiles = yaml.safe_load(text) if text else []
    except yaml.YAMLError:
        return []
    return profiles if isinstance(profiles, list) else []
