"""Chunk timing and overlap handling, on plain numbers."""

from __future__ import annotations

import numpy as np
import pytest
from lerobot.async_inference.configs import AGGREGATE_FUNCTIONS

from smolvla_ros.policy.chunks import ChunkSchedule


def test_threshold_remaining_and_starvation():
    schedule = ChunkSchedule(fps=10.0, threshold=0.5)
    assert schedule.needs_inference(0.0) and schedule.starved(0.0)
    schedule.merge(100.0, np.zeros((10, 2)))  # actions due at 100.0 .. 100.9
    assert schedule.remaining(100.0) == 9 and not schedule.needs_inference(100.0)
    assert schedule.remaining(100.45) == 5 and schedule.needs_inference(100.45)
    assert not schedule.starved(100.9) and schedule.starved(100.95)
    schedule.clear()
    assert schedule.current is None and schedule.needs_inference(100.0)


def test_replace_keeps_only_the_new_chunk():
    schedule = ChunkSchedule(fps=10.0)
    schedule.merge(0.0, np.ones((10, 1)))
    chunk = schedule.merge(0.5, np.full((10, 1), 3.0))
    np.testing.assert_allclose(chunk.times, 0.5 + np.arange(10) / 10)
    assert (chunk.actions == 3.0).all()


@pytest.mark.parametrize("name", list(AGGREGATE_FUNCTIONS))
def test_lerobot_aggregate_functions_blend_the_overlap(name):
    schedule = ChunkSchedule(fps=10.0, aggregate=name)
    schedule.merge(0.0, np.full((10, 1), 1.0))
    chunk = schedule.merge(0.5, np.full((10, 1), 3.0))  # overlaps the old chunk's last 5 actions
    blended = AGGREGATE_FUNCTIONS[name](np.float64(1.0), np.float64(3.0))
    np.testing.assert_allclose(chunk.actions[:5, 0], blended)
    np.testing.assert_allclose(chunk.actions[5:, 0], 3.0)


def test_bad_settings_are_clear_errors():
    with pytest.raises(ValueError, match="Unknown aggregate function 'blend'"):
        ChunkSchedule(fps=30.0, aggregate="blend")
    with pytest.raises(ValueError, match="threshold must be within 0..1"):
        ChunkSchedule(fps=30.0, threshold=1.5)
    with pytest.raises(ValueError, match="fps must be positive"):
        ChunkSchedule(fps=0.0)
