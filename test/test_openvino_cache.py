"""OpenVINO graphs kept between loads (smolvla_ros.policy.openvino_cache): a second load reads
them instead of converting, with LeRobot's actions within float rounding as before, and only
the same model, config, code and libraries ever read a graph back."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import time

import numpy as np
import pytest
import torch
from conftest import run_bench
from safetensors.torch import load_file, save_file
from test_policy_runtime import lerobot_direct, observation

from smolvla_ros.policy.openvino_cache import COMPILED, KEEP, GraphCache, cache_dir
from smolvla_ros.policy.openvino_vision import latency_settings
from smolvla_ros.policy.runtime import PolicyRuntime, PolicyRuntimeConfig

KINDS = ("vision", "step")


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("SMOLVLA_ROS_OPENVINO_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


def load(checkpoint, **changes) -> PolicyRuntime:
    return PolicyRuntime(PolicyRuntimeConfig(str(checkpoint), device="cpu",
                                             vision_runtime="openvino",
                                             expert_runtime="openvino", **changes))


def folders(runtime: PolicyRuntime, verb: str) -> list[str]:
    """The cache folders the load's notes name, each checked to say ``verb``."""
    assert len(runtime.load_notes) == len(KINDS), runtime.load_notes
    names = []
    for kind, note in zip(KINDS, runtime.load_notes):
        assert note.startswith(f"OpenVINO {kind} graph {verb} "), note
        names.append(note.rsplit("/", 1)[1])
    return names


def check_actions(runtime: PolicyRuntime, checkpoint, seed: int, num_steps=None) -> np.ndarray:
    rng = np.random.default_rng(seed)
    images = {name: rng.integers(0, 256, (48, 64, 3), dtype=np.uint8) for name in ("front", "wrist")}
    state = rng.normal(size=6) * 20
    ours = runtime.infer(images, state, "pick up the cube", noise=runtime.make_noise(seed))
    theirs = lerobot_direct(checkpoint, images, state, "pick up the cube",
                            runtime.make_noise(seed), num_steps=num_steps)
    np.testing.assert_allclose(ours, theirs, rtol=0, atol=1e-3)  # float32 rounding only
    return ours


def test_a_second_load_reads_the_graphs_and_keeps_lerobots_actions(tiny_checkpoint, cache,
                                                                   monkeypatch):
    first = load(tiny_checkpoint)
    saved = folders(first, "converted and saved to")
    assert sorted(saved) == sorted(entry.name for entry in cache.iterdir())
    converted = check_actions(first, tiny_checkpoint, seed=4)

    def export(*args, **kwargs):
        raise AssertionError("a cached graph was exported again")
    monkeypatch.setattr(torch.export, "export", export)
    refuse_to_compile(monkeypatch)  # imported as compiled for this CPU by the first load
    second = load(tiny_checkpoint)
    assert folders(second, "read from") == saved
    assert second.mode == first.mode == "float32, 10 steps, OpenVINO vision, OpenVINO expert"
    read = check_actions(second, tiny_checkpoint, seed=4)
    # Not bit for bit (measured): both are float rounding of LeRobot's.
    np.testing.assert_allclose(read, converted, rtol=0, atol=1e-4)


def refuse_to_compile(monkeypatch):
    import openvino

    def compile_model(*args, **kwargs):
        raise AssertionError("a graph compiled before was compiled again")
    monkeypatch.setattr(openvino.Core, "compile_model", compile_model)


def compiled_blobs(folder) -> list:
    """The compiled graphs in ``folder``, each checked against the sha256 its name holds."""
    blobs = sorted(folder.glob("compiled-*.blob"))
    for blob in blobs:
        digest = subprocess.run(["sha256sum", blob.name], cwd=folder, check=True,
                                capture_output=True, text=True).stdout.split()[0]
        assert COMPILED.fullmatch(blob.name)["sha256"] == digest
    return blobs


def test_the_graph_compiled_for_this_cpu_is_kept_one_per_graph(tiny_checkpoint, cache,
                                                                monkeypatch):
    """The first load saves each graph as compiled; a load with other settings (bfloat16:
    another precision hint) compiles from the graph and replaces it; its next load imports."""
    saved = folders(load(tiny_checkpoint), "converted and saved to")
    first = [compiled_blobs(cache / name) for name in saved]
    assert [len(blobs) for blobs in first] == [1, 1]
    cast = load(tiny_checkpoint, dtype="bfloat16")
    assert folders(cast, "read from") == saved
    replaced = [compiled_blobs(cache / name) for name in saved]
    assert [len(blobs) for blobs in replaced] == [1, 1]
    assert not {*first[0], *first[1]} & {*replaced[0], *replaced[1]}
    refuse_to_compile(monkeypatch)
    again = load(tiny_checkpoint, dtype="bfloat16")
    assert folders(again, "read from") == saved and again.mode == cast.mode
    images, state = observation(2)
    np.testing.assert_array_equal(  # the same compiled graph, imported
        again.infer(images, state, "pick up the cube", noise=again.make_noise(2)),
        cast.infer(images, state, "pick up the cube", noise=cast.make_noise(2)))


def test_a_damaged_compiled_graph_is_compiled_again(tiny_checkpoint, cache):
    saved = folders(load(tiny_checkpoint), "converted and saved to")
    [blob] = compiled_blobs(cache / saved[1])
    flip_a_bit(blob)
    again = load(tiny_checkpoint)
    assert again.load_notes == [
        f"OpenVINO vision graph read from {cache / saved[0]}",
        f"OpenVINO step graph compiled in {blob} does not match its sha256, compiled again",
        f"OpenVINO step graph read from {cache / saved[1]}"]
    [anew] = compiled_blobs(cache / saved[1])  # compiled from the graph read, and saved
    assert anew.name.split("-")[1] == blob.name.split("-")[1] and not blob.exists()
    check_actions(again, tiny_checkpoint, seed=10)


def test_a_compiled_graph_that_cannot_be_saved_costs_a_compilation(tiny_checkpoint, cache,
                                                                   monkeypatch):
    import openvino

    def export_model(self):  # what openvino 2026.4 raises writing to a full disk
        raise RuntimeError("basic_ios::clear: iostream error")
    monkeypatch.setattr(openvino.CompiledModel, "export_model", export_model)
    saved = folders(load(tiny_checkpoint), "converted and saved to")
    for name in saved:
        assert sorted(entry.name for entry in (cache / name).iterdir()) == [
            "model.bin", "model.xml", "sha256sums"]  # no half-written compiled graph
    monkeypatch.undo()
    check_actions(load(tiny_checkpoint), tiny_checkpoint, seed=11)


def test_changed_weights_or_steps_never_meet_a_stale_graph(tiny_checkpoint, cache, tmp_path):
    """Two copies of one checkpoint, the second fine-tuned (its vision encoder and expert
    changed): each gets its own graphs, and each its own LeRobot actions."""
    copies = {}
    for name in ("same", "tuned"):
        copies[name] = tmp_path / name
        shutil.copytree(tiny_checkpoint, copies[name])
    tensors = load_file(copies["tuned"] / "model.safetensors")
    for key in tensors:
        if ("vision_model" in key or "lm_expert" in key) and key.endswith("weight"):
            tensors[key] = tensors[key] * 1.5
    save_file(tensors, copies["tuned"] / "model.safetensors", metadata={"format": "pt"})
    vlm = str(tiny_checkpoint / "vlm")  # one VLM config for both, as for two runs of one base
    same = folders(load(copies["same"], vlm_path=vlm), "converted and saved to")
    tuned_runtime = load(copies["tuned"], vlm_path=vlm)
    tuned = folders(tuned_runtime, "converted and saved to")
    assert not set(same) & set(tuned)
    check_actions(tuned_runtime, copies["tuned"], seed=5)
    assert folders(load(copies["same"], vlm_path=vlm), "read from") == same  # the copy's own
    fewer = load(copies["same"], vlm_path=vlm, num_steps=4)  # dt is in the step's graph only
    assert fewer.load_notes[0] == f"OpenVINO vision graph read from {cache / same[0]}"
    assert fewer.load_notes[1].startswith("OpenVINO step graph converted and saved to ")
    assert fewer.load_notes[1].rsplit("/", 1)[1] not in same
    check_actions(fewer, copies["same"], seed=6, num_steps=4)


def truncate(path):
    path.write_bytes(path.read_bytes()[:300])


def flip_a_bit(path):
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x10  # one bit of one weight, the file's size unchanged
    path.write_bytes(bytes(data))


DAMAGES = {  # what is done to the step graph's folder: the damage the load reports
    "truncated weights": (lambda folder: truncate(folder / "model.bin"),
                          "model.bin does not match its sha256"),
    "truncated graph": (lambda folder: truncate(folder / "model.xml"),
                        "model.xml does not match its sha256"),
    "a flipped bit": (lambda folder: flip_a_bit(folder / "model.bin"),
                      "model.bin does not match its sha256"),
    "no sums (an older cache)": (lambda folder: (folder / "sha256sums").unlink(), "no sha256sums"),
}


@pytest.mark.parametrize("damage", DAMAGES)
def test_a_damaged_graph_is_converted_again(tiny_checkpoint, cache, damage):
    saved = folders(load(tiny_checkpoint), "converted and saved to")
    # sha256sum, not our reader, checks the sums as saved
    for name in saved:
        subprocess.run(["sha256sum", "--check", "--strict", "--quiet", "sha256sums"],
                       cwd=cache / name, check=True)
    do, reported = DAMAGES[damage]
    do(cache / saved[1])
    for blob in compiled_blobs(cache / saved[1]):  # as for other settings: the graph is read
        blob.unlink()
    again = load(tiny_checkpoint)
    assert again.load_notes[0] == f"OpenVINO vision graph read from {cache / saved[0]}"
    assert again.load_notes[1:] == [
        f"OpenVINO step graph in {cache / saved[1]} is damaged ({reported}), converted again",
        f"OpenVINO step graph converted and saved to {cache / saved[1]}"]
    check_actions(again, tiny_checkpoint, seed=7)
    assert folders(load(tiny_checkpoint), "read from") == saved  # and saved anew


def test_a_cache_that_cannot_be_written_costs_a_conversion_not_the_load(tiny_checkpoint,
                                                                         tmp_path, monkeypatch):
    (tmp_path / "a_file").write_text("")
    monkeypatch.setenv("SMOLVLA_ROS_OPENVINO_CACHE", str(tmp_path / "a_file" / "cache"))
    runtime = load(tiny_checkpoint)
    for kind, note in zip(KINDS, runtime.load_notes):
        assert note == (f"OpenVINO {kind} graph converted, not saved to "
                        f"{tmp_path / 'a_file' / 'cache'} (NotADirectoryError: Not a directory)")
    check_actions(runtime, tiny_checkpoint, seed=8)


def test_a_full_disk_costs_a_conversion_not_the_load(tiny_checkpoint, cache, monkeypatch):
    import openvino

    def save_model(*args, **kwargs):  # what openvino 2026.4 raises writing to /dev/full
        raise RuntimeError("basic_ios::clear: iostream error")
    monkeypatch.setattr(openvino, "save_model", save_model)
    runtime = load(tiny_checkpoint)
    for kind, note in zip(KINDS, runtime.load_notes):
        assert note == (f"OpenVINO {kind} graph converted, not saved to {cache} "
                        "(RuntimeError: basic_ios::clear: iostream error)")
    assert list(cache.iterdir()) == []  # no half-written graph left
    check_actions(runtime, tiny_checkpoint, seed=9)


def test_bfloat16_reads_the_float32_graphs_and_says_its_precision(tiny_checkpoint, cache):
    """The graphs hold the float32 weights; the precision is a compile-time hint."""
    from test_policy_runtime import openvino_has_bf16

    saved = folders(load(tiny_checkpoint), "converted and saved to")
    cast = load(tiny_checkpoint, dtype="bfloat16")
    assert folders(cast, "read from") == saved
    precision = "" if openvino_has_bf16() else " (f32: this CPU has no bfloat16)"
    assert cast.mode == (f"bfloat16, 10 steps, OpenVINO vision{precision}, "
                         f"OpenVINO expert{precision}")


def test_the_cache_can_be_turned_off_and_lives_beside_setups_venvs(tiny_checkpoint, tmp_path,
                                                                    monkeypatch):
    monkeypatch.setenv("SMOLVLA_ROS_OPENVINO_CACHE", "none")
    assert load(tiny_checkpoint).load_notes == []
    monkeypatch.delenv("SMOLVLA_ROS_OPENVINO_CACHE")
    monkeypatch.setenv("SMOLVLA_ROS_CACHE", str(tmp_path / "shared"))  # scripts/setup.sh's
    assert cache_dir() == tmp_path / "shared" / "openvino"
    monkeypatch.delenv("SMOLVLA_ROS_CACHE", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cache_dir() == tmp_path / "xdg" / "smolvla_ros" / "openvino"
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert cache_dir() == tmp_path / "home" / ".cache" / "smolvla_ros" / "openvino"


def small_model():
    import openvino
    import openvino.opset13 as ops

    pixels = ops.parameter([2], openvino.Type.f32)
    return openvino.Model([ops.relu(pixels)], [pixels])


SMALL_SETTINGS = latency_settings("f32", 1)


def cached(root, fingerprint: str) -> tuple[str, str]:
    """Where GraphCache(fingerprint) keeps its vision graph, and its last note's verb."""
    graphs = GraphCache(lambda: fingerprint, root)
    graphs.compiled("vision", "", small_model, SMALL_SETTINGS)
    note = graphs.notes[-1]
    return note.rsplit("/", 1)[1], note.split(" graph ")[1].split(" ")[0]


def test_the_most_recently_used_graphs_are_kept_and_nothing_else_is_touched(tmp_path):
    root = tmp_path / "openvino"  # as if the user pointed the cache at a folder of theirs
    names = [cached(root, f"model {index}")[0] for index in range(KEEP)]
    for age, name in enumerate(names):  # model 0 the oldest
        os.utime(root / name, (1000 + age,) * 2)
    assert cached(root, "model 0") == (names[0], "read")  # used: now the newest
    killed, loading = root / ".vision-killed", root / ".step-loading"
    theirs = [root / "my_models", root / ".config", root / "vision-not-ours"]
    for folder in (killed, loading, *theirs):
        folder.mkdir()
        os.utime(folder, (time.time() - 2 * 86400,) * 2)  # all older than any graph
    os.utime(loading, None)
    newest, what = cached(root, "model new")  # one graph more than KEEP
    assert what == "converted"
    left = {entry.name for entry in root.iterdir()}
    # model 1 went, and the killed load's leftovers; the user's folders stay
    assert left == {*names[:1], *names[2:], newest, loading.name, *(f.name for f in theirs)}


def test_a_cached_graph_that_no_longer_compiles_is_converted_again(tmp_path, monkeypatch):
    import openvino

    root = tmp_path / "openvino"
    name, _ = cached(root, "model")
    for blob in compiled_blobs(root / name):  # as another OpenVINO build's: another key
        blob.unlink()
    calls, compile_model = [], openvino.Core.compile_model

    def compile_first_fails(self, graph, *args):  # the read graph, as a foreign build's would
        calls.append(graph)
        if len(calls) == 1:
            raise RuntimeError("unsupported opset")
        return compile_model(self, graph, *args)
    monkeypatch.setattr(openvino.Core, "compile_model", compile_first_fails)
    graphs = GraphCache(lambda: "model", root)
    graphs.compiled("vision", "", small_model, SMALL_SETTINGS)
    assert graphs.notes == [f"OpenVINO vision graph in {root / name} does not compile "
                            "(RuntimeError), converted again",
                            f"OpenVINO vision graph converted and saved to {root / name}"]
    assert len(calls) == 2 and cached(root, "model") == (name, "read")


def test_a_model_that_cannot_be_hashed_is_converted_not_cached(tmp_path):
    def fingerprint():
        raise PermissionError(13, "Permission denied")
    graphs = GraphCache(fingerprint, tmp_path / "openvino")
    compiled = graphs.compiled("step", "", small_model, SMALL_SETTINGS)
    assert compiled.inputs[0].get_partial_shape().to_string() == "[2]"
    assert graphs.notes == ["OpenVINO step graph converted, not cached: the model could not be "
                            "hashed (PermissionError: [Errno 13] Permission denied)"]
    assert not (tmp_path / "openvino").exists()


def test_graph_cache_bench_loads_converting_then_reading():
    """bench/graph_cache.py on the tiny model: the first OpenVINO load converts, the next
    imports, the last compiles what it reads, all within float rounding of the default load's
    (LeRobot's) actions."""
    output = run_bench("graph_cache.py", "--observations", "1", "--image-size", "48x64")
    rows = {m.group(1): [float(v) for v in m.groups()[1:]] for m in re.finditer(
        r"^  (default \(no OpenVINO\)|OpenVINO, (?:first|next) load|OpenVINO, compiling)\s+"
        r"([\d.]+)\s+"
        r"([\d.]+)\s+([\d.]+) \+\s+([\d.]+)\s+(\S+)$", output, re.MULTILINE)}
    assert len(rows) == 4 and rows["default (no OpenVINO)"][-1] == 0
    for load in ("first load", "next load", "compiling"):
        assert rows[f"OpenVINO, {load}"][-1] < 1e-3
    assert output.count("graph converted and saved to") == 2
    assert output.count("graph read from") == 4
    assert len(re.findall(r"^  (vision|step) graph on disk: [\d.]+ MB, compiled for this CPU "
                          r"(?!0\.0 )[\d.]+ MB$", output,
                          re.MULTILINE)) == 2
