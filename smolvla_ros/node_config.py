"""The nodes' YAML files in config/, read the same way by `smolvla-ros bringup` and the
launch files, and the one adjustment both make to them for the simulation."""

from __future__ import annotations

from pathlib import Path


def config_dir() -> Path:
    """The installed share/smolvla_ros/config, or the source tree's config/."""
    try:
        from ament_index_python.packages import get_package_share_directory
        return Path(get_package_share_directory("smolvla_ros")) / "config"
    except (ImportError, LookupError):
        return Path(__file__).resolve().parent.parent / "config"


def load_node_config(folder: str | Path, name: str) -> dict:
    """The parameters of ``<folder>/<name>.yaml`` (its ``/**`` section)."""
    import yaml  # here, not at the top: `smolvla-ros --help` and doctor run without it

    return dict(yaml.safe_load((Path(folder) / f"{name}.yaml").read_text())["/**"]["ros__parameters"])


def apply_overrides(nodes: dict[str, dict], items: list[str], command: str) -> None:
    """``-p NODE:NAME=VALUE`` items (YAML values) into ``{node: parameters}``; a malformed one
    or an unknown node is one line naming the command's choices."""
    import yaml

    for item in items:
        target, _, assignment = item.partition(":")
        name, equals, value = assignment.partition("=")
        if target not in nodes or not name or not equals:
            raise SystemExit(f"{command}: --param {item!r}: expected NODE:NAME=VALUE with NODE one "
                             f"of {sorted(nodes)}")
        nodes[target][name] = yaml.safe_load(value)


def sim_stale_after_s(policy: dict, sim: dict) -> float:
    """The policy's staleness limit next to the simulation: its CPU-rendered cameras run at a
    few Hz, so an image up to three camera periods old is still the latest one."""
    return max(policy["stale_after_s"], 3.0 / sim["camera_fps"])
