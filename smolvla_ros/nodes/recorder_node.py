"""recorder_node: each episode a rosbag2 (MCAP) bag with its task text.

Subscribes to the configured topics as serialized messages (no decode, no copy into Python
objects) and hands them to the ROS-free EpisodeWriter. Services start_episode,
stop_episode and discard_episode (std_srvs/Trigger) control it; with
``start_on_instruction`` a new instruction starts an episode by itself; like lerobot-record,
``episode_duration_s`` with ``reset_duration_s`` records episode after episode with a reset
pause between them (stop_episode during the pause ends the sequence). Camera topics are
discovered as they appear. EpisodeStatus is published while recording and on every change.

Bags look like ``ros2 bag record``'s: fully qualified topic names and each topic's offered QoS
profiles (asked of the graph when the topic's first message of the episode arrives). Each
episode also carries the calibration of the follower (``robot_id``) and of the leader
(``leader_id``) as read when it starts, so conversion elsewhere needs no calibration files.
"""

from __future__ import annotations

import importlib
import shutil
from pathlib import Path

from ament_index_python.packages import get_package_share_directory
from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, HistoryPolicy, LivelinessPolicy, QoSProfile, ReliabilityPolicy
from rclpy.serialization import deserialize_message, serialize_message
from sensor_msgs.msg import CompressedImage, Image
from std_msgs.msg import String
from std_srvs.srv import Trigger

from smolvla_ros.calibration import calibration_path, calibration_to_json, robot_calibration
from smolvla_ros.msg import EpisodeStatus
from smolvla_ros.nodes.common import core_logger, declare_parameters, run
from smolvla_ros.policy.images import ImageError, image_to_rgb, rgb_to_compressed
from smolvla_ros.recording.episode import (
    ROBOT_TYPE, EpisodeInfo, EpisodeWriteError, EpisodeWriter, QosProfile, make_typestore,
    msg_definitions, recover_episode, unfinished_episodes,
)

DEFAULT_TOPICS = ["joint_states", "leader/joint_states", "task_instruction", "action_chunk",
                  "policy_status", "cube_pose"]  # cube_pose: the simulation's, to tell success
CAMERA_PREFIX = "cameras/"

PARAMETERS = {
    "output_dir": ("episodes", "folder for episode bags (episode_000000, episode_000001, ...)"),
    "topics": (DEFAULT_TOPICS, "topics recorded besides the discovered cameras"),
    "record_cameras": (True, "record every cameras/<name>/image_raw (and /compressed) topic"),
    "robot_type": (ROBOT_TYPE, "stored with each episode; LeRobot's name for the SO-100/SO-101 "
                               "follower, what lerobot-record stores"),
    "robot_id": ("so101_follower", "follower calibration id: its id and LeRobot calibration JSON "
                                   "are stored with each episode; 'mock' = the emulated/simulated arm"),
    "leader_id": ("", "leader calibration id, stored the same way (the action's units); "
                      "empty = no leader arm"),
    "calibration_dir": ("", "folder holding <id>.json; empty = LeRobot's default folder per role"),
    "episode_duration_s": (0.0, "stop an episode after this long; 0 = until stop_episode"),
    "reset_duration_s": (0.0, "after an episode ends by episode_duration_s, pause this long "
                              "(state RESETTING) and start the next one; 0 = no automatic next"),
    "num_episodes": (0, "automatic episodes (reset pause) end after this many; 0 = no limit"),
    "start_on_instruction": (False, "a new non-empty instruction starts an episode"),
    "compress_images": ("", "'' keeps raw images; 'jpeg' or 'png' stores cameras/<name>/image_raw "
                            "as sensor_msgs/CompressedImage on .../image_raw/compressed"),
    "jpeg_quality": (90, "JPEG quality when compress_images is jpeg"),
    "status_period_s": (1.0, "episode_status period while recording"),
}


class RecorderNode(Node):
    def __init__(self):
        super().__init__("recorder_node")
        self.p = declare_parameters(self, PARAMETERS)
        self.output_dir = Path(self.p["output_dir"]).expanduser()
        self.output_dir.mkdir(parents=True, exist_ok=True)
        share = Path(get_package_share_directory("smolvla_ros"))
        self.typestore = make_typestore(msg_definitions(share / "msg"))
        self.log = core_logger(self)
        self._recover_unfinished()
        self.writer: EpisodeWriter | None = None
        self.task = ""
        self.state = EpisodeStatus.STATE_IDLE
        self.message = ""
        self._episodes_this_run = 0
        self._timer = None  # the episode's duration limit, or the reset pause
        self._subscribed: set[str] = set()
        self._calibration_warned: set[tuple[str, str]] = set()
        self.status_pub = self.create_publisher(EpisodeStatus, "episode_status", 10)
        self.create_service(Trigger, "start_episode", self._on_start)
        self.create_service(Trigger, "stop_episode", self._on_stop)
        self.create_service(Trigger, "discard_episode", self._on_discard)
        self.create_timer(self.p["status_period_s"], self._periodic)
        self._discover()
        self.create_timer(1.0, self._discover)
        self._publish_status()
        self.log("info", f"ready: episodes go to {self.output_dir} "
                         "(services start_episode, stop_episode, discard_episode)")

    def _recover_unfinished(self) -> None:
        """Every start retries every unfinished episode; one that cannot be rebuilt now (a full
        disk) is one error line, its data stays where it is, and the node runs on."""
        for folder in unfinished_episodes(self.output_dir):
            try:
                count = recover_episode(folder, self.typestore)
            except EpisodeWriteError as error:
                self.log("error", str(error))
                continue
            self.log("warn", f"recovered {count} messages of unfinished episode {folder}")

    # --- topics ---------------------------------------------------------------------------
    def _discover(self) -> None:
        wanted = {self.resolve_topic_name(t): t for t in self.p["topics"]}
        for name, types in self.get_topic_names_and_types():
            relative = name.lstrip("/")
            camera = self.p["record_cameras"] and CAMERA_PREFIX in name and (
                name.endswith("/image_raw") or name.endswith("/image_raw/compressed"))
            # Not before a publisher exists: the subscription's QoS is chosen from its offer
            # (a topic seen only through a subscriber, say policy_node's, waits for the next pass).
            if ((name in wanted or camera) and name not in self._subscribed and types
                    and self.count_publishers(name)):
                self._subscribe(name, wanted.get(name, relative), types[0])

    def _subscribe(self, name: str, label: str, msgtype: str) -> None:
        """``name`` is fully qualified (what the bag stores); ``label`` is the configured name."""
        package, _, type_name = msgtype.split("/")  # e.g. sensor_msgs/msg/Image
        message_class = getattr(importlib.import_module(f"{package}.msg"), type_name)
        self._subscribed.add(name)
        self.create_subscription(message_class, name,
                                 lambda data, n=name, t=label, m=msgtype: self._on_message(n, t, m, data),
                                 adapted_qos(self, name), raw=True)

    # --- messages -------------------------------------------------------------------------
    def _on_message(self, name: str, label: str, msgtype: str, data: bytes) -> None:
        stamp_ns = self.get_clock().now().nanoseconds
        if label == "task_instruction":
            self._on_instruction(deserialize_message(data, String).data.strip(), stamp_ns)
        if self.writer is None:
            return
        topic = name
        if self.p["compress_images"] and msgtype == "sensor_msgs/msg/Image":
            topic, msgtype, data = self._compressed(name, data)
            if data is None:
                return
        try:
            if not self.writer.has_topic(topic):  # the publishers' QoS, as `ros2 bag record` keeps it
                self.writer.add_topic(topic, msgtype, offered_qos(self, name))
            self.writer.write(topic, msgtype, stamp_ns, data)
        except EpisodeWriteError as error:
            self._finish(f"error: {error}", EpisodeStatus.STATE_ERROR)

    def _compressed(self, topic: str, data: bytes):
        """A raw camera image as a serialized CompressedImage on ``<topic>/compressed``."""
        image = deserialize_message(data, Image)
        try:
            rgb = image_to_rgb(image.encoding, image.height, image.width, image.step, bytes(image.data))
            fmt, payload = rgb_to_compressed(rgb, self.p["compress_images"], self.p["jpeg_quality"])
        except ImageError as error:
            self.writer.dropped += 1
            self.log("error", f"{topic}: image not recorded: {error}")
            return topic, None, None
        out = CompressedImage(header=image.header, format=fmt, data=payload)
        return f"{topic}/compressed", "sensor_msgs/msg/CompressedImage", serialize_message(out)

    def _on_instruction(self, text: str, stamp_ns: int) -> None:
        if text == self.task:
            return
        self.task = text
        if self.writer is not None:
            self.writer.set_task(text, stamp_ns)  # a mid-episode change is kept, with its time
        elif text and self.p["start_on_instruction"]:
            self._start()

    # --- episodes ---------------------------------------------------------------------------
    def _next_folder(self) -> Path:
        indices = [int(p.name.split("_")[1].split(".")[0]) for p in self.output_dir.glob("episode_*")]
        return self.output_dir / f"episode_{max(indices, default=-1) + 1:06d}"

    def _start(self) -> str:
        if self.writer is not None:
            raise RuntimeError(f"already recording {self.writer.folder}")
        folder = self._next_folder()
        robot_id, leader_id = self.p["robot_id"], self.p["leader_id"]
        info = EpisodeInfo(episode_index=int(folder.name.split("_")[1]), task=self.task,
                           robot_type=self.p["robot_type"],
                           calibration_id=robot_id, calibration_json=self._calibration(robot_id, "follower"),
                           leader_calibration_id=leader_id,
                           leader_calibration_json=self._calibration(leader_id, "leader"),
                           namespace=self.get_namespace())
        try:
            self.writer = EpisodeWriter(folder, info, self.typestore)
        except EpisodeWriteError as error:
            self._set(EpisodeStatus.STATE_ERROR, str(error))
            raise RuntimeError(str(error)) from None
        if self.task:
            self.writer.set_task(self.task, self.get_clock().now().nanoseconds)
        self._episodes_this_run += 1
        self._arm(self.p["episode_duration_s"], self._on_duration)
        self._set(EpisodeStatus.STATE_RECORDING, "")
        self.log("info", f"recording {folder} (task: {self.task!r})")
        return str(folder)

    def _calibration(self, robot_id: str, role: str) -> str:
        """The arm's calibration as LeRobot JSON, read now (what is in force for this episode);
        '' with one warning (once per arm) if there is none: the episode records all the same."""
        if not robot_id:
            return ""
        try:
            return calibration_to_json(robot_calibration(robot_id, role, self.p["calibration_dir"]))
        except (OSError, ValueError) as error:
            if (role, robot_id) not in self._calibration_warned:
                self._calibration_warned.add((role, robot_id))
                reason = (f"no file {calibration_path(robot_id, role, self.p['calibration_dir'])}"
                          if isinstance(error, FileNotFoundError) else str(error))
                option = "--robot-id" if role == "follower" else "--leader-id"
                self.log("warn", f"{role} calibration '{robot_id}' not stored with episodes ({reason}); "
                                 f"they record without it and `smolvla-ros convert` needs {option}")
            return ""

    def _finish(self, ended_by: str, state: int = EpisodeStatus.STATE_IDLE) -> str:
        self._arm(0.0, None)
        writer, self.writer = self.writer, None
        try:
            writer.close(ended_by)
        except EpisodeWriteError as error:
            ended_by, state = f"error: {error}", EpisodeStatus.STATE_ERROR
        summary = f"{writer.folder}: {writer.messages} messages, {writer.dropped} dropped ({ended_by})"
        self.log("error" if state == EpisodeStatus.STATE_ERROR else "info", f"episode saved: {summary}")
        self._set(state, ended_by if state == EpisodeStatus.STATE_ERROR else "", writer)
        return summary

    def _arm(self, seconds: float, callback) -> None:
        """One pending one-shot timer at most: the duration limit or the reset pause."""
        if self._timer is not None:
            self.destroy_timer(self._timer)
            self._timer = None
        if seconds > 0:
            def fire():
                self._arm(0.0, None)
                callback()
            self._timer = self.create_timer(seconds, fire)

    def _on_duration(self) -> None:
        if self.writer is None:
            return
        self._finish("duration")
        limit = self.p["num_episodes"]
        if self.p["reset_duration_s"] > 0 and (limit <= 0 or self._episodes_this_run < limit):
            self._set(EpisodeStatus.STATE_RESETTING, f"reset: next episode in {self.p['reset_duration_s']} s")
            self.log("info", f"reset pause of {self.p['reset_duration_s']} s before the next episode")
            self._arm(self.p["reset_duration_s"], self._on_reset_done)

    def _on_reset_done(self) -> None:
        try:
            self._start()
        except RuntimeError as error:
            self.log("error", f"next episode not started: {error}")

    def _on_start(self, _, response: Trigger.Response) -> Trigger.Response:
        self._arm(0.0, None)  # during a reset pause: start now
        try:
            response.message, response.success = self._start(), True
        except RuntimeError as error:
            response.message, response.success = str(error), False
        return response

    def _on_stop(self, _, response: Trigger.Response) -> Trigger.Response:
        if self.writer is None and self.state == EpisodeStatus.STATE_RESETTING:
            self._arm(0.0, None)
            self._set(EpisodeStatus.STATE_IDLE, "")
            response.message, response.success = "reset pause cancelled; no further episodes", True
        elif self.writer is None:
            response.message, response.success = "not recording", False
        else:
            response.message, response.success = self._finish("stop"), True
        return response

    def _on_discard(self, _, response: Trigger.Response) -> Trigger.Response:
        if self.writer is None:
            response.message, response.success = "not recording", False
            return response
        folder = self.writer.folder
        self._finish("discarded")
        shutil.rmtree(folder)
        response.message, response.success = f"discarded {folder}", True
        return response

    def _periodic(self) -> None:
        if self.writer is not None or self.state == EpisodeStatus.STATE_RESETTING:
            self._publish_status()

    # --- status ------------------------------------------------------------------------------
    def _set(self, state: int, message: str, writer: EpisodeWriter | None = None) -> None:
        self.state, self.message = state, message
        self._publish_status(writer)

    def _publish_status(self, writer: EpisodeWriter | None = None) -> None:
        if not self.context.ok():
            return  # shutting down after Ctrl-C or SIGTERM: nobody to tell, the bag is closed
        writer = writer or self.writer
        msg = EpisodeStatus(state=self.state, message=self.message, task=self.task)
        msg.header.stamp = self.get_clock().now().to_msg()
        if writer is not None:
            msg.episode_index = writer.info.episode_index
            msg.frames, msg.dropped = writer.messages, writer.dropped
            msg.duration = (writer.info.end_ns - writer.info.start_ns) * 1e-9
            msg.output_path = str(writer.folder)
        self.status_pub.publish(msg)

    def destroy_node(self) -> None:
        if self.writer is not None:
            self._finish("shutdown")  # Ctrl-C or SIGTERM: a closed, readable bag
        super().destroy_node()


def adapted_qos(node: Node, topic: str) -> QoSProfile:
    """The subscription QoS that hears every publisher, as rosbag2 chooses it: reliable only if
    all offer reliable (a reliable request never matches a best-effort camera driver, such as
    one publishing with sensor-data QoS), transient-local only if all offer it. Deep: a slow
    disk must not drop."""
    offers = [info.qos_profile for info in node.get_publishers_info_by_topic(topic)]
    reliable = all(q.reliability == ReliabilityPolicy.RELIABLE for q in offers)
    latched = bool(offers) and all(q.durability == DurabilityPolicy.TRANSIENT_LOCAL for q in offers)
    return QoSProfile(depth=1000,
                      reliability=ReliabilityPolicy.RELIABLE if reliable else ReliabilityPolicy.BEST_EFFORT,
                      durability=DurabilityPolicy.TRANSIENT_LOCAL if latched else DurabilityPolicy.VOLATILE)


def offered_qos(node: Node, topic: str) -> list[QosProfile]:
    """The QoS profiles the publishers of ``topic`` offer, as rosbag2 (Jazzy, metadata version 9)
    writes them in metadata.yaml, so a bag replays with its publishers' QoS."""
    return [qos_profile_dict(info.qos_profile) for info in node.get_publishers_info_by_topic(topic)]


def qos_profile_dict(qos: QoSProfile) -> QosProfile:
    """One profile in rosbag2's version-9 form: policies by rmw's lower-case names, durations
    as {sec, nsec} (infinite = RMW_DURATION_INFINITE, 9223372036 s 854775807 ns)."""
    def duration(value) -> dict:
        sec, nsec = divmod(value.nanoseconds, 10**9)
        return {"sec": sec, "nsec": nsec}

    return {
        "history": HistoryPolicy(qos.history).name.lower(),
        "depth": qos.depth,
        "reliability": ReliabilityPolicy(qos.reliability).name.lower(),
        "durability": DurabilityPolicy(qos.durability).name.lower(),
        "deadline": duration(qos.deadline),
        "lifespan": duration(qos.lifespan),
        "liveliness": LivelinessPolicy(qos.liveliness).name.lower(),
        "liveliness_lease_duration": duration(qos.liveliness_lease_duration),
        "avoid_ros_namespace_conventions": qos.avoid_ros_namespace_conventions,
    }


def main(args: list[str] | None = None) -> int:
    return run(RecorderNode, args)
