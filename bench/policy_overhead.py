"""Benchmark: new-instruction-to-published-chunk time through policy_node vs LeRobot's
direct call on the same input.

Same checkpoint, same observation (two 480x640 rgb8 camera images and a joint state,
published once per trial): the direct call is LeRobot's
``postprocess(predict_action_chunk(preprocess(prepare_observation_for_inference(obs))))``;
the node path runs from publishing a new instruction to the chunk's arrival on
``action_chunk``, read into a Trajectory as so101_node and sim_node read it (DDS both ways,
image and unit conversion, the worker hand-off included).
Nothing else streams meanwhile, so the difference is the node's own overhead. Trials
alternate A/B so machine drift hits both. The node (with its probe) and LeRobot's call each
run in a child process of their own, called in turn (InChild says why; ``--same-process``
runs both in the bench's process, as #12's figure was taken).
The node runs with ``timing:=sync``: a chunk is published however long its inference took
(in the default async timing a full-size chunk on a CPU is over before it is ready and the
node holds instead: the trial never ended); the path through the node is otherwise the same.
As a baseline for the two DDS hops, the same hops between two bare rclpy nodes in the node's
process are timed too (BareHops). Printed, not asserted:

    python bench/policy_overhead.py                 # tiny test checkpoint
    python bench/policy_overhead.py --full-size     # SmolVLA's 450M architecture (~1.8 GB)
"""

from __future__ import annotations

import argparse
import multiprocessing
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
from rclpy.executors import SingleThreadedExecutor
from sensor_msgs.msg import Image, JointState
from std_msgs.msg import String
from trajectory_msgs.msg import JointTrajectory

from smolvla_ros.feetech.emulator import MOCK_CALIBRATION
from smolvla_ros.nodes.common import freeze_startup_objects
from smolvla_ros.nodes.policy_node import PolicyNode
from smolvla_ros.policy.controller import IDLE
from smolvla_ros.policy.images import image_to_rgb
from smolvla_ros.policy.runtime import PolicyRuntime
from smolvla_ros.policy.tiny_checkpoint import make_test_checkpoint
from smolvla_ros.trajectory_cdr import trajectory_from_cdr, trajectory_to_cdr
from smolvla_ros.units import SO101_JOINTS, ArmUnits
from trajectory_parse import chunk_times  # bench/, beside this script

HEIGHT, WIDTH = 480, 640
JOINTS = np.array([0.1, -0.2, 0.3, -0.4, 0.5, 0.2])


class DirectCall:
    """LeRobot's own inference path, timed per call."""

    def __init__(self, checkpoint: Path):
        config = PreTrainedConfig.from_pretrained(checkpoint)
        self.policy = SmolVLAPolicy.from_pretrained(checkpoint, config=config)
        self.preprocess, self.postprocess = make_pre_post_processors(
            config, pretrained_path=str(checkpoint))
        self.state = ArmUnits(MOCK_CALIBRATION).radians_to_lerobot(JOINTS).astype(np.float32)
        self.cameras = [key for key in config.input_features
                        if key.startswith("observation.images.")]

    def call(self, task: str) -> float:
        started = time.perf_counter()
        observation = {"observation.state": self.state.copy(),
                       **{key: np.zeros((HEIGHT, WIDTH, 3), np.uint8) for key in self.cameras}}
        frame = prepare_observation_for_inference(observation, torch.device("cpu"), task=task,
                                                  robot_type="so_follower")
        self.postprocess(self.policy.predict_action_chunk(self.preprocess(frame)))
        return time.perf_counter() - started

    def close(self) -> None:
        pass


def _serve(make, args, pipe) -> None:
    target = make(*args)
    try:
        while (request := pipe.recv()) is not None:
            method, arguments = request
            pipe.send(getattr(target, method)(*arguments))
    finally:
        target.close()


class InChild:
    """An object made and called in a child process of its own: ``InChild(DirectCall, ckpt)
    .call(task)`` runs ``DirectCall(ckpt).call(task)`` there. The two paths run in turn,
    each in its own process, as a user's node and LeRobot's script each have theirs.

    Why not one process (found 2026-11-28): torch gives every thread that runs it an OpenMP
    pool. With two live pools on 2 cores libgomp stops spinning at its barriers, and a call
    runs up to 2x slower than alone (tiny model: 23.6 ms alone, 48.9 ms with the other pool
    alive): LeRobot's call on the main thread and the node's inference thread would be two."""

    def __init__(self, make, *args):
        context = multiprocessing.get_context("spawn")  # no fork of rclpy's and torch's threads
        self.pipe, child = context.Pipe()
        self.process = context.Process(target=_serve, args=(make, args, child), daemon=True)
        self.process.start()

    def __getattr__(self, method: str):
        def remote(*arguments):
            try:
                self.pipe.send((method, arguments))
                return self.pipe.recv()
            except (EOFError, OSError):
                self.process.join(5)
                raise SystemExit(f"the bench's child process died in {method}() (exit code "
                                 f"{self.process.exitcode}); its error is printed above") from None
        return remote

    def close(self) -> None:
        try:
            self.pipe.send(None)
        except OSError:  # the child is gone already: the error that ended the bench says why
            pass
        self.process.join(timeout=60)


class Stages:
    """Where a node trial's time goes: the bench wraps three of the node's methods (timing
    only, the calls go through unchanged) and keeps each call's (start, end)."""

    WRAPPED = ((PolicyNode, "_on_instruction"), (PolicyRuntime, "infer"), (PolicyNode, "_publish_chunk"))
    NAMES = ("instruction over DDS", "callback -> model start", "inference", "to radians, schedule",
             "JointTrajectory to bytes + publish", "chunk over DDS into an executor's Trajectory")

    def __init__(self):
        self.calls: dict[str, tuple[float, float]] = {}
        self.rows: list[tuple[float, ...]] = []
        for owner, name in self.WRAPPED:
            setattr(owner, name, self._timed(getattr(owner, name), name))

    def _timed(self, method, name):
        def timed(*args, **kwargs):
            started = time.perf_counter()
            result = method(*args, **kwargs)
            self.calls[name] = (started, time.perf_counter())
            return result
        return timed

    def add(self, sent: float, arrived: float) -> None:
        instruction, infer, publish = (self.calls[name] for _, name in self.WRAPPED)
        marks = (sent, instruction[0], infer[0], infer[1], publish[0], publish[1], arrived)
        self.rows.append(tuple(b - a for a, b in zip(marks, marks[1:])))


def report_stages(rows: list[tuple[float, ...]], hops: list[tuple[float, float]]) -> None:
    print("  where the node's time goes (median per trial):")
    for k, name in enumerate(Stages.NAMES):
        print(f"    {name:<46} {statistics.median(row[k] for row in rows) * 1e3:8.2f} ms")
    text, chunk = (statistics.median(row[k] for row in hops) for k in range(2))
    node = statistics.median(sum(row[:2]) + sum(row[3:]) for row in rows)
    print(f"  the same two hops between bare rclpy nodes in the node's process (median of "
          f"{len(hops)}, each after a model call):")
    print(f"    {'String, publish -> callback':<46} {text * 1e3:8.2f} ms")
    print(f"    {'chunk -> bytes -> Trajectory':<46} {chunk * 1e3:8.2f} ms")
    print(f"  policy_node's stages {node * 1e3:.2f} ms, of which rclpy's floor "
          f"{(text + chunk) * 1e3:.2f} ms: the node's own work {(node - text - chunk) * 1e3:.2f} ms")


class BareHops:
    """The node path's two DDS hops between two bare rclpy nodes in the node's process: what
    rclpy and DDS cost without policy_node. The instruction hop is publish to callback
    (String); the chunk hop, a 50-point chunk serialized as policy_node serializes it
    (trajectory_to_cdr), published, and read into a Trajectory by a subscriber's callback as
    so101_node and sim_node read it. The
    bench takes each right after a model call, as the node's chunk hop always is (its
    instruction hop is in half the trials), with the node idle."""

    def __init__(self, points: int):
        self.chunk = np.tile(JOINTS, (points, 1))
        self.times = chunk_times(points)
        self.source, self.sink = rclpy.create_node("bench_hop_source"), rclpy.create_node("bench_hop_sink")
        self.arrived, self.arrival = threading.Event(), 0.0
        self.sink.create_subscription(String, "bench_hops/text", self._on_message, 10)
        self.sink.create_subscription(JointTrajectory, "bench_hops/chunk", self._on_chunk, 10,
                                      raw=True)
        self.text = self.source.create_publisher(String, "bench_hops/text", 10)
        self.trajectory = self.source.create_publisher(JointTrajectory, "bench_hops/chunk", 10)
        self.executor = SingleThreadedExecutor()  # the sink spun as the probe is
        self.executor.add_node(self.sink)
        threading.Thread(target=self.executor.spin, daemon=True).start()
        while self.text.get_subscription_count() == 0 or self.trajectory.get_subscription_count() == 0:
            time.sleep(0.05)

    def _on_message(self, _msg) -> None:
        self.arrival = time.perf_counter()
        self.arrived.set()

    def _on_chunk(self, raw: bytes) -> None:
        trajectory_from_cdr(raw, SO101_JOINTS, 10000)
        self._on_message(raw)

    def _hop(self, publisher, build) -> float:
        self.arrived.clear()
        started = time.perf_counter()
        publisher.publish(build())
        if not self.arrived.wait(timeout=10):
            raise RuntimeError("a bare hop was not delivered in 10 s")
        return self.arrival - started

    def _trajectory(self) -> bytes:
        """The chunk as policy_node publishes it: serialized by trajectory_to_cdr."""
        return trajectory_to_cdr(SO101_JOINTS, (0, 0), *self.times, self.chunk)

    def text_hop(self) -> float:
        return self._hop(self.text, lambda: String(data="pick up the cube"))

    def chunk_hop(self) -> float:
        return self._hop(self.trajectory, self._trajectory)

    def close(self) -> None:
        self.executor.shutdown()
        self.source.destroy_node()
        self.sink.destroy_node()


class NodeHarness:
    """policy_node, a probe node and the bare hops in one process, with what the bench's
    trials call: ``prepare``, ``call``, ``stop``, ``text_hop``, ``chunk_hop``."""

    def __init__(self, checkpoint: Path):
        self.stages = Stages()
        self.arrival = 0.0
        # Observations are published once per trial, so staleness is switched off.
        rclpy.init(args=["--ros-args", "-p", f"policy_path:={checkpoint}", "-p", "robot_id:=mock",
                         "-p", "stale_after_s:=1000.0", "-p", "timing:=sync"])
        self.node = PolicyNode()
        self.probe = rclpy.create_node("bench_probe")
        self.arrived = threading.Event()
        # The chunk taken as so101_node and sim_node take it: raw bytes read into a Trajectory.
        # Nothing else: a policy_status subscription here would wake the probe to read a
        # message during every inference, which an arm's node never does.
        self.probe.create_subscription(JointTrajectory, "action_chunk", self._on_chunk, 10,
                                       raw=True)
        self.instruction = self.probe.create_publisher(String, "task_instruction", 10)
        # Each node spun as `ros2 run` spins it (rclpy.spin: a single-threaded executor), each
        # on its own thread: the probe's callbacks never wait behind the node's, or the reverse.
        self.executors = []
        for node in (self.node, self.probe):
            executor = SingleThreadedExecutor()
            executor.add_node(node)
            threading.Thread(target=executor.spin, daemon=True).start()
            self.executors.append(executor)
        while self.node.controller is None:
            time.sleep(0.1)
        freeze_startup_objects()  # as run() does for `ros2 run` once the node is made
        self.images = {name: self.probe.create_publisher(Image, f"cameras/{name}/image_raw", 5)
                       for name in self.node.controller.camera_topics}
        self.joints = self.probe.create_publisher(JointState, "joint_states", 5)
        while self.instruction.get_subscription_count() == 0 or \
                self.joints.get_subscription_count() == 0:
            time.sleep(0.05)
        self.hops: BareHops | None = None

    def _on_chunk(self, raw: bytes) -> None:
        if len(trajectory_from_cdr(raw, SO101_JOINTS, 10000).times) > 1:  # not a hold
            self.arrival = time.perf_counter()
            self.arrived.set()

    def stop(self) -> None:
        """Empty instruction: the node goes idle, so it neither competes for the CPU nor
        takes the next text for anything but a re-plan."""
        self.instruction.publish(String(data=""))
        while self.node.controller.status.state != IDLE:  # the node is in this process
            time.sleep(0.01)
        time.sleep(0.2)  # let an inference in flight at the stop finish (it is dropped)

    def prepare(self) -> None:
        """Idle, then one fresh observation: what every trial starts from."""
        self.stop()
        self.observe()

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
        if not self.arrived.wait(timeout=600):
            raise RuntimeError(f"no chunk for {task!r} within 600 s")
        self.stages.add(started, self.arrival)
        return time.perf_counter() - started

    def stage_rows(self) -> list[tuple[float, ...]]:
        return self.stages.rows

    def _bare_hops(self) -> BareHops:
        if self.hops is None:  # made once the node is idle, after the trials
            self.hops = BareHops(points=self.node.runtime.n_action_steps)
        return self.hops

    def text_hop(self) -> float:
        return self._bare_hops().text_hop()

    def chunk_hop(self) -> float:
        return self._bare_hops().chunk_hop()

    def close(self) -> None:
        if self.hops is not None:
            self.hops.close()
        for executor in self.executors:
            executor.shutdown()
        self.node.destroy_node()
        self.probe.destroy_node()
        rclpy.try_shutdown()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--full-size", action="store_true")
    parser.add_argument("--trials", type=int, default=0, help="default: 40 tiny, 3 full-size")
    parser.add_argument("--same-process", action="store_true",
                        help="the node and LeRobot's call both in the bench's own process "
                             "(as #12's figure was taken: two OpenMP pools)")
    args = parser.parse_args()
    trials = args.trials or (3 if args.full_size else 40)
    make = (lambda kind, *arguments: kind(*arguments)) if args.same_process else InChild
    with tempfile.TemporaryDirectory() as folder:
        checkpoint = Path(folder) / "ckpt"
        # Made in a child process: torch run on this thread would leave an OpenMP pool
        # beside the node's inference thread's (see InChild).
        maker = multiprocessing.get_context("spawn").Process(
            target=make_test_checkpoint, args=(checkpoint,), kwargs={"full_size": args.full_size})
        maker.start()
        maker.join()
        if maker.exitcode:
            raise SystemExit(f"making the test checkpoint failed (exit code {maker.exitcode})")
        direct = make(DirectCall, checkpoint)
        harness = make(NodeHarness, checkpoint)
        try:
            direct.call("warm up")
            times = {"node": [], "direct": []}
            for trial in range(trials):
                task = f"pick up the cube number {trial}"
                harness.prepare()
                if trial % 2:  # A/B, then B/A: what runs second is not always the same
                    times["node"].append(harness.call(task))
                    harness.stop()
                    times["direct"].append(direct.call(task))
                else:
                    times["direct"].append(direct.call(task))
                    times["node"].append(harness.call(task))
            harness.stop()  # idle: the node's next chunk must not run beside the bare hops
            hops = []
            for trial in range(trials):
                direct.call("pick up the cube")
                text = harness.text_hop()
                direct.call("pick up the cube")
                hops.append((text, harness.chunk_hop()))
            stage_rows = harness.stage_rows()
        finally:
            harness.close()
            direct.close()
    node, base = statistics.median(times["node"]), statistics.median(times["direct"])
    ratios = [n / d for n, d in zip(times["node"], times["direct"])]
    differences = sorted(n - d for n, d in zip(times["node"], times["direct"]))
    quartiles = statistics.quantiles(differences, n=4) if len(differences) > 1 else differences * 3
    size = "full-size (450M)" if args.full_size else "tiny"
    where = "both in this process" if args.same_process else "each in a process of its own"
    print(f"{size} SmolVLA, 2 cameras {WIDTH}x{HEIGHT}, CPU, {trials} alternating trials, "
          f"policy_node and LeRobot's call {where}")
    print(f"  LeRobot direct call      median {base * 1e3:9.1f} ms")
    print(f"  through policy_node      median {node * 1e3:9.1f} ms")
    print(f"  ratio node/direct        median x{statistics.median(ratios):.3f} "
          f"(min x{min(ratios):.3f}, max x{max(ratios):.3f})")
    print(f"  overhead                 median {(node - base) * 1e3:9.1f} ms; per trial (node - direct) "
          f"median {statistics.median(differences) * 1e3:.1f} ms, quartiles "
          f"{quartiles[0] * 1e3:.1f} .. {quartiles[2] * 1e3:.1f} ms")
    report_stages(stage_rows, hops)
    print(f"  (off that path: a 640x480 rgb8 frame to an array, on arrival: "
          f"{image_conversion_s() * 1e3:.2f} ms)")


def image_conversion_s() -> float:
    """What policy_node's camera callback spends per raw frame (median of 50)."""
    data = bytes(HEIGHT * WIDTH * 3)
    seconds = []
    for _ in range(50):
        started = time.perf_counter()
        image_to_rgb("rgb8", HEIGHT, WIDTH, WIDTH * 3, data)
        seconds.append(time.perf_counter() - started)
    return statistics.median(seconds)


if __name__ == "__main__":
    main()
