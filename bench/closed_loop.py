"""The closed loop, end to end with the package's public parts: record -> convert -> train -> eval.

    python bench/closed_loop.py                     # the full benchmark (see README for numbers)
    python bench/closed_loop.py --smoke             # every stage in minutes (CI): no success asked

1. ``smolvla-ros make-test-checkpoint --size S``: the real SmolVLA architecture, small and
   random, made offline (the start of training and the random-weights baseline);
2. ``smolvla-ros eval --expert --record``: K scripted-expert demonstrations per instruction in
   the two-cube scene, recorded by recorder_node over DDS with their task text;
3. ``smolvla-ros convert``: the bags as a LeRobotDataset;
4. ``lerobot-train``: LeRobot's own training, from the checkpoint of step 1, on the CPU;
5. ``smolvla-ros eval``: the trained policy given each instruction (the same seeded scenes
   for every run); then the same scenes with the instructions swapped (each scene gets the
   other instruction: "did what the words said"); the random-weights baseline; and, with
   ``--switch-episodes``, a change of mind mid-episode (red, then blue before the grasp).

It prints the rates per instruction with 95 % intervals, the time of each stage, and writes
``summary.json`` beside each eval's report. Nothing is asserted about wall-clock time.
"""

from __future__ import annotations

import argparse
import json
import shlex
import subprocess
import sys
import time
from pathlib import Path

from smolvla_ros.sim.views import FRONT_VIEWS

RED, BLUE = "pick up the red cube", "pick up the blue cube"


def sh(command: list[str], log: Path | None = None) -> float:
    """Run a stage; its output to the terminal (or ``log``); returns seconds taken."""
    print(f"\n$ {shlex.join(command)}", flush=True)
    started = time.monotonic()
    if log is None:
        subprocess.run(command, check=True)
    else:
        with open(log, "w") as out:
            result = subprocess.run(command, stdout=out, stderr=subprocess.STDOUT)
        if result.returncode:
            print(log.read_text()[-4000:])
            raise subprocess.CalledProcessError(result.returncode, command)
    return time.monotonic() - started


def eval_command(args, policy: list[str], output: Path, episodes: int, instructions: list[str],
                 extra: list[str] = ()) -> list[str]:
    command = ["smolvla-ros", "eval", "--robot", "sim", *policy, "--episodes", str(episodes),
               "--sides", args.sides, "--seed", str(args.seed), "--time-limit", str(args.time_limit),
               "--camera-fps", str(args.camera_fps), "--image-size", args.image_size,
               "--front-view", args.front_view, "--output", str(output),
               "--no-progress" if args.smoke else "--video", *extra]
    for text in instructions:
        command += ["--instruction", text]
    return command


def rates(report_path: Path) -> dict:
    return json.loads(report_path.read_text())["per_instruction"]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, default=Path("closed_loop_run"), help="work folder")
    parser.add_argument("--smoke", action="store_true",
                        help="CI: 1 demonstration per instruction, a few steps, 1 eval episode each")
    parser.add_argument("--demos", type=int, default=25, help="K demonstrations per instruction")
    parser.add_argument("--size", default="small", choices=("tiny", "small"), help="model size")
    parser.add_argument("--vision-pixels", type=int, default=None, metavar="N",
                        help="the vision encoder's input, NxN (make-test-checkpoint; small: 64)")
    parser.add_argument("--steps", type=int, default=5000, help="training steps")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--lr", type=float, default=1e-3, help="peak learning rate")
    parser.add_argument("--episodes", type=int, default=20, help="eval episodes per instruction")
    parser.add_argument("--baseline-episodes", type=int, default=10,
                        help="random-weights baseline episodes per instruction")
    parser.add_argument("--switch-episodes", type=int, default=10,
                        help="change-of-mind episodes (red, then blue); 0 = none")
    parser.add_argument("--switch-after", type=float, default=1.0,
                        help="seconds into the episode for the second instruction")
    parser.add_argument("--switch-demos", type=int, default=4,
                        help="also K change-of-mind demonstrations each way (red then blue, blue then "
                             "red, the words changed --switch-after -/+ 0.3 s in: the expert turns to "
                             "the new cube), recorded with the task in force at each frame")
    parser.add_argument("--demo-detour", type=float, default=0.03, metavar="M",
                        help="the expert first hovers over a point up to M metres off the cube, "
                             "then corrects (recovery demonstrations; sim_node expert_detour_m)")
    parser.add_argument("--demo-miss-rate", type=float, default=0.0, metavar="P",
                        help="this share of the demonstrations starts with a grasp 3 cm off the cube, "
                             "then retries (sim_node expert_miss_rate); off: the policy learned to "
                             "miss as often (README)")
    parser.add_argument("--sides", default="fixed", choices=("fixed", "random"))
    parser.add_argument("--seed", type=int, default=1000, help="eval scenes' seed (demos use 0)")
    parser.add_argument("--time-limit", type=float, default=10.0)
    parser.add_argument("--camera-fps", type=float, default=10.0)
    parser.add_argument("--image-size", default="128x96", help="the sim's cameras, WIDTHxHEIGHT")
    parser.add_argument("--front-view", default="workspace", choices=FRONT_VIEWS,
                        help="the sim's front camera (sim_node's front_view)")
    parser.add_argument("--no-video", action="store_true",
                        help="convert the cameras to lossless PNG frames instead of video (lerobot-train "
                             "loads them about 3x slower on the 2-core dev machine)")
    args = parser.parse_args()
    if args.smoke:
        args.demos, args.steps, args.batch_size, args.episodes = 1, 4, 2, 1
        args.baseline_episodes, args.switch_episodes, args.size = 1, 1, "tiny"
        args.switch_demos = min(args.switch_demos, 1)
        # Long enough for a first chunk on a loaded 2-core CI machine: at 3 s a CI run once
        # saw none (warm-up alone 3.3 s), and the smoke asks that the policy drove the arm.
        args.time_limit = 6.0
    work = args.work.resolve()
    if work.exists() and any(work.iterdir()):
        raise SystemExit(f"closed_loop: {work} is not empty; give a new --work folder")
    work.mkdir(parents=True, exist_ok=True)
    width, height = args.image_size.lower().split("x")
    times: dict[str, float] = {}
    started = time.monotonic()

    base = work / "base_checkpoint"
    times["checkpoint"] = sh(["smolvla-ros", "make-test-checkpoint", str(base), "--size", args.size,
                              "--cameras", "front,wrist", "--image-size", f"{height}x{width}",
                              *(["--vision-pixels", str(args.vision_pixels)] if args.vision_pixels else [])])
    record = ["smolvla-ros", "eval", "--expert", "--record", "--sides", args.sides,
              "--camera-fps", str(args.camera_fps), "--image-size", args.image_size,
              "--front-view", args.front_view, "--no-progress",
              "--param", f"sim_node:expert_detour_m={args.demo_detour}",
              "--param", f"sim_node:expert_miss_rate={args.demo_miss_rate}"]
    demos = work / "demos"
    times["record"] = sh([*record, "--episodes", str(args.demos), "--seed", "0", "--output", str(demos),
                          "--instruction", RED, "--instruction", BLUE])
    bags = sorted(str(p) for p in (demos / "episodes").glob("episode_*"))
    # change-of-mind demonstrations: each way, half of them --switch-after - 0.3 s in and half
    # + 0.3 s, so the eval's own switch time is never one the policy was shown
    for k, (first, then) in enumerate(((RED, BLUE), (BLUE, RED)) if args.switch_demos else ()):
        for j, (after, count) in enumerate(((args.switch_after - 0.3, (args.switch_demos + 1) // 2),
                                            (args.switch_after + 0.3, args.switch_demos // 2))):
            if count:
                folder = work / f"demos_{first.split()[-2]}_then_{then.split()[-2]}_{after:g}s"
                times["record"] += sh([*record, "--episodes", str(count), "--seed", str(500 + 100 * (2 * k + j)),
                                       "--output", str(folder), "--instruction", first, "--switch-to", then,
                                       "--switch-after", f"{after:g}"])
                bags += sorted(str(p) for p in (folder / "episodes").glob("episode_*"))
    dataset = work / "dataset"
    times["convert"] = sh(["smolvla-ros", "convert", *bags, "--output", str(dataset),
                           "--repo-id", "local/so101_two_cubes", *(["--no-video"] if args.no_video else [])])
    train = work / "train"
    times["train"] = sh([
        "lerobot-train", f"--policy.path={base}", f"--dataset.root={dataset}",
        "--dataset.repo_id=local/so101_two_cubes", f"--output_dir={train}", "--policy.device=cpu",
        "--policy.push_to_hub=false", "--policy.train_expert_only=false",
        "--policy.freeze_vision_encoder=false", f"--policy.optimizer_lr={args.lr}",
        f"--policy.scheduler_warmup_steps={min(500, args.steps // 10)}",
        f"--policy.scheduler_decay_steps={args.steps}", f"--policy.scheduler_decay_lr={args.lr / 20}",
        f"--steps={args.steps}", f"--batch_size={args.batch_size}", "--num_workers=1",
        f"--save_freq={args.steps}", f"--log_freq={max(1, args.steps // 20)}", "--wandb.enable=false",
        "--seed=1"], log=work / "train.log")
    trained = str(train / "checkpoints" / "last" / "pretrained_model")

    runs = {"trained": (["--policy-path", trained], args.episodes, [RED, BLUE], []),
            "swapped": (["--policy-path", trained], args.episodes, [BLUE, RED], []),
            "baseline": (["--policy-path", str(base)], args.baseline_episodes, [RED, BLUE], [])}
    if args.switch_episodes:
        runs["switch"] = (["--policy-path", trained], args.switch_episodes, [RED],
                          ["--switch-to", BLUE, "--switch-after", str(args.switch_after)])
    results = {"demos": rates(demos / "report.json")}  # the expert's own success
    for folder in sorted(work.glob("demos_*_then_*")):
        results[folder.name] = rates(folder / "report.json")
    for name, (policy, episodes, instructions, extra) in runs.items():
        times[f"eval_{name}"] = sh(eval_command(args, policy, work / f"eval_{name}", episodes,
                                                instructions, extra))
        results[name] = rates(work / f"eval_{name}" / "report.json")
    times["total"] = time.monotonic() - started

    def line(run: str, text: str) -> str:
        r = results[run].get(text)
        if r is None:
            return "-"
        return f"{r['successes']}/{r['episodes']} = {100 * r['rate']:.0f} % ({100 * r['ci95'][0]:.0f}-{100 * r['ci95'][1]:.0f})"

    print(f"\nclosed loop ({'smoke' if args.smoke else 'full'}): {args.demos} demos per instruction"
          f"{f' + {args.switch_demos} change-of-mind demos each way' if args.switch_demos else ''}"
          f"{f' (detours up to {args.demo_detour * 100:g} cm)' if args.demo_detour else ''}"
          f"{f' ({args.demo_miss_rate:.0%} start with a missed grasp)' if args.demo_miss_rate else ''}, "
          f"{args.size} SmolVLA{f' (vision input {args.vision_pixels} px)' if args.vision_pixels else ''}, "
          f"{args.steps} steps x batch {args.batch_size}, sides {args.sides}, "
          f"cameras front ({args.front_view} view) + wrist {args.image_size} at {args.camera_fps:g} Hz, "
          f"dataset {'PNG frames' if args.no_video else 'video'}")
    print("  the expert's demonstrations (judged on the last words): " + "; ".join(
        f"{run} {text.split()[-2]} {line(run, text)}" for run in results if run.startswith("demos")
        for text in results[run]))
    for text in (RED, BLUE):
        print(f"  {text!r}: right words {line('trained', text)}; swapped (did what the words said) "
              f"{line('swapped', text)}; random-weights baseline {line('baseline', text)}")
    if "switch" in results:
        print(f"  change of mind (red, then blue at {args.switch_after:g} s): went for blue "
              f"{line('switch', BLUE)}")
    print("  stage times (s): " + ", ".join(f"{k} {v:.0f}" for k, v in times.items()))
    summary = {"setup": vars(args) | {"work": str(work)}, "rates": results, "times_s": times}
    (work / "summary.json").write_text(json.dumps(summary, indent=2, default=str) + "\n")
    print(f"  summary: {work / 'summary.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
