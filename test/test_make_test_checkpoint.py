"""`smolvla-ros make-test-checkpoint` writes a real LeRobot checkpoint, offline."""

from __future__ import annotations

import subprocess

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


def test_rename_map_to_an_undeclared_camera_is_refused(tmp_path):
    result = subprocess.run(
        ["smolvla-ros", "make-test-checkpoint", str(tmp_path / "c"), "--rename-map", "top=camera1"],
        capture_output=True, text=True, env=ros_env())
    assert result.returncode == 1
    assert "rename map targets ['observation.images.camera1'] are not inputs" in result.stderr
    assert "Traceback" not in result.stderr
