"""`smolvla-ros eval` through the real graph: sim_node (and policy_node, recorder_node) as
separate processes over DDS, the scene judged by task_result, the report, videos and bags."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import ros_env
from test_episode import read_back

from smolvla_ros.evaluation.report import wilson_interval

RED, BLUE = "pick up the red cube", "pick up the blue cube"


def run_eval(*args: str, timeout_s: float = 600) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "smolvla_ros.cli", "eval", "--no-progress", *args],
                          env=ros_env(), capture_output=True, text=True, timeout=timeout_s)


def test_the_expert_succeeds_and_its_episodes_are_filmed_recorded_and_reported(tmp_path):
    import av

    out = tmp_path / "eval"
    result = run_eval("--expert", "--episodes", "1", "--record", "--video", "--camera-fps", "10",
                      "--output", str(out))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "success per instruction" in result.stdout
    report = json.loads((out / "report.json").read_text())
    assert report["setup"]["policy"] == "scripted expert" and report["setup"]["camera_fps"] == 10
    assert report["setup"]["image_size"] == "128x96" and report["setup"]["scene"] == "two_cubes"
    assert list(report["per_instruction"]) == [RED, BLUE]
    for text, rate in report["per_instruction"].items():
        assert (rate["episodes"], rate["successes"], rate["rate"]) == (1, 1, 1.0), text
        assert rate["ci95"] == [pytest.approx(0.2065, abs=1e-3), 1.0]
    assert report["overall"]["successes"] == 2
    for episode, (text, cube) in zip(report["episodes"], [(RED, "red"), (BLUE, "blue")], strict=True):
        assert episode["instruction"] == episode["judged"] == text and episode["success"]
        assert episode["outcome"] == "succeeded" and episode["lifted"] == [cube]
        assert 1.0 < episode["time_to_success"] < 10.0
        assert episode["chunks"] == 0 and episode["seed"] == episode["index"] + 1
        with av.open(episode["video"]) as video:  # the front camera, playable
            assert sum(1 for _ in video.decode(video=0)) >= 10
        messages = read_back(Path(episode["bag"]))
        tasks = {m.data for t, m, _ in messages if t == "/task_instruction"}
        assert tasks == {text}  # the demonstration carries its words
        assert any(t == "/leader/joint_states" for t, _, _ in messages)


def test_random_weights_score_nothing_and_a_change_of_mind_is_judged_on_the_new_words(
        tmp_path, tiny_checkpoint):
    out = tmp_path / "eval"
    result = run_eval("--policy-path", str(tiny_checkpoint), "--episodes", "2", "--instruction", RED,
                      "--switch-to", BLUE, "--switch-after", "0.5", "--time-limit", "4",
                      "--output", str(out))
    assert result.returncode == 0, result.stdout + result.stderr
    report = json.loads((out / "report.json").read_text())
    assert list(report["per_instruction"]) == [BLUE]  # judged on the words in force at the end
    assert report["setup"]["switch_to"] == BLUE and report["setup"]["policy"] == str(tiny_checkpoint)
    episodes = report["episodes"]
    assert [e["seed"] for e in episodes] == [1, 2]  # the k-th reset of a run: the same scene
    for episode in episodes:
        assert episode["instruction"] == RED and episode["judged"] == BLUE
        assert 0.5 <= episode["switched_at"] < 1.0
        assert episode["chunks"] > 0 and episode["latency_median_ms"] > 0  # the policy ran
        assert not episode["success"] and episode["outcome"] in ("time_limit", "wrong_object")
        assert episode["duration"] >= 4.0 or episode["outcome"] == "wrong_object"


def test_a_missing_checkpoint_is_one_clear_line(tmp_path):
    result = run_eval("--policy-path", str(tmp_path / "nowhere"), "--episodes", "1",
                      "--output", str(tmp_path / "eval"), timeout_s=300)
    assert result.returncode == 1
    assert "eval: policy_node cannot run" in result.stderr, result.stderr
    assert not (tmp_path / "eval" / "report.json").exists()


def test_wilson_interval():
    low, high = wilson_interval(16, 20)
    assert (low, high) == (pytest.approx(0.584, abs=1e-3), pytest.approx(0.919, abs=1e-3))
    assert wilson_interval(0, 20) == (0.0, pytest.approx(0.161, abs=1e-3))
    assert wilson_interval(20, 20)[1] == 1.0 and wilson_interval(0, 0) == (0.0, 1.0)
