"""Ctrl-C stops a node cleanly even while it is busy taking a flood of large messages (a
SIGINT that lands inside rclpy's conversion of a received message comes out of pybind11 as a
RuntimeError instead of a KeyboardInterrupt)."""

from __future__ import annotations

import threading
import time

from builtin_interfaces.msg import Duration
from ros_probe import NodeProcess, RosProbe
from trajectory_msgs.msg import JointTrajectory, JointTrajectoryPoint

from smolvla_ros.units import SO101_JOINTS


def flood_until(probe: RosProbe, message: JointTrajectory, stop: threading.Event) -> None:
    while not stop.is_set():
        probe.publish(JointTrajectory, "action_chunk", message, wait_for_subscriber=False)


def test_ctrl_c_during_a_flood_of_large_messages_exits_cleanly():
    # 20000 points: taking one (rclpy's copy, then trajectory_from_cdr) keeps the node busy
    # enough that a SIGINT lands inside it.
    huge = JointTrajectory(joint_names=list(SO101_JOINTS), points=[
        JointTrajectoryPoint(positions=[0.0] * 6, time_from_start=Duration(sec=k + 1))
        for k in range(20000)])
    probe = RosProbe()
    stop = threading.Event()
    try:
        for _ in range(3):
            # (above max_trajectory_points' default, which would refuse them unconverted)
            node = NodeProcess("so101_node", "-p", "port:=mock", "-p", "max_trajectory_points:=100000")
            node.wait_for_output("connected to")
            probe.publish(JointTrajectory, "action_chunk", huge)
            stop.clear()
            flood = threading.Thread(target=flood_until, args=(probe, huge, stop))
            flood.start()
            time.sleep(1.0)  # the node is busy converting
            status = node.stop()
            stop.set()
            flood.join(timeout=30)
            assert status == 0, node.output()[-3000:]
    finally:
        stop.set()
        probe.close()
