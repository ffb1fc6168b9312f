"""recorder_node: each episode a rosbag2 (MCAP) bag with its task text.

Subscribes to the configured topics as serialized messages (no decode, no copy into Python
objects) and hands them to the ROS-free EpisodeWriter. Services start_episode,
stop_episode and discard_episode (std_srvs/Trigger) control it; with
``start_on_instruction`` a new instruction starts an episode by itself; like lerobot-record,
``episode_duration_s`` with ``reset_duration_s`` records episode after episode with a reset
pause between them (stop_episode during the pause ends the sequence). Camera topics are
discovered as they appear. EpisodeStatus is published while recording and on every change.
"""

from __future__ import annotations

import importlib
import shutil
from pathlib import Path

from ament_index_python.packages import get_package_share_directory
from rclpy.node import Node
from rclpy.serialization import deserialize_message, serialize_message
from sensor_msgs.msg import CompressedImage, Image
from std_msgs.msg import String
from std_srvs.srv import Trigger

from smolvla_ros.msg import EpisodeStatus
from smolvla_ros.nodes.common import core_logger, declare_parameters, run
from smolvla_ros.policy.images import ImageError, image_to_rgb, rgb_to_compressed
from smolvla_ros.recording.episode import (
    EpisodeInfo, EpisodeWriteError, EpisodeWriter, is_unfinished, make_typestore,
    msg_definitions, recover_episode,
)

DEFAULT_TOPICS = ["joint_states", "leader/joint_states", "task_instruction", "action_chunk",
                  "policy_status", "cube_pose"]  # cube_pose: the simulation's, to tell success
CAMERA_PREFIX = "cameras/"

PARAMETERS = {
    "output_dir": ("episodes", "folder for episode bags (episode_000000, episode_000001, ...)"),
    "topics": (DEFAULT_TOPICS, "topics recorded besides the discovered cameras"),
    "record_cameras": (True, "record every cameras/<name>/image_raw (and /compressed) topic"),
    "robot_type": ("so101_follower", "stored with each episode"),
    "robot_id": ("so101_follower", "calibration id stored with each episode"),
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
        for folder in sorted(self.output_dir.glob("episode_*")):
            if is_unfinished(folder):
                count = recover_episode(folder, self.typestore)
                self.log("warn", f"recovered {count} messages of unfinished episode {folder}")

    # --- topics ---------------------------------------------------------------------------
    def _discover(self) -> None:
        wanted = {self.resolve_topic_name(t): t for t in self.p["topics"]}
        for name, types in self.get_topic_names_and_types():
            relative = name.lstrip("/")
            camera = self.p["record_cameras"] and CAMERA_PREFIX in name and (
                name.endswith("/image_raw") or name.endswith("/image_raw/compressed"))
            if (name in wanted or camera) and name not in self._subscribed and types:
                self._subscribe(name, wanted.get(name, relative), types[0])

    def _subscribe(self, name: str, label: str, msgtype: str) -> None:
        package, _, type_name = msgtype.split("/")  # e.g. sensor_msgs/msg/Image
        message_class = getattr(importlib.import_module(f"{package}.msg"), type_name)
        self._subscribed.add(name)
        self.create_subscription(message_class, name,
                                 lambda data, t=label, m=msgtype: self._on_message(t, m, data),
                                 1000, raw=True)  # deep: a slow disk must not drop

    # --- messages -------------------------------------------------------------------------
    def _on_message(self, topic: str, msgtype: str, data: bytes) -> None:
        stamp_ns = self.get_clock().now().nanoseconds
        if topic == "task_instruction":
            self._on_instruction(deserialize_message(data, String).data.strip(), stamp_ns)
        if self.writer is None:
            return
        if self.p["compress_images"] and msgtype == "sensor_msgs/msg/Image":
            topic, msgtype, data = self._compressed(topic, data)
            if data is None:
                return
        try:
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
        info = EpisodeInfo(episode_index=int(folder.name.split("_")[1]), task=self.task,
                           robot_type=self.p["robot_type"], calibration_id=self.p["robot_id"])
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


def main(args: list[str] | None = None) -> int:
    return run(RecorderNode, args)
