"""The two-cube scene and its judge, ROS-free: placements within the documented ranges, sides
fixed or random, the expert picking the cube the words name, and the success rule."""

from __future__ import annotations

import numpy as np
import pytest

from smolvla_ros.sim.task import (
    HELD_S, IDLE, LIFTED_M, NO_TARGET, RUNNING, SUCCEEDED, WRONG_OBJECT, TaskJudge, named_object,
)

RED, BLUE = "pick up the red cube", "pick up the blue cube"


@pytest.fixture(scope="module")
def two_cubes():
    from smolvla_ros.sim.arm import SimArm, SimConfig

    arm = SimArm(SimConfig(seed=7, scene="two_cubes"))
    yield arm
    arm.close()


def test_the_one_cube_scene_stays_the_default():
    from smolvla_ros.nodes.sim_node import PARAMETERS
    from smolvla_ros.sim.arm import SimConfig

    assert SimConfig().scene == "cube" and PARAMETERS["scene"][0] == "cube"
    assert PARAMETERS["sides"][0] == "fixed"


def test_two_cubes_lie_on_their_sides_within_the_documented_ranges(two_cubes):
    from smolvla_ros.sim.scene import TWO_CUBE_X, TWO_CUBE_Y

    assert two_cubes.objects == ("red", "blue")
    for seed in range(20):
        two_cubes.reset(seed=seed)
        red, blue = two_cubes.object_position("red"), two_cubes.object_position("blue")
        assert red[1] > 0 > blue[1]  # fixed sides: red on the left (+y), blue on the right
        for x, y, z in (red, blue):
            assert TWO_CUBE_X[0] <= x <= TWO_CUBE_X[1] and TWO_CUBE_Y[0] <= abs(y) <= TWO_CUBE_Y[1]
            assert z == pytest.approx(0.02, abs=1e-3)  # resting on the table
    placed = []
    for seed in (3, 3, 4):
        two_cubes.reset(seed=seed)
        placed.append(two_cubes.object_positions)
    assert all(np.array_equal(placed[0][k], placed[1][k]) for k in placed[0])  # seeded
    assert not np.allclose(placed[0]["red"], placed[2]["red"])


def test_sides_random_swaps_some_scenes_and_fixed_places_do_not_move():
    from smolvla_ros.sim.arm import SimArm, SimConfig
    from smolvla_ros.sim.scene import TWO_CUBE_FIXED

    arm = SimArm(SimConfig(seed=0, scene="two_cubes", sides="random", random_cube=False))
    try:
        sides = set()
        for seed in range(16):
            arm.reset(seed=seed)
            red, blue = arm.object_position("red"), arm.object_position("blue")
            assert np.allclose(np.abs(red[:2]), TWO_CUBE_FIXED) and red[1] == -blue[1]
            sides.add(bool(red[1] > 0))
        assert sides == {True, False}  # both ways round among 16 seeded resets
    finally:
        arm.close()
    with pytest.raises(ValueError, match="sides"):
        SimArm(SimConfig(scene="two_cubes", sides="left"))


def test_the_two_cube_scene_renders_red_and_blue(two_cubes):
    two_cubes.reset(seed=1)
    image = two_cubes.render("front").astype(int)
    red = (image[..., 0] > 150) & (image[..., 1] < 80) & (image[..., 2] < 80)
    blue = (image[..., 2] > 150) & (image[..., 0] < 80)
    assert red.sum() > 5 and blue.sum() > 5
    # the front camera looks back at the arm: the left cube (red, +y) is on the image's right
    assert np.nonzero(red)[1].mean() > np.nonzero(blue)[1].mean()


@pytest.mark.parametrize("sides", ["fixed", "random"])
def test_the_expert_picks_up_the_cube_the_words_name(sides):
    from smolvla_ros.sim.arm import SimArm, SimConfig
    from smolvla_ros.sim.expert import ScriptedExpert

    arm = SimArm(SimConfig(seed=11, scene="two_cubes", sides=sides))
    now = 100.0
    try:
        for episode in range(6):
            arm.reset()
            instruction = (RED, BLUE)[episode % 2]
            target, other = ("red", "blue") if instruction == RED else ("blue", "red")
            arm.advance(now)
            judge = TaskJudge(arm.objects)
            judge.start(instruction, arm.object_positions, now)
            arm.expert = ScriptedExpert(arm, named_object(instruction, arm.objects))
            start = now
            while judge.result.state == RUNNING and now < start + 15:
                now += 0.01
                arm.advance(now)
                judge.update(arm.object_positions, now)
            result = judge.result
            assert result.state == SUCCEEDED, (sides, episode, result)
            assert result.target == target and result.lifted == [target]
            assert result.rise[target] > LIFTED_M and result.rise[other] < 0.005
            assert HELD_S < result.time_to_success < 8.0
            assert arm.expert.done and arm.expert.phase == "hold"  # holds the cube up
    finally:
        arm.close()


class MisjudgingArm:
    """The arm as the expert sees it, with every object seen ``error`` metres off: a stand-in
    for a policy that imitates the expert to within that much."""

    def __init__(self, arm, error):
        self._arm, self._error = arm, np.asarray(error)

    def __getattr__(self, name):
        return getattr(self._arm, name)

    def object_position(self, name):
        return self._arm.object_position(name) + self._error


@pytest.mark.parametrize("error_y", [-0.008, 0.008])
@pytest.mark.parametrize("cube", ["red", "blue"])
def test_the_experts_grasp_lifts_the_cube_when_it_lands_8_mm_off_to_either_side(cube, error_y):
    """The jaws close along y with the fixed jaw at +y: aimed at the centre, a grasp 6 mm to +y
    landed the fixed jaw on the cube. The expert aims in the middle of the window instead, so
    demonstrations leave an imitating policy room either side."""
    from smolvla_ros.sim.arm import SimArm, SimConfig
    from smolvla_ros.sim.expert import ScriptedExpert

    arm = SimArm(SimConfig(seed=3, scene="two_cubes"))
    try:
        now = 100.0
        arm.advance(now)
        resting = arm.object_position(cube)[2]
        arm.expert = ScriptedExpert(MisjudgingArm(arm, [0.0, error_y, 0.0]), cube)
        for _ in range(1000):
            now += 0.01
            arm.advance(now)
            if arm.expert.done:
                break
        for _ in range(50):  # held up for half a second more
            now += 0.01
            arm.advance(now)
        assert arm.expert.phase == "hold"
        assert arm.object_position(cube)[2] - resting > LIFTED_M
    finally:
        arm.close()


def test_with_a_detour_the_expert_hovers_off_the_cube_first_then_picks_it_up():
    """Recovery demonstrations: the jaws hover over a point up to 3 cm off the aim (the same one
    for the same scene), then over the cube, and the cube is still lifted."""
    from smolvla_ros.sim.arm import SimArm, SimConfig
    from smolvla_ros.sim.expert import GRASP_AIM_M, ScriptedExpert

    arm = SimArm(SimConfig(seed=5, scene="two_cubes"))
    try:
        detours = []
        for seed, cube in ((21, "red"), (22, "blue"), (21, "blue")):
            now = 100.0 + 100 * len(detours)
            arm.reset(seed=seed)
            arm.advance(now)
            resting = arm.object_position(cube)
            arm.expert = ScriptedExpert(arm, cube, detour_m=0.03)
            detour = arm.expert.detour.copy()
            detours.append(detour)
            assert 0.005 < np.linalg.norm(detour[:2]) and np.all(np.abs(detour) <= 0.03)
            closest = np.inf  # of the jaws to the detour point, in x and y
            for _ in range(1000):
                now += 0.01
                arm.advance(now)
                jaws = arm.env.ik_point_pos
                closest = min(closest, np.linalg.norm(jaws[:2] - (resting + GRASP_AIM_M + detour)[:2]))
                if arm.expert.done:
                    break
            for _ in range(50):
                now += 0.01
                arm.advance(now)
            assert closest < 0.005, (seed, cube, detour, closest)
            assert not arm.expert.detour.any()  # then it went for the cube
            assert arm.object_position(cube)[2] - resting[2] > LIFTED_M, (seed, cube, detour)
        assert np.array_equal(detours[0], detours[2]) and not np.array_equal(detours[0], detours[1])
    finally:
        arm.close()


def test_after_a_missed_grasp_the_expert_opens_and_tries_again():
    """Demonstrations of a retry: with miss_rate 1 the first grasp closes 3 cm beside the cube,
    which stays on the table; the expert sees that when the lift ends, goes back over the cube
    and lifts it with its second grasp. With miss_rate 0 it grasps once."""
    from smolvla_ros.sim.arm import SimArm, SimConfig
    from smolvla_ros.sim.expert import MISS_M, ScriptedExpert

    arm = SimArm(SimConfig(seed=5, scene="two_cubes"))
    try:
        now = 100.0
        for seed, cube, miss_rate in ((23, "red", 1.0), (24, "blue", 1.0), (23, "red", 0.0)):
            arm.reset(seed=seed)
            now += 10.0
            arm.advance(now)
            resting = arm.object_position(cube)
            arm.expert = ScriptedExpert(arm, cube, miss_rate=miss_rate)
            assert abs(arm.expert.miss[0]) == (MISS_M if miss_rate else 0.0)
            highest_first_try = resting[2]
            for _ in range(2000):
                now += 0.01
                arm.advance(now)
                if arm.expert.tries == 1:
                    highest_first_try = max(highest_first_try, arm.object_position(cube)[2])
                if arm.expert.done:
                    break
            for _ in range(50):
                now += 0.01
                arm.advance(now)
            assert arm.expert.tries == (2 if miss_rate else 1), (seed, cube)
            if miss_rate:
                assert highest_first_try - resting[2] < 0.005  # the first grasp missed
            assert arm.object_position(cube)[2] - resting[2] > LIFTED_M, (seed, cube, miss_rate)
        with pytest.raises(ValueError, match="miss_rate"):
            ScriptedExpert(arm, "red", miss_rate=1.5)
    finally:
        arm.close()


def test_the_expert_refuses_an_object_that_is_not_there(two_cubes):
    from smolvla_ros.sim.expert import ScriptedExpert

    with pytest.raises(ValueError, match="no object 'green'"):
        ScriptedExpert(two_cubes, "green")


def test_named_object():
    objects = ("red", "blue")
    assert named_object(RED, objects) == "red"
    assert named_object("Pick up the BLUE cube!", objects) == "blue"
    assert named_object("pick up the cube", objects) is None  # names none
    assert named_object("put the red cube on the blue one", objects) is None  # names both
    assert named_object("bored", objects) is None  # words, not substrings
    assert named_object("pick up the cube", ("cube",)) == "cube"  # one object: any instruction
    assert named_object("  ", ("cube",)) is None


def _positions(red_z=0.02, blue_z=0.02, red_x=0.24):
    return {"red": np.array([red_x, 0.08, red_z]), "blue": np.array([0.24, -0.08, blue_z])}


def test_success_needs_the_named_cube_lifted_and_held():
    judge = TaskJudge(("red", "blue"))
    judge.start(RED, _positions(), 0.0)
    assert judge.result.state == RUNNING and judge.result.target == "red"
    judge.update(_positions(red_z=0.02 + LIFTED_M + 0.01), 1.0)  # lifted ...
    judge.update(_positions(), 1.5)  # ... and dropped before it was held: a flick
    judge.update(_positions(red_z=0.07), 2.0)
    assert judge.result.state == RUNNING
    assert not judge.update(_positions(red_z=0.07), 2.0 + HELD_S - 0.01)
    assert judge.update(_positions(red_z=0.07), 2.0 + HELD_S)  # the state changed
    assert judge.result.state == SUCCEEDED and judge.result.time_to_success == pytest.approx(3.0)
    judge.update(_positions(), 5.0)  # success latches
    assert judge.result.state == SUCCEEDED and judge.result.lifted == ["red"]


def test_the_other_cube_lifted_fails_the_episode_and_latches():
    judge = TaskJudge(("red", "blue"))
    judge.start(BLUE, _positions(), 0.0)
    judge.update(_positions(red_z=0.06), 1.0)
    assert judge.result.state == WRONG_OBJECT and judge.result.lifted == ["red"]
    judge.update(_positions(blue_z=0.07), 2.0)
    judge.update(_positions(blue_z=0.07), 2.0 + 2 * HELD_S)
    assert judge.result.state == WRONG_OBJECT  # the right one afterwards does not undo it
    assert judge.result.moved == ["red", "blue"]


def test_a_change_of_mind_is_judged_on_the_new_words():
    judge = TaskJudge(("red", "blue"))
    judge.start(RED, _positions(), 0.0)
    judge.update(_positions(red_x=0.25), 0.5)  # nudged, not lifted
    judge.set_instruction(BLUE)
    assert judge.result.state == RUNNING and judge.result.target == "blue"
    judge.update(_positions(red_x=0.25, blue_z=0.07), 1.0)
    judge.update(_positions(red_x=0.25, blue_z=0.07), 1.0 + HELD_S)
    assert judge.result.state == SUCCEEDED and judge.result.moved == ["red", "blue"]
    # too late: red already lifted when the words change to blue
    judge.start(RED, _positions(), 10.0)
    judge.update(_positions(red_z=0.07), 11.0)
    judge.set_instruction(BLUE)
    assert judge.result.state == WRONG_OBJECT
    judge.set_instruction("")
    assert judge.result.state == IDLE
    judge.start("pick up the green cube", _positions(), 20.0)
    assert judge.result.state == NO_TARGET and judge.result.target == ""
