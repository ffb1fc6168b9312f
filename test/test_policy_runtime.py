"""The policy runtime is LeRobot's own path: same actions for the same input and noise."""

from __future__ import annotations

import shutil
import warnings

import numpy as np
import pytest
import torch
from lerobot.configs import PreTrainedConfig
from lerobot.policies.factory import make_pre_post_processors
from lerobot.policies.smolvla.modeling_smolvla import SmolVLAPolicy
from lerobot.policies.utils import prepare_observation_for_inference

from smolvla_ros.policy.runtime import (
    PolicyLoadError, PolicyRuntime, PolicyRuntimeConfig, resolve_dtype,
)


@pytest.fixture(scope="module")
def runtime(tiny_checkpoint):
    return PolicyRuntime(PolicyRuntimeConfig(str(tiny_checkpoint), device="cpu"))


def observation(seed: int = 0):
    rng = np.random.default_rng(seed)
    images = {name: rng.integers(0, 256, (48, 64, 3), dtype=np.uint8) for name in ("front", "wrist")}
    return images, rng.normal(size=6) * 20


def lerobot_direct(checkpoint, images, state, task, noise, num_steps=None):
    """What LeRobot itself computes: postprocess(predict_action_chunk(preprocess(frame))),
    with its config's ``num_steps`` set to ``num_steps`` if given."""
    config = PreTrainedConfig.from_pretrained(checkpoint)
    if num_steps is not None:
        config.num_steps = num_steps
    policy = SmolVLAPolicy.from_pretrained(checkpoint, config=config)
    preprocess, postprocess = make_pre_post_processors(config, pretrained_path=str(checkpoint))
    frame = prepare_observation_for_inference(
        {"observation.state": state.astype(np.float32),
         **{f"observation.images.{n}": image.copy() for n, image in images.items()}},
        torch.device("cpu"), task=task, robot_type="so_follower")
    return postprocess(policy.predict_action_chunk(preprocess(frame), noise=noise))[0].numpy()


def beside_lerobots(fast, checkpoint, cameras_left_out=(), num_steps=0):
    """(ours, LeRobot's) actions for two observations, instructions of different lengths, as
    a LeRobot user feeds them to its direct call."""
    rng = np.random.default_rng(3)
    for seed, task in ((7, "pick up the cube"), (8, "put the red block in the blue box please")):
        images = {name: rng.integers(0, 256, (48, 64, 3), dtype=np.uint8)
                  for name in fast.camera_names if name not in cameras_left_out}
        state = rng.normal(size=6) * 20
        ours = fast.infer(images, state, task, noise=fast.make_noise(seed))
        fed = {fast._image_key[name].removeprefix("observation.images."): image
               for name, image in images.items()}
        yield ours, lerobot_direct(checkpoint, fed, state, task, fast.make_noise(seed),
                                   num_steps=num_steps or None)


@pytest.mark.parametrize("device", ["cpu", pytest.param("cuda", marks=pytest.mark.skipif(
    not torch.cuda.is_available(), reason="needs a CUDA device"))])
def test_images_sent_as_bytes_give_lerobots_frame_exactly(device):
    """What a GPU runtime feeds LeRobot's preprocessor: every byte value's x / 255 as
    LeRobot computes it on the CPU, whatever the device's division rounds to."""
    from smolvla_ros.policy.runtime import ByteImageObservation

    rng = np.random.default_rng(5)
    every_byte = np.arange(480 * 640 * 3, dtype=np.int64).reshape(480, 640, 3) % 256
    observation = {"observation.state": rng.normal(size=6).astype(np.float32),
                   "observation.images.front": rng.permuted(every_byte.astype(np.uint8)),
                   "observation.images.wrist": rng.random((48, 64, 3), dtype=np.float32)}
    ours = ByteImageObservation(device).prepare(observation, "pick up the cube", "so_follower")
    theirs = prepare_observation_for_inference(
        {name: value.copy() for name, value in observation.items()}, torch.device(device),
        task="pick up the cube", robot_type="so_follower")
    assert ours.keys() == theirs.keys()
    for name, value in theirs.items():
        if isinstance(value, str):
            assert ours[name] == value
        else:
            assert ours[name].dtype == value.dtype and ours[name].device == value.device
            torch.testing.assert_close(ours[name].cpu(), value.cpu(), rtol=0, atol=0)


def test_features_of_the_checkpoint(runtime):
    assert runtime.camera_names == ["front", "wrist"]
    assert (runtime.state_dim, runtime.action_dim, runtime.n_action_steps) == (6, 6, 50)
    assert runtime.tokenizer_max_length == 48 and runtime.device == "cpu"
    assert runtime.dtype == "float32" and runtime.mode == "float32, 10 steps"


def test_actions_equal_lerobots_for_same_input_and_noise(runtime, tiny_checkpoint):
    images, state = observation()
    ours = runtime.infer(images, state, "pick up the cube", noise=runtime.make_noise(7))
    theirs = lerobot_direct(tiny_checkpoint, images, state, "pick up the cube", runtime.make_noise(7))
    assert ours.shape == (50, 6)
    np.testing.assert_array_equal(ours, theirs.astype(np.float64))
    other = runtime.infer(images, state, "open the gripper", noise=runtime.make_noise(7))
    assert not np.allclose(ours, other)  # the instruction reaches the model


def test_modules_are_walked_into_eval_mode_only_when_one_left_it(tiny_checkpoint, monkeypatch):
    """LeRobot's predict_action_chunk calls eval() on every chunk: a walk over every module,
    milliseconds for the full-size model. The runtime walks on its first chunk, then only
    when a module was set to training; every module is in eval mode for every chunk."""
    runtime = PolicyRuntime(PolicyRuntimeConfig(str(tiny_checkpoint), device="cpu"))
    walked = []
    train = torch.nn.Module.train
    monkeypatch.setattr(torch.nn.Module, "train",
                        lambda module, mode=True: walked.append(module) or train(module, mode))
    images, state = observation()
    first = runtime.infer(images, state, "pick up the cube", noise=runtime.make_noise(7))
    assert runtime.policy in walked
    walked.clear()
    again = runtime.infer(images, state, "pick up the cube", noise=runtime.make_noise(7))
    assert walked == []
    np.testing.assert_array_equal(again, first)
    runtime.policy.model.vlm_with_expert.lm_expert.layers[0].train()  # a module left eval mode
    walked.clear()
    after = runtime.infer(images, state, "pick up the cube", noise=runtime.make_noise(7))
    assert runtime.policy in walked
    assert not any(module.training for module in runtime.policy.modules())
    np.testing.assert_array_equal(after, first)


def test_token_count_and_override(runtime, tiny_checkpoint):
    long_text = " ".join(["pick up the cube"] * 30)
    assert runtime.token_count("pick up the cube") < 48 < runtime.token_count(long_text)
    short = PolicyRuntime(PolicyRuntimeConfig(str(tiny_checkpoint), device="cpu",
                                              tokenizer_max_length=8))
    assert short.tokenizer_max_length == 8
    images, state = observation()
    # Only 8 tokens are read: two texts that differ after them give the same actions.
    prefix = "pick up the cube and place it in the box, then "
    assert short.token_count(prefix) > 8
    a = short.infer(images, state, prefix + "wave", noise=short.make_noise(1))
    b = short.infer(images, state, prefix + "fold the cloth", noise=short.make_noise(1))
    np.testing.assert_array_equal(a, b)
    full = runtime.infer(images, state, prefix + "wave", noise=runtime.make_noise(1))
    assert not np.allclose(a, full)  # ...while the default length reads the whole text


def test_moved_checkpoint_loads_with_vlm_path(tiny_checkpoint, tmp_path):
    moved = tmp_path / "moved"
    shutil.copytree(tiny_checkpoint, moved)
    vlm = tmp_path / "vlm_elsewhere"
    shutil.move(moved / "vlm", vlm)
    with pytest.raises(PolicyLoadError, match="if the VLM folder moved, set vlm_path") as error:
        PolicyRuntime(PolicyRuntimeConfig(str(moved), vlm_path=str(tmp_path / "nope")))
    assert "\n" not in str(error.value)
    runtime = PolicyRuntime(PolicyRuntimeConfig(str(moved), device="cpu", vlm_path=str(vlm)))
    assert runtime.camera_names == ["front", "wrist"]


@pytest.mark.parametrize("path, message", [
    ("/nonexistent/checkpoint", "checkpoint folder /nonexistent/checkpoint does not exist"),
    ("", "policy_path is empty"),
    ("nobody/no_such_model", "cannot load 'nobody/no_such_model': not a local folder"),
])
def test_missing_checkpoint_is_one_clear_line(path, message):
    with pytest.raises(PolicyLoadError, match=message) as error:
        PolicyRuntime(PolicyRuntimeConfig(path))
    assert "\n" not in str(error.value)


def test_folder_that_is_not_a_checkpoint(tmp_path):
    (tmp_path / "config.json").write_text("{}")
    with pytest.raises(PolicyLoadError, match="missing model.safetensors, policy_preprocessor.json"):
        PolicyRuntime(PolicyRuntimeConfig(str(tmp_path)))


def test_cuda_requested_without_cuda_is_clear(tiny_checkpoint):
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    with pytest.raises(PolicyLoadError, match="torch sees no CUDA device"):
        PolicyRuntime(PolicyRuntimeConfig(str(tiny_checkpoint), device="cuda"))


def test_real_time_chunking_pulls_the_new_chunk_toward_the_old_prefix(tiny_checkpoint):
    runtime = PolicyRuntime(PolicyRuntimeConfig(str(tiny_checkpoint), device="cpu"))
    images, state = observation()
    old = runtime.infer(images, state, "pick up the cube", noise=runtime.make_noise(1))
    plain = runtime.infer(images, state, "pick up the cube", noise=runtime.make_noise(2))
    runtime.enable_rtc(execution_horizon=10, max_guidance_weight=10.0)
    again = runtime.infer(images, state, "pick up the cube", noise=runtime.make_noise(1))
    np.testing.assert_array_equal(again, old)  # no prefix: RTC changes nothing
    prefix = runtime.last_model_actions[20:30]  # the part of the old chunk still ahead
    guided = runtime.infer(images, state, "pick up the cube", noise=runtime.make_noise(2),
                           rtc_prefix=prefix, rtc_delay=3)
    # Guided toward old[20:30] far more than an unguided chunk with the same noise is.
    assert np.abs(guided[:10] - old[20:30]).mean() < 0.5 * np.abs(plain[:10] - old[20:30]).mean()


def test_bfloat16_casts_the_vlm_and_expert_only(tiny_checkpoint):
    runtime = PolicyRuntime(PolicyRuntimeConfig(str(tiny_checkpoint), device="cpu",
                                                dtype="bfloat16"))
    assert runtime.dtype == "bfloat16"
    model = runtime.policy.model
    assert {p.dtype for p in model.vlm_with_expert.parameters()} == {torch.bfloat16}
    others = [p for name, p in model.named_parameters() if not name.startswith("vlm_with_expert.")]
    assert others and {p.dtype for p in others} == {torch.float32}  # projections stay float32
    images, state = observation()
    actions = runtime.infer(images, state, "pick up the cube", noise=runtime.make_noise(7))
    assert actions.shape == (50, 6) and np.isfinite(actions).all()


def test_dtype_auto_is_float32_on_every_device_and_bad_ones_are_one_line(tiny_checkpoint):
    assert resolve_dtype("auto") == "float32"  # whatever the device: LeRobot's precision
    assert resolve_dtype("bfloat16") == "bfloat16"
    with pytest.raises(PolicyLoadError, match="dtype 'float16': expected auto, float32 or bfloat16"):
        PolicyRuntime(PolicyRuntimeConfig(str(tiny_checkpoint), dtype="float16"))


def test_a_truncated_config_is_a_broken_file_not_a_missing_model(tiny_checkpoint, tmp_path):
    broken = tmp_path / "broken"
    shutil.copytree(tiny_checkpoint, broken)
    text = (broken / "config.json").read_text()
    (broken / "config.json").write_text(text[: len(text) // 2])
    with pytest.raises(PolicyLoadError, match=r"config.json is broken") as error:
        PolicyRuntime(PolicyRuntimeConfig(str(broken)))
    assert "Hub" not in str(error.value) and "\n" not in str(error.value)


def test_fewer_flow_steps_are_lerobots_actions_with_that_many_steps(tiny_checkpoint):
    fast = PolicyRuntime(PolicyRuntimeConfig(str(tiny_checkpoint), device="cpu", num_steps=4))
    assert fast.mode == "float32, 4 steps"
    images, state = observation()
    ours = fast.infer(images, state, "pick up the cube", noise=fast.make_noise(7))
    theirs = lerobot_direct(tiny_checkpoint, images, state, "pick up the cube", fast.make_noise(7),
                            num_steps=4)
    np.testing.assert_array_equal(ours, theirs.astype(np.float64))
    default = lerobot_direct(tiny_checkpoint, images, state, "pick up the cube", fast.make_noise(7))
    assert not np.allclose(ours, default)  # 4 steps are not the checkpoint's 10


def test_int8_quantizes_the_vlm_and_expert_linear_layers_lerobot_can_read(tiny_checkpoint, runtime):
    from torch.ao.nn.quantized.dynamic import Linear as DynamicInt8Linear

    int8 = PolicyRuntime(PolicyRuntimeConfig(str(tiny_checkpoint), device="cpu", quantize="int8"))
    assert int8.mode == "float32, int8 linear, 10 steps"
    model = int8.policy.model
    kinds = {name: type(m) for name, m in model.vlm_with_expert.named_modules()
             if isinstance(m, (torch.nn.Linear, DynamicInt8Linear))}
    # All but the attention projections LeRobot reads weight.dtype of (text model and expert).
    kept = {name for name, kind in kinds.items() if kind is torch.nn.Linear}
    assert kept and all(".self_attn." in name and "vision_model" not in name for name in kept)
    assert len(kinds) - len(kept) > len(kept)
    assert any("vision_model" in n for n, kind in kinds.items() if kind is DynamicInt8Linear)
    assert isinstance(model.action_out_proj, torch.nn.Linear)  # projections stay float32
    images, state = observation()
    actions = int8.infer(images, state, "pick up the cube", noise=int8.make_noise(7))
    exact = runtime.infer(images, state, "pick up the cube", noise=runtime.make_noise(7))
    assert actions.shape == (50, 6) and np.isfinite(actions).all()
    assert not np.array_equal(actions, exact)  # an approximation: bench/fast_modes.py says how far


@pytest.mark.filterwarnings("ignore:`torch.jit.script_method` is deprecated:DeprecationWarning")
def test_compiled_model_gives_the_eager_actions(tiny_checkpoint, runtime):
    compiled = PolicyRuntime(PolicyRuntimeConfig(str(tiny_checkpoint), device="cpu", compile=True))
    assert compiled.mode == "float32, 10 steps, vision compiled"
    model = compiled.policy.model  # the vision encoder, which LeRobot calls as a module
    assert model.vlm_with_expert.get_vlm_model().vision_model._compiled_call_impl is not None
    images, state = observation()
    for seed in (7, 8):  # the first call compiles, the second runs the compiled graphs
        ours = compiled.infer(images, state, "pick up the cube", noise=compiled.make_noise(seed))
        eager = runtime.infer(images, state, "pick up the cube", noise=runtime.make_noise(seed))
        np.testing.assert_allclose(ours, eager, rtol=0, atol=1e-3)  # fused kernels round otherwise


@pytest.mark.parametrize("fixture, cameras_left_out, num_steps", [
    ("tiny_checkpoint", (), 0),
    ("base_like_checkpoint", ("camera3",), 4),  # smolvla_base's features, a camera missing
    ("finetuned_checkpoint", (), 0),  # its saved rename map: front -> camera1, wrist -> camera2
])
def test_static_cache_gives_lerobots_actions_exactly(request, fixture, cameras_left_out, num_steps):
    from smolvla_ros.policy.static_expert import StaticExpert

    checkpoint = request.getfixturevalue(fixture)
    static = PolicyRuntime(PolicyRuntimeConfig(str(checkpoint), device="cpu", static_cache=True,
                                               num_steps=num_steps))
    assert static.mode == f"float32, {num_steps or 10} steps, static cache"
    assert isinstance(static.policy.model.sample_actions.__self__, StaticExpert)  # our loop runs
    # the second chunk reuses nothing stale from the first
    for ours, theirs in beside_lerobots(static, checkpoint, cameras_left_out, num_steps):
        np.testing.assert_array_equal(ours, theirs.astype(np.float64))


@pytest.mark.parametrize("size, expert_layers, self_attn_every, read", [
    ("tiny", 1, 2, [0]),  # of the VLM's 2 layers, the expert reads the first only
    # Of 4: layer 1 runs unread between two read ones, layer 3 not at all. (Self-attention every
    # 4th layer: with every 2nd, LeRobot's own loop fails on this model.)
    ("small", 2, 4, [0, 2]),
])
def test_static_cache_with_fewer_expert_layers_gives_lerobots_actions_exactly(
        tmp_path, size, expert_layers, self_attn_every, read):
    """An expert with fewer layers than the VLM (LeRobot's num_expert_layers): the prefix pass
    keeps the layers the expert reads and stops at the last of them, and the steps skip the
    layers it has none for."""
    from smolvla_ros.policy.static_expert import StaticExpert
    from smolvla_ros.policy.tiny_checkpoint import make_test_checkpoint

    config = PreTrainedConfig.from_pretrained(make_test_checkpoint(tmp_path / "ckpt", size=size))
    config.num_expert_layers, config.self_attn_every_n_layers = expert_layers, self_attn_every
    torch.manual_seed(0)
    model = SmolVLAPolicy(config).model.eval()
    static = StaticExpert(model)
    assert [i for i, layer in enumerate(static._expert_layers) if layer is not None] == read
    pixels = config.resize_imgs_with_padding[0]
    generator = torch.Generator().manual_seed(1)
    images = [torch.rand(1, 3, pixels, pixels, generator=generator) * 2 - 1 for _ in range(2)]
    inputs = (images, [torch.ones(1, dtype=torch.bool)] * 2,
              torch.randint(0, 50, (1, 9), generator=generator), torch.ones(1, 9, dtype=torch.bool),
              torch.randn(1, config.max_state_dim, generator=generator))
    noise = torch.randn(1, config.chunk_size, config.max_action_dim, generator=generator)
    with torch.no_grad():
        theirs = model.sample_actions(*inputs, noise=noise)
        ours = static.sample_actions(*inputs, noise=noise)
        kept = static._prefix_pass(*static._padded(*model.embed_prefix(*inputs)))
    torch.testing.assert_close(ours, theirs, rtol=0, atol=0)
    assert sorted(kept) == read


@pytest.mark.filterwarnings("ignore:`torch.jit.script_method` is deprecated:DeprecationWarning")
def test_compiled_static_cache_gives_lerobots_actions_one_graph_per_function(tiny_checkpoint):
    """compile with static_cache (or cuda_graph): the prefix pass and the step each compile to
    one graph, which a CUDA graph then replays fused; nothing breaks them, and instructions of
    other lengths reuse them (padded), as a capture is reused."""
    from torch._dynamo.utils import counters

    from smolvla_ros.policy.static_expert import StaticExpert

    runtime = PolicyRuntime(PolicyRuntimeConfig(str(tiny_checkpoint), device="cpu",
                                                compile=True, static_cache=True))
    assert runtime.mode == "float32, 10 steps, vision, prefix and steps compiled, static cache"
    assert runtime._static_expert.compiled and runtime._static_expert.prefix_bucket == 64
    config = PreTrainedConfig.from_pretrained(tiny_checkpoint)
    torch.manual_seed(0)
    model = SmolVLAPolicy(config).model.eval()  # no vision compiled: only our two functions
    static = StaticExpert(model, compile=True)
    pixels = config.resize_imgs_with_padding[0]
    generator = torch.Generator().manual_seed(1)
    images = [torch.rand(1, 3, pixels, pixels, generator=generator) * 2 - 1 for _ in range(2)]
    torch._dynamo.reset()  # no graph compiled by an earlier test is reused: count them all
    counters.clear()
    for tokens in (9, 30, 9):
        inputs = (images, [torch.ones(1, dtype=torch.bool)] * 2,
                  torch.randint(0, 50, (1, tokens), generator=generator),
                  torch.ones(1, tokens, dtype=torch.bool),
                  torch.randn(1, config.max_state_dim, generator=generator))
        noise = torch.randn(1, config.chunk_size, config.max_action_dim, generator=generator)
        with torch.no_grad():
            theirs = model.sample_actions(*inputs, noise=noise)
        ours = static.sample_actions(*inputs, noise=noise)
        torch.testing.assert_close(ours, theirs, rtol=0, atol=1e-4)  # fused kernels round otherwise
    assert not counters["graph_break"]
    assert counters["stats"]["unique_graphs"] == 2  # the prefix pass and the step, once each


@pytest.mark.filterwarnings("ignore:`torch.jit.script_method` is deprecated:DeprecationWarning")
@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
def test_compiled_on_a_cpu_freezes_the_weights_in_bfloat16_only(tiny_checkpoint, dtype):
    """compile (with static_cache) on a CPU: in bfloat16 inductor freezes the weights into
    its graphs, each Linear's laid out once for oneDNN (the full-size chunk 12 % faster); in
    float32 not (no gain there). The switch is process-wide: on for the policy's call only.
    Either way the actions are the eager loop's, to the rounding of fused kernels."""
    from torch._dynamo.utils import counters

    compiled, eager = (PolicyRuntime(PolicyRuntimeConfig(
        str(tiny_checkpoint), device="cpu", dtype=dtype, static_cache=True, compile=flag))
        for flag in (True, False))
    seen = []
    compiled.policy.model.state_proj.register_forward_pre_hook(  # eager in every mode
        lambda *_: seen.append(torch._inductor.config.freezing))
    torch._dynamo.reset()  # compiled here, not read from an earlier test's graphs
    counters.clear()
    for seed, task in ((7, "pick up the cube"), (8, "put the red block in the blue box please")):
        images, state = observation(seed)
        ours = compiled.infer(images, state, task, noise=compiled.make_noise(seed))
        theirs = eager.infer(images, state, task, noise=eager.make_noise(seed))
        # fused kernels round otherwise; in bfloat16 0.05-0.07 degrees here, of 170-250
        np.testing.assert_allclose(ours, theirs, rtol=0, atol=1e-3 if dtype == "float32" else 0.5)
        assert torch._inductor.config.freezing is False
    frozen = dtype == "bfloat16"
    assert compiled.mode == (f"{dtype}, 10 steps, vision, prefix and steps compiled"
                             f"{' (weights frozen)' if frozen else ''}, static cache")
    assert seen == [frozen] * 2
    packed = counters["inductor"]["mkldnn_linear_weight_pack_matcher_count"]
    assert (packed > 0) == frozen, dict(counters["inductor"])


@pytest.mark.parametrize("changes", [{"dtype": "bfloat16"}, {"quantize": "int8"}])
def test_static_cache_changes_nothing_in_the_other_modes(tiny_checkpoint, changes):
    images, state = observation()
    chunks = []
    for static_cache in (False, True):
        runtime = PolicyRuntime(PolicyRuntimeConfig(str(tiny_checkpoint), device="cpu",
                                                    static_cache=static_cache,
                                                    **changes))
        chunks.append(runtime.infer(images, state, "pick up the cube", noise=runtime.make_noise(7)))
    np.testing.assert_array_equal(chunks[1], chunks[0])


def test_static_cache_leaves_real_time_chunking_to_lerobots_loop(tiny_checkpoint):
    images, state = observation()
    chunks = []
    for static_cache in (False, True):  # RTC guidance needs autograd through LeRobot's steps
        runtime = PolicyRuntime(PolicyRuntimeConfig(str(tiny_checkpoint), device="cpu",
                                                    static_cache=static_cache))
        runtime.enable_rtc(execution_horizon=10, max_guidance_weight=10.0)
        assert runtime.mode.endswith("(RTC: LeRobot's loop)") == static_cache
        old = runtime.infer(images, state, "pick up the cube", noise=runtime.make_noise(1))
        chunks.append(runtime.infer(images, state, "pick up the cube", noise=runtime.make_noise(2),
                                    rtc_prefix=runtime.last_model_actions[20:30], rtc_delay=3))
    np.testing.assert_array_equal(chunks[1], chunks[0])
    assert not np.array_equal(chunks[1], old)


def test_a_padded_prefix_changes_lerobots_actions_by_rounding_only(tiny_checkpoint):
    """What a CUDA graph runs: the prefix padded (masked) to a multiple of 64, so that
    instructions of other lengths and a missing camera reuse a capture."""
    from smolvla_ros.policy.static_expert import StaticExpert

    runtime = PolicyRuntime(PolicyRuntimeConfig(str(tiny_checkpoint), device="cpu"))
    StaticExpert(runtime.policy.model, prefix_bucket=64).install()
    images, state = observation()
    for task, cameras in (("pick up the cube", ("front", "wrist")),
                          ("put the red block in the blue box please", ("front",))):
        shown = {name: images[name] for name in cameras}
        ours = runtime.infer(shown, state, task, noise=runtime.make_noise(7))
        theirs = lerobot_direct(tiny_checkpoint, shown, state, task, runtime.make_noise(7))
        np.testing.assert_allclose(ours, theirs, rtol=0, atol=1e-3)  # degrees


@pytest.mark.filterwarnings("ignore:`torch.jit.script_method` is deprecated:DeprecationWarning")
@pytest.mark.parametrize("compile", [False, True])
def test_a_failed_capture_runs_the_loop_eagerly_and_says_so(tiny_checkpoint, compile):
    if torch.cuda.is_available():
        pytest.skip("this machine can capture CUDA graphs")
    from smolvla_ros.policy.static_expert import StaticExpert

    runtime = PolicyRuntime(PolicyRuntimeConfig(str(tiny_checkpoint), device="cpu"))
    expert = StaticExpert(runtime.policy.model, cuda_graph=True, prefix_bucket=0, compile=compile)
    expert.install()
    images, state = observation()
    with pytest.warns(RuntimeWarning, match="CUDA graph capture failed"):
        ours = runtime.infer(images, state, "pick up the cube", noise=runtime.make_noise(7))
    assert expert.capture_error and not expert.cuda_graph  # not retried on the next chunk
    # Eager means eager: what failed may have been the compiled functions.
    assert not expert.compiled
    assert expert._step.__func__ is StaticExpert._step
    assert expert._prefix_pass.__func__ is StaticExpert._prefix_pass
    theirs = lerobot_direct(tiny_checkpoint, images, state, "pick up the cube", runtime.make_noise(7))
    np.testing.assert_array_equal(ours, theirs.astype(np.float64))


@pytest.mark.parametrize("fixture, dtype", [
    ("tiny_checkpoint", "float32"),
    ("tiny_checkpoint", "bfloat16"),
    ("base_like_checkpoint", "float32"),  # smolvla_base's features: 3 cameras
])
def test_the_recorded_vision_path_gives_lerobots_image_embedding_exactly(request, fixture, dtype):
    """What cuda_graph captures for each image: transformers' vision forward with the position
    ids and encoder mask recorded from LeRobot's own call."""
    from smolvla_ros.policy.graphed_vision import GraphedImageEmbedding

    runtime = PolicyRuntime(PolicyRuntimeConfig(str(request.getfixturevalue(fixture)),
                                                device="cpu", dtype=dtype))
    vlm_with_expert = runtime.policy.model.vlm_with_expert
    embedding = GraphedImageEmbedding(vlm_with_expert, cuda_graph=False)
    pixels = runtime.policy.config.resize_imgs_with_padding[0]
    image = torch.rand(1, 3, pixels, pixels, generator=torch.Generator().manual_seed(2)) * 2 - 1
    constants, theirs = embedding.record(image)
    assert constants[0].shape == (1, (pixels // embedding.vision.embeddings.patch_size) ** 2)
    with torch.no_grad():
        torch.testing.assert_close(embedding.static(image, *constants), theirs, rtol=0, atol=0)
        torch.testing.assert_close(embedding.static(-image, *constants),
                                   vlm_with_expert.embed_image(-image), rtol=0, atol=0)


def test_images_embedded_on_the_recorded_path_give_lerobots_actions_exactly(tiny_checkpoint):
    from smolvla_ros.policy.graphed_vision import GraphedImageEmbedding

    runtime = PolicyRuntime(PolicyRuntimeConfig(str(tiny_checkpoint), device="cpu",
                                                static_cache=True))
    embedding = GraphedImageEmbedding(runtime.policy.model.vlm_with_expert, cuda_graph=False)
    embedding.install()
    for seed, cameras in ((7, ("front", "wrist")), (8, ("wrist",))):  # recorded once, reused
        images, state = observation(seed)
        shown = {name: images[name] for name in cameras}
        ours = runtime.infer(shown, state, "pick up the cube", noise=runtime.make_noise(seed))
        theirs = lerobot_direct(tiny_checkpoint, shown, state, "pick up the cube",
                                runtime.make_noise(seed))
        np.testing.assert_array_equal(ours, theirs.astype(np.float64))
    assert len(embedding._graphs) == 1 and not embedding.capture_error


@pytest.mark.filterwarnings("ignore:`torch.jit.script_method` is deprecated:DeprecationWarning")
def test_a_compiled_recorded_vision_path_gives_lerobots_image_embedding(tiny_checkpoint):
    from smolvla_ros.policy.graphed_vision import GraphedImageEmbedding

    runtime = PolicyRuntime(PolicyRuntimeConfig(str(tiny_checkpoint), device="cpu"))
    vlm_with_expert = runtime.policy.model.vlm_with_expert
    embedding = GraphedImageEmbedding(vlm_with_expert, cuda_graph=False, compile=True)
    pixels = runtime.policy.config.resize_imgs_with_padding[0]
    for seed in (2, 3):  # compiled on the first, run on the second
        image = torch.rand(1, 3, pixels, pixels, generator=torch.Generator().manual_seed(seed))
        with torch.no_grad():
            torch.testing.assert_close(embedding(image), vlm_with_expert.embed_image(image),
                                       rtol=0, atol=1e-4)
    assert not embedding.capture_error


class _Misrecorded:
    """A recorded path that disagrees with LeRobot's (as another transformers could)."""

    def __init__(self, embedding):
        self.static = embedding.static

    def __call__(self, image, *constants):
        return self.static(image, *constants) + 1.0


@pytest.mark.parametrize("fault", ["no CUDA", "disagrees"])
def test_an_image_embedding_graph_that_fails_falls_back_to_lerobots_call_and_says_so(
        tiny_checkpoint, fault):
    if fault == "no CUDA" and torch.cuda.is_available():
        pytest.skip("this machine can capture CUDA graphs")
    from smolvla_ros.policy.graphed_vision import GraphedImageEmbedding

    runtime = PolicyRuntime(PolicyRuntimeConfig(str(tiny_checkpoint), device="cpu"))
    embedding = GraphedImageEmbedding(runtime.policy.model.vlm_with_expert)
    if fault == "disagrees":
        embedding._static_call = _Misrecorded(embedding)
    embedding.install()
    runtime._graphed_vision = embedding  # as cuda_graph installs it, for the mode
    images, state = observation()
    message = "image embedding graph failed" + ("" if fault == "no CUDA" else
                                                r".*does not give LeRobot's image embedding")
    with pytest.warns(RuntimeWarning, match=message):
        ours = runtime.infer(images, state, "pick up the cube", noise=runtime.make_noise(7))
    assert runtime.mode == "float32, 10 steps (capture failed: images embedded eagerly)"
    theirs = lerobot_direct(tiny_checkpoint, images, state, "pick up the cube", runtime.make_noise(7))
    np.testing.assert_array_equal(ours, theirs.astype(np.float64))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # not retried on the next chunk
        runtime.infer(images, state, "pick up the cube", noise=runtime.make_noise(7))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.filterwarnings("ignore:`torch.jit.script_method` is deprecated:DeprecationWarning")
@pytest.mark.filterwarnings("ignore:TensorFloat32 tensor cores:UserWarning")  # inductor, float32
@pytest.mark.parametrize("compile", [False, True])  # True: the graph replays inductor's kernels
def test_cuda_graph_gives_lerobots_actions_on_that_card(tiny_checkpoint, compile):
    compiled = ", vision, prefix and steps compiled" if compile else ""
    for dtype in ("float32", "bfloat16"):
        graphed = PolicyRuntime(PolicyRuntimeConfig(str(tiny_checkpoint), device="cuda",
                                                    dtype=dtype, cuda_graph=True, compile=compile))
        eager = PolicyRuntime(PolicyRuntimeConfig(str(tiny_checkpoint), device="cuda", dtype=dtype))
        assert graphed.mode == f"{dtype}, 10 steps{compiled}, CUDA graph"
        # Captured on the first chunk; other lengths, a missing camera, then back to the first.
        for seed, task, cameras in ((7, "pick up the cube", ("front", "wrist")),
                                    (8, "put the red block in the blue box please", ("front", "wrist")),
                                    (9, "pick up the cube", ("wrist",)),
                                    (10, "pick up the cube", ("front", "wrist"))):
            images, state = observation(seed)
            shown = {name: images[name] for name in cameras}
            ours = graphed.infer(shown, state, task, noise=graphed.make_noise(seed))
            theirs = eager.infer(shown, state, task, noise=eager.make_noise(seed))
            # GPU kernels' own rounding (and bfloat16's, which the padding reorders)
            np.testing.assert_allclose(ours, theirs, rtol=0, atol=1e-3 if dtype == "float32" else 0.5)
        assert graphed.mode == f"{dtype}, 10 steps{compiled}, CUDA graph"  # no capture failed


def test_a_failed_capture_names_the_error_that_broke_it():
    from smolvla_ros.policy.cuda_graph import failure

    try:
        try:
            raise RuntimeError("operation not permitted when stream is capturing\nmore")
        finally:
            raise RuntimeError("CUDA error: operation failed due to a previous error during capture")
    except RuntimeError as error:
        assert failure(error) == (
            "RuntimeError: CUDA error: operation failed due to a previous error during capture "
            "(after RuntimeError: operation not permitted when stream is capturing)")
    assert failure(ValueError("one line")) == "ValueError: one line"
    try:
        try:
            raise KeyError("handled inside")
        except KeyError:
            raise ValueError("said in one line") from None
    except ValueError as error:
        assert failure(error) == "ValueError: said in one line"  # a context it suppressed


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_host_work_fails_before_the_capture_and_leaves_cuda_usable():
    from smolvla_ros.policy.cuda_graph import capture

    stream = torch.cuda.current_stream()
    buffer = torch.ones(4, device="cuda")
    with pytest.raises(RuntimeError):
        capture(lambda x: x * float(x.sum().item()), buffer)  # reads back to the host
    assert torch.cuda.current_stream() == stream
    torch.cuda.empty_cache()  # asserts while torch's allocator still thinks a capture is on
    graph, out = capture(lambda x: x * 2 + 1, buffer)
    buffer.copy_(torch.arange(4.0, device="cuda"))
    graph.replay()
    torch.testing.assert_close(out, torch.arange(4.0, device="cuda") * 2 + 1)


@pytest.mark.skipif(torch.cuda.device_count() < 2, reason="needs two CUDA devices")
def test_a_graph_is_captured_on_its_tensors_device():
    from smolvla_ros.policy.cuda_graph import capture

    buffer = torch.ones(4, device="cuda:1")
    graph, out = capture(lambda x: x * 2 + 1, buffer)
    assert out.device == buffer.device
    buffer.copy_(torch.arange(4.0, device="cuda:1"))
    graph.replay()  # records nothing if captured on cuda:0's stream: out would stay 3s
    torch.testing.assert_close(out, torch.arange(4.0, device="cuda:1") * 2 + 1)


def test_matmul_precision_is_put_back_after_the_block_exception_or_not():
    from smolvla_ros.policy.runtime import cuda_matmul_precision

    matmul = torch.backends.cuda.matmul
    before = matmul.fp32_precision
    with cuda_matmul_precision("tf32"):
        assert matmul.fp32_precision == "tf32"
    assert matmul.fp32_precision == before
    with pytest.raises(RuntimeError, match="inside"), cuda_matmul_precision("tf32"):
        raise RuntimeError("inside")
    assert matmul.fp32_precision == before


def test_matmul_precision_on_a_torch_before_2_9_sets_allow_tf32(monkeypatch):
    from types import SimpleNamespace

    from smolvla_ros.policy.runtime import cuda_matmul_precision

    older = SimpleNamespace(allow_tf32=False)  # torch 2.7/2.8's cuda.matmul: no fp32_precision
    monkeypatch.setattr(torch.backends.cuda, "matmul", older)
    with cuda_matmul_precision("tf32"):
        assert older.allow_tf32 is True
    assert older.allow_tf32 is False


@pytest.mark.skipif(not torch.cuda.is_available() or torch.cuda.get_device_capability() < (8, 0),
                    reason="needs a CUDA device with TF32 (Ampere or later)")
@pytest.mark.parametrize("cuda_graph", [False, True])
def test_tf32_is_on_for_the_policys_products_only(tiny_checkpoint, cuda_graph):
    tf32 = PolicyRuntime(PolicyRuntimeConfig(str(tiny_checkpoint), device="cuda", tf32=True,
                                             cuda_graph=cuda_graph))
    eager = PolicyRuntime(PolicyRuntimeConfig(str(tiny_checkpoint), device="cuda"))
    assert tf32.mode == "float32, TF32 matmuls, 10 steps" + (", CUDA graph" if cuda_graph else "")
    seen = []
    for runtime in (tf32, eager):  # the state projection runs eagerly in every mode
        runtime.policy.model.state_proj.register_forward_pre_hook(
            lambda *_: seen.append(torch.backends.cuda.matmul.fp32_precision))
    before = torch.backends.cuda.matmul.fp32_precision
    for seed, task in ((7, "pick up the cube"), (8, "put the red block in the blue box please")):
        images, state = observation(seed)
        ours = tf32.infer(images, state, task, noise=tf32.make_noise(seed))
        theirs = eager.infer(images, state, task, noise=eager.make_noise(seed))
        # TF32 keeps 10 of float32's 23 mantissa bits (bfloat16 7): bfloat16's bound
        np.testing.assert_allclose(ours, theirs, rtol=0, atol=0.5)
        assert torch.backends.cuda.matmul.fp32_precision == before
    assert seen == ["tf32", before] * 2
    assert tf32.mode.endswith(", CUDA graph" if cuda_graph else "10 steps")  # no capture failed


@pytest.mark.parametrize("changes, message", [
    ({"quantize": "int4"}, "quantize 'int4': expected none or int8"),
    ({"quantize": "int8", "dtype": "bfloat16"}, "quantize int8 in bfloat16 makes OpenVINO's "
     "weights int8 only: it needs vision_runtime or expert_runtime openvino"),
    ({"num_steps": -1}, "num_steps -1: expected 0"),
    ({"cuda_graph": True, "device": "cpu"}, "cuda_graph needs a CUDA device, not 'cpu'"),
    ({"tf32": True, "device": "cpu"}, "tf32 needs a CUDA device, not 'cpu'"),
])
def test_bad_speed_ups_are_one_line(tiny_checkpoint, changes, message):
    with pytest.raises(PolicyLoadError, match=message):
        PolicyRuntime(PolicyRuntimeConfig(str(tiny_checkpoint), **changes))


@pytest.mark.parametrize("fixture", ["tiny_checkpoint", "finetuned_checkpoint"])
def test_openvino_vision_gives_lerobots_actions_within_rounding(request, fixture):
    from smolvla_ros.policy.openvino_vision import OpenVINOVision

    checkpoint = request.getfixturevalue(fixture)
    fast = PolicyRuntime(PolicyRuntimeConfig(str(checkpoint), device="cpu",
                                             vision_runtime="openvino"))
    assert fast.mode == "float32, 10 steps, OpenVINO vision"
    embed_image = fast.policy.model.vlm_with_expert.embed_image
    assert isinstance(embed_image, OpenVINOVision)  # LeRobot's embed_prefix calls ours
    size = fast.policy.config.resize_imgs_with_padding[0]
    pixels = torch.rand(2, 3, size, size) * 2 - 1
    with torch.inference_mode():
        theirs = type(fast.policy.model.vlm_with_expert).embed_image(
            fast.policy.model.vlm_with_expert, pixels)  # torch's encoder, LeRobot's method
    ours = embed_image(pixels)
    assert ours.dtype == theirs.dtype and ours.shape == theirs.shape
    np.testing.assert_allclose(ours.numpy(), theirs.numpy(), rtol=0,
                               atol=1e-5 * float(theirs.abs().max()))
    for actions, exact in beside_lerobots(fast, checkpoint):
        np.testing.assert_allclose(actions, exact, rtol=0, atol=1e-3)  # float32 rounding only


def openvino_has_bf16() -> bool:
    """Whether OpenVINO's CPU plugin runs bf16 here (else its bf16 hint runs f32)."""
    import openvino

    return "BF16" in openvino.Core().get_property("CPU", "OPTIMIZATION_CAPABILITIES")


def test_openvino_vision_in_bfloat16_rounds_as_torch_does(tiny_checkpoint, runtime):
    fast = PolicyRuntime(PolicyRuntimeConfig(str(tiny_checkpoint), device="cpu",
                                             vision_runtime="openvino",
                                             dtype="bfloat16", static_cache=True))
    precision = "" if openvino_has_bf16() else " (f32: this CPU has no bfloat16)"
    assert fast.mode == f"bfloat16, 10 steps, OpenVINO vision{precision}, static cache"
    owner = fast.policy.model.vlm_with_expert
    size = fast.policy.config.resize_imgs_with_padding[0]
    pixels = torch.rand(1, 3, size, size) * 2 - 1
    with torch.inference_mode():
        exact = runtime.policy.model.vlm_with_expert.embed_image(pixels)  # torch, float32
        torch_bf16 = type(owner).embed_image(owner, pixels)  # torch's encoder, cast to bfloat16
    ours = owner.embed_image(pixels)
    assert ours.dtype == torch_bf16.dtype == torch.bfloat16  # what embed_prefix concatenates
    ours_error = float((ours.float() - exact).abs().max())
    assert ours_error <= 2 * float((torch_bf16.float() - exact).abs().max())
    assert (ours_error > 0) == openvino_has_bf16()  # bf16 rounding where the CPU has it
    images, state = observation()
    actions = fast.infer(images, state, "pick up the cube", noise=fast.make_noise(7))
    assert actions.shape == (50, 6) and np.isfinite(actions).all()


def test_openvino_vision_with_int8_quantizes_only_what_torch_still_runs(tiny_checkpoint):
    from torch.ao.nn.quantized.dynamic import Linear as DynamicInt8Linear

    fast = PolicyRuntime(PolicyRuntimeConfig(str(tiny_checkpoint), device="cpu",
                                             vision_runtime="openvino",
                                             quantize="int8"))
    assert fast.mode == "float32, int8 linear, 10 steps, OpenVINO vision (int8 weights)"
    vlm = fast.policy.model.vlm_with_expert.get_vlm_model()
    for unused in (vlm.vision_model, vlm.connector):  # OpenVINO runs them now: left as they were
        assert not any(isinstance(m, DynamicInt8Linear) for m in unused.modules())
    assert any(isinstance(m, DynamicInt8Linear) for m in vlm.text_model.modules())
    images, state = observation()
    actions = fast.infer(images, state, "pick up the cube", noise=fast.make_noise(7))
    assert actions.shape == (50, 6) and np.isfinite(actions).all()


@pytest.mark.parametrize("changes, message", [
    ({"vision_runtime": "onnx"}, "vision_runtime 'onnx': expected torch or openvino"),
    ({"vision_runtime": "openvino", "compile": True},
     r"vision_runtime openvino needs device cpu and compile off \(got device cpu, compile on\)"),
])
def test_bad_vision_runtimes_are_one_line(tiny_checkpoint, changes, message):
    with pytest.raises(PolicyLoadError, match=message):
        PolicyRuntime(PolicyRuntimeConfig(str(tiny_checkpoint), device="cpu", **changes))


@pytest.mark.parametrize("parameter, what", [("vision_runtime", "the vision encoder"),
                                             ("expert_runtime", "the flow step")])
def test_a_failed_conversion_is_one_line_and_keeps_its_cause(tiny_checkpoint, monkeypatch,
                                                             parameter, what):
    def export(*args, **kwargs):
        raise RuntimeError("unsupported operator\nmore detail")

    monkeypatch.setattr(torch.export, "export", export)  # as where torch.export cannot trace
    with pytest.raises(PolicyLoadError, match=rf"could not run {what} on OpenVINO \(RuntimeError: "
                       rf"unsupported operator\); use {parameter} torch$") as caught:
        PolicyRuntime(PolicyRuntimeConfig(str(tiny_checkpoint), device="cpu",
                                          **{parameter: "openvino"}))
    assert "more detail" in str(caught.value.__cause__.__cause__)


def test_openvino_vision_refuses_another_image_size(tiny_checkpoint):
    fast = PolicyRuntime(PolicyRuntimeConfig(str(tiny_checkpoint), device="cpu",
                                             vision_runtime="openvino"))
    with pytest.raises(ValueError, match="the OpenVINO vision encoder takes"):
        fast.policy.model.vlm_with_expert.embed_image(torch.zeros(1, 3, 8, 8))


@pytest.mark.parametrize("parameter", ["vision_runtime", "expert_runtime"])
def test_openvino_runtimes_without_openvino_say_what_to_install(tiny_checkpoint, monkeypatch,
                                                                parameter):
    import sys

    monkeypatch.setitem(sys.modules, "openvino", None)  # as where it is not installed
    with pytest.raises(PolicyLoadError, match=f"{parameter} openvino needs the openvino package"):
        PolicyRuntime(PolicyRuntimeConfig(str(tiny_checkpoint), device="cpu",
                                          **{parameter: "openvino"}))


@pytest.mark.parametrize("fixture, cameras_left_out, num_steps", [
    ("tiny_checkpoint", (), 0),
    ("base_like_checkpoint", ("camera3",), 4),  # smolvla_base's features, a camera missing
    ("finetuned_checkpoint", (), 0),  # its saved rename map: front -> camera1, wrist -> camera2
])
def test_openvino_expert_gives_lerobots_actions_within_rounding(request, fixture, cameras_left_out,
                                                                 num_steps):
    """The flow step on OpenVINO, the prefix pass in torch: LeRobot's actions up to float32
    rounding, over two chunks of different prefixes (the graph's prefix length is dynamic)."""
    from smolvla_ros.policy.openvino_expert import OpenVINOSteps

    checkpoint = request.getfixturevalue(fixture)
    fast = PolicyRuntime(PolicyRuntimeConfig(str(checkpoint), device="cpu",
                                             expert_runtime="openvino",
                                             num_steps=num_steps))
    assert fast.mode == f"float32, {num_steps or 10} steps, OpenVINO expert"
    assert isinstance(fast._static_expert._step, OpenVINOSteps)  # the static loop calls ours
    for ours, theirs in beside_lerobots(fast, checkpoint, cameras_left_out, num_steps):
        np.testing.assert_allclose(ours, theirs, rtol=0, atol=1e-3)  # float32 rounding only
        assert not np.array_equal(ours, theirs.astype(np.float64))  # OpenVINO's, not torch's


def deviations(fast, runtime, checkpoint, **changes) -> tuple[float, float]:
    """max |Δ| from float32 (``runtime``) of ``fast``'s actions and of torch's with ``changes``
    (e.g. bfloat16 in torch), on the same observation and noise."""
    images, state = observation()
    exact = runtime.infer(images, state, "pick up the cube", noise=runtime.make_noise(7))
    other = PolicyRuntime(PolicyRuntimeConfig(str(checkpoint), device="cpu", **changes))
    return tuple(float(np.abs(policy.infer(images, state, "pick up the cube",
                                           noise=policy.make_noise(7)) - exact).max())
                 for policy in (fast, other))


def guided_chunk(checkpoint, **changes) -> tuple[np.ndarray, str]:
    """A chunk guided by real-time chunking toward the last one's unexecuted actions, and the
    mode it ran in."""
    images, state = observation()
    policy = PolicyRuntime(PolicyRuntimeConfig(str(checkpoint), device="cpu", **changes))
    policy.enable_rtc(execution_horizon=10, max_guidance_weight=10.0)
    policy.infer(images, state, "pick up the cube", noise=policy.make_noise(1))
    return policy.infer(images, state, "pick up the cube", noise=policy.make_noise(2),
                        rtc_prefix=policy.last_model_actions[20:30], rtc_delay=3), policy.mode


def test_openvino_expert_in_bfloat16_with_openvino_vision(tiny_checkpoint, runtime):
    """bfloat16's prefix pass in torch, the step in OpenVINO's bf16 (f32 where the CPU has
    none), the images through OpenVINO too: LeRobot's actions within bfloat16's rounding."""
    fast = PolicyRuntime(PolicyRuntimeConfig(str(tiny_checkpoint), device="cpu",
                                             expert_runtime="openvino",
                                             vision_runtime="openvino", dtype="bfloat16"))
    precision = "" if openvino_has_bf16() else " (f32: this CPU has no bfloat16)"
    assert fast.mode == (f"bfloat16, 10 steps, OpenVINO vision{precision}, "
                         f"OpenVINO expert{precision}")
    ours, torch_bf16 = deviations(fast, runtime, tiny_checkpoint, dtype="bfloat16")
    assert 0 < ours <= 2 * torch_bf16


def test_openvino_expert_leaves_real_time_chunking_to_lerobots_loop(tiny_checkpoint):
    # RTC's guidance needs autograd through LeRobot's steps
    theirs, _ = guided_chunk(tiny_checkpoint)
    ours, mode = guided_chunk(tiny_checkpoint, expert_runtime="openvino")
    assert mode == "float32, 10 steps, OpenVINO expert (RTC: LeRobot's loop)"
    np.testing.assert_array_equal(ours, theirs)


@pytest.mark.parametrize("changes, message", [
    ({"expert_runtime": "onnx"}, "expert_runtime 'onnx': expected torch or openvino"),
    ({"expert_runtime": "openvino", "compile": True},
     r"expert_runtime openvino needs device cpu and compile off \(got device cpu, compile on\)"),
])
def test_bad_expert_runtimes_are_one_line(tiny_checkpoint, changes, message):
    with pytest.raises(PolicyLoadError, match=message):
        PolicyRuntime(PolicyRuntimeConfig(str(tiny_checkpoint), device="cpu", **changes))


def packed_and_dense(model) -> tuple[set[str], set[str]]:
    """The model's Linear layers by name: those prepack installed its product on, the others."""
    from smolvla_ros.policy.packed_linear import PackedProduct

    layers = {name: isinstance(m.forward, PackedProduct) for name, m in model.named_modules()
              if type(m) is torch.nn.Linear}
    return {n for n, packed in layers.items() if packed}, {n for n, packed in layers.items() if not packed}


@pytest.mark.parametrize("fixture, changes, mode, left_dense", [
    ("tiny_checkpoint", {}, "float32, prepacked linear, 10 steps", ()),
    ("finetuned_checkpoint", {"static_cache": True},
     "float32, prepacked linear, 10 steps, static cache", ()),
    ("base_like_checkpoint", {"vision_runtime": "openvino", "expert_runtime": "openvino"},
     "float32, prepacked linear, 10 steps, OpenVINO vision, OpenVINO expert",  # what OpenVINO runs
     (".vision_model.", ".connector.", ".lm_expert.", "action_in_proj", "action_out_proj",
      "action_time_mlp_in", "action_time_mlp_out")),
])
def test_prepack_gives_lerobots_actions_within_rounding(request, fixture, changes, mode,
                                                        left_dense):
    checkpoint = request.getfixturevalue(fixture)
    fast = PolicyRuntime(PolicyRuntimeConfig(str(checkpoint), device="cpu", prepack=True,
                                             **changes))
    assert fast.mode == mode
    packed, dense = packed_and_dense(fast.policy.model)
    assert packed and all(any(part in name for part in left_dense) for name in dense)
    assert not any(any(part in name for part in left_dense) for name in packed)
    differs = False
    for ours, theirs in beside_lerobots(fast, checkpoint, ("camera3",)):  # base-like: one left out
        np.testing.assert_allclose(ours, theirs, rtol=0, atol=1e-3)  # float32 rounding only
        differs |= not np.array_equal(ours, theirs.astype(np.float64))
    assert differs  # oneDNN's sums, not torch's


def test_prepack_in_bfloat16_rounds_as_torch_does(tiny_checkpoint, runtime):
    fast = PolicyRuntime(PolicyRuntimeConfig(str(tiny_checkpoint), device="cpu", prepack=True,
                                             dtype="bfloat16"))
    assert fast.mode == "bfloat16, prepacked linear, 10 steps"
    packed, _ = packed_and_dense(fast.policy.model)
    bf16 = {name for name in packed if fast.policy.model.get_submodule(name).weight.dtype
            == torch.bfloat16}
    assert bf16 and any(".lm_expert." in name for name in bf16)  # the cast weights are packed
    ours, torch_bf16 = deviations(fast, runtime, tiny_checkpoint, dtype="bfloat16")
    assert 0 < ours <= 2 * torch_bf16


def test_prepack_with_real_time_chunking_differentiates_through_the_dense_weights(tiny_checkpoint):
    theirs, _ = guided_chunk(tiny_checkpoint)
    ours, mode = guided_chunk(tiny_checkpoint, prepack=True)
    assert mode == "float32, prepacked linear, 10 steps"
    np.testing.assert_allclose(ours, theirs, rtol=0, atol=1e-3)


def test_prepack_with_int8_packs_the_layers_left_in_float32(tiny_checkpoint, runtime):
    from torch.ao.nn.quantized.dynamic import Linear as DynamicInt8Linear

    fast = PolicyRuntime(PolicyRuntimeConfig(str(tiny_checkpoint), device="cpu", prepack=True,
                                             quantize="int8"))
    assert fast.mode == "float32, int8 linear, prepacked linear, 10 steps"
    packed, dense = packed_and_dense(fast.policy.model)
    assert not dense and any(".self_attn." in name for name in packed)  # LeRobot reads their dtype
    assert any(isinstance(m, DynamicInt8Linear) for m in fast.policy.model.modules())
    ours, int8_alone = deviations(fast, runtime, tiny_checkpoint, quantize="int8")
    assert ours <= 2 * int8_alone


@pytest.mark.parametrize("compile, onednn, message", [
    (True, True, r"prepack needs device cpu and compile off \(got device cpu, compile on\)"),
    (False, False, r"prepack needs a torch built with oneDNN \(mkldnn\); this one is not"),
])
def test_prepack_where_it_cannot_run_is_one_line(tiny_checkpoint, monkeypatch, compile, onednn,
                                                 message):
    monkeypatch.setattr(torch.backends.mkldnn, "is_available", lambda: onednn)  # a torch without it
    with pytest.raises(PolicyLoadError, match=message):
        PolicyRuntime(PolicyRuntimeConfig(str(tiny_checkpoint), device="cpu", prepack=True,
                                          compile=compile))
