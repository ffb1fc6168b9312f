"""Record demonstrations: the simulated arm with its scripted expert, or a real SO-101 pair.

    ros2 launch smolvla_ros record.launch.py robot:=sim instruction:='pick up the cube'
    ros2 launch smolvla_ros record.launch.py robot:=so101 port:=/dev/ttyACM0 leader_port:=/dev/ttyACM1

Episodes of episode_duration_s with a reset pause between them (the simulated scene resets
itself during the pause and the expert starts with each episode); `smolvla-ros convert`
turns the bags into a LeRobotDataset.
"""

from smolvla_ros.nodes.launching import Arguments, description, instruction_when_ready, node

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
    "instruction": ("pick up the cube", "the task text, published once when the arm and the "
                                        "recorder are up (starts recording); empty = publish it "
                                        "yourself"),
    "scene": ("cube", "sim: cube, or two_cubes (the expert picks up the cube the instruction "
                      "names; `smolvla-ros eval --expert --record` alternates instructions)"),
    "config_dir": ("", "folder with the YAML files; empty = the package's"),
}


def actions(args: Arguments) -> list:
    recorder = {"output_dir": args["output_dir"], "start_on_instruction": True,
                "episode_duration_s": float(args["episode_duration_s"]),
                "reset_duration_s": float(args["reset_duration_s"]),
                "num_episodes": int(args["num_episodes"])}
    if args["robot"] == "sim":
        recorder.update(robot_id="mock", leader_id="mock")  # the expert moves in the sim's units
        out = [node(args, "sim_node", "sim", {"expert": True, "scene": args["scene"]})]
    else:
        recorder.update(robot_id=args["robot_id"], leader_id=args["leader_id"])
        out = [
            node(args, "so101_node", "so101", {"port": args["port"], "robot_id": args["robot_id"],
                                               "mirror_topic": "leader/joint_states",
                                               "leader_id": args["leader_id"]}, name="follower"),
            node(args, "so101_node", "so101", {"port": args["leader_port"], "mode": "leader",
                                               "robot_id": args["leader_id"]}, name="leader"),
            node(args, "camera_node", "camera", {"names": args.list("camera_names"),
                                                 "devices": args.list("camera_devices")}),
        ]
    out.append(node(args, "recorder_node", "recorder", recorder))
    if args["instruction"]:
        # listeners: the recorder, and sim_node (it reads the instruction for its expert)
        out.append(instruction_when_ready(args["instruction"], 1 + (args["robot"] == "sim"), policy=False))
    return out


def generate_launch_description():
    return description(ARGUMENTS, actions)
