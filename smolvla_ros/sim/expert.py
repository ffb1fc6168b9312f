"""A scripted expert that demonstrates like a person at a leader arm.

Every 0.1 s ``lerobot-env-so101``'s pick-and-place script picks a Cartesian step towards
its current phase's goal (hover, descend, close, lift, carry, lower, open, retreat); the
environment's top-down IK turns it into joint targets and the arm drives there. Those
targets are what a leader arm would read, so the sim node publishes them on
``leader/joint_states``: a recording made meanwhile is a teleoperated demonstration.
"""

from __future__ import annotations

import numpy as np

from smolvla_ros.sim.arm import EXPERT_PERIOD_S, SimArm

LIFTED_M = 0.03  # the cube counts as picked once it rose this far above where it lay


class ScriptedExpert:
    def __init__(self, arm: SimArm):
        from lerobot_env_so101.policy import DEFAULT_ACTION_SCALE
        from lerobot_env_so101.scripted.pick_place import PickPlaceController

        self.arm = arm
        self.controller = PickPlaceController(action_scale=DEFAULT_ACTION_SCALE)
        self.restart()

    def restart(self) -> None:
        """From the top, for the cube where it lies now (after a reset)."""
        self.controller.reset()
        self._next = None
        self.cube_start = self.arm.cube_position
        self.highest = float(self.cube_start[2])

    @property
    def phase(self) -> str:
        return self.controller.phase.name.lower()

    @property
    def done(self) -> bool:
        return self.controller.done

    @property
    def picked(self) -> bool:
        """The cube was lifted off the table at some point of this demonstration."""
        return self.highest - float(self.cube_start[2]) > LIFTED_M

    def tick(self, now: float) -> None:
        """Called at every control tick; chooses a new step every EXPERT_PERIOD_S."""
        env = self.arm.env
        self.highest = max(self.highest, float(self.arm.cube_position[2]))
        if self._next is not None and now < self._next:
            return
        action = self.controller.act(env.ik_point_pos, self.arm.cube_position, env.goal_pos)
        env.apply_action(np.asarray(action))  # IK and actuator targets only (no substeps)
        self._next = (now if self._next is None else self._next) + EXPERT_PERIOD_S
