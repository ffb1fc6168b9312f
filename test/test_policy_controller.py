"""Continuity: with inference slower than a tick but faster than the chunk's remainder, an
executor following the published chunks at the control rate never runs out of targets."""

from __future__ import annotations

import time

import numpy as np
import pytest

from smolvla_ros.feetech.emulator import MOCK_CALIBRATION
from smolvla_ros.policy.controller import RUNNING, PolicyController, PolicyControllerConfig
from smolvla_ros.policy.runtime import PolicyRuntime, PolicyRuntimeConfig
from smolvla_ros.trajectory import TrajectoryExecutor, make_trajectory
from smolvla_ros.units import SO101_JOINTS, ArmUnits

FPS = 30.0


class DelayedRuntime:
    """The real runtime, with extra latency added to every inference (a slower machine)."""

    def __init__(self, runtime: PolicyRuntime, delay_s: float):
        self._runtime, self.delay_s = runtime, delay_s
        self.calls: list[dict] = []

    def __getattr__(self, name):
        return getattr(self._runtime, name)

    def infer(self, *args, **kwargs):
        self.calls.append(kwargs)
        time.sleep(self.delay_s)
        return self._runtime.infer(*args, **kwargs)


@pytest.fixture(scope="module")
def runtime(tiny_checkpoint):
    return PolicyRuntime(PolicyRuntimeConfig(str(tiny_checkpoint)))


def run_executor(runtime, delay_s: float, seconds: float, aggregate: str = "replace"
                 ) -> tuple[int, int, PolicyController]:
    """Drive the controller and a trajectory executor at FPS; returns (starved ticks, chunks)."""
    executor = TrajectoryExecutor(SO101_JOINTS)
    chunks = []

    def publish(chunk):
        chunks.append(chunk)
        trajectory = make_trajectory(chunk.joint_names, chunk.stamp,
                                     np.arange(len(chunk.positions)) / chunk.fps,
                                     chunk.positions, SO101_JOINTS)
        executor.replace(trajectory, time.monotonic(), np.zeros(6))

    controller = PolicyController(DelayedRuntime(runtime, delay_s), ArmUnits(MOCK_CALIBRATION),
                                  PolicyControllerConfig(fps=FPS, aggregate=aggregate), publish,
                                  lambda *_: None, time.monotonic)
    image = np.zeros((48, 64, 3), np.uint8)
    starved = 0
    start = time.monotonic()
    tick = start
    try:
        controller.set_instruction("pick up the cube", start)
        while time.monotonic() - start < seconds:
            now = time.monotonic()
            for name in ("front", "wrist"):
                controller.update_image(name, image, now)
            controller.update_joints(SO101_JOINTS, np.zeros(6), now)
            controller.tick(now)
            if chunks and not executor.is_moving(now):
                starved += 1  # a control tick with nothing left to follow
            tick += 1 / FPS
            time.sleep(max(0.0, tick - time.monotonic()))
    finally:
        controller.close()
    return starved, len(chunks), controller


def test_no_starved_ticks_while_inference_beats_the_chunk_remainder(runtime):
    # A chunk lasts 50 / 30 = 1.67 s; the next inference starts with half of it left (0.83 s).
    starved, chunks, controller = run_executor(runtime, delay_s=0.4, seconds=6.0)
    assert chunks >= 4
    assert starved == 0
    assert controller.status.starved_ticks == 0
    assert controller.status.state == RUNNING


def test_starvation_is_counted_when_inference_is_too_slow(runtime):
    starved, chunks, controller = run_executor(runtime, delay_s=1.3, seconds=6.0)
    assert chunks >= 2
    assert starved > 0 and controller.status.starved_ticks > 0


def test_real_time_chunking_feeds_the_unexecuted_prefix(tiny_checkpoint):
    runtime = PolicyRuntime(PolicyRuntimeConfig(str(tiny_checkpoint)))  # RTC changes the policy
    starved, chunks, controller = run_executor(runtime, delay_s=0.3, seconds=4.0, aggregate="rtc")
    assert chunks >= 3 and starved == 0
    calls = controller.runtime.calls
    assert calls[0]["rtc_prefix"] is None  # nothing to agree with yet
    later = calls[1]
    assert tuple(later["rtc_prefix"].shape) == (10, 6)
    # The measured latency, in actions: at least the injected 0.3 s, well under a chunk.
    assert 0.3 * FPS <= later["rtc_delay"] < 50
