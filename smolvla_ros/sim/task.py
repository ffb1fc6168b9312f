"""Which object the words name, and whether the arm did it: the simulated task's judge.

The rule, per instruction: the named object was lifted at least ``LIFTED_M`` above where it
lay and held there for ``HELD_S`` without a break, and no other object was ever lifted
``LIFTED_M``. The first lifted wrong object fails the episode (it latches, as does success).
An instruction names an object by its word (``red``, ``blue``); in a scene of one object
any instruction names it. Nothing here knows about ROS: sim_node feeds it positions.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import numpy as np

LIFTED_M = 0.03  # rise above the resting height that counts as lifted
HELD_S = 1.0  # lifted without a break this long = held (not flicked or dropped)
MOVED_M = 0.01  # displacement that counts as moved

IDLE, RUNNING, SUCCEEDED, WRONG_OBJECT, NO_TARGET = range(5)  # = TaskResult.msg's STATE_*
STATE_NAMES = ("idle", "running", "succeeded", "wrong_object", "no_target")


def named_object(instruction: str, objects: tuple[str, ...]) -> str | None:
    """The object the instruction names; None if it names none or several (or is empty)."""
    if not instruction.strip():
        return None
    if len(objects) == 1:
        return objects[0]
    words = set(re.findall(r"[a-z]+", instruction.lower()))
    named = [name for name in objects if name in words]
    return named[0] if len(named) == 1 else None


@dataclass
class TaskResult:
    state: int = IDLE
    instruction: str = ""
    target: str = ""
    elapsed: float = 0.0  # seconds since the episode's start (instruction or reset)
    time_to_success: float = -1.0
    rise: dict[str, float] = field(default_factory=dict)  # highest rise so far, metres
    lifted: list[str] = field(default_factory=list)
    moved: list[str] = field(default_factory=list)

    @property
    def state_name(self) -> str:
        return STATE_NAMES[self.state]


class TaskJudge:
    """Follows one episode: ``start`` at an instruction (or a reset), ``update`` with every
    physics step's object positions, ``result`` at any time."""

    def __init__(self, objects: tuple[str, ...]):
        self.objects = objects
        self.result = TaskResult()
        self._start_positions: dict[str, np.ndarray] = {}
        self._start_time = 0.0
        self._lifted_since: float | None = None

    def start(self, instruction: str, positions: dict[str, np.ndarray], now: float) -> None:
        """A new episode from the objects where they lie now."""
        self._start_positions = {name: np.array(positions[name], dtype=float) for name in self.objects}
        self._start_time = now
        self._lifted_since = None
        self.result = TaskResult(rise={name: 0.0 for name in self.objects})
        self.set_instruction(instruction)

    def set_instruction(self, instruction: str) -> None:
        """A change of mind keeps the episode: what was lifted before still counts."""
        result = self.result
        result.instruction = instruction.strip()
        target = named_object(result.instruction, self.objects)
        if result.state in (SUCCEEDED, WRONG_OBJECT) and (target or "") == result.target:
            return  # the same task said again: the outcome stands
        result.target = target or ""
        self._lifted_since = None
        result.time_to_success = -1.0
        if not result.instruction:
            result.state = IDLE
        elif target is None:
            result.state = NO_TARGET
        elif any(name != target for name in result.lifted):
            result.state = WRONG_OBJECT
        else:
            result.state = RUNNING

    def update(self, positions: dict[str, np.ndarray], now: float) -> bool:
        """Judge the objects' positions at ``now``; True when the state changed."""
        if not self._start_positions:
            return False
        result, before = self.result, self.result.state
        result.elapsed = now - self._start_time
        for name in self.objects:
            position, start = np.asarray(positions[name]), self._start_positions[name]
            rise = float(position[2] - start[2])
            result.rise[name] = max(result.rise[name], rise)
            if rise >= LIFTED_M and name not in result.lifted:
                result.lifted.append(name)
            if np.linalg.norm(position - start) >= MOVED_M and name not in result.moved:
                result.moved.append(name)
        if result.state == RUNNING:
            if any(name != result.target for name in result.lifted):
                result.state = WRONG_OBJECT
            elif float(positions[result.target][2] - self._start_positions[result.target][2]) >= LIFTED_M:
                self._lifted_since = now if self._lifted_since is None else self._lifted_since
                if now - self._lifted_since >= HELD_S:
                    result.state, result.time_to_success = SUCCEEDED, result.elapsed
            else:
                self._lifted_since = None
        return result.state != before
