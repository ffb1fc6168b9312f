"""Test-side ROS node: records what nodes under test publish, publishes and calls services.

It spins in a background thread of the test process, on its own rclpy context, so tests
talk to node processes over real DDS while they poll and assert in plain Python.
"""

from __future__ import annotations

import os
import subprocess
import threading
from collections import defaultdict

import rclpy
from ament_index_python.packages import get_package_prefix
from rclpy.executors import SingleThreadedExecutor

from conftest import ros_env, wait_for


class RosProbe:
    def __init__(self, name: str = "test_probe"):
        self.context = rclpy.Context()
        rclpy.init(context=self.context)
        self.node = rclpy.create_node(name, context=self.context)
        self.received: dict[str, list] = defaultdict(list)
        self._publishers = {}
        self._lock = threading.Lock()
        self._executor = SingleThreadedExecutor(context=self.context)
        self._executor.add_node(self.node)
        self._thread = threading.Thread(target=self._executor.spin, daemon=True)
        self._thread.start()

    def subscribe(self, msg_type, topic: str) -> list:
        def record(msg):
            with self._lock:
                self.received[topic].append(msg)
        self.node.create_subscription(msg_type, topic, record, 50)
        return self.received[topic]

    def messages(self, topic: str) -> list:
        with self._lock:
            return list(self.received[topic])

    def wait_for_messages(self, topic: str, count: int = 1, timeout_s: float = 30.0) -> list:
        assert wait_for(lambda: len(self.messages(topic)) >= count, timeout_s), \
            f"{len(self.messages(topic))} message(s) on {topic}, expected {count}"
        return self.messages(topic)

    def publish(self, msg_type, topic: str, msg, wait_for_subscriber: bool = True) -> None:
        publisher = self._publishers.get(topic)
        if publisher is None:
            publisher = self._publishers[topic] = self.node.create_publisher(msg_type, topic, 10)
        if wait_for_subscriber:
            assert wait_for(lambda: publisher.get_subscription_count() > 0, 30), f"no subscriber on {topic}"
        publisher.publish(msg)

    def subscription_count(self, topic: str) -> int:
        """Subscribers matched by this probe's publisher on ``topic`` (0 if none yet)."""
        publisher = self._publishers.get(topic)
        return publisher.get_subscription_count() if publisher else 0

    def acked(self, topic: str, timeout_s: float) -> bool:
        """Every matched subscriber has acknowledged what this probe published on ``topic``."""
        from rclpy.duration import Duration

        return self._publishers[topic].wait_for_all_acked(Duration(seconds=timeout_s))

    def call(self, srv_type, name: str, request=None, timeout_s: float = 30.0):
        client = self.node.create_client(srv_type, name)
        assert client.wait_for_service(timeout_sec=timeout_s), f"no service {name}"
        future = client.call_async(request or srv_type.Request())
        assert wait_for(future.done, timeout_s), f"{name} did not answer"
        return future.result()

    def now(self) -> float:
        return self.node.get_clock().now().nanoseconds * 1e-9

    def close(self) -> None:
        self._executor.shutdown()
        self.node.destroy_node()
        self.context.try_shutdown()
        self._thread.join(timeout=5)


class NodeProcess:
    """A node executable under test, started as `ros2 run smolvla_ros <name>` would start it."""

    def __init__(self, executable: str, *ros_args: str, program: list[str] | None = None):
        """``program``: run this command line instead of the installed executable (a test
        helper that wraps the node)."""
        path = os.path.join(get_package_prefix("smolvla_ros"), "lib", "smolvla_ros", executable)
        self.process = subprocess.Popen(
            [*(program or [path]), "--ros-args", *ros_args],
            env=ros_env(PYTHONUNBUFFERED="1"), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            text=True)
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        for line in self.process.stdout:
            self.lines.append(line.rstrip("\n"))

    def output(self) -> str:
        return "\n".join(self.lines)

    def wait_for_output(self, text: str, timeout_s: float = 120.0) -> None:
        """Wait until the node prints ``text``. The generous default is only spent on failure:
        a loaded CI machine has taken over 30 s just to import torch and LeRobot in a node."""
        assert wait_for(lambda: text in self.output(), timeout_s), \
            f"{text!r} not in node output:\n{self.output()}"

    def stop(self) -> int:
        if self.process.poll() is None:
            self.process.send_signal(2)  # SIGINT, like Ctrl-C
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._reader.join(timeout=5)
        self.process.stdout.close()
        return self.process.returncode
