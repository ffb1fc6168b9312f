"""A scripted expert that demonstrates like a person at a leader arm.

Every 0.1 s ``lerobot-env-so101``'s pick-and-place script picks a Cartesian step towards
its current phase's goal (hover, descend, close, lift, carry, lower, open, retreat); the
environment's top-down IK turns it into joint targets and the arm drives there. Those
targets are what a leader arm would read, so the sim node publishes them on
``leader/joint_states``: a recording made meanwhile is a teleoperated demonstration.

In the one-cube scene it picks the cube and places it at the env's goal. Given a ``target``
(the two-cube scene's "pick up the red cube") it picks that cube up and holds it: the script
stops once the lift is done, and the arm keeps the cube in the air.

It aims the jaws ``GRASP_AIM_M`` beside the cube's centre. The SO-101's jaws close along world
y with the fixed jaw on the +y side, so a grasp aimed at the centre lifts the cube only when it
lands within about -30..+3 mm of it in y (any x error within about ±15 mm): the script's own
aim would sit 3 mm from a miss. Aimed at the window's middle, grasps 9 mm off to -y and 12 mm
to +y still lifted the cube (measured; the tests check ±8 mm).

With ``detour_m`` it first hovers over a point up to that far off the aim (drawn, seeded by the
scene's seed), then moves over the cube and goes on. A policy trained on plain demonstrations
that stopped a couple of centimetres off the cube hovered there for good: no demonstration
had ever been off target. The detours show the correction from such places (as DART does with
noise injected into the demonstrator).

It checks its grasp when the lift ends: if the cube did not come up, it opens, goes back over
the cube where it lies now and tries again (up to ``MAX_TRIES`` grasps). With ``miss_rate`` that
share of scenes (drawn, seeded) starts with a grasp aimed ``MISS_M`` off in x on purpose, so the
demonstrations show a missed grasp and its retry: a policy that closed its jaws beside the cube
had never seen what to do next, and held its empty jaws in the air. It is off by default: a
policy trained with 40 % missed first grasps missed about as often itself (the scene does not
say which grasp is meant to miss), and one trained without them did better (README).
"""

from __future__ import annotations

import numpy as np

from smolvla_ros.sim.arm import EXPERT_PERIOD_S, SimArm

LIFTED_M = 0.03  # the cube counts as picked once it rose this far above where it lay
GRASP_AIM_M = np.array([0.0, -0.012, 0.0])  # where the jaws go down, from the cube's centre
DETOUR_STREAM = 0xDE70  # the detours' random stream, beside the scene seed
MISS_M = 0.03  # a missed grasp lands this far off the aim in x: the jaws close beside the cube
MAX_TRIES = 3  # grasps per demonstration


def check_miss_rate(rate: float) -> None:
    """A share of scenes; sim_node checks its parameter with this at start-up."""
    if not 0.0 <= rate <= 1.0:
        raise ValueError(f"expert_miss_rate is a share of scenes, 0..1: {rate}")


class ScriptedExpert:
    def __init__(self, arm: SimArm, target: str | None = None, detour_m: float = 0.0,
                 miss_rate: float = 0.0):
        """``target``: pick up and hold this object; None: pick-and-place the scene's cube.
        ``detour_m``: hover first over a point up to this far off the aim in x and y.
        ``miss_rate``: the share of scenes whose first grasp misses on purpose, then retries."""
        # imported when used, as arm.py does (the package imports MuJoCo and gymnasium), so the
        # phases this expert compares with are kept on the instance
        from lerobot_env_so101.policy import DEFAULT_ACTION_SCALE
        from lerobot_env_so101.scripted.pick_place import Phase, PickPlaceController

        if target is not None and target not in arm.objects:
            raise ValueError(f"no object {target!r} in the scene ({', '.join(arm.objects)})")
        self.arm = arm
        self.target = target
        self._object = target or arm.objects[0]
        check_miss_rate(miss_rate)
        self._lifted = Phase.TRAVERSE  # the lift is done from here on: the grasp is checked
        self.controller = PickPlaceController(action_scale=DEFAULT_ACTION_SCALE)
        self._aiming = (Phase.HOVER, Phase.DESCEND)  # the phases that go for the grasp point
        self._hover = Phase.HOVER
        self.detour_m = detour_m
        self.miss_rate = miss_rate
        self.restart()

    def restart(self) -> None:
        """From the top, for the cube where it lies now (after a reset)."""
        self.controller.reset()
        # the same detour for the same scene, drawn apart from the scene's own placement draws
        rng = np.random.default_rng([self.arm.seed, DETOUR_STREAM])
        offset = rng.uniform(-self.detour_m, self.detour_m, size=2) if self.detour_m else np.zeros(2)
        self.detour = np.array([*offset, 0.0])  # from the aim; zero once the arm hovered there
        # drawn after the detour, so a scene's detour does not depend on the miss rate
        misses = self.miss_rate > 0 and rng.random() < self.miss_rate
        self.miss = np.array([MISS_M * rng.choice([-1.0, 1.0]) if misses else 0.0, 0.0, 0.0])
        self.tries = 1
        self._checked = 0  # the last try whose grasp was checked
        self._next = None
        self._held = False
        self.cube_start = self.arm.object_position(self._object)
        self.highest = float(self.cube_start[2])

    @property
    def phase(self) -> str:
        return "hold" if self._held else self.controller.phase.name.lower()

    @property
    def done(self) -> bool:
        return self._held or self.controller.done

    @property
    def picked(self) -> bool:
        """The cube was lifted off the table at some point of this demonstration."""
        return self.highest - float(self.cube_start[2]) > LIFTED_M

    def tick(self, now: float) -> None:
        """Called at every control tick; chooses a new step every EXPERT_PERIOD_S."""
        env = self.arm.env
        position = self.arm.object_position(self._object)
        self.highest = max(self.highest, float(position[2]))
        if self._held or (self._next is not None and now < self._next):
            return
        lying = position
        if self.controller.phase in self._aiming:
            # the jaws' target (off on purpose for a miss); carrying steers the cube itself
            position = position + GRASP_AIM_M + self.miss
        goal = env.goal_pos if self.target is None else position  # pick-up: no carrying
        action = self.controller.act(env.ik_point_pos, position + self.detour, goal)
        if self.detour.any() and self.controller.phase is not self._hover:
            self.detour = np.zeros(3)  # hovered over the detour point: now over the cube
            self.controller.reset()
            action = self.controller.act(env.ik_point_pos, position, goal)
        if self.controller.phase.value >= self._lifted.value and self._checked < self.tries:
            self._checked = self.tries  # the lift just ended: did the cube come up?
            if lying[2] - self.cube_start[2] <= LIFTED_M and self.tries < MAX_TRIES:
                self.tries += 1  # it stayed down: open, back over it, and again
                self.miss = np.zeros(3)
                self.controller.reset()
                action = self.controller.act(env.ik_point_pos, lying + GRASP_AIM_M, goal)
            elif self.target is not None:
                self._held = True  # lifted: keep the last targets, the cube stays in the air
                return
        env.apply_action(np.asarray(action))  # IK and actuator targets only (no substeps)
        self._next = (now if self._next is None else self._next) + EXPERT_PERIOD_S
