"""SmolVLA's vision encoder on OpenVINO: the opt-in ``vision_runtime`` openvino (CPU only).

On a CPU the vision encoder (SigLIP + connector: what LeRobot's ``embed_image`` runs once per
camera) is the largest part of a chunk (bench/fast_modes.py), and OpenVINO runs it faster
than torch at the same precision (bench/vision_runtimes.py). The graph is LeRobot's own
modules with the checkpoint's weights, taken with ``torch.export`` and converted at load (a
few seconds), and kept for the next load under a key that a changed checkpoint changes
(smolvla_ros.policy.openvino_cache). It runs in float32, or in bfloat16 where the policy's
dtype is bfloat16; with ``quantize`` int8 its Linear weights are int8 (``int8_weights``).
Its tokens replace ``embed_image``'s; everything after them (the VLM prefix, the action
expert) stays LeRobot's, in torch.
"""

from __future__ import annotations

import threading
import warnings

import numpy as np
import torch

from smolvla_ros.policy.openvino_cache import GraphCache

PRECISION_HINTS = {"float32": "f32", "bfloat16": "bf16"}
# With int8 weights, OpenVINO's CPU plugin quantises each product's activations on the fly,
# one scale per this many inputs of a row (0: none, and the weights are turned back into
# float, as slow as float32). Of 32, 128, 256 and 768 on the full-size vision encoder
# (README, bench/vision_runtimes.py's 3rd run), 256 was the fastest in bf16 and within noise
# of 128 in f32; it divides SigLIP's 768 and 3072 and the connector's 12288 inputs.
INT8_GROUP_SIZE = 256


class OpenVINOVisionError(RuntimeError):
    """The vision encoder could not be brought to OpenVINO; the message says why."""


class OpenVINOVision:
    """A stand-in for ``SmolVLMWithExpertModel.embed_image``: the same tokens from OpenVINO.

    Made from the float32 modules, before a bfloat16 cast, so that the graph holds the
    checkpoint's own weights and the precision is OpenVINO's choice (its bf16 hint), as
    bench/vision_runtimes.py measured it."""

    def __init__(self, vlm_with_expert, image_size: int, dtype: str, threads: int,
                 cache: GraphCache, int8: bool = False):
        try:
            import openvino  # noqa: F401 (here: the error below says what to install)
        except ImportError as error:
            raise OpenVINOVisionError(
                f"vision_runtime openvino needs the openvino package ({error}); "
                "pip install openvino, or use vision_runtime torch") from None
        self._owner = vlm_with_expert
        vlm = vlm_with_expert.get_vlm_model()
        encoder = VisionEncoder(vlm.vision_model, vlm.connector).eval()
        example = torch.zeros(1, 3, image_size, image_size, dtype=torch.float32)
        compiled = compile_converted(cache, "vision", f"{image_size}x{image_size}",
                                     lambda: exported_graph(encoder, example), dtype, threads,
                                     OpenVINOVisionError, "the vision encoder", "vision_runtime",
                                     int8)
        self.image_size = image_size
        self.precision, self.precision_note = chosen_precision(compiled, dtype)
        self._request = compiled.create_infer_request()
        self._lock = threading.Lock()  # one infer request: one image at a time

    def install(self) -> None:
        """Stand in for the instance's ``embed_image`` (LeRobot's ``embed_prefix`` calls it)."""
        self._owner.embed_image = self

    def __call__(self, image):
        """(B, 3, S, S) pixel values in [-1, 1] -> (B, tokens, hidden), as ``embed_image``
        returns them, on the image's device (the CPU)."""
        if tuple(image.shape[1:]) != (3, self.image_size, self.image_size):
            raise ValueError(f"the OpenVINO vision encoder takes (B, 3, {self.image_size}, "
                             f"{self.image_size}) images, got {tuple(image.shape)}")
        pixels = image.detach().to(dtype=torch.float32, device="cpu").contiguous().numpy()
        tokens = []
        with self._lock:
            for one in pixels:  # the graph's batch is 1; SmolVLA embeds one camera at a time
                tokens.append(torch.from_numpy(self._request.infer({0: one[None]})[0].copy()))
        # embed_prefix puts them beside the instruction's embeddings: that dtype (bfloat16 when
        # the VLM is), as torch's connector would have returned them.
        dtype = self._owner.get_vlm_model().text_model.get_input_embeddings().weight.dtype
        return torch.cat(tokens).to(dtype=dtype, device=image.device)


def exported_graph(module, example):
    """``module`` taken with ``torch.export`` on ``example`` and converted by OpenVINO."""
    import openvino

    # torch.export and OpenVINO's converter warn about each other's deprecated internals
    # (torch 2.11, openvino 2026.4): nothing a user can act on.
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        warnings.simplefilter("ignore", DeprecationWarning)
        return openvino.convert_model(torch.export.export(module, (example,)))


def compile_converted(cache: GraphCache, key: str, detail: str, convert, dtype: str,
                      threads: int, error_type: type, what: str, parameter: str,
                      int8: bool = False, keep=()):
    """The graph ``key`` (``detail``: see GraphCache.compiled) from ``cache``, else
    ``convert()``-ed (with ``int8``, its weights made int8 but those in ``keep``: see
    int8_weights), compiled for latency in ``dtype``'s precision hint; whatever export,
    conversion or compilation raises becomes one ``error_type`` line naming ``what`` and the
    ``parameter`` that avoids it, chained to its cause."""
    settings = latency_settings(PRECISION_HINTS[dtype], threads, INT8_GROUP_SIZE if int8 else 0)

    def converted():
        graph = convert()
        if int8:
            int8_weights(graph, keep)
        return graph
    try:
        return cache.compiled(key, f"{detail} int8" if int8 else detail, converted, settings)
    except Exception as error:  # export and conversion raise many kinds; the load must say
        first = (str(error).strip().splitlines() or [""])[0]
        raise error_type(  # chained: the whole of it stays in the traceback
            f"could not run {what} on OpenVINO ({type(error).__name__}: {first}); "
            f"use {parameter} torch") from error


def chosen_precision(compiled, dtype: str) -> tuple[str, str]:
    """What OpenVINO chose, and a note for the mode string where it is not ``dtype``: its CPU
    plugin runs f32 where the CPU has no bf16 (AVX2-only laptops, ARM), whatever the hint, and
    the mode must not claim bf16 there."""
    precision = compiled.get_property("INFERENCE_PRECISION_HINT").get_type_name()
    return precision, "" if precision == PRECISION_HINTS[dtype] else \
        f" ({precision}: this CPU has no {dtype})"


def compile_for_latency(core, model, precision: str, threads: int, group_size: int = 0):
    """``model`` compiled for the CPU with ``latency_settings``."""
    return core.compile_model(model, "CPU", latency_settings(precision, threads, group_size))


def latency_settings(precision: str, threads: int, group_size: int = 0) -> dict:
    """How a policy runs a graph on the CPU: one image at a time, on ``threads`` threads, in
    ``precision`` (an OpenVINO hint: f32, bf16); the activations of its int8 weights'
    products quantised per ``group_size`` inputs (0: no int8 weights)."""
    settings = {"INFERENCE_PRECISION_HINT": precision, "INFERENCE_NUM_THREADS": threads,
                "PERFORMANCE_HINT": "LATENCY", "NUM_STREAMS": 1}
    if group_size:
        settings["DYNAMIC_QUANTIZATION_GROUP_SIZE"] = group_size
    return settings


def int8_weights(graph, keep=()) -> int:
    """Each product of ``graph`` by a constant float32 matrix (a Linear layer's weight) made
    a product by int8 weights, one scale per output channel (symmetric, round to nearest),
    in the form OpenVINO's CPU plugin reads as compressed weights: int8 constant -> Convert
    -> Multiply by the scales. It multiplies them in int8, quantising the activations as
    they come (``latency_settings``' group size), so no calibration images are needed;
    the products of activations by activations (attention) stay in the graph's precision,
    and so do the weights equal to one in ``keep`` (float32 tensors, either orientation).
    Returns how many weights were made int8."""
    from openvino import opset13

    kept = [k.detach().float().numpy() for k in keep]
    count = 0
    for node in graph.get_ordered_ops():
        weight = node.input_value(1).get_node() if node.get_type_name() == "MatMul" else None
        if weight is None or weight.get_type_name() != "Constant":
            continue
        values = weight.get_data()
        if values.ndim != 2 or values.dtype != np.float32 or any(
                np.array_equal(values, k) or np.array_equal(values, k.T) for k in kept):
            continue
        # A Linear's weight is (out, in), multiplied transposed; else (in, out).
        inputs_axis = 1 if node.get_transpose_b() else 0
        scales = np.abs(values).max(axis=inputs_axis, keepdims=True) / 127
        scales[scales == 0] = 1  # an all-zero channel stays zero
        int8 = np.clip(np.rint(values / scales), -127, 127).astype(np.int8)
        restored = opset13.multiply(opset13.convert(opset13.constant(int8), "f32"),
                                    opset13.constant(scales.astype(np.float32)))
        node.input(1).replace_source_output(restored.output(0))
        count += 1
    graph.validate_nodes_and_infer_types()
    return count


class VisionEncoder(torch.nn.Module):
    """embed_image's two modules as one exportable module: pixel values -> tokens."""

    def __init__(self, vision_model, connector):
        super().__init__()
        self.vision_model, self.connector = vision_model, connector

    def forward(self, pixel_values):
        hidden = self.vision_model(pixel_values=pixel_values, patch_attention_mask=None)
        return self.connector(hidden.last_hidden_state)
