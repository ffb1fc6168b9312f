"""bench/fast_modes.py on the tiny model: the default mode is LeRobot's float32 call exactly,
and the opt-in modes report their speed and deviation against it (numbers in the README)."""

from __future__ import annotations

import re
import sys

import torch
from conftest import REPO_ROOT, run_bench
from test_policy_runtime import openvino_has_bf16

from smolvla_ros.policy import packed_linear


def test_fast_modes_compares_every_mode_with_lerobots_float32_call():
    output = run_bench(
        "fast_modes.py", "--observations", "2", "--device", "cpu", "--image-size", "48x64",
        "--mode", "float32", "--mode", "bfloat16,steps=5", "--mode", "float32,int8",
        "--mode", "float32,openvino", "--mode", "float32,ovexpert", "--mode", "float32,prepack",
        "--mode", "bfloat16,int8,openvino")
    rows = {m.group(1).strip(): m.groups()[1:] for m in re.finditer(
        r"^  ([A-Za-z0-9,():. ]+?)\s+([\d.]+)\s+([\d.]+)x\s+(\S+)\s", output, re.MULTILINE)}
    precision = "" if openvino_has_bf16() else " (f32: this CPU has no bfloat16)"
    assert set(rows) == {"float32, 10 steps", "bfloat16, 5 steps", "float32, int8 linear, 10 steps",
                         "float32, 10 steps, OpenVINO vision", "float32, 10 steps, OpenVINO expert",
                         "float32, prepacked linear, 10 steps",
                         f"bfloat16, 10 steps, OpenVINO vision (int8 weights){precision}"}
    assert float(rows["float32, 10 steps"][2]) == 0.0  # PolicyRuntime in float32 is LeRobot's call
    assert all(float(row[2]) > 0 for mode, row in rows.items() if mode != "float32, 10 steps")
    for mode in ("10 steps, OpenVINO vision", "10 steps, OpenVINO expert",
                 "prepacked linear, 10 steps"):  # float32 rounding only
        assert float(rows[f"float32, {mode}"][2]) < 1e-2
    assert "where each mode's time goes" in output


def test_vision_runtimes_compares_the_encoder_in_each_runtime_with_torch_float32():
    """OpenVINO (a dependency) runs as policy_node's vision_runtime openvino does; ONNX Runtime
    and the ONNX exporter are not in the venv: reported missing, and the rest still runs."""
    output = run_bench("vision_runtimes.py", "--rounds", "2")
    rows = {m.group(1): m.groups()[1:] for m in re.finditer(
        r"^  (torch \w+|ORT \w+|OV (?:i8w )?\w+)\s+([\d.]+)\s+([\d.]+)\s+([\d.]+)\s+(\S+)", output,
        re.MULTILINE)}
    assert {"torch fp32", "torch bf16", "torch int8"} <= set(rows)
    assert float(rows["torch fp32"][3]) == 0.0 and float(rows["torch bf16"][3]) > 0
    assert {"OV fp32", "OV bf16"} <= set(rows)
    assert float(rows["OV fp32"][3]) < 1e-4  # float32: rounding only
    # bf16 where OpenVINO's CPU plugin has it (else its hint runs f32): rounded as torch's bf16
    assert float(rows["OV bf16"][3]) <= 2 * float(rows["torch bf16"][3])
    if openvino_has_bf16():
        assert float(rows["OV bf16"][3]) > 1e-4
    assert {"OV i8w fp32", "OV i8w bf16"} <= set(rows)  # quantize int8's graph
    assert 0 < float(rows["OV i8w fp32"][3]) <= float(rows["torch int8"][3])
    if "ORT fp32" not in rows:
        assert "not installed" in output


def test_expert_runtimes_compares_the_prefix_pass_and_steps_with_torch_float32():
    """The static cache's prefix pass and steps, eager and exported to OpenVINO (the whole
    function, and one step's graph run per step), over two prefix lengths (a dynamic
    dimension of the exported graphs)."""
    output = run_bench("expert_runtimes.py", "--rounds", "1")
    rows = {m.group(1): (float(m.group(2)), float(m.group(4))) for m in re.finditer(
        r"^  (torch \w+|OV \w+(?: 1-step)?)\s+([\d.]+)\s+([\d.]+)\s+(\S+)$", output,
        re.MULTILINE)}
    assert set(rows) == {"torch fp32", "torch bf16", "OV fp32", "OV bf16", "OV fp32 1-step",
                         "OV bf16 1-step"}
    assert rows["torch fp32"][1] == 0.0 and rows["torch bf16"][1] > 0
    assert rows["OV fp32"][1] < 1e-3 and rows["OV fp32 1-step"][1] < 1e-3  # rounding only, in degrees
    assert rows["OV bf16 1-step"][1] > 0
    assert "made once at load: torch.export" in output


def test_chunk_flops_counts_the_vision_encoder_as_its_shapes_say(tiny_checkpoint):
    """The counted arithmetic of the vision stage equals the count from the encoder's shapes
    (the patch convolution, each layer's projections, MLP and attention, the connector, and the
    state projection embed_prefix runs too): the CPU's fused attention, which torch's counter
    leaves out, is counted."""
    sys.path.insert(0, str(REPO_ROOT / "bench"))
    import chunk_flops

    call, policy = chunk_flops.lerobot_call(tiny_checkpoint)
    counts = chunk_flops.counted_flops(policy, call)
    vlm = policy.model.vlm_with_expert.config
    vision, width = vlm.vision_config, vlm.text_config.hidden_size
    tokens, h = (vision.image_size // vision.patch_size) ** 2, vision.hidden_size
    layer = 8 * tokens * h * h + 4 * tokens * h * vision.intermediate_size + 4 * tokens ** 2 * h
    image = (2 * tokens * 3 * vision.patch_size ** 2 * h + vision.num_hidden_layers * layer
             + 2 * tokens * h * width)
    cameras = sum(key.startswith("observation.images.") for key in policy.config.input_features)
    assert counts["vision encoder + embed"] == cameras * image + 2 * policy.config.max_state_dim * width
    assert counts["VLM prefix pass"] > 0 and counts["action expert, flow steps"] > 0
    assert counts["all"] == sum(counts[stage] for stage, _ in chunk_flops.STAGES)


def test_chunk_flops_prints_the_floor_for_each_dtype():
    output = run_bench("chunk_flops.py", "--rounds", "1")
    for dtype in ("float32", "bfloat16", "int8"):
        assert re.search(rf"^{dtype}: matrix product best \d+ GFLOP/s .* beats x[\d.]+ over "
                         r"LeRobot's call here at these steps$", output, re.MULTILINE), \
            output


def test_packed_products_times_each_way_against_torchs_linear():
    output = run_bench("packed_products.py", "--repeats", "1")
    rows = re.findall(r"^(float32|bfloat16) (.+?) (\d+)x(\d+) @ \d+x(\d+): (.+)$",
                      output, re.MULTILINE)
    assert len(rows) == 10, output  # five shapes, two dtypes
    for dtype, _where, _tokens, _inputs, _outputs, cells in rows:
        ways = re.findall(r"([A-Za-z ]+?) (\d+) \(x([\d.]+)\)(?:, |$)", cells)
        names = [name for name, _, _ in ways]
        assert names[0] == "torch Linear" and float(ways[0][2]) == 1.0, cells
        assert ("oneDNN packed" in names) == packed_linear.available(), cells
        assert ("MKL packed" in names) == (dtype == "float32" and torch._C.has_mkl), cells


def test_eval_walk_runs_both_ways_on_the_same_chunks():
    output = run_bench("eval_walk.py", "--observations", "2")
    ways = re.findall(r"^  (LeRobot's eval\(\) walk|the runtime's check) +processing +[\d.]+ ms",
                      output, re.MULTILINE)
    assert ways == ["LeRobot's eval() walk", "the runtime's check"], output
    assert re.search(r"^  ratio x[\d.]+; max \|action difference\| 0$", output,
                     re.MULTILINE), output
