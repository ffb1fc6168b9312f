"""A dry run of the policy's timing with no robot.

The real controller and runtime are fed a still observation and an instruction; a
trajectory executor follows every published chunk at the control rate, as the arm's node
would, and counts the ticks where it had nothing left to follow. ``DelayedRuntime`` adds
latency to each inference to stand in for a slower machine or a bigger model. Used by the
continuity test and by bench/policy_timing.py.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from smolvla_ros.feetech.emulator import MOCK_CALIBRATION
from smolvla_ros.policy.controller import PolicyController, PolicyControllerConfig, PolicyState
from smolvla_ros.trajectory import TrajectoryError, TrajectoryExecutor, make_trajectory
from smolvla_ros.units import SO101_JOINTS, ArmUnits


class DelayedRuntime:
    """A runtime whose every inference takes ``delay_s`` longer; records the calls' kwargs."""

    def __init__(self, runtime, delay_s: float):
        self._runtime, self.delay_s = runtime, delay_s
        self.calls: list[dict] = []

    def __getattr__(self, name):
        return getattr(self._runtime, name)

    def infer(self, *args, **kwargs):
        self.calls.append(kwargs)
        time.sleep(self.delay_s)
        return self._runtime.infer(*args, **kwargs)


@dataclass
class DryRunResult:
    ticks: int  # control ticks after the first chunk arrived
    starved_ticks: int  # ...of which the executor had no target
    chunks: int
    skipped_actions: list[int]  # per chunk: actions already past when it reached the executor
    status: PolicyState
    calls: list[dict]
    messages: list[str]  # every distinct status message, in order


def dry_run(runtime, seconds: float, delay_s: float = 0.0,
            config: PolicyControllerConfig | None = None) -> DryRunResult:
    config = config or PolicyControllerConfig()
    executor = TrajectoryExecutor(SO101_JOINTS)
    delayed = DelayedRuntime(runtime, delay_s)
    chunks = 0
    skipped: list[int] = []

    def follow(chunk) -> None:
        nonlocal chunks
        chunks += 1
        times = chunk.first_s + np.arange(len(chunk.positions)) / chunk.fps
        trajectory = make_trajectory(chunk.joint_names, chunk.stamp_ns * 1e-9, times, chunk.positions,
                                     SO101_JOINTS)
        try:
            skipped.append(executor.replace(trajectory, time.monotonic(), np.zeros(6)))
        except TrajectoryError:
            skipped.append(len(times))  # entirely past on arrival: the executor keeps its old path


    controller = PolicyController(delayed, ArmUnits(MOCK_CALIBRATION), config, follow,
                                  lambda *_: None, time.monotonic)
    images = {name: np.zeros((64, 64, 3), np.uint8) for name in runtime.camera_names}
    ticks = starved = 0
    messages: list[str] = []
    start = next_tick = time.monotonic()
    try:
        controller.set_instruction("pick up the cube", start)
        while time.monotonic() - start < seconds:
            now = time.monotonic()
            for name, image in images.items():
                controller.update_image(name, image, now)
            controller.update_joints(SO101_JOINTS, np.zeros(6), round(now * 1e9))
            controller.tick(now)
            if not messages or controller.status.message != messages[-1]:
                messages.append(controller.status.message)
            if chunks:
                ticks += 1
                starved += not executor.is_moving(now)
            next_tick += 1.0 / config.fps
            time.sleep(max(0.0, next_tick - time.monotonic()))
    finally:
        controller.close()
    return DryRunResult(ticks, starved, chunks, skipped, controller.status, delayed.calls, messages)
