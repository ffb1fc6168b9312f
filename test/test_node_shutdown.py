"""Ctrl-C stops a node cleanly even while it is busy taking a flood of large messages (a
SIGINT that lands inside rclpy's conversion of a received message comes out of pybind11 as a
RuntimeError instead of a KeyboardInterrupt), and when rclpy's signal thread shuts the
context down first."""

from __future__ import annotations

import subprocess
import sys
import threading
import time

from builtin_interfaces.msg import Duration
from conftest import ros_env
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


RACE = """
import sys
import rclpy
from smolvla_ros.nodes import common

def signal_thread_first():
    context = rclpy.get_default_context()
    context.shutdown()  # rclpy's signal thread, between try_shutdown's check and its call
    context.shutdown()  # try_shutdown's own call: rcl's real RCLError

def not_a_race():
    raise RuntimeError("not a race")

rclpy.init()
rclpy.try_shutdown = signal_thread_first if sys.argv[1] == "race" else not_a_race
common.shut_down()
print("shut down" if not rclpy.ok() else "still up")
"""


def test_shut_down_survives_rclpys_signal_thread_shutting_down_first():
    """A SIGTERM's shutdown racing the node's own: exit 0, not an RCLError (seen in CI from
    recorder_node). An error with the context still up is not swallowed."""
    def shut_down(case: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-c", RACE, case], env=ros_env(),
                              capture_output=True, text=True, timeout=60)
    race = shut_down("race")
    assert race.returncode == 0 and race.stdout == "shut down\n", race.stderr[-3000:]
    error = shut_down("error")
    assert error.returncode == 1 and "RuntimeError: not a race" in error.stderr, error.stderr
