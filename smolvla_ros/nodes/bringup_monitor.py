"""The bringup command's observer: gives the instruction when the graph is ready, and
keeps what the summary reports (chunks, inference latency, arm motion, the joint_states rate,
the episode's bag)."""

from __future__ import annotations

import time

import numpy as np
from rclpy.node import Node
from sensor_msgs.msg import JointState
from trajectory_msgs.msg import JointTrajectory

from smolvla_ros.msg import EpisodeStatus, PolicyStatus
from smolvla_ros.nodes.instruction import InstructionOnReady


class Monitor(Node):
    def __init__(self, instruction: str, listeners: int):
        super().__init__("bringup_monitor")
        self.instruction = instruction
        # listeners: task_instruction subscribers to wait for (policy, recorder)
        self.giver = InstructionOnReady(self, instruction, listeners)
        self.chunks = 0
        self.latencies: list[float] = []
        self.policy_message = ""
        self.first: np.ndarray | None = None
        self.last: np.ndarray | None = None
        self.path_length = 0.0
        self.joint_messages = 0
        self.first_joints_at = self.last_joints_at = 0.0  # arrivals, monotonic seconds
        self.bag = ""
        self.episode_messages = 0
        self.create_subscription(PolicyStatus, "policy_status", self._on_policy, 10)
        self.create_subscription(JointTrajectory, "action_chunk", self._on_chunk, 10)
        self.create_subscription(JointState, "joint_states", self._on_joints, 100)
        self.create_subscription(EpisodeStatus, "episode_status", self._on_episode, 10)

    def _on_policy(self, msg: PolicyStatus) -> None:
        self.policy_message = msg.message
        if msg.state == PolicyStatus.STATE_ERROR:
            self.get_logger().error(f"policy: {msg.message}", throttle_duration_sec=10.0)
        if msg.state == PolicyStatus.STATE_RUNNING and msg.inference_latency > 0:
            self.latencies.append(msg.inference_latency)

    def _on_chunk(self, _msg: JointTrajectory) -> None:
        self.chunks += 1

    def _on_joints(self, msg: JointState) -> None:
        self.joint_messages += 1
        self.last_joints_at = time.monotonic()
        if self.joint_messages == 1:
            self.first_joints_at = self.last_joints_at
        position = np.asarray(msg.position, dtype=float)
        if self.first is None:
            self.first = position
        elif self.last is not None and position.shape == self.last.shape:
            self.path_length += float(np.abs(position - self.last).sum())
        self.last = position

    def _on_episode(self, msg: EpisodeStatus) -> None:
        if msg.output_path:
            self.bag, self.episode_messages = msg.output_path, msg.frames

    def summary(self) -> str:
        lines = ["bringup summary:",
                 f"  instruction:        {self.instruction!r} "
                 f"({'published' if self.giver.instructed else 'NOT published: the policy never got ready'})",
                 f"  chunks published:   {self.chunks}"]
        if self.latencies:
            lines.append(f"  inference latency:  median {np.median(self.latencies) * 1e3:.0f} ms, "
                         f"max {max(self.latencies) * 1e3:.0f} ms")
        if self.first is not None and self.last is not None and self.first.shape == self.last.shape:
            moved = np.abs(self.last - self.first).max()
            lines.append(f"  arm motion:         {self.path_length:.3f} rad travelled (all joints), "
                         f"largest net change {moved:.3f} rad")
            span = self.last_joints_at - self.first_joints_at
            if span > 0:  # a graph too busy for its own inputs shows here first
                lines.append(f"  joint_states:       {(self.joint_messages - 1) / span:.1f} Hz received "
                             f"({self.joint_messages} in {span:.1f} s)")
        else:
            lines.append("  arm motion:         no joint_states received")
        if self.bag:
            lines.append(f"  episode bag:        {self.bag} ({self.episode_messages}+ messages)")
        if self.policy_message:
            lines.append(f"  policy says:        {self.policy_message}")
        return "\n".join(lines)
