"""Teleoperation without recording: a follower SO-101 mirroring a leader arm, with cameras.

    ros2 launch smolvla_ros teleop.launch.py port:=/dev/ttyACM0 leader_port:=/dev/ttyACM1

(`record.launch.py` adds the recorder; `robot:=mock` runs both arms on emulated buses.)
"""

from smolvla_ros.nodes.launching import Arguments, description, node

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


def actions(args: Arguments) -> list:
    mock = args["robot"] == "mock"
    out = [
        node(args, "so101_node", "so101", {"port": "mock" if mock else args["port"],
                                           "robot_id": args["robot_id"],
                                           "mirror_topic": "leader/joint_states",
                                           "leader_id": "mock" if mock else args["leader_id"]},
             name="follower"),
        node(args, "so101_node", "so101", {"port": "mock" if mock else args["leader_port"],
                                           "mode": "leader", "robot_id": args["leader_id"]},
             name="leader"),
    ]
    if args.list("camera_names") and not mock:
        out.append(node(args, "camera_node", "camera", {"names": args.list("camera_names"),
                                                        "devices": args.list("camera_devices")}))
    return out


def generate_launch_description():
    return description(ARGUMENTS, actions)
