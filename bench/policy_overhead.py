"""Benchmark: new-instruction-to-published-chunk time through policy_node vs LeRobot's
direct call on the same input.

Same process, same checkpoint, same observation (two 480x640 rgb8 camera images and a joint
state, published once per trial): the direct call is LeRobot's
``postprocess(predict_action_chunk(preprocess(prepare_observation_for_inference(obs))))``;
the node path runs from publishing a new instruction to the chunk's arrival on
``action_chunk`` (DDS both ways, image and unit conversion, the worker hand-off included).
Nothing else streams meanwhile, so the difference is the node's own overhead. Trials
alternate A/B so machine drift hits both. The node runs with ``timing:=sync``: a chunk is
published however long its inference took (in the default async timing a full-size chunk
on a CPU is over before it is ready and the node holds instead: the trial never ended);
the path through the node is otherwise the same. Printed, not asserted:

    python bench/policy_overhead.py                 # tiny test checkpoint
    python bench/policy_overhead.py --full-size     # SmolVLA's 450M architecture (~1.8 GB)
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import rclpy
import torch
from lerobot.configs import PreTrainedConfig
from lerobot.policies.factory import make_pre_post_processors
from lerobot.policies.smolvla.modeling_smolvla import SmolVLAPolicy
from lerobot.policies.utils import prepare_observation_for_inference
from rclpy.executors import MultiThreadedExecutor
from sensor_msgs.msg import Image, JointState
from std_msgs.msg import String
from trajectory_msgs.msg import JointTrajectory

from smolvla_ros.feetech.emulator import MOCK_CALIBRATION
from smolvla_ros.msg import PolicyStatus
from smolvla_ros.nodes.policy_node import PolicyNode
from smolvla_ros.policy.tiny_checkpoint import make_test_checkpoint
from smolvla_ros.units import SO101_JOINTS, ArmUnits

HEIGHT, WIDTH = 480, 640
JOINTS = np.array([0.1, -0.2, 0.3, -0.4, 0.5, 0.2])


def direct_call(checkpoint: Path):
    """LeRobot's own inference path, timed per call."""
    config = PreTrainedConfig.from_pretrained(checkpoint)
    policy = SmolVLAPolicy.from_pretrained(checkpoint, config=config)
    preprocess, postprocess = make_pre_post_processors(config, pretrained_path=str(checkpoint))
    state = ArmUnits(MOCK_CALIBRATION).radians_to_lerobot(JOINTS).astype(np.float32)
    cameras = [key for key in config.input_features if key.startswith("observation.images.")]

    def call(task: str) -> float:
        started = time.perf_counter()
        observation = {"observation.state": state.copy(),
                       **{key: np.zeros((HEIGHT, WIDTH, 3), np.uint8) for key in cameras}}
        frame = prepare_observation_for_inference(observation, torch.device("cpu"), task=task,
                                                  robot_type="so_follower")
        postprocess(policy.predict_action_chunk(preprocess(frame)))
        return time.perf_counter() - started
    return call


class NodeHarness:
    """policy_node and a probe node in this process."""

    def __init__(self, checkpoint: Path):
        # Observations are published once per trial, so staleness is switched off.
        rclpy.init(args=["--ros-args", "-p", f"policy_path:={checkpoint}", "-p", "robot_id:=mock",
                         "-p", "stale_after_s:=1000.0", "-p", "timing:=sync"])
        self.node = PolicyNode()
        self.probe = rclpy.create_node("bench_probe")
        self.arrived = threading.Event()
        self.status = PolicyStatus()
        self.probe.create_subscription(JointTrajectory, "action_chunk", self._on_chunk, 10)
        self.probe.create_subscription(PolicyStatus, "policy_status", self._on_status, 10)
        self.instruction = self.probe.create_publisher(String, "task_instruction", 10)
        self.executor = MultiThreadedExecutor(num_threads=2)
        for node in (self.node, self.probe):
            self.executor.add_node(node)
        threading.Thread(target=self.executor.spin, daemon=True).start()
        while self.node.controller is None:
            time.sleep(0.1)
        self.images = {name: self.probe.create_publisher(Image, f"cameras/{name}/image_raw", 5)
                       for name in self.node.controller.camera_topics}
        self.joints = self.probe.create_publisher(JointState, "joint_states", 5)
        while self.instruction.get_subscription_count() == 0 or \
                self.joints.get_subscription_count() == 0:
            time.sleep(0.05)

    def _on_chunk(self, msg: JointTrajectory) -> None:
        if len(msg.points) > 1:  # not a hold
            self.arrived.set()

    def _on_status(self, msg: PolicyStatus) -> None:
        self.status = msg

    def stop(self) -> None:
        """Empty instruction: the node goes idle, so it neither competes for the CPU nor
        takes the next text for anything but a re-plan."""
        self.instruction.publish(String(data=""))
        while self.status.state != PolicyStatus.STATE_IDLE:
            time.sleep(0.01)
        time.sleep(0.2)  # let an inference in flight at the stop finish (it is dropped)

    def observe(self) -> None:
        stamp = self.probe.get_clock().now().to_msg()
        for publisher in self.images.values():
            msg = Image(height=HEIGHT, width=WIDTH, encoding="rgb8", step=WIDTH * 3,
                        data=bytes(HEIGHT * WIDTH * 3))
            msg.header.stamp = stamp
            publisher.publish(msg)
        msg = JointState(name=list(SO101_JOINTS), position=JOINTS.tolist())
        msg.header.stamp = stamp
        self.joints.publish(msg)
        time.sleep(0.3)  # delivered before the instruction

    def call(self, task: str) -> float:
        """Seconds from publishing a new instruction to its chunk's arrival."""
        self.arrived.clear()
        started = time.perf_counter()
        self.instruction.publish(String(data=task))
        self.arrived.wait(timeout=600)
        return time.perf_counter() - started

    def close(self) -> None:
        self.executor.shutdown()
        self.node.destroy_node()
        self.probe.destroy_node()
        rclpy.try_shutdown()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--full-size", action="store_true")
    parser.add_argument("--trials", type=int, default=0, help="default: 10 tiny, 3 full-size")
    args = parser.parse_args()
    trials = args.trials or (3 if args.full_size else 10)
    with tempfile.TemporaryDirectory() as folder:
        checkpoint = make_test_checkpoint(Path(folder) / "ckpt", full_size=args.full_size)
        direct = direct_call(checkpoint)
        harness = NodeHarness(checkpoint)
        try:
            direct("warm up")
            times = {"node": [], "direct": []}
            for trial in range(trials):
                task = f"pick up the cube number {trial}"
                harness.stop()
                harness.observe()
                times["direct"].append(direct(task))
                times["node"].append(harness.call(task))
        finally:
            harness.close()
    node, base = statistics.median(times["node"]), statistics.median(times["direct"])
    ratios = [n / d for n, d in zip(times["node"], times["direct"])]
    size = "full-size (450M)" if args.full_size else "tiny"
    print(f"{size} SmolVLA, 2 cameras {WIDTH}x{HEIGHT}, CPU, {trials} alternating trials")
    print(f"  LeRobot direct call      median {base * 1e3:9.1f} ms")
    print(f"  through policy_node      median {node * 1e3:9.1f} ms")
    print(f"  ratio node/direct        median x{statistics.median(ratios):.3f} "
          f"(min x{min(ratios):.3f}, max x{max(ratios):.3f})")
    print(f"  overhead                 median {(node - base) * 1e3:9.1f} ms")


if __name__ == "__main__":
    main()
