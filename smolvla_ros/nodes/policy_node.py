"""policy_node: SmolVLA on ROS 2. Cameras, joint states and an instruction in; timed action
chunks out as trajectory_msgs/JointTrajectory.

The checkpoint loads on a background thread (state ``loading`` meanwhile); its input
features decide which camera topics to subscribe to, named from the dataset's side of a
saved rename map, then ``camera_map`` (smolvla_ros.policy.cameras). A camera topic without
a publisher is looked at periodically: while it has none and never sent an image, that
camera is left out of the observation (smolvla_ros.policy.controller). Inference runs on
the controller's worker thread, never in a callback; a control-rate timer decides when.
"""

from __future__ import annotations

import threading
import time

import numpy as np
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from rcl_interfaces.msg import ParameterDescriptor
from rclpy.exceptions import InvalidParameterTypeException, ParameterUninitializedException
from rclpy.node import Node
from rclpy.parameter import Parameter
from rclpy.qos import qos_profile_sensor_data
from sensor_msgs.msg import CompressedImage, Image, JointState
from std_msgs.msg import String
from std_srvs.srv import Trigger
from trajectory_msgs.msg import JointTrajectory

from smolvla_ros.calibration import calibration_path, robot_calibration
from smolvla_ros.msg import PolicyStatus
from smolvla_ros.nodes.common import core_logger, declare_parameters, freeze_startup_objects, run
from smolvla_ros.nodes.ros_time import (
    now_seconds, time_from_nanoseconds, to_duration, to_nanoseconds, to_seconds,
)
from smolvla_ros.policy.cameras import parse_camera_map
from smolvla_ros.policy.controller import (
    ERROR, HOLDING, IDLE, LOADING, RUNNING, ChunkOut, PolicyController, PolicyControllerConfig,
)
from smolvla_ros.policy.images import ImageError, compressed_to_rgb, image_to_rgb
from smolvla_ros.policy.runtime import PolicyLoadError, PolicyRuntime, PolicyRuntimeConfig
from smolvla_ros.trajectory_cdr import trajectory_to_cdr
from smolvla_ros.units import ArmUnits

STATES = {LOADING: PolicyStatus.STATE_LOADING, IDLE: PolicyStatus.STATE_IDLE,
          RUNNING: PolicyStatus.STATE_RUNNING, HOLDING: PolicyStatus.STATE_HOLDING,
          ERROR: PolicyStatus.STATE_ERROR}

CAMERA_CHECK_PERIOD_S = 0.5  # how often camera topics are looked at for publishers
REJECTION_LOG_PERIOD_S = 5.0  # a refused input's log line, per cause, at most this often

# name: (default, description). config/policy.yaml lists the same, for --params-file.
PARAMETERS = {
    "policy_path": ("lerobot/smolvla_base", "hub id or local folder of a LeRobot SmolVLA checkpoint"),
    "device": ("auto", "auto (CUDA if present, else CPU), cpu, cuda, cuda:1, ..."),
    "dtype": ("auto", "auto = float32 on every device, as LeRobot infers; bfloat16 (opt-in) casts "
                      "the VLM and action expert: faster, actions deviate (bench/fast_modes.py)"),
    "tf32": (False, "CUDA only: float32 matrix products on TF32 tensor cores, as lerobot-eval runs "
                    "them: faster, actions deviate by rounding (bench/fast_modes.py)"),
    "num_steps": (0, "flow-matching steps; 0 = the checkpoint's (10). Fewer is faster and changes "
                     "the actions (bench/fast_modes.py)"),
    "quantize": ("none", "none; int8 = int8 Linear weights, activations quantised as they come "
                         "(CPU): torch's in float32, and the OpenVINO runtimes' graphs in either "
                         "dtype: opt-in, actions deviate (bench/fast_modes.py)"),
    "compile": (False, "torch.compile the vision encoder, and with static_cache or cuda_graph "
                       "the prefix pass and flow step, at load time (slower start; "
                       "bench/fast_modes.py)"),
    "prepack": (False, "CPU: Linear weights laid out once, at load, for oneDNN's product: faster, "
                       "actions deviate by rounding, 1.5 GiB more memory for the full-size model "
                       "(bench/fast_modes.py)"),
    "vision_runtime": ("torch", "torch; openvino = the vision encoder on OpenVINO (CPU; "
                                "converted at load): faster, actions deviate by rounding "
                                "(bench/fast_modes.py)"),
    "expert_runtime": ("torch", "torch; openvino = the action expert's flow step on OpenVINO (CPU; "
                                "converted at load, with the static cache's loop): faster in "
                                "float32, actions deviate by rounding (bench/fast_modes.py)"),
    "static_cache": (False, "the denoising loop on a static KV cache: LeRobot's actions, exactly "
                            "on a CPU; faster (bench/fast_modes.py)"),
    "cuda_graph": (False, "CUDA only: that loop replayed as one CUDA graph, and each image's "
                          "embedding as another, captured on the first chunk "
                          "(bench/fast_modes.py)"),
    "fps": (30.0, "control rate: action k of a chunk is due k/fps after its observation"),
    "vlm_path": ("", "replaces the checkpoint's VLM/tokenizer path (moved or offline checkpoints)"),
    "tokenizer_max_length": (0, "instruction tokens the policy reads; 0 = the checkpoint's (48)"),
    "image_transport": ("raw", "raw (cameras/<name>/image_raw) or compressed (.../compressed)"),
    "camera_map": ([], "ros_name=checkpoint_name entries, e.g. [front=camera1, wrist=camera2]: read "
                       "the checkpoint's camera (model name, or dataset name of its saved rename "
                       "map) from cameras/<ros_name>/image_raw; same direction as LeRobot's "
                       "rename_map"),
    "timing": ("async", "async: chunks timed from their observation, the next inferred while one "
                        "runs (LeRobot's async inference); sync: each chunk run whole from its "
                        "arrival, the arm holding while the model runs (a machine slower than a "
                        "chunk: LeRobot's synchronous rollout)"),
    "chunk_threshold": (0.5, "start the next inference when this fraction of the chunk is left"),
    "aggregate": ("replace", "overlap of chunks: replace; weighted_average, latest_only, average, "
                             "conservative (LeRobot's async-inference functions); or rtc "
                             "(LeRobot's real-time chunking)"),
    "rtc_execution_horizon": (10, "aggregate rtc: how many actions of the old chunk to agree with"),
    "rtc_max_guidance_weight": (10.0, "aggregate rtc: LeRobot's RTC max_guidance_weight"),
    "stale_after_s": (0.5, "hold instead of inferring on an image or joint state older than this"),
    "noise_seed": (-1, ">= 0: the same flow-matching noise for every chunk (reproducible runs)"),
    "robot_id": ("so101_follower", "calibration of the arm (LeRobot robot id); 'mock' = the "
                                   "emulated/simulated arm's built-in calibration"),
    "calibration_dir": ("", "folder holding <robot_id>.json; empty = LeRobot's default folder"),
    "use_degrees": (True, "LeRobot units of the checkpoint: degrees (>= 0.4.3) or -100..100"),
    "robot_type": ("so_follower", "robot_type passed to the policy's processors (LeRobot's "
                                  "for an SO follower)"),
    "status_period_s": (1.0, "policy_status and diagnostics period (also sent on every change)"),
}


class PolicyNode(Node):
    def __init__(self):
        super().__init__("policy_node")
        self.p = declare_parameters(self, {k: v for k, v in PARAMETERS.items() if k != "camera_map"})
        self.p["camera_map"] = self._declare_camera_map()
        if self.p["image_transport"] not in ("raw", "compressed"):
            raise ValueError(f"image_transport must be raw or compressed, not {self.p['image_transport']!r}")
        self.units = ArmUnits(self._calibration(), use_degrees=self.p["use_degrees"])
        self.chunk_pub = self.create_publisher(JointTrajectory, "action_chunk", 10)
        self.status_pub = self.create_publisher(PolicyStatus, "policy_status", 10)
        self.diagnostics_pub = self.create_publisher(DiagnosticArray, "diagnostics", 10)
        self.controller: PolicyController | None = None
        self.runtime: PolicyRuntime | None = None
        self._load_error = ""
        self._last_sent = None
        self._times_made: dict[tuple, tuple[np.ndarray, np.ndarray]] = {}
        self._rejections_logged: dict[str, float] = {}  # log line -> when it was last logged
        self.create_timer(self.p["status_period_s"], self._publish_status_and_diagnostics)
        self._loader = threading.Thread(target=self._load, name="policy-loader", daemon=True)
        self._loader.start()
        self._setup_timer = self.create_timer(0.05, self._finish_setup)
        # Listening from the start: an instruction sent while the model loads (14 s for the
        # full-size one) is kept, and acted on once the policy is ready.
        self._pending_instruction: str | None = None
        self.create_subscription(String, "task_instruction", self._on_instruction, 10)
        self._publish_status()

    def _declare_camera_map(self) -> list[str]:
        """A string array whose default is empty: rclpy would type an empty default as a byte
        array, and ROS YAML files cannot hold an empty array, so the type alone is declared
        and "not set" means empty."""
        try:
            self.declare_parameter("camera_map", Parameter.Type.STRING_ARRAY,
                                   ParameterDescriptor(description=PARAMETERS["camera_map"][1]))
            entries = list(self.get_parameter("camera_map").value)
        except ParameterUninitializedException:
            return []
        except InvalidParameterTypeException:
            raise ValueError("camera_map must be a string array, e.g. "
                             "-p 'camera_map:=[front=camera1, wrist=camera2]'") from None
        parse_camera_map(entries)  # a malformed entry is a fatal line now, not after loading
        return entries

    def _calibration(self):
        try:
            return robot_calibration(self.p["robot_id"], "follower", self.p["calibration_dir"])
        except FileNotFoundError:
            path = calibration_path(self.p["robot_id"], "follower", self.p["calibration_dir"])
            raise ValueError(
                f"no calibration file {path}: the policy needs the arm's calibration to convert "
                "joint_states to LeRobot units (set robot_id/calibration_dir, or robot_id:=mock "
                "for the emulated or simulated arm)") from None

    # --- loading (background thread), then wiring (executor thread) ---------------------------
    def _load(self) -> None:
        try:
            runtime = PolicyRuntime(PolicyRuntimeConfig(
                policy_path=self.p["policy_path"], device=self.p["device"], dtype=self.p["dtype"],
                tf32=self.p["tf32"], num_steps=self.p["num_steps"], quantize=self.p["quantize"],
                compile=self.p["compile"], prepack=self.p["prepack"],
                vision_runtime=self.p["vision_runtime"], expert_runtime=self.p["expert_runtime"],
                static_cache=self.p["static_cache"], cuda_graph=self.p["cuda_graph"],
                vlm_path=self.p["vlm_path"], tokenizer_max_length=self.p["tokenizer_max_length"],
                robot_type=self.p["robot_type"], camera_map=tuple(self.p["camera_map"])))
            warm_up = runtime.warm_up()
        except PolicyLoadError as error:
            self._load_error = str(error)
            return
        except Exception as error:  # anything else LeRobot raises while loading
            self._load_error = f"cannot load {self.p['policy_path']!r}: {error!r}".splitlines()[0]
            return
        self.get_logger().info(
            f"loaded {self.p['policy_path']} on {runtime.device} ({runtime.mode}) in "
            f"{runtime.load_time_s:.1f} s, warm-up inference {warm_up:.2f} s; cameras "
            f"(ros name=checkpoint name): {', '.join(c.describe() for c in runtime.cameras)}")
        for note in runtime.load_notes:
            self.get_logger().info(note)
        self.runtime = runtime

    def _finish_setup(self) -> None:
        if self._loader.is_alive():
            return
        self.destroy_timer(self._setup_timer)  # (not cancel: see nodes/instruction.py)
        if self.runtime is None:
            self.get_logger().error(self._load_error)
            self._publish_status()
            return
        freeze_startup_objects()  # the model, loaded after the node started
        try:
            self.controller = PolicyController(
                self.runtime, self.units, PolicyControllerConfig(
                    fps=self.p["fps"], chunk_threshold=self.p["chunk_threshold"],
                    aggregate=self.p["aggregate"], stale_after_s=self.p["stale_after_s"],
                    noise_seed=self.p["noise_seed"],
                    rtc_execution_horizon=self.p["rtc_execution_horizon"],
                    rtc_max_guidance_weight=self.p["rtc_max_guidance_weight"],
                    timing=self.p["timing"]),
                self._publish_chunk, core_logger(self), lambda: now_seconds(self))
        except ValueError as error:
            self._load_error = str(error)
            self.get_logger().error(self._load_error)
            self._publish_status()
            return
        compressed = self.p["image_transport"] == "compressed"
        for name, topic in self.controller.camera_topics.items():
            subscription = self.create_subscription(
                CompressedImage if compressed else Image, f"{topic}/compressed" if compressed else topic,
                lambda msg, n=name: self._on_image(n, msg), qos_profile_sensor_data)
            self.controller.camera_topics[name] = subscription.topic_name  # remapped, absolute
        self._check_cameras()
        self.create_timer(CAMERA_CHECK_PERIOD_S, self._check_cameras)
        self.create_subscription(JointState, "joint_states", self._on_joints, qos_profile_sensor_data)
        if self._pending_instruction is not None:
            self.get_logger().info(f"acting on the instruction received while loading: "
                                   f"{self._pending_instruction!r}")
            self.controller.set_instruction(self._pending_instruction, now_seconds(self))
        self.create_service(Trigger, "pause", lambda _, res: self._service(res, lambda: self.controller.pause(True)))
        self.create_service(Trigger, "resume", lambda _, res: self._service(res, lambda: self.controller.pause(False)))
        self.create_service(Trigger, "reset", lambda _, res: self._service(res, self.controller.reset))
        self.create_timer(1.0 / self.p["fps"], self._tick)
        self._publish_status()

    # --- callbacks --------------------------------------------------------------------------------
    def _check_cameras(self) -> None:
        self.controller.set_publishers({name: self.count_publishers(topic)
                                        for name, topic in self.controller.camera_topics.items()})

    def _on_image(self, name: str, msg) -> None:
        try:
            if isinstance(msg, CompressedImage):
                rgb = compressed_to_rgb(bytes(msg.data))
            else:
                rgb = image_to_rgb(msg.encoding, msg.height, msg.width, msg.step, bytes(msg.data))
        except ImageError as error:
            self._reject(name, f"camera '{name}': image rejected: {error}")
            return
        self.controller.update_image(name, rgb, to_seconds(msg.header.stamp))

    def _on_joints(self, msg: JointState) -> None:
        try:
            self.controller.update_joints(msg.name, msg.position, to_nanoseconds(msg.header.stamp))
        except ValueError as error:
            self._reject("joint_states", f"joint_states rejected: {error}")

    def _reject(self, source: str, reason: str) -> None:
        """An input message refused: the status says why (the controller keeps it until the
        input is accepted again), and the log says it once per cause, again every 5 s."""
        self.controller.reject_input(source, reason)
        now = time.monotonic()
        if now - self._rejections_logged.get(reason, -float("inf")) > REJECTION_LOG_PERIOD_S:
            self.get_logger().error(reason)
            # Forget causes not seen for a period (reasons carry sizes: they could pile up).
            self._rejections_logged = {line: at for line, at in self._rejections_logged.items()
                                       if now - at <= REJECTION_LOG_PERIOD_S}
            self._rejections_logged[reason] = now

    def _on_instruction(self, msg: String) -> None:
        if self.controller is None:  # still loading (or failed to): keep the latest
            self._pending_instruction = msg.data.strip()
        else:
            self.controller.set_instruction(msg.data.strip(), now_seconds(self))
        self._publish_status_if_changed()

    def _tick(self) -> None:
        self.controller.tick(now_seconds(self))
        self._publish_status_if_changed()

    def _service(self, response: Trigger.Response, action) -> Trigger.Response:
        response.message = action()
        response.success = True
        self._publish_status_if_changed()
        return response

    def _publish_chunk(self, chunk: ChunkOut) -> None:
        if not self.context.ok():
            return  # an inference that finished during shutdown: nobody left to move
        stamp = time_from_nanoseconds(chunk.stamp_ns)
        # Serialized here, not by rclpy from 50 point objects: the chunk's build and publish
        # took 0.5 ms that way, of the ~2.5 ms policy_node adds to an inference.
        self.chunk_pub.publish(trajectory_to_cdr(
            chunk.joint_names, (stamp.sec, stamp.nanosec), *self._times(chunk), chunk.positions))

    def _times(self, chunk: ChunkOut) -> tuple[np.ndarray, np.ndarray]:
        """Each point's time_from_start as (sec, nanosec) arrays. Every chunk of a run has the
        same times, so they are made once."""
        key = (chunk.first_s, chunk.fps, len(chunk.positions))
        if key not in self._times_made:
            durations = [to_duration(chunk.first_s + k / chunk.fps)
                         for k in range(len(chunk.positions))]
            self._times_made[key] = (np.array([d.sec for d in durations], dtype=np.int32),
                                     np.array([d.nanosec for d in durations], dtype=np.uint32))
        return self._times_made[key]

    # --- status --------------------------------------------------------------------------------------
    def _status(self) -> PolicyStatus:
        msg = PolicyStatus(model_id=self.p["policy_path"])
        msg.header.stamp = self.get_clock().now().to_msg()
        if self.controller is None:
            msg.state = STATES[ERROR] if self._load_error else STATES[LOADING]
            msg.message = self._load_error or f"loading {self.p['policy_path']}"
            if self._pending_instruction is not None:
                msg.instruction = self._pending_instruction
                if not self._load_error:
                    msg.message += ", instruction received: acted on once loaded"
            return msg
        s = self.controller.status
        msg.state, msg.instruction, msg.mode = STATES[s.state], s.instruction, self.runtime.mode
        msg.message = self.controller.status_message()
        msg.inference_latency, msg.observation_age = s.inference_latency, s.observation_age
        msg.chunks_published = s.chunks_published
        return msg

    def _status_key(self) -> tuple:
        """What makes a status new. Built from the controller without a message: it is looked
        at every control tick, beside a running model."""
        if self.controller is None:
            msg = self._status()
            return (msg.state, msg.message, msg.instruction, msg.chunks_published)
        s = self.controller.status
        return (s.state, self.controller.status_message(), s.instruction, s.chunks_published)

    def _publish_status(self) -> None:
        self._last_sent = self._status_key()
        self.status_pub.publish(self._status())

    def _publish_status_if_changed(self) -> None:
        if self._status_key() != self._last_sent:
            self._publish_status()

    def _publish_status_and_diagnostics(self) -> None:
        self._publish_status()
        status = DiagnosticStatus(name=f"{self.get_name()}: policy", hardware_id=self.p["policy_path"])
        if self.controller is None:
            status.level = DiagnosticStatus.ERROR if self._load_error else DiagnosticStatus.OK
            status.message = self._load_error or "loading"
        else:
            s = self.controller.status
            status.level = {ERROR: DiagnosticStatus.ERROR, HOLDING: DiagnosticStatus.WARN}.get(
                s.state, DiagnosticStatus.OK if s.cameras else DiagnosticStatus.WARN)
            message = self.controller.status_message()
            status.message = f"{s.state}: {message}" if message else s.state
            topics = self.controller.camera_topics
            values = {"instruction": s.instruction,
                      "cameras": ", ".join(f"{n} ({topics[n]})" for n in s.cameras),
                      "absent_cameras": ", ".join(f"{n} ({topics[n]})" for n in s.absent_cameras),
                      "device": self.runtime.device,
                      "mode": self.runtime.mode, "load_time_s": f"{self.runtime.load_time_s:.2f}",
                      "inference_latency_s": f"{s.inference_latency:.3f}",
                      "observation_age_s": f"{s.observation_age:.3f}",
                      "chunks_published": s.chunks_published, "queue_depth": s.queue_depth,
                      "starved_ticks": s.starved_ticks, "dropped_results": s.dropped_results,
                      "rejected_inputs": "; ".join(s.rejected_inputs.values())}
            status.values = [KeyValue(key=k, value=str(v)) for k, v in values.items()]
        array = DiagnosticArray(status=[status])
        array.header.stamp = self.get_clock().now().to_msg()
        self.diagnostics_pub.publish(array)

    def destroy_node(self) -> None:
        if self.controller is not None:
            self.controller.close()
        super().destroy_node()


def main(args: list[str] | None = None) -> int:
    return run(PolicyNode, args)
