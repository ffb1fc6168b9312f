"""Regenerate config/<node>.yaml from each node's PARAMETERS table (names, defaults, help).

Run after changing a node's parameters (test/test_config.py fails until you do):
    source scripts/env.sh && python scripts/write_configs.py
"""

import json
from pathlib import Path

from smolvla_ros.nodes import camera_node, policy_node, recorder_node, sim_node, so101_node

CONFIGS = {"so101": so101_node, "policy": policy_node, "recorder": recorder_node,
           "sim": sim_node, "camera": camera_node}


def yaml_value(value) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, (str, list)):
        return json.dumps(value)
    return repr(value)


def main() -> None:
    folder = Path(__file__).resolve().parent.parent / "config"
    for name, module in CONFIGS.items():
        executable = module.__name__.rsplit(".", 1)[1]
        lines = [f"# {executable}: every parameter with its default (scripts/write_configs.py).",
                 f"#   ros2 run smolvla_ros {executable} --ros-args --params-file config/{name}.yaml",
                 "/**:", "  ros__parameters:"]
        for parameter, (default, description) in module.PARAMETERS.items():
            lines += [f"    # {description}", f"    {parameter}: {yaml_value(default)}"]
        (folder / f"{name}.yaml").write_text("\n".join(lines) + "\n")
        print(f"wrote config/{name}.yaml")


if __name__ == "__main__":
    main()
