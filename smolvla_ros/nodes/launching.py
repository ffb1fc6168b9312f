"""What the launch files in launch/ share: argument declarations, reading them, our nodes
with their config/ YAML file, and the one-shot instruction. Needs launch_ros (ros2 launch)."""

from __future__ import annotations

import sys
from collections.abc import Callable

from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, ExecuteProcess, OpaqueFunction
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node
from launch_ros.substitutions import FindPackageShare

from smolvla_ros.node_config import load_node_config

PACKAGE = "smolvla_ros"


class Arguments:
    """The launch arguments' values in one launch context, and the folder of YAML files."""

    def __init__(self, context):
        self.context = context
        self.config = self["config_dir"] or FindPackageShare(PACKAGE).perform(context) + "/config"

    def __getitem__(self, name: str) -> str:
        return LaunchConfiguration(name).perform(self.context)

    def list(self, name: str) -> list[str]:
        return [item for item in self[name].split(",") if item]

    def flag(self, name: str) -> bool:
        return self[name].lower() == "true"

    def config_values(self, config_file: str) -> dict:
        """The parameters in one of the YAML files."""
        return load_node_config(self.config, config_file)


def node(args: Arguments, executable: str, config_file: str, overrides: dict | None = None,
         **kwargs) -> Node:
    """One of our nodes with its config/<config_file>.yaml, then ``overrides``."""
    return Node(package=PACKAGE, executable=executable, output="screen",
                parameters=[f"{args.config}/{config_file}.yaml", overrides or {}], **kwargs)


def instruction_when_ready(text: str, listeners: int, policy: bool) -> ExecuteProcess:
    """Publish ``text`` once on task_instruction as soon as the graph can act on it: the robot
    publishes joint_states, ``listeners`` subscribe, and the policy (if ``policy``) has loaded
    (smolvla_ros.nodes.instruction; no ros2cli needed)."""
    return ExecuteProcess(cmd=[sys.executable, "-m", "smolvla_ros.nodes.instruction", text,
                               "--listeners", str(listeners), *(["--policy"] if policy else [])],
                          output="screen")


def description(arguments: dict[str, tuple[str, str]],
                make_actions: Callable[[Arguments], list]) -> LaunchDescription:
    """Declare ``{name: (default, help)}`` and build the actions once they are known."""
    return LaunchDescription(
        [DeclareLaunchArgument(name, default_value=default, description=text)
         for name, (default, text) in arguments.items()]
        + [OpaqueFunction(function=lambda context: make_actions(Arguments(context)))])
