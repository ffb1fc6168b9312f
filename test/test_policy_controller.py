"""Continuity: with inference slower than a tick but faster than the chunk's remainder, an
executor following the published chunks at the control rate never runs out of targets."""

from __future__ import annotations

import pytest

from smolvla_ros.policy.controller import RUNNING, PolicyControllerConfig
from smolvla_ros.policy.dry_run import dry_run
from smolvla_ros.policy.runtime import PolicyRuntime, PolicyRuntimeConfig

FPS = 30.0


@pytest.fixture(scope="module")
def runtime(tiny_checkpoint):
    return PolicyRuntime(PolicyRuntimeConfig(str(tiny_checkpoint), device="cpu"))


def test_no_starved_ticks_while_inference_beats_the_chunk_remainder(runtime):
    # A chunk lasts 50 / 30 = 1.67 s; the next inference starts with half of it left (0.83 s).
    result = dry_run(runtime, seconds=6.0, delay_s=0.4)
    assert result.chunks >= 4 and result.ticks > 100
    assert result.starved_ticks == 0
    assert result.status.starved_ticks == 0
    assert result.status.state == RUNNING


def test_starvation_is_counted_when_inference_is_too_slow(runtime):
    result = dry_run(runtime, seconds=6.0, delay_s=1.3)
    assert result.chunks >= 2
    assert result.starved_ticks > 0 and result.status.starved_ticks > 0


def test_a_larger_threshold_does_not_carry_inference_slower_than_half_a_chunk(runtime):
    """Threshold 0.9 starts the next inference early, but a chunk that arrives with less than
    that left starts the next one at once: past half a chunk (0.83 s) the arm still starves."""
    config = PolicyControllerConfig(fps=FPS, chunk_threshold=0.9)
    fast = dry_run(runtime, seconds=5.0, delay_s=0.4, config=config)
    assert fast.chunks >= 4 and fast.starved_ticks == 0
    slow = dry_run(runtime, seconds=6.0, delay_s=1.1, config=config)
    assert slow.chunks >= 2 and slow.starved_ticks > 0


def test_real_time_chunking_feeds_the_unexecuted_prefix(tiny_checkpoint):
    # RTC changes the policy
    runtime = PolicyRuntime(PolicyRuntimeConfig(str(tiny_checkpoint), device="cpu"))
    result = dry_run(runtime, seconds=4.0, delay_s=0.3,
                     config=PolicyControllerConfig(fps=FPS, aggregate="rtc"))
    assert result.chunks >= 3 and result.starved_ticks == 0
    assert result.calls[0]["rtc_prefix"] is None  # nothing to agree with yet
    later = result.calls[1]
    assert tuple(later["rtc_prefix"].shape) == (10, 6)
    # The measured latency, in actions: at least the injected 0.3 s, well under a chunk.
    assert 0.3 * FPS <= later["rtc_delay"] < 50


def test_inference_slower_than_a_chunk_holds_with_a_reason(runtime):
    # 50 actions at 30 Hz last 1.67 s: a 1.8 s inference is over before it is ready.
    result = dry_run(runtime, seconds=5.0, delay_s=1.8)
    assert result.chunks == 0 and result.status.chunks_published == 0
    assert result.status.state == "holding"
    assert "longer than a chunk (1.67 s): the arm holds" in result.status.message


def test_synchronous_timing_runs_every_action_of_chunks_slower_than_themselves(runtime):
    """A 3 s inference is longer than a chunk (1.67 s): in async timing the arm never moves
    (above). In sync timing each chunk is timed from its arrival and run whole, the next
    inference starts once it has run, and the arm holds (saying so) while the model runs."""
    result = dry_run(runtime, seconds=11.0, delay_s=3.0,
                     config=PolicyControllerConfig(fps=FPS, timing="sync"))
    assert result.chunks >= 2 and result.status.chunks_published == result.chunks
    assert result.skipped_actions == [0] * result.chunks  # every action reached the executor
    assert "synchronous timing: the arm holds while the model runs" in result.messages
    assert result.status.starved_ticks == 0  # holding between chunks is the mode, not starving


def test_synchronous_timing_refuses_real_time_chunking(runtime):
    with pytest.raises(ValueError, match="aggregate 'rtc' needs timing 'async'"):
        dry_run(runtime, seconds=0.1, config=PolicyControllerConfig(timing="sync", aggregate="rtc"))
