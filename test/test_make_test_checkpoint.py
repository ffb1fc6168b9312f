"""`smolvla-ros make-test-checkpoint` writes a real LeRobot checkpoint, offline."""

from __future__ import annotations

import subprocess

import numpy as np
import pytest
from conftest import ros_env
from lerobot.configs import FeatureType
from lerobot.policies.smolvla.modeling_smolvla import SmolVLAPolicy


def test_command_writes_a_checkpoint_lerobot_loads(tmp_path):
    folder = tmp_path / "ckpt"
    result = subprocess.run(
        ["smolvla-ros", "make-test-checkpoint", str(folder), "--cameras", "top,side",
         "--image-size", "30x40"], capture_output=True, text=True, env=ros_env())
    assert result.returncode == 0, result.stderr
    assert f"written to {folder}" in result.stdout
    for name in ("config.json", "model.safetensors", "policy_preprocessor.json",
                 "policy_postprocessor.json", "vlm/config.json", "vlm/tokenizer.json"):
        assert (folder / name).is_file(), name
    policy = SmolVLAPolicy.from_pretrained(folder)  # LeRobot's own loader, no Hub
    features = policy.config.input_features
    assert features["observation.images.top"].type is FeatureType.VISUAL
    assert features["observation.images.side"].shape == (3, 30, 40)
    assert policy.config.output_features["action"].shape == (6,)


def test_like_smolvla_base_with_a_rename_map_saves_it_as_lerobot_train_does(tmp_path):
    from lerobot.configs import PreTrainedConfig
    from lerobot.policies.factory import make_pre_post_processors
    from lerobot.processor.rename_processor import RenameObservationsProcessorStep

    folder = tmp_path / "finetune"
    result = subprocess.run(
        ["smolvla-ros", "make-test-checkpoint", str(folder), "--like-smolvla-base",
         "--rename-map", "front=camera1,wrist=camera2"], capture_output=True, text=True, env=ros_env())
    assert result.returncode == 0, result.stderr
    assert "rename map front -> camera1, wrist -> camera2" in result.stdout
    config = PreTrainedConfig.from_pretrained(folder)
    assert {key: (f.type, f.shape) for key, f in config.input_features.items()} == {
        "observation.state": (FeatureType.STATE, (6,)),
        **{f"observation.images.camera{k}": (FeatureType.VISUAL, (3, 256, 256)) for k in (1, 2, 3)}}
    assert config.output_features["action"].shape == (6,)
    # LeRobot's own loader reads the saved map back into its rename step.
    preprocessor, _ = make_pre_post_processors(config, pretrained_path=str(folder))
    (rename,) = [s for s in preprocessor.steps if isinstance(s, RenameObservationsProcessorStep)]
    assert rename.rename_map == {"observation.images.front": "observation.images.camera1",
                                 "observation.images.wrist": "observation.images.camera2"}


@pytest.mark.parametrize("option, message", [
    (["--rename-map", "top=camera1"], "rename map targets ['observation.images.camera1'] are not inputs"),
    (["--vision-pixels", "48"], "vision input 48 px: must be a multiple of the tiny size's 32 px"),
])
def test_a_bad_option_is_one_error_line(tmp_path, option, message):
    result = subprocess.run(["smolvla-ros", "make-test-checkpoint", str(tmp_path / "c"), *option],
                            capture_output=True, text=True, env=ros_env())
    assert result.returncode == 1
    assert message in result.stderr
    assert "Traceback" not in result.stderr


def test_a_sharper_vision_input_keeps_the_tokens_per_image_and_runs_as_lerobot_does(
        tmp_path, tiny_checkpoint):
    import json

    from test_policy_runtime import lerobot_direct, observation

    from smolvla_ros.policy.runtime import PolicyRuntime, PolicyRuntimeConfig

    folder = tmp_path / "sharp"
    result = subprocess.run(["smolvla-ros", "make-test-checkpoint", str(folder), "--vision-pixels", "64"],
                            capture_output=True, text=True, env=ros_env())
    assert result.returncode == 0, result.stderr
    assert "vision input 64x64" in result.stdout
    config = json.loads((folder / "config.json").read_text())
    assert config["resize_imgs_with_padding"] == [64, 64]
    vlm = json.loads((folder / "vlm" / "config.json").read_text())
    assert vlm["vision_config"]["image_size"] == 64 and vlm["scale_factor"] == 4  # tiny: 32, 2

    def tokens_per_image(checkpoint):
        return json.loads((checkpoint / "vlm" / "processor_config.json").read_text())["image_seq_len"]

    assert tokens_per_image(folder) == tokens_per_image(tiny_checkpoint) == 4
    runtime = PolicyRuntime(PolicyRuntimeConfig(str(folder), device="cpu"))
    images, state = observation()
    ours = runtime.infer(images, state, "pick up the cube", noise=runtime.make_noise(3))
    theirs = lerobot_direct(folder, images, state, "pick up the cube", runtime.make_noise(3))
    np.testing.assert_array_equal(ours, theirs.astype(np.float64))
