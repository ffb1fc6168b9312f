"""SmolVLA's denoising loop with a static KV cache, and on CUDA replayed as one CUDA graph.

LeRobot's ``VLAFlowMatching.sample_actions`` runs each of its ``num_steps`` denoising steps
through ``SmolVLMWithExpertModel.forward`` with a ``DynamicCache``. Every step it appends the
suffix keys/values to the prefix cache and crops them off again, projects the constant prefix
keys/values through each cross-attention layer's ``k_proj``/``v_proj`` anew, and rebuilds the
masks, positions and time tensor on the host. None of that changes between steps.

Here the prefix is LeRobot's own (``embed_prefix``, then ``forward`` filling the cache), and
what is constant is computed once per chunk:
- the cross-attention layers' projected prefix keys/values;
- a buffer per self-attention layer holding the prefix keys/values, into which each step
  writes its suffix;
- the masks and positions, and each step's time embedding.
A step then calls LeRobot's own modules and functions in LeRobot's order (the expert layers'
norms, projections and MLPs, ``apply_rope``, ``eager_attention_forward``), so on the CPU the
actions equal LeRobot's bit for bit (test_policy_runtime compares them).

With fixed shapes and no host work left in it, the loop can be captured as a CUDA graph once
per prefix shape and replayed per chunk. That removes the kernel launches (~30 per expert
layer and step, thousands per chunk), which is what bounds a small model on a GPU. The prefix
and vision encoder stay eager. The CUDA path needs a GPU to run, and bench/gpu_bundle.py
carries it to one; on the CPU the same loop runs eagerly.
"""

from __future__ import annotations

import torch


class StaticExpert:
    """Replaces ``policy.model.sample_actions`` (same arguments, same result) when installed."""

    def __init__(self, model, cuda_graph: bool = False):
        from lerobot.policies.smolvla.smolvlm_with_expert import apply_rope

        self.model = model
        self.lerobot_sample_actions = model.sample_actions  # the bound method, for RTC
        self.cuda_graph = cuda_graph
        self._apply_rope = apply_rope
        vlm_with_expert = model.vlm_with_expert
        self._expert_layers = vlm_with_expert.get_model_layers(
            [vlm_with_expert.get_vlm_model().text_model, vlm_with_expert.lm_expert])[1]
        every = vlm_with_expert.self_attn_every_n_layers
        self._self_attn = [("cross" not in vlm_with_expert.attention_mode
                            or (every > 0 and index % every == 0))
                           for index in range(vlm_with_expert.num_vlm_layers)]
        self._head_dim = vlm_with_expert.vlm.config.text_config.head_dim
        self._graphs: dict[tuple, tuple] = {}

    def install(self) -> None:
        self.model.sample_actions = self.sample_actions

    def sample_actions(self, images, img_masks, lang_tokens, lang_masks, state, noise=None,
                       **kwargs):
        """LeRobot's ``sample_actions``; RTC guidance (autograd through the steps) and a
        policy without a cache take LeRobot's own loop."""
        from lerobot.policies.smolvla.modeling_smolvla import make_att_2d_masks

        model = self.model
        if model._rtc_enabled() or not model.config.use_cache:
            return self.lerobot_sample_actions(images, img_masks, lang_tokens, lang_masks, state,
                                               noise=noise, **kwargs)
        if noise is None:
            noise = model.sample_noise(
                (state.shape[0], model.config.chunk_size, model.config.max_action_dim), state.device)
        prefix_embs, prefix_pad_masks, prefix_att_masks = model.embed_prefix(
            images, img_masks, lang_tokens, lang_masks, state=state)
        _, cache = model.vlm_with_expert.forward(
            attention_mask=make_att_2d_masks(prefix_pad_masks, prefix_att_masks),
            position_ids=torch.cumsum(prefix_pad_masks, dim=1) - 1,
            past_key_values=None, inputs_embeds=[prefix_embs, None], use_cache=True)
        constants = self._constants(cache, prefix_pad_masks)
        if not self.cuda_graph:
            return self._denoise(constants, noise)
        return self._replay(constants, noise)

    def _constants(self, cache, prefix_pad_masks) -> dict[str, torch.Tensor]:
        """Everything a step reads that does not change between steps, as LeRobot's
        ``denoise_step`` and ``forward_cross_attn_layer`` compute it."""
        from lerobot.policies.common.vla_utils import create_sinusoidal_pos_embedding
        from lerobot.policies.smolvla.modeling_smolvla import make_att_2d_masks

        model, config = self.model, self.model.config
        batch, prefix_len = prefix_pad_masks.shape
        chunk, device = config.chunk_size, prefix_pad_masks.device
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
        dt = -1.0 / config.num_steps
        for step in range(config.num_steps):
            time = torch.tensor(1.0 + step * dt, dtype=torch.float32, device=device).expand(batch)
            constants[f"time_emb{step}"] = create_sinusoidal_pos_embedding(
                time, model.vlm_with_expert.expert_hidden_size, config.min_period,
                config.max_period, device=device).type(model.action_in_proj.weight.dtype)
        for index, layer in enumerate(self._expert_layers):
            if layer is None:
                continue
            keys, values = cache.layers[index].keys, cache.layers[index].values  # [B, H, L, D]
            if self._self_attn[index]:
                # [prefix; suffix] as DynamicCache.update concatenates them; steps fill the suffix.
                shape = (*keys.shape[:2], prefix_len + chunk, keys.shape[3])
                constants[f"keys{index}"] = keys.new_empty(shape)
                constants[f"values{index}"] = values.new_empty(shape)
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

    def _denoise(self, constants: dict[str, torch.Tensor], noise: torch.Tensor) -> torch.Tensor:
        """LeRobot's Euler loop (``euler_integrate``) over ``denoise_step``."""
        model = self.model
        steps = model.config.num_steps
        dt = -1.0 / steps
        x_t = noise
        for step in range(steps):
            action_emb = model.action_in_proj(x_t)
            time_emb = constants[f"time_emb{step}"][:, None, :].expand_as(action_emb)
            hidden = model.action_time_mlp_out(torch.nn.functional.silu(
                model.action_time_mlp_in(torch.cat([action_emb, time_emb], dim=2))))
            for index, layer in enumerate(self._expert_layers):
                if layer is not None:
                    hidden = self._layer(index, layer, hidden, constants)
            suffix_out = model.vlm_with_expert.lm_expert.norm(hidden)
            suffix_out = suffix_out[:, -model.config.chunk_size:].to(dtype=torch.float32)
            x_t = x_t + dt * model.action_out_proj(suffix_out)
        return x_t

    def _layer(self, index: int, layer, hidden: torch.Tensor, constants) -> torch.Tensor:
        """One expert layer on the suffix, as SmolVLMWithExpertModel.forward runs it."""
        attn = layer.self_attn
        batch = hidden.shape[0]
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
        attended = self.model.vlm_with_expert.eager_attention_forward(
            mask, batch, self._head_dim, query, keys, values)
        if attended.dtype != attn.o_proj.weight.dtype:
            attended = attended.to(attn.o_proj.weight.dtype)
        out = attn.o_proj(attended[:, 0:hidden.shape[1]])
        out += hidden
        residual = out.clone()
        out = layer.mlp(layer.post_attention_layernorm(out))
        out += residual
        return out

    def _replay(self, constants: dict[str, torch.Tensor], noise: torch.Tensor) -> torch.Tensor:
        """The loop as a CUDA graph: captured once per set of shapes, replayed with this
        chunk's constants and noise copied into the captured buffers."""
        key = tuple((name, tuple(value.shape), value.dtype) for name, value in constants.items())
        key += (tuple(noise.shape), noise.dtype)
        if key not in self._graphs:
            inputs = {name: value.clone() for name, value in constants.items()}
            start = noise.clone()
            side = torch.cuda.Stream()
            side.wait_stream(torch.cuda.current_stream())
            with torch.cuda.stream(side):  # warm up outside the capture, as CUDA graphs need
                for _ in range(2):
                    self._denoise(inputs, start)
            torch.cuda.current_stream().wait_stream(side)
            graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(graph):
                out = self._denoise(inputs, start)
            self._graphs[key] = (graph, inputs, start, out)
        graph, inputs, start, out = self._graphs[key]
        for name, value in constants.items():
            inputs[name].copy_(value)
        start.copy_(noise)
        graph.replay()
        return out.clone()
