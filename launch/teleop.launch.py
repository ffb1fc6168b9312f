"""Teleoperation without recording: a follower SO-101 mirroring a leader arm, with cameras.

    ros2 launch smolvla_ros teleop.launch.py port:=/dev/ttyACM0 leader_port:=/dev/ttyACM1

(`record.launch.py` adds the recorder; `robot:=mock` runs both arms on emulated buses.)
"""

from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, OpaqueFunction
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node
from launch_ros.substitutions import FindPackageShare

ARGUMENTS = {
    "robot": ("so101", "so101 (real arms on the ports) or mock (emulated buses)"),
    "port": ("/dev/ttyACM0", "the follower's port"),
    "leader_port": ("/dev/ttyACM1", "the leader's port"),
    "robot_id": ("so101_follower", "follower calibration id"),
    "leader_id": ("so101_leader", "leader calibration id"),
    "camera_names": ("front", "comma-separated camera names; empty = no camera_node"),
    "camera_devices": ("0", "comma-separated devices, one per name"),
    "config_dir": ("", "folder with the YAML files; empty = the package's"),
}


def _nodes(context):
    def arg(name):
        return LaunchConfiguration(name).perform(context)

    config = arg("config_dir") or FindPackageShare("smolvla_ros").perform(context) + "/config"
    mock = arg("robot") == "mock"
    actions = [
        Node(package="smolvla_ros", executable="so101_node", name="follower", output="screen",
             parameters=[f"{config}/so101.yaml", {"port": "mock" if mock else arg("port"),
                                                  "robot_id": arg("robot_id"),
                                                  "mirror_topic": "leader/joint_states"}]),
        Node(package="smolvla_ros", executable="so101_node", name="leader", output="screen",
             parameters=[f"{config}/so101.yaml", {"port": "mock" if mock else arg("leader_port"),
                                                  "mode": "leader", "robot_id": arg("leader_id")}]),
    ]
    if arg("camera_names") and not mock:
        actions.append(Node(package="smolvla_ros", executable="camera_node", output="screen",
                            parameters=[f"{config}/camera.yaml",
                                        {"names": arg("camera_names").split(","),
                                         "devices": arg("camera_devices").split(",")}]))
    return actions


def generate_launch_description():
    return LaunchDescription(
        [DeclareLaunchArgument(name, default_value=default, description=text)
         for name, (default, text) in ARGUMENTS.items()]
        + [OpaqueFunction(function=_nodes)])
