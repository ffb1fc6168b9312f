"""bench/grasp_errors.py, the grasp diagnosis: the scripted expert's grasps land on its aim, and
a checkpoint rolls out through the real runtime in simulated time."""

from __future__ import annotations

import ast

from conftest import run_bench


def grasp_errors(*args: str) -> tuple[str, list[list[list[float]]]]:
    output = run_bench("grasp_errors.py", *args)
    episodes = [ast.literal_eval(line.split("mm]: ")[1]) for line in output.splitlines()
                if line.startswith("seed ")]
    return output, episodes


def test_the_experts_grasps_close_on_its_aim():
    out, episodes = grasp_errors("--expert", "--episodes", "1", "--front-view", "workspace")
    assert "2/2 succeeded" in out and len(episodes) == 2
    for grasps in episodes:
        assert len(grasps) == 1  # one grasp, no retry: no detour, no planned miss
        _, dx, dy, dz = grasps[0]
        # the jaw frame sits off the cube's centre by the aim (12 mm to -y) and the jaw's
        # own offset; in x, the cube's distance from the base, it is on the cube
        assert abs(dx) < 2.0 and -45.0 < dy < -30.0 and 0.0 < dz < 25.0


def test_a_checkpoint_is_rolled_out_and_reported(tiny_checkpoint):
    out, episodes = grasp_errors("--policy-path", str(tiny_checkpoint), "--episodes", "1",
                                 "--time-limit", "1")
    assert len(episodes) == 2 and "/2 succeeded" in out
