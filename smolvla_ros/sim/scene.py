"""The simulated scenes: lerobot-env-so101's one-cube table, or two cubes only words tell apart.

``cube`` (the default) is ``SO101PickPlaceGymEnv`` as it ships: one purple cube, placed at
random in its sampling box (x 0.15..0.30 m, y -0.1..0.1 m) or at (0.25, 0) m.

``two_cubes`` adds a second cube to the same MJCF (MuJoCo's model editing, no copy of the
scene file) and colours them red and blue. Each lies on its own side of the arm's centre
line; which side is the ``sides`` option:

- ``fixed`` (default): red on the left (+y, REP-103), blue on the right (-y);
- ``random``: the sides are swapped with probability 1/2 at each reset (seeded).

With ``random`` placement each cube is drawn uniformly, seeded, in ``TWO_CUBE_X`` x
``TWO_CUBE_Y`` on its side; without, both lie at ``TWO_CUBE_FIXED``. The jaws close along
world y, so the gap between the cubes (>= 8 cm) keeps the open jaws clear of the other cube.
"""

from __future__ import annotations

import numpy as np

SCENES = ("cube", "two_cubes")
SIDES = ("fixed", "random")
# Object names per scene, as the words call them ("pick up the red cube").
OBJECTS = {"cube": ("cube",), "two_cubes": ("red", "blue")}
GEOMS = {"cube": "block", "red": "block", "blue": "block_b"}  # the first reuses the env's block
COLOURS = {"red": (0.85, 0.1, 0.1, 1.0), "blue": (0.1, 0.25, 0.9, 1.0)}
TWO_CUBE_X = (0.21, 0.27)  # metres ahead of the base: reachable with the gripper held vertical
TWO_CUBE_Y = (0.06, 0.10)  # metres from the centre line, each cube on its side
TWO_CUBE_FIXED = (0.24, 0.08)  # (x, |y|) without random placement


def add_second_cube(model_path: str):
    """The env's scene with ``block_b``: a free 4 cm cube like ``block``. Appended after every
    other element, so the arm's and the first block's ids and addresses are unchanged."""
    import mujoco

    spec = mujoco.MjSpec.from_file(model_path)
    first = spec.geom("block")
    body = spec.worldbody.add_body(name="block_b", pos=[TWO_CUBE_FIXED[0], -TWO_CUBE_FIXED[1], first.size[2]])
    body.add_freejoint(name="block_b")
    body.add_geom(name="block_b", type=mujoco.mjtGeom.mjGEOM_BOX, size=list(first.size),
                  mass=first.mass, rgba=list(COLOURS["blue"]), friction=list(first.friction))
    first.rgba = list(COLOURS["red"])
    return spec.compile()


def two_cube_env_class():
    """``SO101PickPlaceGymEnv`` on the two-cube model (a class made on first use: the env's
    package is imported only when a scene is built)."""
    import mujoco
    from lerobot_env_so101.mujoco_env import MujocoGymEnv
    from lerobot_env_so101.pick_place_env import SO101PickPlaceGymEnv

    class _TwoCubeModel(MujocoGymEnv):
        """Swaps the loaded model before the SO-101 env reads ids from it (it comes after
        SO101GymEnv in the MRO, so SO101GymEnv's ``super().__init__`` lands here)."""

        def __init__(self, xml_path, **kwargs):
            super().__init__(xml_path=xml_path, **kwargs)
            timestep = self._model.opt.timestep
            self._model = add_second_cube(xml_path.as_posix())
            self._model.opt.timestep = timestep
            self._model.vis.global_.offwidth = self._render_specs.width
            self._model.vis.global_.offheight = self._render_specs.height
            self._data = mujoco.MjData(self._model)

    class TwoCubePickPlaceEnv(SO101PickPlaceGymEnv, _TwoCubeModel):
        pass

    return TwoCubePickPlaceEnv


def two_cube_places(rng: np.random.Generator, random_place: bool, sides: str) -> dict[str, np.ndarray]:
    """{object: (x, y)} for one reset, drawn from ``rng`` (the env's seeded generator)."""
    if sides not in SIDES:
        raise ValueError(f"sides {sides!r}: expected one of {list(SIDES)}")
    swapped = sides == "random" and bool(rng.integers(2))
    places = {}
    for name, side in zip(OBJECTS["two_cubes"], (1.0, -1.0) if not swapped else (-1.0, 1.0), strict=True):
        if random_place:
            x, y = rng.uniform(*TWO_CUBE_X), rng.uniform(*TWO_CUBE_Y)
        else:
            x, y = TWO_CUBE_FIXED
        places[name] = np.array([x, side * y])
    return places
