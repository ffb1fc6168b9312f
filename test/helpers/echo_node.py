"""Test helper: a node that republishes messages, so a test can see them cross DDS twice.

    echo_node.py PACKAGE.msg/TYPE:IN_TOPIC:OUT_TOPIC [...]

Prints "ready" once its publishers and subscriptions exist; exits cleanly on SIGINT/SIGTERM
(rclpy's own signal handlers turn both into a shutdown).
"""

import importlib
import sys

import rclpy
from rclpy.executors import ExternalShutdownException
from rclpy.node import Node


def message_type(spec: str):
    module, name = spec.split("/")
    return getattr(importlib.import_module(module), name)


class EchoNode(Node):
    def __init__(self, routes: list[str]):
        super().__init__("echo_node")
        self._publishers_by_topic = {}
        for route in routes:
            type_spec, in_topic, out_topic = route.split(":")
            msg_type = message_type(type_spec)
            publisher = self.create_publisher(msg_type, out_topic, 10)
            self.create_subscription(msg_type, in_topic, publisher.publish, 10)


def main() -> None:
    rclpy.init()
    node = EchoNode(sys.argv[1:])
    print("ready", flush=True)
    try:
        rclpy.spin(node)
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        node.destroy_node()
        rclpy.try_shutdown()


if __name__ == "__main__":
    main()
