"""The ``smolvla-ros`` command.

Each subcommand lives in its own module with ``add_arguments(parser)`` and ``run(args)``;
modules keep heavy imports (torch, LeRobot, rclpy) inside ``run`` so that ``--help`` and
the light subcommands start fast.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from smolvla_ros import __version__

# name -> (module, one-line help)
SUBCOMMANDS = {
    "doctor": ("smolvla_ros.doctor", "check Python, ROS 2, rclpy, torch, LeRobot and calibration"),
    "calibrate": ("smolvla_ros.calibrate", "calibrate an SO-101 arm (LeRobot's procedure and file)"),
    "make-test-checkpoint": ("smolvla_ros.policy.tiny_checkpoint",
                             "write a tiny random SmolVLA checkpoint, offline, for tests and demos"),
    "convert": ("smolvla_ros.recording.convert", "turn episode bags into a LeRobotDataset for lerobot-train"),
    "bringup": ("smolvla_ros.bringup", "run robot/sim, cameras, policy and recorder in one process"),
    "eval": ("smolvla_ros.evaluation.cli",
             "success rate of a policy (or the scripted expert) through the real graph, in the sim"),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="smolvla-ros",
        description="SmolVLA on ROS 2 for the SO-101 arm.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, (module_name, help_text) in SUBCOMMANDS.items():
        module = importlib.import_module(module_name)
        subparser = subparsers.add_parser(name, help=help_text, description=module.__doc__)
        module.add_arguments(subparser)
        subparser.set_defaults(run=module.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(sys.argv[1:] if argv is None else argv)
    try:
        return args.run(args)
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
