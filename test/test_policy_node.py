"""policy_node over real DDS with the tiny checkpoint: cameras, joint states and
instructions in; action chunks, status and holds out."""

from __future__ import annotations

import contextlib
import threading
import time

import cv2
import numpy as np
import pytest
from conftest import wait_for
from ros_probe import NodeProcess, RosProbe
from sensor_msgs.msg import CompressedImage, Image, JointState
from std_msgs.msg import String
from std_srvs.srv import Trigger
from test_policy_runtime import lerobot_direct
from trajectory_msgs.msg import JointTrajectory

from smolvla_ros.feetech.emulator import MOCK_CALIBRATION
from smolvla_ros.msg import PolicyStatus
from smolvla_ros.nodes.ros_time import to_seconds
from smolvla_ros.units import SO101_JOINTS, ArmUnits

UNITS = ArmUnits(MOCK_CALIBRATION)
SEED = 3
JOINTS = np.array([0.1, -0.2, 0.3, -0.4, 0.5, 0.2])
rng = np.random.default_rng(1)
IMAGES = {name: rng.integers(0, 256, (48, 64, 3), dtype=np.uint8) for name in ("front", "wrist")}


class Feeder:
    """Publishes camera images and joint states with fresh stamps, like drivers would."""

    def __init__(self, probe: RosProbe, cameras=("front", "wrist"), compressed=False, images=None):
        self.probe, self.cameras, self.compressed = probe, list(cameras), compressed
        self.images = images or IMAGES  # camera name -> what it sends
        self.joints_on = True
        self.joint_stamps: list[tuple[int, int]] = []  # (sec, nanosec), as sent
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> Feeder:
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.wait(0.05):
            stamp = self.probe.node.get_clock().now().to_msg()
            for name in self.cameras:
                if self.compressed:
                    ok, png = cv2.imencode(".png", self.images[name][:, :, ::-1])
                    msg = CompressedImage(format="png", data=png.tobytes())
                    topic, kind = f"cameras/{name}/image_raw/compressed", CompressedImage
                else:
                    msg = Image(height=48, width=64, encoding="rgb8", step=64 * 3,
                                data=self.images[name].tobytes())
                    topic, kind = f"cameras/{name}/image_raw", Image
                msg.header.stamp = stamp
                self.probe.publish(kind, topic, msg, wait_for_subscriber=False)
            if self.joints_on:
                msg = JointState(name=list(SO101_JOINTS), position=JOINTS.tolist())
                msg.header.stamp = stamp
                self.joint_stamps.append((stamp.sec, stamp.nanosec))
                self.probe.publish(JointState, "joint_states", msg, wait_for_subscriber=False)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)


@pytest.fixture
def probe():
    probe = RosProbe()
    probe.subscribe(JointTrajectory, "action_chunk")
    probe.subscribe(PolicyStatus, "policy_status")
    yield probe
    probe.close()


def start_policy(checkpoint, *params: str) -> NodeProcess:
    """On the CPU, where the tests' LeRobot call runs, whatever the machine has."""
    return NodeProcess("policy_node", "-p", f"policy_path:={checkpoint}", "-p", "robot_id:=mock",
                       "-p", "device:=cpu", "-p", f"noise_seed:={SEED}",
                       *[a for p in params for a in ("-p", p)])


@contextlib.contextmanager
def fed_policy(checkpoint, probe, *params: str, **feeder_options):
    """policy_node with these parameters, loaded and fed by a Feeder; stopped cleanly after."""
    node = start_policy(checkpoint, *params)
    feeder = Feeder(probe, **feeder_options).start()
    try:
        node.wait_for_output("loaded ")
        yield node
    finally:
        feeder.stop()
        assert node.stop() == 0, node.output()


@pytest.fixture
def policy(tiny_checkpoint, probe):
    node = start_policy(tiny_checkpoint)
    node.wait_for_output("loaded ")
    feeder = Feeder(probe).start()
    yield node, feeder
    feeder.stop()
    assert node.stop() == 0, node.output()


def latest_status(probe) -> PolicyStatus:
    return probe.messages("policy_status")[-1]


def instruct(probe, text: str) -> None:
    probe.publish(String, "task_instruction", String(data=text))


def expected_actions(checkpoint, task: str, images=None) -> np.ndarray:
    """LeRobot's actions for the fed observation (``images``: observation.images.<name> ->
    image, default IMAGES), as LeRobot's SO follower would send them: the gripper
    (RANGE_0_100) is clamped to 0..100 on its way to the motor; degrees are not."""
    import torch

    noise = torch.randn((1, 50, 32), generator=torch.Generator().manual_seed(SEED))
    actions = lerobot_direct(checkpoint, images or IMAGES, UNITS.radians_to_lerobot(JOINTS), task,
                             noise)
    actions[:, 5] = np.clip(actions[:, 5], 0.0, 100.0)
    return actions


def as_lerobot(chunk: JointTrajectory) -> np.ndarray:
    return np.array([UNITS.radians_to_lerobot(point.positions) for point in chunk.points])


def test_chunk_matches_lerobot_and_is_timed_from_the_observation(policy, probe, tiny_checkpoint):
    node, feeder = policy
    assert latest_status(probe).state in (PolicyStatus.STATE_IDLE, PolicyStatus.STATE_LOADING)
    time.sleep(0.5)
    assert probe.messages("action_chunk") == []  # no instruction, no motion
    instruct(probe, "pick up the cube")

    def inferred() -> list:  # not the one-point holds: a busy CI host can starve the feeder
        return [c for c in probe.messages("action_chunk") if len(c.points) > 1]
    assert wait_for(lambda: len(inferred()) >= 4, 30), probe.messages("action_chunk")
    chunk = inferred()[0]
    assert list(chunk.joint_names) == list(SO101_JOINTS)
    assert len(chunk.points) == 50
    assert [to_seconds(p.time_from_start) for p in chunk.points] == pytest.approx(
        [k / 30 for k in range(50)], abs=1e-9)
    # The observation's stamp, as a message: sec and nanosec equal (a float second resolves
    # ~238 ns today, and 15 of 15 stamps came out different when it carried them). A hold is
    # stamped 0: timed from its arrival.
    for c in probe.messages("action_chunk"):
        stamp = (c.header.stamp.sec, c.header.stamp.nanosec)
        assert stamp in feeder.joint_stamps if len(c.points) > 1 else stamp == (0, 0)
    np.testing.assert_allclose(as_lerobot(chunk), expected_actions(tiny_checkpoint, "pick up the cube"),
                               rtol=0, atol=1e-9)
    assert wait_for(lambda: latest_status(probe).state == PolicyStatus.STATE_RUNNING)
    status = latest_status(probe)
    assert status.instruction == "pick up the cube" and status.chunks_published >= 1
    assert status.inference_latency > 0 and status.model_id == str(tiny_checkpoint)
    assert status.mode == "float32, 10 steps"  # LeRobot's own: no opt-in speed-up


def test_new_instruction_replans_and_repeats_do_not(policy, probe, tiny_checkpoint):
    node, _ = policy
    for _ in range(3):  # `ros2 topic pub` repeats the same text
        instruct(probe, "pick up the cube")
        time.sleep(0.1)
    probe.wait_for_messages("action_chunk")
    assert node.output().count("new instruction: 'pick up the cube'") == 1
    instruct(probe, "open the gripper")
    node.wait_for_output("new instruction: 'open the gripper'")
    expected = expected_actions(tiny_checkpoint, "open the gripper")
    assert wait_for(lambda: any(np.allclose(as_lerobot(c), expected, atol=1e-9)
                                for c in probe.messages("action_chunk")), 30)
    assert latest_status(probe).instruction == "open the gripper"


def test_empty_instruction_holds_and_stops_inference(policy, probe):
    instruct(probe, "pick up the cube")
    probe.wait_for_messages("action_chunk")
    instruct(probe, "")
    assert wait_for(lambda: len(probe.messages("action_chunk")[-1].points) == 1)
    hold = probe.messages("action_chunk")[-1]
    np.testing.assert_allclose(hold.points[0].positions, JOINTS)
    # Timed from arrival (stamp 0), one control period later: never in the past on arrival.
    assert to_seconds(hold.header.stamp) == 0.0
    assert to_seconds(hold.points[0].time_from_start) == pytest.approx(1 / 30)
    assert wait_for(lambda: latest_status(probe).state == PolicyStatus.STATE_IDLE)
    count = len(probe.messages("action_chunk"))
    time.sleep(2.0)  # longer than a chunk's half: an inferring node would have published
    assert len(probe.messages("action_chunk")) == count


def test_stale_joint_states_hold_with_a_reason(policy, probe):
    _, feeder = policy
    instruct(probe, "pick up the cube")
    assert wait_for(lambda: latest_status(probe).state == PolicyStatus.STATE_RUNNING, 30)
    feeder.joints_on = False
    assert wait_for(lambda: latest_status(probe).state == PolicyStatus.STATE_HOLDING and
                    "joint_states is" in latest_status(probe).message, 30)
    assert wait_for(lambda: len(probe.messages("action_chunk")[-1].points) == 1)  # a hold
    feeder.joints_on = True
    assert wait_for(lambda: latest_status(probe).state == PolicyStatus.STATE_RUNNING, 30)


def test_silent_camera_is_named_with_its_topic(tiny_checkpoint, probe):
    # The wrist camera has a publisher that sends nothing: it is awaited, not left out.
    probe.node.create_publisher(Image, "cameras/wrist/image_raw", 10)
    with fed_policy(tiny_checkpoint, probe, cameras=["front"]):
        instruct(probe, "pick up the cube")
        assert wait_for(lambda: latest_status(probe).message ==
                        "no image yet from camera 'wrist' (waiting on /cameras/wrist/image_raw)", 30)
        assert latest_status(probe).state == PolicyStatus.STATE_HOLDING
        assert probe.messages("action_chunk") == [] or \
            all(len(c.points) == 1 for c in probe.messages("action_chunk"))


def test_malformed_images_are_rejected_and_the_node_keeps_running(policy, probe):
    node, _ = policy
    bad = Image(height=48, width=64, encoding="yuv422", step=128, data=bytes(48 * 128))
    short = Image(height=48, width=64, encoding="rgb8", step=192, data=bytes(100))
    expected = ("camera 'front': image rejected: encoding 'yuv422' is not supported",
                "camera 'wrist': image rejected: 100 bytes of data")

    def rejected_both() -> bool:
        # Camera topics are best effort, keep-last: send again until each one got through.
        probe.publish(Image, "cameras/front/image_raw", bad)
        probe.publish(Image, "cameras/wrist/image_raw", short)
        return all(line in node.output() for line in expected)
    assert wait_for(rejected_both, 30, period_s=0.2), node.output()
    instruct(probe, "pick up the cube")
    probe.wait_for_messages("action_chunk")
    assert node.process.poll() is None


def test_compressed_transport(tiny_checkpoint, probe):
    with fed_policy(tiny_checkpoint, probe, "image_transport:=compressed", compressed=True):
        instruct(probe, "pick up the cube")
        chunk = probe.wait_for_messages("action_chunk")[0]
        np.testing.assert_allclose(as_lerobot(chunk),
                                   expected_actions(tiny_checkpoint, "pick up the cube"), atol=1e-9)


def test_opt_in_modes_reach_the_runtime_and_status(tiny_checkpoint, probe):
    """vision_runtime, static_cache and prepack as parameters: the chunk is still LeRobot's
    (float32 rounding: OpenVINO's encoder, oneDNN's products), and policy_status says which
    modes run."""
    with fed_policy(tiny_checkpoint, probe, "vision_runtime:=openvino", "static_cache:=true",
                    "prepack:=true"):
        instruct(probe, "pick up the cube")
        chunk = probe.wait_for_messages("action_chunk")[0]
        np.testing.assert_allclose(as_lerobot(chunk),
                                   expected_actions(tiny_checkpoint, "pick up the cube"), atol=1e-3)
        assert wait_for(lambda: latest_status(probe).state == PolicyStatus.STATE_RUNNING)
        assert latest_status(probe).mode == ("float32, prepacked linear, 10 steps, OpenVINO "
                                             "vision, static cache")


def test_pause_resume_reset_services(policy, probe):
    instruct(probe, "pick up the cube")
    probe.wait_for_messages("action_chunk")
    assert probe.call(Trigger, "pause").message == "paused"
    assert wait_for(lambda: latest_status(probe).message == "paused")
    assert probe.call(Trigger, "resume").message == "resumed"
    assert wait_for(lambda: latest_status(probe).state == PolicyStatus.STATE_RUNNING, 30)
    assert probe.call(Trigger, "reset").success
    assert wait_for(lambda: latest_status(probe).state == PolicyStatus.STATE_IDLE)
    assert latest_status(probe).instruction == ""


def test_missing_checkpoint_is_reported_and_the_node_stays_up(probe, tmp_path):
    node = NodeProcess("policy_node", "-p", f"policy_path:={tmp_path / 'nothing'}",
                       "-p", "robot_id:=mock")
    try:
        node.wait_for_output(f"checkpoint folder {tmp_path / 'nothing'} does not exist")
        assert wait_for(lambda: probe.messages("policy_status") and
                        latest_status(probe).state == PolicyStatus.STATE_ERROR, 30)
        assert "does not exist" in latest_status(probe).message
        assert node.process.poll() is None
    finally:
        assert node.stop() == 0, node.output()


def test_missing_calibration_is_one_fatal_line(tmp_path, tiny_checkpoint):
    node = NodeProcess("policy_node", "-p", f"policy_path:={tiny_checkpoint}",
                       "-p", "robot_id:=nobody", "-p", f"calibration_dir:={tmp_path}")
    assert node.process.wait(timeout=60) == 1
    node.stop()
    assert "no calibration file" in node.output() and "Traceback" not in node.output()


def test_too_long_instruction_is_a_truncation_warning(policy, probe):
    node, _ = policy
    instruct(probe, "pick up the red cube and place it in the blue box " * 8)
    node.wait_for_output("tokens, the policy reads 48: it will be truncated")
    probe.wait_for_messages("action_chunk")  # ...and still acted on


def test_synchronous_timing_publishes_chunks_that_start_on_arrival(tiny_checkpoint, probe):
    with fed_policy(tiny_checkpoint, probe, "timing:=sync"):
        instruct(probe, "pick up the cube")
        chunks = probe.wait_for_messages("action_chunk", 2)
        for chunk in chunks:
            assert (chunk.header.stamp.sec, chunk.header.stamp.nanosec) == (0, 0)  # on arrival
            assert [to_seconds(p.time_from_start) for p in chunk.points] == pytest.approx(
                [(k + 1) / 30 for k in range(50)], abs=1e-9)  # the first action is not past
        np.testing.assert_allclose(as_lerobot(chunks[0]),
                                   expected_actions(tiny_checkpoint, "pick up the cube"),
                                   rtol=0, atol=1e-9)
