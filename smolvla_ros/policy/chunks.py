"""Which action chunk is in force, when to infer the next one, and how two chunks merge.

Times are absolute seconds on the node's clock; action k of a chunk computed from an
observation taken at ``t_obs`` is due at ``t_obs + k / fps``, so the part that elapsed while
the model ran is already in the past when the chunk arrives (latency compensation). The
next inference starts when the actions still ahead fall to ``threshold`` of a chunk
(LeRobot's async inference uses 0.5): as long as inference is faster than that remainder,
the arm never runs out of actions.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

REPLACE = "replace"
RTC = "rtc"  # real-time chunking: the model itself agrees with the previous chunk; then replace


@dataclass
class Chunk:
    times: np.ndarray  # (n,) absolute seconds
    actions: np.ndarray  # (n, joints); merging is affine, so radians and LeRobot units both work

    def __len__(self) -> int:
        return len(self.times)


class ChunkSchedule:
    def __init__(self, fps: float, threshold: float = 0.5, aggregate: str = REPLACE):
        if fps <= 0:
            raise ValueError(f"fps must be positive, not {fps}")
        if not 0.0 <= threshold <= 1.0:
            raise ValueError(f"chunk threshold must be within 0..1, not {threshold}")
        self.fps = fps
        self.threshold = threshold
        self.aggregate = aggregate
        if aggregate in (REPLACE, RTC):
            self._combine = None
        else:
            from lerobot.async_inference.configs import get_aggregate_function

            self._combine = get_aggregate_function(aggregate)  # raises on an unknown name
        self.current: Chunk | None = None

    def remaining(self, now: float) -> int:
        """Actions of the current chunk still ahead of ``now`` (the queue depth)."""
        return 0 if self.current is None else int((self.current.times > now).sum())

    def needs_inference(self, now: float) -> bool:
        if self.current is None:
            return True
        return self.remaining(now) <= self.threshold * len(self.current)

    def starved(self, now: float) -> bool:
        """True when an executor at ``now`` has no action left to follow."""
        return self.current is None or now > self.current.times[-1]

    def merge(self, observation_time: float, actions: np.ndarray) -> Chunk:
        """Make the chunk computed from ``observation_time`` current; returns it."""
        times = observation_time + np.arange(len(actions)) / self.fps
        actions = np.array(actions, dtype=float)
        old = self.current
        if self._combine is not None and old is not None:
            import torch

            index = np.rint((times - old.times[0]) * self.fps).astype(int)
            overlap = (index >= 0) & (index < len(old))
            if overlap.any():
                combined = self._combine(torch.from_numpy(old.actions[index[overlap]]),
                                         torch.from_numpy(actions[overlap]))
                actions[overlap] = combined.numpy()
        self.current = Chunk(times, actions)
        return self.current

    def clear(self) -> None:
        self.current = None
