"""The simulated SO-101: the MuJoCo arm itself, and sim_node with its scripted expert recorded
as a demonstration over real DDS, then converted to a LeRobotDataset."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import wait_for
from ros_probe import NodeProcess, RosProbe
from sensor_msgs.msg import Image, JointState
from std_msgs.msg import String
from std_srvs.srv import Trigger
from test_episode import read_back

from smolvla_ros.msg import EpisodeStatus
from smolvla_ros.trajectory import make_trajectory
from smolvla_ros.units import SO101_JOINTS


@pytest.fixture(scope="module")
def arm():
    from smolvla_ros.sim.arm import SimArm, SimConfig

    arm = SimArm(SimConfig(seed=3))
    yield arm
    arm.close()


def test_resets_place_the_cube_by_seed(arm):
    from smolvla_ros.sim.arm import SimArm, SimConfig

    first = [arm.reset(seed=s).copy() for s in (10, 11)]
    again = arm.reset(seed=10)
    np.testing.assert_array_equal(first[0], again)
    assert np.linalg.norm(first[0][:2] - first[1][:2]) > 1e-3  # another seed, another place
    other = SimArm(SimConfig(seed=3))  # same seed: the same sequence of placements
    try:
        arm.resets = other.resets
        assert np.allclose(arm.reset(), other.reset())
    finally:
        other.close()


def test_trajectory_is_executed_and_joints_read_in_radians(arm):
    arm.reset()
    np.testing.assert_allclose(arm.positions[:5], 0.0, atol=1e-6)  # home = calibrated zeros
    target = np.array([0.3, -0.4, 0.5, 0.2, -0.3, 0.4])
    arm.advance(100.0)
    arm.submit(make_trajectory(SO101_JOINTS, 100.0, [1.0], [target], SO101_JOINTS), 100.0)
    halfway = None
    for k in range(1, 301):
        arm.advance(100.0 + 0.01 * k)
        if k == 50:
            halfway = arm.positions.copy()
    assert np.abs(arm.positions[:5] - target[:5]).max() < 0.05  # position servos got there
    assert np.all(np.abs(halfway[:5]) < np.abs(target[:5]))  # moved along the path, not jumped
    assert arm.late_s == 0.0


def test_cameras_render_the_scene(arm):
    arm.reset()
    front, wrist = arm.render("front"), arm.render("wrist")
    assert front.shape == wrist.shape == (96, 128, 3) and front.dtype == np.uint8
    assert front.std() > 10 and wrist.std() > 5  # an image of something, not a blank
    with pytest.raises(ValueError, match="unknown camera"):
        arm.render("top")


def _red_cube_in_front_view(arm, x: float, y: float) -> np.ndarray:
    """The rows and columns of the red cube's pixels with the cube moved to (x, y)."""
    import mujoco

    arm.data.jnt("block").qpos[:2] = (x, y)
    mujoco.mj_forward(arm.model, arm.data)
    image = arm.render("front").astype(int)
    red = (image[..., 0] > 150) & (image[..., 1] < 80) & (image[..., 2] < 80)
    return np.argwhere(red)


def test_the_workspace_front_view_sees_the_cubes_range_sharper():
    from smolvla_ros.sim.arm import SimArm, SimConfig
    from smolvla_ros.sim.scene import TWO_CUBE_X, TWO_CUBE_Y

    spans, widths = {}, {}
    for view in ("scene", "workspace"):
        arm = SimArm(SimConfig(scene="two_cubes", front_view=view, random_cube=False))
        try:
            corners = {(x, y): _red_cube_in_front_view(arm, x, y)
                       for x in TWO_CUBE_X for y in (TWO_CUBE_Y[1], -TWO_CUBE_Y[1])}
        finally:
            arm.close()
        for (x, y), pixels in corners.items():  # whole and inside the frame at every corner
            assert len(pixels) > 30, (view, x, y)
            assert pixels.min() > 0 and pixels[:, 0].max() < 95 and pixels[:, 1].max() < 127, (view, x, y)
        near, far = corners[(TWO_CUBE_X[0], TWO_CUBE_Y[1])], corners[(TWO_CUBE_X[1], TWO_CUBE_Y[1])]
        spans[view] = abs(far[:, 0].mean() - near[:, 0].mean())  # rows the x range spans
        widths[view] = np.ptp(near[:, 1]) + 1
    assert spans["workspace"] > 2 * spans["scene"] and widths["workspace"] > 1.5 * widths["scene"]
    with pytest.raises(ValueError, match="front_view 'top'"):
        SimArm(SimConfig(front_view="top"))


def test_scripted_expert_demonstration_is_recorded_and_converts(tmp_path):
    from lerobot.datasets.lerobot_dataset import LeRobotDataset

    from smolvla_ros.recording.to_dataset import ConvertConfig, convert

    probe = RosProbe()
    probe.subscribe(EpisodeStatus, "episode_status")
    probe.subscribe(Image, "cameras/front/image_raw")
    probe.subscribe(JointState, "leader/joint_states")
    sim = NodeProcess("sim_node", "-p", "seed:=5")
    recorder = NodeProcess("recorder_node", "-p", f"output_dir:={tmp_path / 'episodes'}",
                           "-p", "start_on_instruction:=true", "-p", "robot_id:=mock", "-p",
                           'topics:=["joint_states", "leader/joint_states", "task_instruction", "cube_pose"]')
    try:
        sim.wait_for_output("simulated SO-101 ready")
        recorder.wait_for_output("ready: episodes go to")
        assert probe.call(Trigger, "start_expert").success
        # The recorder subscribes to a topic once it sees it in the graph: announce it first.
        probe.publish(String, "task_instruction", String(data=""), wait_for_subscriber=False)
        # the recorder and sim_node (its expert and task_result read the instruction)
        assert wait_for(lambda: probe.subscription_count("task_instruction") >= 2, 30)
        probe.publish(String, "task_instruction", String(data="pick up the cube"))
        assert wait_for(lambda: any(s.state == EpisodeStatus.STATE_RECORDING
                                    for s in probe.messages("episode_status")), 30)
        sim.wait_for_output("expert: demonstration done")
        assert "cube picked" in sim.output()
        assert probe.call(Trigger, "stop_episode").success
        image = probe.messages("cameras/front/image_raw")[-1]
        assert (image.height, image.width, image.encoding) == (96, 128, "rgb8")
        assert probe.messages("leader/joint_states")
    finally:
        assert recorder.stop() == 0, recorder.output()
        assert sim.stop() == 0, sim.output()
        probe.close()

    bag = tmp_path / "episodes" / "episode_000000"
    messages = read_back(bag)
    cube_z = [m.pose.position.z for t, m, _ in messages if t == "/cube_pose"]
    assert max(cube_z) - cube_z[0] > 0.03  # the cube was picked during the recorded episode

    plans, _ = convert([bag], ConvertConfig(output=tmp_path / "dataset", fps=10))
    dataset = LeRobotDataset("local/test", root=tmp_path / "dataset", video_backend="pyav")
    assert plans[0].action_source == "leader" and dataset.num_frames == plans[0].frames > 40
    action = np.stack([dataset[k]["action"].numpy() for k in range(dataset.num_frames)])
    state = np.stack([dataset[k]["observation.state"].numpy() for k in range(dataset.num_frames)])
    assert {dataset[k]["task"] for k in range(dataset.num_frames)} == {"pick up the cube"}
    # The actions are the expert's: they move (closing the gripper and opening it again), and
    # the follower's state follows them, a few frames behind.
    gripper = action[:, SO101_JOINTS.index("gripper")]
    assert gripper.max() - gripper.min() > 20  # 0..100 units
    lag = 3
    tracking = np.abs(state[lag:, :5] - action[:-lag, :5]).mean()
    assert tracking < 0.25 * np.abs(action[:, :5] - action[0, :5]).max()
