"""InstructionOnReady, the instruction bringup and the launch files give once the graph is
ready, stops its retry timer in a way rclpy's executors survive."""

from __future__ import annotations

import time

from rclpy.executors import MultiThreadedExecutor
from sensor_msgs.msg import JointState

from smolvla_ros.msg import PolicyStatus
from smolvla_ros.nodes.instruction import InstructionOnReady


def test_the_policy_status_that_instructs_leaves_no_broken_timer_behind(rclpy_context):
    """CI once saw `smolvla-ros bringup` die with "RCLError: failed to call timer: timer is
    canceled": the retry timer was found ready and queued in the multi-threaded executor, then
    a policy_status callback published the instruction and cancelled that timer before the
    queued handler took it. This replays that interleaving step by step."""
    import rclpy

    node = rclpy.create_node("instruction_test", context=rclpy_context)
    node.create_publisher(JointState, "joint_states", 10)  # a robot in the graph
    executor = MultiThreadedExecutor(context=rclpy_context)
    executor.add_node(node)
    try:
        giver = InstructionOnReady(node, "pick up the cube", listeners=0)
        time.sleep(0.3)  # the 0.2 s retry timer is due
        queued = executor._make_handler(giver._timer, node, executor._take_timer)
        giver._on_policy(PolicyStatus(state=PolicyStatus.STATE_IDLE))  # instructs, stops timer
        assert giver.instructed
        queued()  # the timer's handler gets its turn
        assert queued.done()
        assert queued.exception() is None, queued.exception()
    finally:
        executor.shutdown()
        node.destroy_node()
