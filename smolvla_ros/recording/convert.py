"""Turn episode bags into a LeRobotDataset for ``lerobot-train``.

``smolvla-ros convert BAGS... --output DIR [--fps 30] [--repo-id ID] [--task TEXT]``: one
bag per episode, resampled to the dataset rate by the messages' stamps; see
``smolvla_ros.recording.to_dataset`` for what each feature is made of and where each arm's
calibration comes from (the recorder stores them in the bag, so none are needed here).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("bags", nargs="+", type=Path, help="bag folders, one episode each")
    parser.add_argument("--output", required=True, type=Path, help="new folder for the dataset")
    parser.add_argument("--fps", type=int, default=30, help="dataset frame rate (default 30)")
    parser.add_argument("--repo-id", default="local/so101_demonstrations",
                        help="the dataset's id (for lerobot-train --dataset.repo_id)")
    parser.add_argument("--task", default="", help="task text where the bag has no instruction")
    parser.add_argument("--action", choices=["auto", "leader", "trajectory"], default="auto",
                        help="action from leader/joint_states or the executed action_chunk "
                             "trajectory (auto: leader when the bag has it)")
    parser.add_argument("--robot-id", default="",
                        help="follower calibration file id, over the calibration stored in the bag "
                             "(default: the stored one, else the stored id's file); 'mock' = the "
                             "emulated/simulated arm")
    parser.add_argument("--leader-id", default="",
                        help="leader calibration file id, over the one stored in the bag (default: the "
                             "stored one, else the stored id's file, else the follower's with a warning)")
    parser.add_argument("--calibration-dir", default="",
                        help="folder holding <id>.json (default: LeRobot's folder for each role)")
    parser.add_argument("--range-m100-100", action="store_true",
                        help="body joints in LeRobot's older -100..100 units instead of degrees")
    parser.add_argument("--namespace", default="",
                        help="the topics' namespace, e.g. arm1 (default: the recorder's, stored in the bag)")
    parser.add_argument("--robot-type", default="",
                        help="the dataset's robot_type (default: stored in the bag, else so_follower, "
                             "LeRobot's name for SO-100/SO-101 followers)")
    parser.add_argument("--no-video", action="store_true",
                        help="store camera frames as lossless PNG images instead of video (as "
                             "lerobot-record --dataset.video=false): no compression artefacts, but "
                             "lerobot-train loads them slower (README)")


def run(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from smolvla_ros.recording.bag_reader import BagError
    from smolvla_ros.recording.to_dataset import ConvertConfig, plan_all, write_dataset

    config = ConvertConfig(output=args.output, fps=args.fps, repo_id=args.repo_id, task=args.task,
                           action=args.action, robot_id=args.robot_id, leader_id=args.leader_id,
                           calibration_dir=args.calibration_dir, use_degrees=not args.range_m100_100,
                           namespace=args.namespace, robot_type=args.robot_type,
                           video=not args.no_video)
    try:
        plans = plan_all(args.bags, config)
        for warning in (warning for plan in plans for warning in plan.warnings):
            print(f"convert: warning: {warning}", file=sys.stderr)
        with tqdm(total=sum(plan.frames for plan in plans), unit="frame", desc="converting") as bar:
            write_dataset(plans, config, bar)
    except BagError as error:
        print(f"convert: {error}", file=sys.stderr)
        return 1
    for index, plan in enumerate(plans):
        tasks = sorted(set(plan.tasks))
        print(f"episode {index}: {plan.bag.path} -> {plan.frames} frames "
              f"({plan.frames / config.fps:.1f} s), action from {plan.action_source}, tasks {tasks}")
        print("  calibration: " + ", ".join(f"{role} {source}" for role, source in plan.calibrations.items()))
        for note in plan.gaps:
            print(f"  gap: {note}")
        if plan.skipped_without_task:
            print(f"  {plan.skipped_without_task} frames had no instruction in force and were left out")
        if plan.bag.rejected_chunks:
            print(f"  {plan.bag.rejected_chunks} malformed action chunks ignored (the arm rejects them too)")
    print(f"LeRobotDataset written to {config.output} (repo id {config.repo_id}, {config.fps} fps)")
    return 0
