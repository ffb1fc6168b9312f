"""Test helper: a node that republishes messages, so a test can see them cross DDS twice.

    echo_node.py PACKAGE.msg/TYPE:IN_TOPIC:OUT_TOPIC [...]

Prints "ready" once its publishers and subscriptions exist. It runs under the package's own
``nodes.common.run``, so Ctrl-C stops it as it stops our nodes: cleanly, even when the signal
lands while it republishes (rclpy then raises RCLError "publisher's context is invalid",
measured in 52 of 150 stops under traffic before this helper used ``run``). SIGUSR1 prints
every thread's Python stack, for a test that finds it hung.
"""

import faulthandler
import importlib
import signal
import sys

from rclpy.node import Node

from smolvla_ros.nodes.common import run


def message_type(spec: str):
    module, name = spec.split("/")
    return getattr(importlib.import_module(module), name)


class EchoNode(Node):
    def __init__(self):
        super().__init__("echo_node")
        for route in sys.argv[1:]:
            type_spec, in_topic, out_topic = route.split(":")
            msg_type = message_type(type_spec)
            publisher = self.create_publisher(msg_type, out_topic, 10)
            self.create_subscription(msg_type, in_topic, publisher.publish, 10)
        print("ready", flush=True)


if __name__ == "__main__":
    faulthandler.register(signal.SIGUSR1, all_threads=True)
    sys.exit(run(EchoNode, []))
