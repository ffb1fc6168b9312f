"""Diagnosis: where a policy's grasps close, against where the named cube lies.

A rollout in simulated time (no DDS, no clock: the same answer on any machine): the two-cube
scene, seeded as ``smolvla-ros eval`` seeds it, the policy inferring on the sim's cameras and
joints, each chunk followed for ``--execute`` actions (the async node re-plans with about half
a 50-action chunk left), until success or ``--time-limit``. Each time the gripper command
crosses from open to closed it logs the jaw frame (the model's ``gripperframe`` site) minus the
cube's centre, in mm. ``--expert`` logs the scripted expert's grasps instead, for comparison.

This is how the front camera's view was found to limit the closed-loop policy: its failed
grasps first closed a median 21 mm off in x (the cube's distance from the base), the expert's
within 1 mm.

    python bench/grasp_errors.py --policy-path CKPT [--front-view workspace] [--episodes 10]
"""

from __future__ import annotations

import argparse

import numpy as np

from smolvla_ros.feetech.emulator import MOCK_CALIBRATION
from smolvla_ros.sim.arm import CONTROL_PERIOD_S, SimArm, SimConfig
from smolvla_ros.sim.expert import ScriptedExpert
from smolvla_ros.sim.task import SUCCEEDED, TaskJudge
from smolvla_ros.sim.views import FRONT_VIEWS
from smolvla_ros.trajectory import make_trajectory
from smolvla_ros.units import SO101_JOINTS, ArmUnits

GRIPPER = SO101_JOINTS.index("gripper")
CLOSING_RAD = 0.0  # the gripper command crossing this downwards is a grasp (open 0.84, shut -1.08)
UNITS = ArmUnits(MOCK_CALIBRATION)  # robot_id:=mock, what policy_node converts with for the sim


def rollout(arm: SimArm, runtime, task: str, cube: str, start: float, args) -> tuple[bool, list, float]:
    """One episode from simulated time ``start`` (after the last one's end: the arm's physics
    clock only runs forward); (success, [[seconds, dx, dy, dz] per grasp], end time)."""
    now = start
    arm.advance(now)
    judge = TaskJudge(arm.objects)
    judge.start(task, arm.object_positions, now)
    if runtime is None:
        arm.expert = ScriptedExpert(arm, cube)
    grasps, command, executed = [], arm.targets[GRIPPER], args.execute
    while now < start + args.time_limit and judge.result.state != SUCCEEDED:
        if runtime is not None and executed >= args.execute:
            images = {name: arm.render(name) for name in runtime.camera_names}
            chunk = runtime.infer(images, UNITS.radians_to_lerobot(arm.positions), task)
            times = np.arange(len(chunk)) / args.fps
            arm.submit(make_trajectory(SO101_JOINTS, now, times, UNITS.lerobot_chunk_to_radians(chunk),
                                       SO101_JOINTS), now)
            executed = 0
        for _ in range(round(1.0 / args.fps / CONTROL_PERIOD_S)):
            now += CONTROL_PERIOD_S
            arm.advance(now)
            judge.update(arm.object_positions, now)
            previous, command = command, arm.targets[GRIPPER]
            if previous > CLOSING_RAD >= command:
                offset = arm.jaw_position() - arm.object_position(cube)
                grasps.append([round(now - start, 2), *np.round(offset * 1000, 1).tolist()])
        executed += 1
    arm.expert = None
    return judge.result.state == SUCCEEDED, grasps, now


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    who = parser.add_mutually_exclusive_group(required=True)
    who.add_argument("--policy-path")
    who.add_argument("--expert", action="store_true")
    parser.add_argument("--episodes", type=int, default=10, help="per instruction")
    parser.add_argument("--seed", type=int, default=1000, help="the first scene (eval's --seed)")
    parser.add_argument("--front-view", choices=FRONT_VIEWS, default="scene")
    parser.add_argument("--image-size", default="128x96", help="WIDTHxHEIGHT")
    parser.add_argument("--fps", type=float, default=30.0, help="the policy's action rate")
    parser.add_argument("--execute", type=int, default=25, help="actions followed per chunk")
    parser.add_argument("--time-limit", type=float, default=10.0)
    args = parser.parse_args()
    width, height = (int(v) for v in args.image_size.lower().split("x"))
    runtime = None
    if args.policy_path:
        from smolvla_ros.policy.runtime import PolicyRuntime, PolicyRuntimeConfig

        runtime = PolicyRuntime(PolicyRuntimeConfig(policy_path=args.policy_path, device="cpu"))
    arm = SimArm(SimConfig(scene="two_cubes", front_view=args.front_view, image_width=width,
                           image_height=height))
    first = {True: [], False: []}  # success -> the first grasp's offsets
    successes, clock = 0, 100.0
    try:
        for seed in range(args.seed, args.seed + args.episodes):
            for cube in ("red", "blue"):
                arm.reset(seed=seed)
                ok, grasps, clock = rollout(arm, runtime, f"pick up the {cube} cube", cube, clock, args)
                print(f"seed {seed} {cube:4s} {'success' if ok else 'failure'}; grasps "
                      f"[s, dx, dy, dz mm]: {grasps}", flush=True)
                successes += ok
                if grasps:
                    first[ok].append(grasps[0][1:])
    finally:
        arm.close()
    print(f"{successes}/{2 * args.episodes} succeeded")
    for ok, offsets in first.items():
        if offsets:
            dx, dy, dz = np.array(offsets).T
            print(f"  first grasp of the {'successes' if ok else 'failures'}: |dx| median "
                  f"{np.median(np.abs(dx)):.0f} mm (max {np.abs(dx).max():.0f}), dy median "
                  f"{np.median(dy):.0f} mm, dz median {np.median(dz):.0f} mm")


if __name__ == "__main__":
    main()
