"""Run the whole graph in one process, for installs without ros2 launch.

``smolvla-ros bringup --robot sim|so101|mock --policy-path P [--instruction TEXT]
[--duration S] [--record DIR] [--camera-map ROS_NAME=CHECKPOINT_NAME ...]`` starts the
robot (simulation, the arm on its bus, or the emulated bus), cameras (real arm only), the
policy and, with ``--record``, the recorder, each with its YAML file from ``config/`` — the
same graph and configuration as ``bringup.launch.py``. It publishes the instruction once
the policy is loaded, runs for ``--duration`` seconds (or until Ctrl-C) and prints what
happened: chunks published, inference latency, how far the arm moved, and the episode's bag.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

ROBOTS = ("sim", "so101", "mock")
# Every node's threads share one interpreter lock here. A thread that released it for a C call
# (each torch op, each physics step, each rclpy wait) waits up to this long to take it back
# from a thread running Python; at CPython's 5 ms the simulated joint_states came at 41.5 Hz
# of 100 beside the policy, and its inputs went stale (bench/bringup_gil.py).
SWITCH_INTERVAL_S = 0.0005


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--robot", choices=ROBOTS, default="sim",
                        help="sim: MuJoCo SO-101; so101: the arm on --port; mock: emulated bus")
    parser.add_argument("--policy-path", default="lerobot/smolvla_base",
                        help="hub id or local folder of a SmolVLA checkpoint")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:1, ...")
    parser.add_argument("--camera-map", action="append", default=[], metavar="ROS_NAME=CHECKPOINT_NAME",
                        help="policy: read the checkpoint's camera CHECKPOINT_NAME from "
                             "cameras/ROS_NAME/image_raw (repeatable), e.g. for lerobot/smolvla_base "
                             "on the sim: --camera-map front=camera1 --camera-map wrist=camera2")
    parser.add_argument("--instruction", default="", help="published once the policy is ready")
    parser.add_argument("--duration", type=float, default=0.0, help="seconds to run; 0 = until Ctrl-C")
    parser.add_argument("--record", type=Path, default=None,
                        help="record an episode (starting with the instruction) into this folder")
    parser.add_argument("--port", default="/dev/ttyACM0", help="so101: the bus adapter's port")
    parser.add_argument("--robot-id", default="so101_follower", help="so101: calibration id")
    parser.add_argument("--camera", action="append", default=[], metavar="NAME=DEVICE",
                        help="so101: a camera for camera_node (repeatable; default front=0)")
    parser.add_argument("--config-dir", type=Path, default=None,
                        help="folder with so101/sim/camera/policy/recorder.yaml (default: the package's)")
    parser.add_argument("-p", "--param", action="append", default=[], metavar="NODE:NAME=VALUE",
                        help="override one parameter, e.g. policy_node:fps=15 (YAML value)")


def node_parameters(args: argparse.Namespace) -> dict[str, dict]:
    """{node name: parameters}: each node's YAML file, then what the command line sets."""
    from smolvla_ros.calibration import MOCK_ROBOT_ID
    from smolvla_ros.node_config import (
        apply_overrides, config_dir, load_node_config, sim_stale_after_s,
    )

    folder = args.config_dir or config_dir()

    def load(name: str) -> dict:
        return load_node_config(folder, name)

    calibration_id = MOCK_ROBOT_ID if args.robot in ("sim", "mock") else args.robot_id
    nodes = {"policy_node": load("policy")}
    nodes["policy_node"].update(policy_path=args.policy_path, device=args.device,
                                robot_id=calibration_id)
    if args.camera_map:
        nodes["policy_node"]["camera_map"] = list(args.camera_map)
    if args.robot == "sim":
        nodes["sim_node"] = load("sim")
        nodes["policy_node"]["stale_after_s"] = sim_stale_after_s(nodes["policy_node"], nodes["sim_node"])
    else:
        nodes["so101_node"] = load("so101")
        nodes["so101_node"].update(port="mock" if args.robot == "mock" else args.port,
                                   robot_id=args.robot_id)
    if args.robot == "so101":
        cameras = [item.split("=", 1) for item in (args.camera or ["front=0"])]
        nodes["camera_node"] = load("camera")
        nodes["camera_node"].update(names=[n for n, _ in cameras], devices=[d for _, d in cameras])
    if args.record is not None:
        nodes["recorder_node"] = load("recorder")
        nodes["recorder_node"].update(output_dir=str(args.record), start_on_instruction=True,
                                      robot_id=calibration_id)
        if args.robot == "sim":  # the sim's expert publishes leader/joint_states in its units
            nodes["recorder_node"]["leader_id"] = MOCK_ROBOT_ID
    apply_overrides(nodes, args.param, "bringup")
    return nodes


def _node_classes() -> dict:
    from smolvla_ros.nodes.camera_node import CameraNode
    from smolvla_ros.nodes.policy_node import PolicyNode
    from smolvla_ros.nodes.recorder_node import RecorderNode
    from smolvla_ros.nodes.sim_node import SimNode
    from smolvla_ros.nodes.so101_node import SO101Node
    return {"sim_node": SimNode, "so101_node": SO101Node, "camera_node": CameraNode,
            "policy_node": PolicyNode, "recorder_node": RecorderNode}


def run(args: argparse.Namespace) -> int:
    import rclpy
    import yaml
    from rclpy.executors import ExternalShutdownException, MultiThreadedExecutor

    from smolvla_ros.nodes.bringup_monitor import Monitor
    from smolvla_ros.nodes.common import (
        freeze_startup_objects, install_ctrl_c_handler, shut_down, stopped_by_ctrl_c,
    )

    parameters = node_parameters(args)
    with tempfile.NamedTemporaryFile("w", suffix=".yaml", prefix="smolvla_bringup_", delete=False) as file:
        yaml.safe_dump({name: {"ros__parameters": values} for name, values in parameters.items()}, file)
    install_ctrl_c_handler()
    sys.setswitchinterval(SWITCH_INTERVAL_S)
    rclpy.init(args=["--ros-args", "--params-file", file.name])
    nodes, executor, monitor = [], MultiThreadedExecutor(num_threads=4), None
    status = 0
    try:
        classes = _node_classes()
        for name in parameters:
            nodes.append(classes[name]())
            executor.add_node(nodes[-1])
        freeze_startup_objects()
        monitor = Monitor(args.instruction, listeners=1 + ("recorder_node" in parameters)
                          + ("sim_node" in parameters))  # sim_node judges the instruction
        nodes.append(monitor)
        executor.add_node(monitor)
        print(f"bringup: {', '.join(parameters)} running"
              f"{f' for {args.duration:g} s' if args.duration else ' (Ctrl-C to stop)'}", flush=True)
        deadline = time.monotonic() + args.duration if args.duration > 0 else None
        while rclpy.ok() and (deadline is None or time.monotonic() < deadline):
            executor.spin_once(timeout_sec=0.1)
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    except (RuntimeError, TypeError):
        if not stopped_by_ctrl_c():
            raise  # else Ctrl-C during a message's conversion: see nodes.common
    except ValueError as error:  # a node refused its parameters
        print(f"bringup: {error}", file=sys.stderr)
        status = 1
    finally:
        for node in reversed(nodes):  # the recorder closes its bag here
            node.destroy_node()
        executor.shutdown()
        shut_down()
        Path(file.name).unlink(missing_ok=True)
    if status == 0 and monitor is not None:
        print(monitor.summary())
    return status
