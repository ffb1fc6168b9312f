"""The closed-loop benchmark's smoke run (what CI can afford): every stage of record ->
convert -> lerobot-train -> eval runs with the public commands and reports; the policy's
success is not asked of 4 training steps (the full run is in the README)."""

from __future__ import annotations

import json
import subprocess
import sys

import yaml
from conftest import REPO_ROOT, ros_env


def test_closed_loop_smoke_runs_every_stage(tmp_path):
    from lerobot.datasets.lerobot_dataset import LeRobotDataset

    work = tmp_path / "closed_loop"
    result = subprocess.run([sys.executable, str(REPO_ROOT / "bench" / "closed_loop.py"), "--smoke",
                             "--work", str(work), "--switch-demos", "1",
                             "--demo-detour", "0.03", "--demo-miss-rate", "0.5"], env=ros_env(),
                            capture_output=True, text=True, timeout=1500)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    summary = json.loads((work / "summary.json").read_text())
    assert set(summary["times_s"]) == {"checkpoint", "record", "convert", "train", "eval_trained",
                                       "eval_swapped", "eval_baseline", "eval_switch", "total"}
    # the demonstrations: one per instruction, recorded with their words, all picked; and one
    # change of mind each way, the words changed 0.7 s in (the eval's switch is at 1 s)
    demos = json.loads((work / "demos" / "report.json").read_text())
    assert demos["overall"]["successes"] == demos["overall"]["episodes"] == 2
    sim_parameters = yaml.safe_load((work / "demos" / "logs" / "sim_node.yaml").read_text())
    assert sim_parameters["/**"]["ros__parameters"]["expert_detour_m"] == 0.03  # with detours
    assert sim_parameters["/**"]["ros__parameters"]["expert_miss_rate"] == 0.5  # and misses
    assert sim_parameters["/**"]["ros__parameters"]["front_view"] == "workspace"  # the default here
    rates = summary["rates"]
    assert rates["demos_red_then_blue_0.7s"]["pick up the blue cube"]["successes"] == 1
    assert rates["demos_blue_then_red_0.7s"]["pick up the red cube"]["successes"] == 1
    dataset = LeRobotDataset("local/so101_two_cubes", root=work / "dataset", video_backend="pyav")
    assert dataset.meta.total_episodes == 4 and dataset.num_frames > 120
    assert set(dataset.meta.tasks.index) == {"pick up the red cube", "pick up the blue cube"}
    switched = dataset.meta.episodes[2]  # red then blue: both tasks in one episode
    rows = dataset.hf_dataset[switched["dataset_from_index"]:switched["dataset_to_index"]]
    assert {int(i) for i in rows["task_index"]} == set(dataset.meta.tasks["task_index"])
    trained = work / "train" / "checkpoints" / "last" / "pretrained_model"
    assert (trained / "model.safetensors").is_file()
    assert list(rates["trained"]) == ["pick up the red cube", "pick up the blue cube"]
    assert list(rates["swapped"]) == ["pick up the blue cube", "pick up the red cube"]
    assert list(rates["switch"]) == ["pick up the blue cube"]
    for run in ("trained", "swapped", "baseline", "switch"):
        report = json.loads((work / f"eval_{run}" / "report.json").read_text())
        assert all(e["chunks"] > 0 for e in report["episodes"]), run  # the policy drove the arm
        assert report["setup"]["camera_fps"] == 10.0 and report["setup"]["image_size"] == "128x96"
        assert report["setup"]["front_view"] == "workspace"  # the demonstrations' camera
    # the same seeded scenes with the words swapped
    trained_seeds = [e["seed"] for e in json.loads((work / "eval_trained" / "report.json").read_text())["episodes"]]
    swapped_seeds = [e["seed"] for e in json.loads((work / "eval_swapped" / "report.json").read_text())["episodes"]]
    assert trained_seeds == swapped_seeds
    assert "change of mind" in result.stdout and "random-weights baseline" in result.stdout
