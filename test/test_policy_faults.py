"""policy_node under faults from outside (an independent fault run found these): inputs it
refuses say why in the status, and an instruction given while the model loads is kept."""

from __future__ import annotations

import subprocess
import sys
import time

import numpy as np
import pytest
from conftest import HELPERS, wait_for
from diagnostic_msgs.msg import DiagnosticArray
from ros_probe import NodeProcess, RosProbe
from sensor_msgs.msg import Image, JointState
from std_msgs.msg import String
from test_policy_node import IMAGES, JOINTS, Feeder, latest_status, start_policy
from trajectory_msgs.msg import JointTrajectory

from smolvla_ros.msg import PolicyStatus
from smolvla_ros.units import SO101_JOINTS


@pytest.fixture
def probe():
    probe = RosProbe()
    probe.subscribe(JointTrajectory, "action_chunk")
    probe.subscribe(PolicyStatus, "policy_status")
    probe.subscribe(DiagnosticArray, "diagnostics")
    yield probe
    probe.close()


def diagnostic_values(probe) -> dict[str, str]:
    statuses = [s for array in probe.messages("diagnostics") for s in array.status
                if s.name.endswith(": policy")]
    return {v.key: v.value for v in statuses[-1].values} if statuses else {}


def test_status_and_diagnostics_say_why_inputs_are_refused(tiny_checkpoint, probe):
    node = start_policy(tiny_checkpoint, "status_period_s:=0.2")
    feeder = Feeder(probe, cameras=("wrist",)).start()  # front comes from this test, broken
    try:
        node.wait_for_output("loaded ")
        bad = Image(height=48, width=64, encoding="yuv422", step=128, data=bytes(48 * 128))
        probe.publish(Image, "cameras/front/image_raw", bad)
        probe.publish(String, "task_instruction", String(data="pick up the cube"))
        reason = "camera 'front': image rejected: encoding 'yuv422' is not supported"
        assert wait_for(lambda: reason in latest_status(probe).message, 20), latest_status(probe)
        assert latest_status(probe).state == PolicyStatus.STATE_HOLDING
        assert wait_for(lambda: reason in diagnostic_values(probe).get("rejected_inputs", ""), 10)

        # joint_states refused for two causes in turn: the status names the latest, and the
        # log names each cause (throttled per cause, not one line for all of them).
        feeder.joints_on = False
        nan = JointState(name=list(SO101_JOINTS), position=[float("nan")] * 6)
        short = JointState(name=list(SO101_JOINTS[:5]), position=JOINTS[:5].tolist())
        good_front = Image(height=48, width=64, encoding="rgb8", step=192, data=IMAGES["front"].tobytes())
        for _ in range(15):
            for msg in (nan, short):
                msg.header.stamp = probe.node.get_clock().now().to_msg()
                probe.publish(JointState, "joint_states", msg, wait_for_subscriber=False)
            good_front.header.stamp = probe.node.get_clock().now().to_msg()
            probe.publish(Image, "cameras/front/image_raw", good_front, wait_for_subscriber=False)
            time.sleep(0.1)
        assert wait_for(lambda: "joint_states rejected: joint_states lacks ['gripper']"
                        in latest_status(probe).message, 20), latest_status(probe)
        node.wait_for_output("joint_states holds NaN or infinite positions")
        node.wait_for_output("joint_states lacks ['gripper']")
        refusals = [line for line in node.lines if "]: joint_states rejected:" in line]
        assert sum("lacks" in line for line in refusals) == 1  # 1.5 s: once per cause
        assert sum("NaN" in line for line in refusals) == 1

        feeder.joints_on = True  # accepted again: the reasons go, chunks come
        assert wait_for(lambda: probe.messages("action_chunk"), 30)
        assert wait_for(lambda: "rejected" not in latest_status(probe).message, 10)
    finally:
        feeder.stop()
        assert node.stop() == 0, node.output()


def test_an_instruction_given_while_the_policy_loads_is_acted_on(tiny_checkpoint, probe, monkeypatch):
    monkeypatch.setenv("SLOW_LOAD_S", "8")
    node = NodeProcess("policy_node", "-p", f"policy_path:={tiny_checkpoint}", "-p", "robot_id:=mock",
                       program=[sys.executable, str(HELPERS / "slow_policy_node.py")])
    feeder = Feeder(probe).start()
    try:
        # Once, as `ros2 topic pub --once` would, while the model is still loading.
        probe.publish(String, "task_instruction", String(data="pick up the cube"))
        assert wait_for(lambda: probe.messages("policy_status") and
                        latest_status(probe).instruction == "pick up the cube", 10)
        status = latest_status(probe)
        assert "loaded " not in node.output()
        assert status.state == PolicyStatus.STATE_LOADING and "instruction received" in status.message
        chunk = probe.wait_for_messages("action_chunk", 1, timeout_s=60)[0]
        assert len(chunk.points) == 50
        assert latest_status(probe).instruction == "pick up the cube"
        node.wait_for_output("acting on the instruction received while loading")
    finally:
        feeder.stop()
        assert node.stop() == 0, node.output()


def test_the_launch_files_instruction_waits_for_the_loaded_policy(probe):
    """What bringup.launch.py runs for its `instruction` argument (it used to wait 15 s)."""
    from conftest import ros_env

    probe.subscribe(String, "task_instruction")  # the policy's subscription, say
    process = subprocess.Popen(
        [sys.executable, "-m", "smolvla_ros.nodes.instruction", "pick up the cube",
         "--listeners", "1", "--policy"],
        env=ros_env(PYTHONUNBUFFERED="1"), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        for k in range(30):  # 3 s of a loading policy (or one that failed to), with the arm up
            state = PolicyStatus.STATE_ERROR if k % 2 else PolicyStatus.STATE_LOADING
            probe.publish(PolicyStatus, "policy_status", PolicyStatus(state=state),
                          wait_for_subscriber=False)
            probe.publish(JointState, "joint_states", JointState(), wait_for_subscriber=False)
            time.sleep(0.1)
        assert probe.messages("task_instruction") == [] and process.poll() is None
        # Loaded: policy_node repeats its status every status_period_s, so a first message
        # lost to discovery (the subscriber not yet matched on its side) is not the last.
        deadline = time.monotonic() + 20
        while not probe.messages("task_instruction") and time.monotonic() < deadline:
            probe.publish(PolicyStatus, "policy_status", PolicyStatus(state=PolicyStatus.STATE_IDLE))
            time.sleep(0.1)
        assert probe.messages("task_instruction")
        assert probe.messages("task_instruction")[0].data == "pick up the cube"
        assert process.wait(timeout=20) == 0
    finally:
        if process.poll() is None:
            process.kill()
        output = process.communicate()[0]
    assert "instruction published: 'pick up the cube'" in output
