"""Give an instruction once the graph can act on it, not after a guessed delay.

``InstructionOnReady`` publishes a text on ``task_instruction`` once: when the robot
publishes ``joint_states``, the expected listeners (policy, recorder) subscribe, and, when a
policy is part of the graph, its ``policy_status`` has left LOADING (a full-size model takes
seconds to load; an instruction sent before would have nobody to act on it). ``smolvla-ros
bringup`` uses it, and the launch files run this module:

    python -m smolvla_ros.nodes.instruction "pick up the cube" --listeners 2 --policy
"""

from __future__ import annotations

import argparse

from rclpy.node import Node
from std_msgs.msg import String

from smolvla_ros.msg import PolicyStatus


class InstructionOnReady:
    """Publishes ``text`` once, from ``node``, when the graph is ready (see the module)."""

    def __init__(self, node: Node, text: str, listeners: int, policy: bool = True):
        self.node, self.text, self.listeners = node, text, listeners
        self.policy_ready = not policy
        self.instructed = False
        self.publisher = node.create_publisher(String, "task_instruction", 10)
        if policy:
            node.create_subscription(PolicyStatus, "policy_status", self._on_policy, 10)
        self._timer = node.create_timer(0.2, self._try)

    def _on_policy(self, msg: PolicyStatus) -> None:
        # Loaded: idle, running or holding. A policy that failed to load (ERROR) gets nothing:
        # with a recorder listening, the instruction would start an episode of a still arm.
        self.policy_ready = self.policy_ready or msg.state in (
            PolicyStatus.STATE_IDLE, PolicyStatus.STATE_RUNNING, PolicyStatus.STATE_HOLDING)
        self._try()

    def _try(self) -> None:
        if self.instructed or not self.text or not self.policy_ready:
            return
        if (self.publisher.get_subscription_count() < self.listeners
                or not self.node.count_publishers("joint_states")):
            return
        self.publisher.publish(String(data=self.text))
        self.instructed = True
        # Destroyed, not cancelled: this may run in the policy_status callback while the timer,
        # already found ready, waits for its turn in a multi-threaded executor (bringup's).
        # rclpy skips a destroyed timer there; a cancelled one raises RCLError out of spin.
        self.node.destroy_timer(self._timer)
        self.node.get_logger().info(f"instruction published: {self.text!r}")


def main(argv: list[str] | None = None) -> int:
    import rclpy
    from rclpy.duration import Duration

    from smolvla_ros.nodes.common import install_ctrl_c_handler, shut_down

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("text", help="the instruction")
    parser.add_argument("--listeners", type=int, default=1,
                        help="task_instruction subscribers to wait for (policy, recorder)")
    parser.add_argument("--policy", action="store_true",
                        help="wait until policy_node has loaded its checkpoint")
    args, ros_args = parser.parse_known_args(argv)
    install_ctrl_c_handler()
    rclpy.init(args=ros_args)
    node = rclpy.create_node("instruction")
    giver = InstructionOnReady(node, args.text, args.listeners, args.policy)
    try:
        while rclpy.ok() and not giver.instructed:
            rclpy.spin_once(node, timeout_sec=0.2)
        if giver.instructed:  # delivered before the publisher goes away
            giver.publisher.wait_for_all_acked(Duration(seconds=5))
    except KeyboardInterrupt:
        pass
    finally:
        node.destroy_node()
        shut_down()
    return 0 if giver.instructed else 1


if __name__ == "__main__":
    raise SystemExit(main())
