"""The whole graph: robot (sim, SO-101 or emulated bus), cameras, policy, optional recorder.

    ros2 launch smolvla_ros bringup.launch.py robot:=sim policy_path:=lerobot/smolvla_base
    ros2 topic pub --once /task_instruction std_msgs/msg/String "{data: 'pick up the cube'}"

Each node reads its YAML file from config/ (the same files `smolvla-ros bringup` uses);
the arguments below override them.
"""

from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, ExecuteProcess, OpaqueFunction, TimerAction
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node
from launch_ros.substitutions import FindPackageShare

ARGUMENTS = {
    "robot": ("sim", "sim (MuJoCo), so101 (the arm on port) or mock (emulated bus)"),
    "policy_path": ("lerobot/smolvla_base", "hub id or local folder of a SmolVLA checkpoint"),
    "device": ("auto", "auto, cpu, cuda, cuda:1, ..."),
    "port": ("/dev/ttyACM0", "so101: the bus adapter's serial port"),
    "robot_id": ("so101_follower", "so101: the calibration id"),
    "camera_names": ("front", "so101: comma-separated camera names"),
    "camera_devices": ("0", "so101: comma-separated devices, one per name"),
    "use_camera_node": ("true", "so101: start camera_node; false = your own camera topics"),
    "camera_remap": ("", "name=topic,... : read camera <name> from <topic> instead"),
    "record": ("false", "start recorder_node (episodes start with each new instruction)"),
    "output_dir": ("episodes", "recorder: where episode bags go"),
    "instruction": ("", "published once on task_instruction after 15 s when not empty"),
    "config_dir": ("", "folder with so101/sim/camera/policy/recorder.yaml; empty = the package's"),
}


def _parameter(config: str, node: str, name: str):
    import yaml

    with open(f"{config}/{node}.yaml") as file:
        return yaml.safe_load(file)["/**"]["ros__parameters"][name]


def _nodes(context):
    def arg(name):
        return LaunchConfiguration(name).perform(context)

    config = arg("config_dir") or FindPackageShare("smolvla_ros").perform(context) + "/config"
    robot = arg("robot")
    if robot not in ("sim", "so101", "mock"):
        raise ValueError(f"robot:={robot}: expected sim, so101 or mock")
    mock_calibration = robot in ("sim", "mock")
    calibration_id = "mock" if mock_calibration else arg("robot_id")
    remaps = [tuple(item.split("=", 1)) for item in arg("camera_remap").split(",") if "=" in item]
    camera_remaps = [(f"cameras/{name}/image_raw", topic) for name, topic in remaps]
    actions = []
    if robot == "sim":
        actions.append(Node(package="smolvla_ros", executable="sim_node", output="screen",
                            parameters=[f"{config}/sim.yaml"]))
    else:
        actions.append(Node(package="smolvla_ros", executable="so101_node", output="screen",
                            parameters=[f"{config}/so101.yaml",
                                        {"port": "mock" if robot == "mock" else arg("port"),
                                         "robot_id": arg("robot_id")}]))
    if robot == "so101" and arg("use_camera_node").lower() == "true":
        actions.append(Node(package="smolvla_ros", executable="camera_node", output="screen",
                            parameters=[f"{config}/camera.yaml",
                                        {"names": arg("camera_names").split(","),
                                         "devices": arg("camera_devices").split(",")}]))
    policy = {"policy_path": arg("policy_path"), "device": arg("device"), "robot_id": calibration_id}
    if robot == "sim":  # CPU-rendered cameras run at a few Hz: allow an image 3 frames old
        policy["stale_after_s"] = max(_parameter(config, "policy", "stale_after_s"),
                                      3.0 / _parameter(config, "sim", "camera_fps"))
    actions.append(Node(package="smolvla_ros", executable="policy_node", output="screen",
                        parameters=[f"{config}/policy.yaml", policy], remappings=camera_remaps))
    if arg("record").lower() == "true":
        actions.append(Node(package="smolvla_ros", executable="recorder_node", output="screen",
                            parameters=[f"{config}/recorder.yaml",
                                        {"output_dir": arg("output_dir"), "start_on_instruction": True,
                                         "robot_id": calibration_id}],
                            remappings=camera_remaps))
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
