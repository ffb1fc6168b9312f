"""SmolVLA's prefix pass and denoising loop on a static KV cache, on CUDA replayed as one
CUDA graph.

LeRobot's ``VLAFlowMatching.sample_actions`` runs each of its ``num_steps`` denoising steps
through ``SmolVLMWithExpertModel.forward`` with a ``DynamicCache``. Every step it appends the
suffix keys/values to the prefix cache and crops them off again, projects the constant prefix
keys/values through each cross-attention layer's ``k_proj``/``v_proj`` anew, and rebuilds the
masks, positions and time tensor on the host. None of that changes between steps.

Here the prefix embeddings are LeRobot's own (``embed_prefix``), and the prefix pass runs
LeRobot's ``forward`` operations in their order, without a ``DynamicCache``: it keeps the
keys/values of the layers the expert reads, and stops at the last of them (LeRobot also runs
that layer's attention and MLP, the layers after it, and the final norm, and throws their
outputs away). What is constant is computed once per chunk:
- the cross-attention layers' projected prefix keys/values;
- a buffer per self-attention layer holding the prefix keys/values, into which each step
  writes its suffix;
- the masks and positions, and each step's time embedding.
A step then calls LeRobot's own modules and functions in LeRobot's order (the expert layers'
norms, projections and MLPs, ``apply_rope``, ``eager_attention_forward``), so on the CPU the
actions equal LeRobot's bit for bit (test_policy_runtime compares them).

With fixed shapes and no host work left in them, the prefix pass and the loop can be
captured as one CUDA graph and replayed per chunk. That removes the kernel launches (~30 per
layer and step, thousands per chunk), which is what bounds a small model on a GPU. With
``compile`` the prefix pass and the step are ``torch.compile``d first, so the graph replays
fewer, fused kernels. The vision encoder and ``embed_prefix`` stay outside the graph. The
prefix is as long as the instruction's tokens (LeRobot pads them to the longest in the
batch), so for a graph or a compiled function its embeddings are padded at the end, masked
out, to a multiple of ``prefix_bucket`` (as LeRobot's own ``prefix_length`` pads them): one
or two captures (compilations) per set of cameras, not one per instruction length. Masked
keys get zero weight, so padding changes the result by rounding only. The CUDA path needs a
GPU to run, and bench/gpu_bundle.py carries it to one. On the CPU the same code runs
eagerly or compiled, the padding included where asked (tests).
"""

from __future__ import annotations

import threading
import warnings

import torch

from smolvla_ros.policy.cuda_graph import capture, failure


class StaticExpert:
    """Replaces ``policy.model.sample_actions`` (same arguments, same result) when installed.

    Install it after every cast, quantisation or move of the model: a captured graph reads
    the weights where they were at capture. Not reentrant, like LeRobot's policy."""

    def __init__(self, model, cuda_graph: bool = False, prefix_bucket: int | None = None,
                 compile: bool = False):
        from lerobot.policies.smolvla.smolvlm_with_expert import apply_rope

        self.model = model
        self.lerobot_sample_actions = model.sample_actions  # the bound method, for RTC
        self.cuda_graph = cuda_graph
        self.compiled = compile
        # A compiled function is specialised to its shapes, as a graph is: pad for both.
        fixed = cuda_graph or compile
        self.prefix_bucket = (64 if fixed else 0) if prefix_bucket is None else prefix_bucket
        self.capture_error = ""  # why the CUDA graph could not be used; the loop then runs eagerly
        self._apply_rope = apply_rope
        vlm_with_expert = model.vlm_with_expert
        self._vlm_layers, self._expert_layers = vlm_with_expert.get_model_layers(
            [vlm_with_expert.get_vlm_model().text_model, vlm_with_expert.lm_expert])
        # The prefix pass ends at the last layer whose keys/values the expert reads.
        self._last_read = max(index for index, layer in enumerate(self._expert_layers)
                              if layer is not None)
        every = vlm_with_expert.self_attn_every_n_layers
        self._self_attn = [("cross" not in vlm_with_expert.attention_mode
                            or (every > 0 and index % every == 0))
                           for index in range(vlm_with_expert.num_vlm_layers)]
        if any(attend and layer is None for attend, layer in zip(self._self_attn, self._expert_layers)):
            # LeRobot's own loop fails on these (torch.cat of nothing); do not pretend otherwise.
            raise ValueError("static_cache: a self-attention layer of this model has no expert "
                             "layer, which LeRobot's SmolVLA cannot run either")
        self._head_dim = vlm_with_expert.vlm.config.text_config.head_dim
        self._graphs: dict[tuple, tuple] = {}
        self._time_embs: dict[tuple, list[torch.Tensor]] = {}
        self._lock = threading.Lock()
        if compile:
            # Inductor fuses each layer's norms, RoPE, softmax, activations and residuals into
            # a few kernels: a replayed graph is bound by how many kernels it holds. (On a
            # CPU it gains in bfloat16 only, where the runtime freezes the weights: README.)
            # Compiled on the first chunk of each shape; on CUDA, in the capture's warm-up.
            self._eager = self._prefix_pass, self._step  # what a failed capture falls back to
            self._prefix_pass = torch.compile(self._prefix_pass, dynamic=False)
            self._step = torch.compile(self._step, dynamic=False)

    def install(self) -> None:
        self.model.sample_actions = self.sample_actions

    def sample_actions(self, images, img_masks, lang_tokens, lang_masks, state, noise=None,
                       **kwargs):
        """LeRobot's ``sample_actions``. RTC guidance (autograd through the steps) and a
        policy without a cache take LeRobot's own loop, in the caller's grad mode."""
        model = self.model
        if model._rtc_enabled() or not model.config.use_cache:
            return self.lerobot_sample_actions(images, img_masks, lang_tokens, lang_masks, state,
                                               noise=noise, **kwargs)
        with torch.no_grad():  # as under predict_action_chunk, whoever calls
            return self._sample(images, img_masks, lang_tokens, lang_masks, state, noise)

    def _sample(self, images, img_masks, lang_tokens, lang_masks, state, noise):
        model = self.model
        if noise is None:
            noise = model.sample_noise(
                (state.shape[0], model.config.chunk_size, model.config.max_action_dim), state.device)
        prefix = self._padded(*model.embed_prefix(images, img_masks, lang_tokens, lang_masks,
                                                  state=state))
        if not self.cuda_graph:
            return self._run(*prefix, noise)
        with self._lock:
            return self._replay(*prefix, noise)

    def _padded(self, embeddings, pad_masks, att_masks) -> tuple[torch.Tensor, ...]:
        """The prefix padded at its end to a multiple of ``prefix_bucket``: zero embeddings,
        masked out (pad mask False), in the last attention block (att mask 0)."""
        extra = -embeddings.shape[1] % self.prefix_bucket if self.prefix_bucket else 0
        if not extra:
            return embeddings, pad_masks, att_masks
        pad = torch.nn.functional.pad
        return pad(embeddings, (0, 0, 0, extra)), pad(pad_masks, (0, extra)), pad(att_masks, (0, extra))

    def _run(self, embeddings, pad_masks, att_masks, noise) -> torch.Tensor:
        """Prefix pass, constants and steps: what a CUDA graph captures."""
        return self._denoise(self._chunk_constants(embeddings, pad_masks, att_masks), noise)

    def _chunk_constants(self, embeddings, pad_masks, att_masks) -> dict[str, torch.Tensor]:
        """What every step of a chunk reads: the prefix pass, then its constants."""
        return self._constants(self._prefix_pass(embeddings, pad_masks, att_masks), pad_masks)

    def _prefix_pass(self, embeddings, pad_masks, att_masks) -> dict[int, tuple]:
        """LeRobot's prefix pass (``forward`` filling its cache: self-attention in every
        layer), its operations in its order; returns the keys and values after RoPE of each
        layer the expert reads, as its cache holds them ([B, H, L, D])."""
        from lerobot.policies.smolvla.modeling_smolvla import make_att_2d_masks

        mask = make_att_2d_masks(pad_masks, att_masks)
        positions = torch.cumsum(pad_masks, dim=1) - 1
        hidden, kv = embeddings, {}
        for index, layer in enumerate(self._vlm_layers):
            attn = layer.self_attn
            normed = layer.input_layernorm(hidden)
            shape = (*normed.shape[:-1], -1, attn.head_dim)
            normed = normed.to(dtype=attn.q_proj.weight.dtype)
            keys = self._apply_rope(torch.cat([attn.k_proj(normed).view(shape)], dim=1), positions)
            values = torch.cat([attn.v_proj(normed).view(shape)], dim=1)
            if self._expert_layers[index] is not None:
                kv[index] = keys.transpose(1, 2), values.transpose(1, 2)
            if index == self._last_read:
                break  # the rest of this layer, and the layers after it, are read by no one
            query = self._apply_rope(torch.cat([attn.q_proj(normed).view(shape)], dim=1), positions)
            hidden = self._attend(layer, hidden, mask, query, keys, values)
        return kv

    def _constants(self, kv: dict[int, tuple], prefix_pad_masks) -> dict[str, torch.Tensor]:
        """Everything a step reads that does not change between steps, as LeRobot's
        ``denoise_step`` and ``forward_cross_attn_layer`` compute it."""
        from lerobot.policies.smolvla.modeling_smolvla import make_att_2d_masks

        batch, prefix_len = prefix_pad_masks.shape
        chunk, device = self.model.config.chunk_size, prefix_pad_masks.device
        suffix_pad_masks = torch.ones(batch, chunk, dtype=torch.bool, device=device)
        suffix_att_masks = torch.ones(batch, chunk, dtype=torch.float32, device=device)
        constants = {
            "attention_mask": torch.cat([
                prefix_pad_masks[:, None, :].expand(batch, chunk, prefix_len),
                make_att_2d_masks(suffix_pad_masks, suffix_att_masks)], dim=2),
            "position_ids": (torch.sum(prefix_pad_masks, dim=-1)[:, None]
                             + torch.cumsum(suffix_pad_masks, dim=1) - 1),
        }
        position_ids = constants["position_ids"]
        constants["expert_position_ids"] = (
            position_ids - torch.min(position_ids, dim=1, keepdim=True).values)
        for step, time_emb in enumerate(self._time_embeddings(batch, device)):
            constants[f"time_emb{step}"] = time_emb
        for index, layer in enumerate(self._expert_layers):
            if layer is None:
                continue
            keys, values = kv[index]  # [B, H, L, D]
            if self._self_attn[index]:
                # [prefix; suffix] as DynamicCache.update concatenates them; steps fill the suffix.
                shape = (*keys.shape[:2], prefix_len + chunk, keys.shape[3])
                constants[f"keys{index}"] = keys.new_zeros(shape)
                constants[f"values{index}"] = values.new_zeros(shape)
                constants[f"keys{index}"][:, :, :prefix_len] = keys
                constants[f"values{index}"][:, :, :prefix_len] = values
            else:
                keys, values = keys.transpose(1, 2), values.transpose(1, 2)
                attn = layer.self_attn
                keys = keys.to(dtype=attn.k_proj.weight.dtype).reshape(*keys.shape[:2], -1)
                values = values.to(dtype=attn.v_proj.weight.dtype).reshape(*values.shape[:2], -1)
                constants[f"keys{index}"] = attn.k_proj(keys).view(
                    *keys.shape[:-1], -1, attn.head_dim)
                constants[f"values{index}"] = attn.v_proj(values).view(
                    *values.shape[:-1], -1, attn.head_dim)
        return constants

    def _time_embeddings(self, batch: int, device) -> list[torch.Tensor]:
        """Each step's time embedding: the same every chunk, so made once (outside any graph)."""
        from lerobot.policies.common.vla_utils import create_sinusoidal_pos_embedding

        model, config = self.model, self.model.config
        dtype = model.action_in_proj.weight.dtype
        key = (batch, config.num_steps, str(device), dtype)
        if key not in self._time_embs:
            dt = -1.0 / config.num_steps
            self._time_embs[key] = [create_sinusoidal_pos_embedding(
                torch.tensor(1.0 + step * dt, dtype=torch.float32, device=device).expand(batch),
                model.vlm_with_expert.expert_hidden_size, config.min_period, config.max_period,
                device=device).type(dtype) for step in range(config.num_steps)]
        return self._time_embs[key]

    def _denoise(self, constants: dict[str, torch.Tensor], noise: torch.Tensor) -> torch.Tensor:
        """LeRobot's Euler loop (``euler_integrate``) over ``denoise_step``."""
        x_t = noise
        for step in range(self.model.config.num_steps):
            x_t = self._step(constants, x_t, constants[f"time_emb{step}"])
        return x_t

    def _step(self, constants: dict[str, torch.Tensor], x_t: torch.Tensor,
              time_emb: torch.Tensor) -> torch.Tensor:
        """One Euler step: ``denoise_step`` at the time ``time_emb`` embeds, then x_t + dt * v."""
        model = self.model
        action_emb = model.action_in_proj(x_t)
        time_emb = time_emb[:, None, :].expand_as(action_emb)
        hidden = model.action_time_mlp_out(torch.nn.functional.silu(
            model.action_time_mlp_in(torch.cat([action_emb, time_emb], dim=2))))
        for index, layer in enumerate(self._expert_layers):
            if layer is not None:
                hidden = self._layer(index, layer, hidden, constants)
        suffix_out = model.vlm_with_expert.lm_expert.norm(hidden)
        suffix_out = suffix_out[:, -model.config.chunk_size:].to(dtype=torch.float32)
        return x_t + (-1.0 / model.config.num_steps) * model.action_out_proj(suffix_out)

    def _layer(self, index: int, layer, hidden: torch.Tensor, constants) -> torch.Tensor:
        """One expert layer on the suffix, as SmolVLMWithExpertModel.forward runs it."""
        attn = layer.self_attn
        normed = layer.input_layernorm(hidden)
        shape = (*normed.shape[:-1], -1, attn.head_dim)
        normed = normed.to(dtype=attn.q_proj.weight.dtype)
        query = attn.q_proj(normed).view(shape)
        keys, values = constants[f"keys{index}"], constants[f"values{index}"]
        if self._self_attn[index]:  # forward_attn_layer
            positions = constants["position_ids"]
            query = self._apply_rope(torch.cat([query], dim=1), positions)
            key = self._apply_rope(torch.cat([attn.k_proj(normed).view(shape)], dim=1), positions)
            value = torch.cat([attn.v_proj(normed).view(shape)], dim=1)
            prefix_len = keys.shape[2] - key.shape[1]
            keys[:, :, prefix_len:] = key.transpose(1, 2)
            values[:, :, prefix_len:] = value.transpose(1, 2)
            keys, values = keys.transpose(1, 2), values.transpose(1, 2)
            mask = constants["attention_mask"]
        else:  # forward_cross_attn_layer, its keys/values projected once per chunk
            query = self._apply_rope(query, constants["expert_position_ids"])
            mask = constants["attention_mask"][:, -hidden.shape[1]:, : keys.shape[1]]
        return self._attend(layer, hidden, mask, query, keys, values)

    def _attend(self, layer, hidden, mask, query, keys, values) -> torch.Tensor:
        """A layer's attention, output projection, residuals and MLP, as
        SmolVLMWithExpertModel.forward runs them after the projections."""
        attended = self.model.vlm_with_expert.eager_attention_forward(
            mask, hidden.shape[0], self._head_dim, query, keys, values)
        if attended.dtype != layer.self_attn.o_proj.weight.dtype:
            attended = attended.to(layer.self_attn.o_proj.weight.dtype)
        out = layer.self_attn.o_proj(attended[:, 0:hidden.shape[1]])
        out += hidden
        residual = out.clone()
        out = layer.mlp(layer.post_attention_layernorm(out))
        out += residual
        return out

    def _replay(self, *inputs: torch.Tensor) -> torch.Tensor:
        """Prefix pass and loop as a CUDA graph: captured once per set of shapes, replayed
        with this chunk's prefix embeddings, masks and noise copied into its input buffers."""
        key = tuple((tuple(value.shape), value.dtype, str(value.device)) for value in inputs)
        key += (self.model.config.num_steps,)  # the steps are unrolled in the graph
        if key not in self._graphs:
            try:
                self._graphs[key] = self._capture(inputs)
            except (RuntimeError, AssertionError) as error:  # AssertionError: torch's own, compiling
                # Not retried every chunk: the loop runs eagerly from now on, and mode says so.
                self.cuda_graph = False
                self.prefix_bucket = 0  # eager: padding would only add work
                if self.compiled:  # the compiled functions may be what failed
                    self.compiled = False
                    self._prefix_pass, self._step = self._eager
                self.capture_error = failure(error)
                warnings.warn(f"CUDA graph capture failed ({self.capture_error}); the static-cache "
                              "loop runs eagerly instead", RuntimeWarning, stacklevel=2)
                return self._run(*inputs)
        graph, buffers, out = self._graphs[key]
        for buffer, value in zip(buffers, inputs):
            buffer.copy_(value)
        graph.replay()
        return out.clone()

    def _capture(self, inputs: tuple[torch.Tensor, ...]) -> tuple:
        """(graph, its input buffers, its output) for these shapes."""
        embeddings, _, _, noise = buffers = tuple(value.clone() for value in inputs)
        self._time_embeddings(embeddings.shape[0], noise.device)  # made outside the graph's pool
        graph, out = capture(self._run, *buffers)
        return graph, buffers, out
