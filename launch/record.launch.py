"""Record demonstrations: the simulated arm with its scripted expert, or a real SO-101 pair.

    ros2 launch smolvla_ros record.launch.py robot:=sim instruction:='pick up the cube'
    ros2 launch smolvla_ros record.launch.py robot:=so101 port:=/dev/ttyACM0 leader_port:=/dev/ttyACM1

Episodes of episode_duration_s with a reset pause between them (the simulated scene resets
itself during the pause); `smolvla-ros convert` turns the bags into a LeRobotDataset.
"""

from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, ExecuteProcess, OpaqueFunction, TimerAction
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node
from launch_ros.substitutions import FindPackageShare

ARGUMENTS = {
    "robot": ("sim", "sim (scripted expert) or so101 (leader arm on leader_port)"),
    "port": ("/dev/ttyACM0", "so101: the follower's port"),
    "leader_port": ("/dev/ttyACM1", "so101: the leader's port"),
    "robot_id": ("so101_follower", "so101: follower calibration id"),
    "leader_id": ("so101_leader", "so101: leader calibration id"),
    "camera_names": ("front", "so101: comma-separated camera names"),
    "camera_devices": ("0", "so101: comma-separated devices, one per name"),
    "output_dir": ("episodes", "where episode bags go"),
    "episode_duration_s": ("10.0", "length of each episode"),
    "reset_duration_s": ("3.0", "pause between episodes"),
    "num_episodes": ("0", "stop after this many (0 = until Ctrl-C)"),
    "instruction": ("pick up the cube", "the task text, published once after 15 s (starts recording; "
                                        "needs ros2cli); empty = publish it yourself"),
    "config_dir": ("", "folder with the YAML files; empty = the package's"),
}


def _nodes(context):
    def arg(name):
        return LaunchConfiguration(name).perform(context)

    config = arg("config_dir") or FindPackageShare("smolvla_ros").perform(context) + "/config"
    recorder = {"output_dir": arg("output_dir"), "start_on_instruction": True,
                "episode_duration_s": float(arg("episode_duration_s")),
                "reset_duration_s": float(arg("reset_duration_s")),
                "num_episodes": int(arg("num_episodes"))}
    if arg("robot") == "sim":
        recorder["robot_id"] = "mock"
        robot = [Node(package="smolvla_ros", executable="sim_node", output="screen",
                      parameters=[f"{config}/sim.yaml", {"expert": True}])]
    else:
        recorder["robot_id"] = arg("robot_id")
        robot = [
            Node(package="smolvla_ros", executable="so101_node", name="follower", output="screen",
                 parameters=[f"{config}/so101.yaml", {"port": arg("port"), "robot_id": arg("robot_id"),
                                                      "mirror_topic": "leader/joint_states"}]),
            Node(package="smolvla_ros", executable="so101_node", name="leader", output="screen",
                 parameters=[f"{config}/so101.yaml", {"port": arg("leader_port"), "mode": "leader",
                                                      "robot_id": arg("leader_id")}]),
            Node(package="smolvla_ros", executable="camera_node", output="screen",
                 parameters=[f"{config}/camera.yaml", {"names": arg("camera_names").split(","),
                                                       "devices": arg("camera_devices").split(",")}]),
        ]
    actions = robot + [Node(package="smolvla_ros", executable="recorder_node", output="screen",
                            parameters=[f"{config}/recorder.yaml", recorder])]
    if arg("instruction"):
        actions.append(TimerAction(period=15.0, actions=[ExecuteProcess(cmd=[
            "ros2", "topic", "pub", "--once", "task_instruction", "std_msgs/msg/String",
            f"{{data: '{arg('instruction')}'}}"], output="screen")]))
    return actions


def generate_launch_description():
    return LaunchDescription(
        [DeclareLaunchArgument(name, default_value=default, description=text)
         for name, (default, text) in ARGUMENTS.items()]
        + [OpaqueFunction(function=_nodes)])
