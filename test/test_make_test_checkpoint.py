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
