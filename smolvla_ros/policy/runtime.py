"""Load a LeRobot SmolVLA checkpoint and run it as LeRobot does.

Everything model-side is LeRobot's own code: ``SmolVLAPolicy.from_pretrained``, the saved
pre/post-processor pipelines (``make_pre_post_processors`` with overrides, the saved rename
step included), and ``prepare_observation_for_inference``. In float32, the default as in
LeRobot, the same observation, instruction and noise therefore give LeRobot's own actions:
equal on the CPU (the tests compare them exactly); on CUDA, equal up to the GPU kernels'
own run-to-run nondeterminism. ``dtype`` bfloat16, ``quantize``, fewer ``num_steps``,
``compile``, ``tf32``, ``prepack`` (smolvla_ros.policy.packed_linear), ``vision_runtime``
openvino (smolvla_ros.policy.openvino_vision) and ``expert_runtime`` openvino
(smolvla_ros.policy.openvino_expert) are opt-in departures from LeRobot (bench/fast_modes.py
measures how far each goes, and how much faster). ``static_cache`` and ``cuda_graph`` run the
denoising loop our way (smolvla_ros.policy.static_expert) with LeRobot's modules in LeRobot's
order: on the CPU its actions equal LeRobot's exactly. This module only chooses the device and
those modes, names the cameras (smolvla_ros.policy.cameras), makes moved or offline
checkpoints loadable, and reports what it did.
"""

from __future__ import annotations

import contextlib
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from smolvla_ros.policy.cameras import (
    IMAGE_PREFIX, CameraMapError, fed_key, resolve_cameras, saved_rename_map,
)

STATE_KEY = "observation.state"
CHECKPOINT_FILES = ("config.json", "model.safetensors", "policy_preprocessor.json",
                    "policy_postprocessor.json")


class PolicyLoadError(RuntimeError):
    """The checkpoint cannot be loaded; the message says why in one line."""


@dataclass
class PolicyRuntimeConfig:
    policy_path: str  # hub id (lerobot/smolvla_base) or a local folder saved by LeRobot
    device: str = "auto"  # auto: CUDA if present, else CPU
    dtype: str = "auto"  # auto: float32 on every device, as LeRobot; bfloat16 is opt-in
    vlm_path: str = ""  # replaces the checkpoint's VLM/tokenizer path (moved or offline)
    tokenizer_max_length: int = 0  # 0: the checkpoint's (48 for SmolVLA)
    robot_type: str = "so_follower"  # what LeRobot passes for an SO follower (robot.robot_type)
    camera_map: tuple[str, ...] = ()  # "ros_name=checkpoint_name" entries (policy.cameras)
    # Opt-in speed-ups, each a departure from LeRobot's actions (bench/fast_modes.py measures
    # how far): all off by default.
    num_steps: int = 0  # flow-matching steps; 0 = the checkpoint's (10 for SmolVLA)
    # int8: Linear layers multiply int8 weights by activations quantised as they come (CPU):
    # torch's dynamic int8 in float32, and the OpenVINO graphs' weights in either dtype.
    quantize: str = "none"
    compile: bool = False  # torch.compile the vision encoder, and static_cache's prefix pass and step
    prepack: bool = False  # Linear weights laid out once for oneDNN's product (CPU; policy.packed_linear)
    tf32: bool = False  # float32 matrix products on TF32 tensor cores (CUDA), as lerobot-eval runs
    vision_runtime: str = "torch"  # openvino: the vision encoder on OpenVINO (CPU)
    expert_runtime: str = "torch"  # openvino: static_cache's flow step on OpenVINO (CPU)
    # Exact (LeRobot's actions): the denoising loop on a static KV cache (policy.static_expert);
    # cuda_graph also replays that loop as one CUDA graph, and each image's embedding as
    # another (policy.graphed_vision; CUDA only).
    static_cache: bool = False
    cuda_graph: bool = False


DTYPES = ("float32", "bfloat16")
QUANTIZE = ("none", "int8")
VISION_RUNTIMES = ("torch", "openvino")
EXPERT_RUNTIMES = ("torch", "openvino")


class ByteImageObservation:
    """LeRobot's ``prepare_observation_for_inference`` for a GPU, its images sent as bytes
    (with ``cuda_graph``, where the rest of a chunk takes milliseconds).

    LeRobot makes each uint8 image float32 on the CPU (``x / 255``), then copies it to the
    device: 3.7 MB per 640x480 camera from pageable memory, every chunk. Here the image
    goes over as its 0.9 MB of bytes and becomes float32 on the device by looking each byte
    up in a table of ``x / 255`` computed on the CPU as LeRobot computes it, so the values are
    LeRobot's, bit for bit, whatever the device's own division rounds to. The rest (permute,
    batch dimension, task, robot type) is LeRobot's, in its order."""

    def __init__(self, device: str):
        import torch

        self.device = torch.device(device)
        self.table = (torch.arange(256, dtype=torch.uint8).type(torch.float32) / 255).to(self.device)

    def prepare(self, observation: dict[str, np.ndarray], task: str | None,
                robot_type: str | None) -> dict:
        import torch

        frame = {}
        for name, value in observation.items():
            tensor = torch.from_numpy(value).to(self.device)
            if "image" in name:
                if tensor.dtype == torch.uint8:
                    tensor = self.table[tensor.long()]
                tensor = tensor.permute(2, 0, 1).contiguous()
            frame[name] = tensor.unsqueeze(0)
        frame["task"] = task if task else ""
        frame["robot_type"] = robot_type if robot_type else ""
        return frame


class EvalModeKept:
    """The policy's ``eval``, installed over LeRobot's for the runtime's lifetime.

    LeRobot's ``predict_action_chunk`` puts the policy in eval mode on every call: a walk over
    all its modules (590 for the full-size model; LeRobot's ``train`` override walks the VLM
    again), 2.7-2.9 ms a chunk on the dev CPU, a seventh of #12's 20 ms GPU chunk. The runtime
    never trains, so after the first walk the policy stays in eval mode: this reads each
    module's flag (0.03 ms) and walks again, LeRobot's way, only if one was set to training."""

    def __init__(self, policy):
        self.policy = policy
        self.lerobot_eval = policy.eval
        self.modules = None  # every module, as the last walk found them (nothing of
        # the runtime adds one after its first chunk)

    def __call__(self):
        if self.modules is None or any(module.training for module in self.modules):
            self.lerobot_eval()
            self.modules = list(self.policy.modules())
        return self.policy


@contextlib.contextmanager
def cuda_matmul_precision(precision: str):
    """torch's CUDA float32 matmul precision (``ieee`` or ``tf32``) within the block, restored
    after it, exception or not."""
    import torch

    matmul = torch.backends.cuda.matmul
    if hasattr(matmul, "fp32_precision"):  # torch 2.9 and later
        flag, value = "fp32_precision", precision
    else:  # LeRobot allows torch 2.7 and 2.8: the boolean the setting replaced
        flag, value = "allow_tf32", precision == "tf32"
    before = getattr(matmul, flag)
    setattr(matmul, flag, value)
    try:
        yield
    finally:
        setattr(matmul, flag, before)


def _resolve_device(device: str) -> str:
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise PolicyLoadError(f"device '{device}' requested but torch sees no CUDA device")
    return device


def resolve_dtype(dtype: str) -> str:
    """auto is float32 on every device, CUDA included: LeRobot runs inference in float32
    (unless a policy config asks for AMP), and so do we unless bfloat16 is asked for."""
    if dtype == "auto":
        return "float32"
    if dtype not in DTYPES:
        raise PolicyLoadError(f"dtype '{dtype}': expected auto, float32 or bfloat16")
    return dtype


def _check_local_folder(path: Path) -> None:
    missing = [name for name in CHECKPOINT_FILES if not (path / name).is_file()]
    if missing:
        raise PolicyLoadError(f"{path} is not a LeRobot policy checkpoint: missing {', '.join(missing)}")


class PolicyRuntime:
    """One loaded SmolVLA policy with its processors."""

    def __init__(self, config: PolicyRuntimeConfig):
        import torch
        from lerobot.configs import PreTrainedConfig
        from lerobot.policies.factory import make_pre_post_processors
        from lerobot.policies.smolvla.modeling_smolvla import SmolVLAPolicy

        started = time.perf_counter()
        self.config = config
        path = config.policy_path
        if not path:
            raise PolicyLoadError("policy_path is empty: give a hub id or a checkpoint folder")
        local = Path(path).expanduser()
        if local.exists() or path.startswith((".", "/", "~")):
            if not local.is_dir():
                raise PolicyLoadError(f"checkpoint folder {local} does not exist")
            _check_local_folder(local)
            path = str(local.resolve())
        self.device = _resolve_device(config.device)
        self.dtype = resolve_dtype(config.dtype)
        try:
            policy_config = PreTrainedConfig.from_pretrained(path)
        except Exception as error:  # hub errors come in many types; all mean "cannot get it"
            reason = f"{type(error).__name__}: {(str(error).splitlines() or [''])[0]}"
            if local.is_dir():  # the folder is there: its config.json is what is wrong
                raise PolicyLoadError(f"{local / 'config.json'} is broken: cannot read it as a "
                                      f"LeRobot policy config ({reason})") from None
            raise PolicyLoadError(
                f"cannot load '{path}': not a local folder, and the Hugging Face Hub has no such "
                f"model or cannot be reached ({reason})") from None
        if policy_config.type != "smolvla":
            raise PolicyLoadError(f"'{path}' is a '{policy_config.type}' policy, not smolvla")
        if config.vlm_path:
            policy_config.vlm_model_name = config.vlm_path
        elif not Path(policy_config.vlm_model_name).exists() and local.is_dir() \
                and (local / "vlm").is_dir():
            policy_config.vlm_model_name = str(local.resolve() / "vlm")  # a moved test checkpoint
        policy_config.device = self.device
        try:
            self.policy = SmolVLAPolicy.from_pretrained(path, config=policy_config)
        except OSError as error:  # most often the saved VLM/tokenizer path no longer exists
            raise PolicyLoadError(
                f"cannot build the policy from '{path}' with VLM '{policy_config.vlm_model_name}' "
                f"({str(error).splitlines()[0]}); if the VLM folder moved, set vlm_path") from None
        self.load_notes: list[str] = []  # what the load did that a log should say (caches)
        self._apply_speed_ups(config)
        self.policy.eval = EvalModeKept(self.policy)  # what predict_action_chunk calls
        tokenizer_overrides = {"tokenizer_name": policy_config.vlm_model_name}
        if config.tokenizer_max_length > 0:
            tokenizer_overrides["max_length"] = config.tokenizer_max_length
        self.preprocessor, self.postprocessor = make_pre_post_processors(
            policy_config, pretrained_path=path,
            preprocessor_overrides={"device_processor": {"device": self.device},
                                    "tokenizer_processor": tokenizer_overrides},
            postprocessor_overrides={"device_processor": {"device": "cpu"}},
        )
        self._tokenizer_step = next(step for step in self.preprocessor.steps
                                    if type(step).__name__ == "TokenizerProcessorStep")
        self.image_keys = [key for key in policy_config.input_features if key.startswith(IMAGE_PREFIX)]
        self.rename_map = saved_rename_map(self.preprocessor)
        try:
            self.cameras = resolve_cameras(self.image_keys, self.rename_map, config.camera_map)
        except CameraMapError as error:
            raise PolicyLoadError(str(error)) from None
        self.camera_names = [camera.name for camera in self.cameras]  # the ROS side
        self._image_key = {camera.name: camera.key for camera in self.cameras}
        self._state_key = fed_key(self.rename_map, STATE_KEY)
        self.state_dim = policy_config.input_features[STATE_KEY].shape[0]
        self.action_dim = policy_config.output_features["action"].shape[0]
        self.n_action_steps = policy_config.n_action_steps
        self.noise_shape = (1, policy_config.chunk_size, policy_config.max_action_dim)
        self.tokenizer_max_length = self._tokenizer_step.max_length
        self.last_model_actions = None
        self._tokenizer_lock = threading.Lock()
        # With cuda_graph images go over as bytes; otherwise LeRobot's own function makes the
        # frame (the default path stays LeRobot's code).
        self._byte_images = ByteImageObservation(self.device) if config.cuda_graph else None
        self.load_time_s = time.perf_counter() - started

    def _apply_speed_ups(self, config: PolicyRuntimeConfig) -> None:
        """dtype, tf32, num_steps, quantize, compile, prepack, vision_runtime, expert_runtime,
        static_cache, cuda_graph: see PolicyRuntimeConfig. ``mode`` names them."""
        import torch

        if config.quantize not in QUANTIZE:
            raise PolicyLoadError(f"quantize '{config.quantize}': expected {' or '.join(QUANTIZE)}")
        int8 = config.quantize == "int8"
        if int8 and self.device != "cpu":
            raise PolicyLoadError(f"quantize int8 runs on the CPU (device cpu), not {self.device}")
        if config.num_steps < 0:
            raise PolicyLoadError(f"num_steps {config.num_steps}: expected 0 (the checkpoint's) or more")
        for name in ("cuda_graph", "tf32"):
            if getattr(config, name) and not self.device.startswith("cuda"):
                raise PolicyLoadError(f"{name} needs a CUDA device, not '{self.device}'")
        if config.prepack:
            from smolvla_ros.policy import packed_linear

            self._refuse_off_cpu_or_compiled("prepack", config.compile)
            if not packed_linear.available():
                raise PolicyLoadError("prepack needs a torch built with oneDNN (mkldnn); this "
                                      "one is not")
        if config.vision_runtime not in VISION_RUNTIMES:
            raise PolicyLoadError(f"vision_runtime '{config.vision_runtime}': expected "
                                  f"{' or '.join(VISION_RUNTIMES)}")
        openvino = config.vision_runtime == "openvino"
        if openvino:
            self._refuse_off_cpu_or_compiled("vision_runtime openvino", config.compile)
        if config.expert_runtime not in EXPERT_RUNTIMES:
            raise PolicyLoadError(f"expert_runtime '{config.expert_runtime}': expected "
                                  f"{' or '.join(EXPERT_RUNTIMES)}")
        expert_openvino = config.expert_runtime == "openvino"
        if expert_openvino:
            self._refuse_off_cpu_or_compiled("expert_runtime openvino", config.compile)
        # torch's dynamic int8 multiplies float32 activations only; OpenVINO's int8 weights
        # take bfloat16 ones too.
        torch_int8 = int8 and self.dtype == "float32"
        if int8 and not torch_int8 and not (openvino or expert_openvino):
            raise PolicyLoadError("quantize int8 in bfloat16 makes OpenVINO's weights int8 only: "
                                  "it needs vision_runtime or expert_runtime openvino (torch's "
                                  "dynamic int8 runs dtype float32)")
        model = self.policy.model
        if config.num_steps:
            self.policy.config.num_steps = config.num_steps
        graphs = self._graph_cache(model)  # hashes the model only if a graph is asked for
        if openvino:  # first: its graph is made from the float32 weights (openvino_vision)
            self._install_openvino(model, graphs, int8)
        self._openvino_steps = None
        if expert_openvino:  # the same, before the cast
            self._openvino_steps = self._openvino_step(model, graphs, int8)
        self.load_notes += graphs.notes
        idle = self._run_by_openvino(model, openvino, expert_openvino)  # not quantised or packed
        if self.dtype == "bfloat16":
            # Casting the whole policy breaks (its noise stays float32): cast the VLM + expert.
            model.vlm_with_expert.to(torch.bfloat16)
        if torch_int8:
            import warnings

            from torch.ao.quantization import quantize_dynamic

            # Not the attention projections of the language model and expert: LeRobot reads
            # their weight.dtype, which a quantised Linear does not have. The MLPs (most of
            # the weights) and the whole vision encoder are quantised.
            left_out = {id(inner) for outer in idle for inner in outer.modules()}
            names = {name for name, module in model.vlm_with_expert.named_modules()
                     if isinstance(module, torch.nn.Linear)
                     and ("vision_model" in name or ".self_attn." not in name)
                     and id(module) not in left_out}
            with warnings.catch_warnings():  # deprecated for torchao (not a dependency); in torch 2.11
                warnings.simplefilter("ignore", DeprecationWarning)
                quantize_dynamic(model.vlm_with_expert, names, dtype=torch.qint8, inplace=True)
        if config.prepack:  # after the cast and int8: the weights that multiply
            from smolvla_ros.policy import packed_linear

            packed_linear.prepack(model, idle)
        self._graphed_vision = None
        if config.cuda_graph:  # its image embedding is compiled with compile, not the module
            from smolvla_ros.policy.graphed_vision import GraphedImageEmbedding

            self._graphed_vision = GraphedImageEmbedding(model.vlm_with_expert,
                                                         compile=config.compile)
            self._graphed_vision.install()
        elif config.compile:
            # The vision encoder, the part that bounds a chunk on a CPU (bench/fast_modes.py),
            # called by LeRobot as a module; its input shape is static (every image resized to
            # the same square). Not the VLM + expert: LeRobot calls their forward as a method
            # with a KV-cache object, and compiled so, it recompiled on every chunk (11 s).
            model.vlm_with_expert.get_vlm_model().vision_model.compile(dynamic=False)
        self._static_expert = None
        if config.static_cache or config.cuda_graph or expert_openvino:  # last: the final weights
            from smolvla_ros.policy.static_expert import StaticExpert

            try:
                self._static_expert = StaticExpert(model, cuda_graph=config.cuda_graph,
                                                   compile=config.compile)
            except ValueError as error:
                raise PolicyLoadError(str(error)) from None
            self._static_expert.install()
            if expert_openvino:
                self._openvino_steps.install(self._static_expert)
        parts = [self.dtype]
        if config.tf32:
            parts.append("TF32 matmuls")
        if torch_int8:
            parts.append("int8 linear")
        if config.prepack:
            parts.append("prepacked linear")
        parts.append(f"{self.policy.config.num_steps} steps")
        if config.compile:
            parts.append(("vision, prefix and steps compiled" if self._static_expert is not None
                          else "vision compiled") + (" (weights frozen)" if self._frozen else ""))
        int8_graphs = " (int8 weights)" if int8 else ""
        if openvino:
            parts.append(f"OpenVINO vision{int8_graphs}{self._openvino.precision_note}")
        if expert_openvino:
            parts.append(f"OpenVINO expert{int8_graphs}{self._openvino_steps.precision_note}")
        elif config.static_cache or config.cuda_graph:
            parts.append("CUDA graph" if config.cuda_graph else "static cache")
        self._mode = ", ".join(parts)

    def _refuse_off_cpu_or_compiled(self, what: str, compile: bool) -> None:
        """The CPU-only speed-ups replace what ``compile`` would compile: one line if not."""
        if self.device != "cpu" or compile:
            raise PolicyLoadError(f"{what} needs device cpu and compile off (got device "
                                  f"{self.device}, compile {'on' if compile else 'off'})")

    @staticmethod
    def _run_by_openvino(model, openvino: bool, expert_openvino: bool) -> tuple:
        """The modules torch no longer runs: OpenVINO's graphs run them instead."""
        vlm_with_expert = model.vlm_with_expert
        idle = []
        if openvino:  # the image embedding: encoder and connector
            idle += [vlm_with_expert.get_vlm_model().vision_model,
                     vlm_with_expert.get_vlm_model().connector]
        if expert_openvino:  # the step's graph holds the expert and the action projections
            idle += [vlm_with_expert.lm_expert, model.action_in_proj, model.action_out_proj,
                     model.action_time_mlp_in, model.action_time_mlp_out]
        return tuple(idle)

    def _graph_cache(self, model):
        """Where the OpenVINO graphs of this very model are kept between loads."""
        from smolvla_ros.policy.openvino_cache import GraphCache, cache_dir, model_fingerprint

        return GraphCache(lambda: model_fingerprint(model, self.policy.config), cache_dir())

    def _openvino_step(self, model, graphs, int8: bool):
        import torch

        from smolvla_ros.policy.openvino_expert import OpenVINOExpertError, OpenVINOSteps

        try:
            return OpenVINOSteps(model, self.dtype, torch.get_num_threads(), graphs, int8)
        except (OpenVINOExpertError, ValueError) as error:
            raise PolicyLoadError(str(error)) from error

    def _install_openvino(self, model, graphs, int8: bool) -> None:
        import torch

        from smolvla_ros.policy.openvino_vision import OpenVINOVision, OpenVINOVisionError

        size = self.policy.config.resize_imgs_with_padding
        if not size or size[0] != size[1]:
            raise PolicyLoadError("vision_runtime openvino needs the checkpoint to resize images "
                                  f"to one square size (resize_imgs_with_padding is {size})")
        try:
            self._openvino = OpenVINOVision(model.vlm_with_expert, size[0], self.dtype,
                                            torch.get_num_threads(), graphs, int8)
        except OpenVINOVisionError as error:
            raise PolicyLoadError(str(error)) from error
        self._openvino.install()

    @property
    def mode(self) -> str:
        """The modes in force, e.g. ``bfloat16, 5 steps, CUDA graph``; a failed capture says so."""
        rtc = self.policy.config.rtc_config
        if self._static_expert is not None and rtc is not None and rtc.enabled:
            return f"{self._mode} (RTC: LeRobot's loop)"  # its guidance needs autograd
        failed = []
        if self._graphed_vision is not None and self._graphed_vision.capture_error:
            failed.append("images embedded eagerly")
        if self._static_expert is not None and self._static_expert.capture_error:
            failed.append("static cache, eager")
        return f"{self._mode} (capture failed: {'; '.join(failed)})" if failed else self._mode

    def token_count(self, task: str) -> int:
        """Tokens the instruction takes, counted as the preprocessor will tokenize it."""
        tokenizer = self._tokenizer_step.input_tokenizer
        with self._tokenizer_lock:  # a fast tokenizer refuses concurrent use ("Already borrowed")
            return len(tokenizer(task + "\n", add_special_tokens=True)["input_ids"])

    def make_noise(self, seed: int):
        """The flow-matching start noise for ``seed`` (same shape and dtype LeRobot samples)."""
        import torch

        generator = torch.Generator().manual_seed(seed)
        return torch.randn(self.noise_shape, generator=generator).to(self.device)

    def enable_rtc(self, execution_horizon: int, max_guidance_weight: float) -> None:
        """Turn on LeRobot's real-time chunking (SmolVLA supports it): each inference is
        guided to agree with the not-yet-executed prefix of the previous chunk."""
        from lerobot.policies.rtc.configuration_rtc import RTCConfig

        self.policy.config.rtc_config = RTCConfig(
            enabled=True, execution_horizon=execution_horizon, max_guidance_weight=max_guidance_weight)
        self.policy.init_rtc_processor()

    def infer(self, images: dict[str, np.ndarray], state: np.ndarray, task: str, noise=None,
              rtc_prefix=None, rtc_delay: int = 0) -> np.ndarray:
        """One action chunk (n_action_steps, action_dim) in LeRobot units.

        ``images``: camera name (``camera_names``) -> HxWx3 uint8 RGB, one camera at least:
        cameras left out are left out of the observation, which LeRobot's SmolVLA allows
        (it infers on the image inputs present). ``state``: LeRobot units. With RTC on,
        ``rtc_prefix`` is the previous chunk's unexecuted model-space actions and
        ``rtc_delay`` the inference delay in actions; ``last_model_actions`` then holds this
        chunk's model-space actions for the next call.
        """
        import torch
        from lerobot.policies.utils import prepare_observation_for_inference

        unknown = sorted(set(images) - set(self._image_key))
        if unknown or not images:
            raise ValueError(f"images for {unknown}: the cameras are {self.camera_names}" if unknown
                             else "no camera image: SmolVLA needs one at least")
        # Dataset-side keys, as LeRobot feeds them: the saved rename step renames them.
        observation = {self._state_key: np.asarray(state, dtype=np.float32)}
        for name in self.camera_names:
            if name in images:
                observation[self._image_key[name]] = images[name]
        if self._byte_images is None:
            frame = prepare_observation_for_inference(
                observation, torch.device(self.device), task=task, robot_type=self.config.robot_type)
        else:
            frame = self._byte_images.prepare(observation, task, self.config.robot_type)
        rtc = {}
        if self.policy.config.rtc_config is not None:
            rtc = {"inference_delay": rtc_delay, "prev_chunk_left_over": rtc_prefix}
        # No inference_mode here: RTC's guidance needs autograd (predict_action_chunk is
        # no_grad itself), exactly as in LeRobot's own RTC engine.
        with self._tokenizer_lock:
            batch = self.preprocessor(frame)
        with self._matmul_precision(), self._frozen_when_compiled():
            model_actions = self.policy.predict_action_chunk(batch, noise=noise, **rtc)
        self.last_model_actions = model_actions[0, : self.n_action_steps].detach().clone()
        actions = self.postprocessor(model_actions)
        return actions[0, : self.n_action_steps].float().numpy().astype(np.float64)

    def _matmul_precision(self):
        """With ``tf32``, CUDA's float32 matrix products use TF32 for this call only.

        lerobot-eval and lerobot-train switch TF32 on for the whole process; LeRobot's robot
        deployment (lerobot-record with a policy) and its direct call do not. torch's switch is
        process-wide, so it is set for the inference and put back after: another policy or
        LeRobot's own call in the same process (bench/fast_modes.py's reference) keeps its
        precision. A CUDA graph or inductor kernel made inside keeps the TF32 kernels it was
        made with."""
        if not self.config.tf32:
            return contextlib.nullcontext()
        return cuda_matmul_precision("tf32")

    def _frozen_when_compiled(self):
        """With ``compile`` in bfloat16 on a CPU, inductor freezes the weights into the graphs
        it compiles (the first call of each shape): they become constants, each laid out once
        for oneDNN's product (as packed_linear does eagerly), and constant work is folded.
        Measured on the full-size model, alternating in one process: 2.11-2.15 s a chunk
        frozen against 2.43-2.46 s not; in float32 no gain (4.03-4.12 s frozen against
        3.87-4.35 s), so float32 is left as it was: on x86 inductor packs a float32 weight for
        MKL's product, not oneDNN's (prepack's), and on Zen 4 MKL's is no faster than torch's
        own Linear (bench/packed_products.py). Inductor reads the switch while dynamo traces
        (given to torch.compile's options, it froze nothing), and it is process-wide: so it is
        set for the call and put back after, as TF32 is. Not on CUDA: not measured there."""
        import torch

        if not self._frozen:
            return contextlib.nullcontext()
        return torch._inductor.config.patch(freezing=True)

    @property
    def _frozen(self) -> bool:
        return self.config.compile and self.dtype == "bfloat16" and self.device == "cpu"

    def warm_up(self) -> float:
        """One inference on blank inputs (first calls are slow); returns its seconds."""
        images = {name: np.zeros((64, 64, 3), dtype=np.uint8) for name in self.camera_names}
        started = time.perf_counter()
        self.infer(images, np.zeros(self.state_dim), "warm up")
        return time.perf_counter() - started
