"""config/*.yaml list every node parameter with the node's own default
(scripts/write_configs.py regenerates them)."""

from __future__ import annotations

import pytest
import yaml
from conftest import REPO_ROOT

from smolvla_ros.nodes import camera_node, policy_node, recorder_node, sim_node, so101_node


@pytest.mark.parametrize("config, parameters", [("so101.yaml", so101_node.PARAMETERS),
                                                ("policy.yaml", policy_node.PARAMETERS),
                                                ("recorder.yaml", recorder_node.PARAMETERS),
                                                ("sim.yaml", sim_node.PARAMETERS),
                                                ("camera.yaml", camera_node.PARAMETERS)])
def test_config_file_matches_node_defaults(config, parameters):
    loaded = yaml.safe_load((REPO_ROOT / "config" / config).read_text())["/**"]["ros__parameters"]
    assert loaded == {name: default for name, (default, _) in parameters.items()}
