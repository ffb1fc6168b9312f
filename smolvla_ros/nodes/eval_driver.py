"""eval's own node: gives instructions, resets the scene, reads the outcome.

A thin rclpy shell: it publishes on ``task_instruction``, calls the simulation's ``reset``
and the recorder's ``stop_episode``, and keeps the latest ``task_result`` and
``policy_status`` and counts of ``action_chunk``; the episode logic is in evaluation/cli.py.
"""

from __future__ import annotations

import threading
import time

from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node
from sensor_msgs.msg import Image
from std_msgs.msg import String
from std_srvs.srv import Trigger
from trajectory_msgs.msg import JointTrajectory

from smolvla_ros.msg import PolicyStatus, TaskResult
from smolvla_ros.nodes.ros_time import to_nanoseconds
from smolvla_ros.policy.images import image_to_rgb


class EvalDriver(Node):
    def __init__(self, video_camera: str = "front"):
        super().__init__("eval_driver")
        self.lock = threading.Lock()
        self.result: TaskResult | None = None
        self.policy: PolicyStatus | None = None
        self.chunks = 0
        self.holds = 0
        self.latencies: list[float] = []
        self.frame_stamps: list[int] = []  # ns stamps of the video camera's frames
        self.video = None  # an Mp4Writer while an episode is filmed
        self.instruction_pub = self.create_publisher(String, "task_instruction", 10)
        self.create_subscription(TaskResult, "task_result", self._on_result, 10)
        self.create_subscription(PolicyStatus, "policy_status", self._on_policy, 10)
        self.create_subscription(JointTrajectory, "action_chunk", self._on_chunk, 10)
        self.camera_topic = f"cameras/{video_camera}/image_raw"
        self.create_subscription(Image, self.camera_topic, self._on_image, 5)
        self.reset_client = self.create_client(Trigger, "reset")
        self.stop_client = self.create_client(Trigger, "stop_episode")
        self._executor = SingleThreadedExecutor(context=self.context)
        self._executor.add_node(self)
        self._thread = threading.Thread(target=self._executor.spin, daemon=True)
        self._thread.start()

    # --- callbacks (the executor's thread) ------------------------------------------------------
    def _on_result(self, msg: TaskResult) -> None:
        with self.lock:
            self.result = msg

    def _on_policy(self, msg: PolicyStatus) -> None:
        with self.lock:
            if self.policy is not None and msg.chunks_published > self.policy.chunks_published:
                self.latencies.append(msg.inference_latency)
            self.policy = msg

    def _on_chunk(self, msg: JointTrajectory) -> None:
        with self.lock:
            self.chunks += 1
            self.holds += len(msg.points) == 1  # the policy's hold (a stop, stale input)

    def _on_image(self, msg: Image) -> None:
        with self.lock:  # held while filming: the episode closes the video under it
            self.frame_stamps = [*self.frame_stamps[-9:], to_nanoseconds(msg.header.stamp)]
            if self.video is not None:
                self.video.add(image_to_rgb(msg.encoding, msg.height, msg.width, msg.step,
                                            bytes(msg.data)))

    # --- what the episode logic calls (main thread) ---------------------------------------------
    def now_ns(self) -> int:
        return self.get_clock().now().nanoseconds

    def say(self, text: str) -> None:
        self.instruction_pub.publish(String(data=text))

    def call(self, client, timeout_s: float = 30.0) -> Trigger.Response:
        if not client.wait_for_service(timeout_sec=timeout_s):
            raise TimeoutError(f"service {client.srv_name} is not offered")
        future = client.call_async(Trigger.Request())
        deadline = time.monotonic() + timeout_s
        while not future.done():
            if time.monotonic() > deadline:
                raise TimeoutError(f"service {client.srv_name} did not answer in {timeout_s:g} s")
            time.sleep(0.01)
        return future.result()

    def subscribers(self, topic: str) -> int:
        return self.count_subscribers(topic)

    def close(self) -> None:
        self._executor.shutdown()
        self._thread.join(timeout=5)
        self.destroy_node()
