"""SmolVLA's flow step on OpenVINO: the opt-in ``expert_runtime`` openvino (CPU only).

After the vision encoder, the ten flow steps of the action expert are the largest part of a
CPU chunk. The static cache (smolvla_ros.policy.static_expert) runs each step as a function
of tensors with no host work, so one step exports as a plain graph: the step's noisy actions
and time embedding, and the chunk's constants (masks, positions, the prefix's keys/values
per expert layer), in; the next actions out. OpenVINO runs it faster than torch in float32
(bench/expert_runtimes.py; in bfloat16 a whole chunk gained nothing, bench/fast_modes.py). One step's graph, run once per step, converts in
seconds; the ten steps unrolled took minutes. The prefix pass and the per-chunk constants
stay in torch. Converted from the float32 modules, before a bfloat16 cast, as the vision
encoder is (smolvla_ros.policy.openvino_vision), and kept for the next load
(smolvla_ros.policy.openvino_cache).
"""

from __future__ import annotations

import threading
import warnings

import numpy as np
import torch

from smolvla_ros.policy.openvino_cache import GraphCache
from smolvla_ros.policy.openvino_vision import chosen_precision, compile_converted

EXAMPLE_PREFIX = 16  # tokens of the prefix the step is traced with; the length is dynamic
MAX_PREFIX = 16384  # far above any prefix: 64 tokens per image, the instruction's, the state


class OpenVINOExpertError(RuntimeError):
    """The flow step could not be brought to OpenVINO; the message says why."""


class Step(torch.nn.Module):
    """One flow step of a StaticExpert as an exportable module, the chunk's constants as
    inputs. The self-attention layers' key/value buffers are copied first: a step writes its
    suffix into them, and an exported graph must not write into its inputs."""

    def __init__(self, static, names: list[str]):
        super().__init__()
        self.static, self.names = static, names
        self.written = {f"{kind}{index}" for index, reads_itself in enumerate(static._self_attn)
                        if reads_itself for kind in ("keys", "values")}

    def forward(self, x_t, time_emb, *constants):
        tensors = {name: value.clone() if name in self.written else value
                   for name, value in zip(self.names, constants)}
        return self.static._step(tensors, x_t, time_emb)


def empty_permuted(size, physical_layout, *, dtype=None, layout=None, device=None, pin_memory=None):
    """``aten.empty_permuted`` (what ``empty_like`` of a strided tensor exports to), which
    OpenVINO 2026.4 cannot convert, as an empty tensor and a permute."""
    order = list(physical_layout)
    empty = torch.empty([size[i] for i in order], dtype=dtype, device=device)
    return empty.permute([order.index(i) for i in range(len(order))])


def export_program(module: torch.nn.Module, example: tuple, dynamic_shapes):
    """``torch.export`` of ``module``, decomposed to what OpenVINO's converter reads."""
    from torch._decomp import core_aten_decompositions

    program = torch.export.export(module, example, dynamic_shapes=dynamic_shapes)
    decompositions = core_aten_decompositions()
    decompositions[torch.ops.aten.empty_permuted.default] = empty_permuted
    return program.run_decompositions(decompositions)


def example_constants(static) -> dict[str, torch.Tensor]:
    """A chunk's constants for an EXAMPLE_PREFIX-token prefix: what the step is traced with."""
    hidden = static.model.vlm_with_expert.get_vlm_model().text_model.config.hidden_size
    pad_masks = torch.ones(1, EXAMPLE_PREFIX, dtype=torch.bool)
    with torch.no_grad():
        return static._chunk_constants(torch.zeros(1, EXAMPLE_PREFIX, hidden), pad_masks,
                                       torch.zeros(1, EXAMPLE_PREFIX, dtype=torch.bool))


def step_names(constants: dict[str, torch.Tensor]) -> list[str]:
    """The constants a step's graph takes, in order, after the actions and time embedding."""
    return [name for name in constants if not name.startswith("time_emb")]


def step_graph(static, constants: dict[str, torch.Tensor]):
    """One step of ``static`` (a StaticExpert on float32 modules) as an OpenVINO model."""
    import openvino

    chunk = static.model.config.chunk_size
    names = step_names(constants)
    prefix = torch.export.Dim("prefix", min=2, max=MAX_PREFIX)
    shapes = {"attention_mask": {2: prefix + chunk}}
    for index, reads_itself in enumerate(static._self_attn):
        for kind in ("keys", "values"):
            shapes[f"{kind}{index}"] = {2: prefix + chunk} if reads_itself else {1: prefix}
    noise = torch.zeros(1, chunk, static.model.config.max_action_dim)
    # torch.export and OpenVINO's converter warn about each other's deprecated internals
    # (torch 2.11, openvino 2026.4): nothing a user can act on.
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        warnings.simplefilter("ignore", DeprecationWarning)
        program = export_program(Step(static, names),
                                 (noise, constants["time_emb0"], *(constants[n] for n in names)),
                                 (None, None, tuple(shapes.get(name) for name in names)))
        return openvino.convert_model(program)


class OpenVINOSteps:
    """A stand-in for ``StaticExpert._step``: the same step from OpenVINO.

    Made from a StaticExpert on the float32 modules, before any cast, so that the graph holds
    the checkpoint's own weights and the precision is OpenVINO's (its bf16 hint). Installed
    on the StaticExpert that runs, after the cast: its prefix pass and constants stay torch's,
    in the policy's dtype, handed to the graph in float32."""

    def __init__(self, model, dtype: str, threads: int, cache: GraphCache, int8: bool = False):
        try:
            import openvino  # noqa: F401 (here: the error below says what to install)
        except ImportError as error:
            raise OpenVINOExpertError(
                f"expert_runtime openvino needs the openvino package ({error}); "
                "pip install openvino, or use expert_runtime torch") from None
        from smolvla_ros.policy.static_expert import StaticExpert

        static = StaticExpert(model)  # its ValueError (a model LeRobot cannot run) says why
        constants = example_constants(static)
        self._names = step_names(constants)
        # The graph holds the step's dt: num_steps is set before, and fixed after load.
        compiled = compile_converted(cache, "step", f"{model.config.num_steps} steps",
                                     lambda: step_graph(static, constants),
                                     dtype, threads, OpenVINOExpertError, "the flow step",
                                     "expert_runtime", int8, keep=float32_projections(model))
        self.precision, self.precision_note = chosen_precision(compiled, dtype)
        self._request = compiled.create_infer_request()
        self._chunk: dict | None = None  # the constants of the chunk being denoised
        self._fixed: list[np.ndarray] = []
        self._lock = threading.Lock()  # one infer request, and one chunk's constants at a time

    def install(self, static) -> None:
        """Stand in for ``static``'s step (its loop, ``_denoise``, calls it)."""
        static._step = self

    def __call__(self, constants: dict[str, torch.Tensor], x_t: torch.Tensor,
                 time_emb: torch.Tensor) -> torch.Tensor:
        with self._lock:
            if constants is not self._chunk:  # a new chunk: its constants, as float32 arrays, once
                self._fixed = [_array(constants[name]) for name in self._names]
                self._chunk = constants
            out = self._request.infer([_array(x_t), _array(time_emb), *self._fixed])[0]
            return torch.from_numpy(out.copy())


def float32_projections(model) -> list[torch.Tensor]:
    """The weights int8 leaves in float32, in torch (``quantize`` int8) and in the step's
    graph: SmolVLA's own projections around the expert (actions in and out, the time MLP),
    1.5 % of a full-size step's arithmetic, where the actions' rounding would show most."""
    return [model.action_in_proj.weight, model.action_out_proj.weight,
            model.action_time_mlp_in.weight, model.action_time_mlp_out.weight]


def _array(tensor: torch.Tensor) -> np.ndarray:
    if tensor.is_floating_point():
        tensor = tensor.float()
    return np.ascontiguousarray(tensor.numpy())
