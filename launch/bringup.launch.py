"""The whole graph: robot (sim, SO-101 or emulated bus), cameras, policy, optional recorder.

    ros2 launch smolvla_ros bringup.launch.py robot:=sim policy_path:=lerobot/smolvla_base \
        camera_map:=front=camera1,wrist=camera2
    ros2 topic pub --once /task_instruction std_msgs/msg/String "{data: 'pick up the cube'}"

Each node reads its YAML file from config/ (the same files `smolvla-ros bringup` uses);
the arguments below override them.
"""

from smolvla_ros.node_config import sim_stale_after_s
from smolvla_ros.nodes.launching import Arguments, description, instruction_when_ready, node

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
    "camera_map": ("", "ros_name=checkpoint_name,... : the policy reads the checkpoint's camera "
                       "from cameras/<ros_name>/image_raw (smolvla_base on the sim: "
                       "front=camera1,wrist=camera2)"),
    "record": ("false", "start recorder_node (episodes start with each new instruction)"),
    "output_dir": ("episodes", "recorder: where episode bags go"),
    "instruction": ("", "published once on task_instruction when the policy has loaded (and the "
                        "recorder listens), when not empty"),
    "scene": ("cube", "sim: cube, or two_cubes (a red and a blue cube; task_result judges the "
                      "instruction)"),
    "config_dir": ("", "folder with so101/sim/camera/policy/recorder.yaml; empty = the package's"),
}


def actions(args: Arguments) -> list:
    robot = args["robot"]
    if robot not in ("sim", "so101", "mock"):
        raise ValueError(f"robot:={robot}: expected sim, so101 or mock")
    calibration_id = "mock" if robot in ("sim", "mock") else args["robot_id"]
    camera_remaps = [(f"cameras/{name}/image_raw", topic)
                     for name, topic in (item.split("=", 1) for item in args.list("camera_remap"))]
    out = []
    if robot == "sim":
        out.append(node(args, "sim_node", "sim", {"scene": args["scene"]}))
    else:
        out.append(node(args, "so101_node", "so101", {
            "port": "mock" if robot == "mock" else args["port"], "robot_id": args["robot_id"]}))
    if robot == "so101" and args.flag("use_camera_node"):
        out.append(node(args, "camera_node", "camera", {
            "names": args.list("camera_names"), "devices": args.list("camera_devices")}))
    policy = {"policy_path": args["policy_path"], "device": args["device"], "robot_id": calibration_id}
    if args.list("camera_map"):  # not when empty: ROS parameter files cannot hold an empty array
        policy["camera_map"] = args.list("camera_map")
    if robot == "sim":
        policy["stale_after_s"] = sim_stale_after_s(args.config_values("policy"), args.config_values("sim"))
    out.append(node(args, "policy_node", "policy", policy, remappings=camera_remaps))
    if args.flag("record"):
        out.append(node(args, "recorder_node", "recorder", {
            "output_dir": args["output_dir"], "start_on_instruction": True,
            "robot_id": calibration_id, "leader_id": "mock" if robot == "sim" else ""},
            remappings=camera_remaps))
    if args["instruction"]:
        listeners = 1 + args.flag("record") + (robot == "sim")  # sim_node judges the instruction
        out.append(instruction_when_ready(args["instruction"], listeners, policy=True))
    return out


def generate_launch_description():
    return description(ARGUMENTS, actions)
