"""SmolVLA's image embedding (``SmolVLMWithExpertModel.embed_image``) replayed as a CUDA graph.

LeRobot embeds each camera's image through SmolVLM's vision transformer and connector: on a
GPU some two hundred kernel launches per image, which is what bounds the vision encoder's
12-22 ms per chunk on an H200 (README). transformers' vision forward cannot be captured as it
is: for every image it makes the patch mask on the CPU and copies it over, and picks the
patches' position ids by boolean indexing, which reads the mask back to the host. SmolVLA
passes whole images only (no patch mask: every patch present), so for images of one shape
those position ids, and the attention mask handed to the encoder, are the same every time.
They are recorded from one eager call of LeRobot's own ``embed_image`` (forward pre-hooks
on the position embedding and the encoder, whose other keyword arguments are kept as given),
and the graph runs the rest with them: transformers' patch embedding, encoder and final
norm, and the connector, in their order.

The first image of each shape runs both ways, outside the graph; the two must agree (up to
rounding, which ``compile`` changes). If they do not (a transformers version that does
something else) or the capture fails, images are embedded by LeRobot's own call from then
on: one warning, and the runtime's mode says so. On a CPU the same recording and static
forward run without a graph (tests compare them with LeRobot's bit for bit).
"""

from __future__ import annotations

import threading
import warnings

import torch

from smolvla_ros.policy.cuda_graph import capture, failure

# The recorded path is rejected if it differs from LeRobot's call by more than this fraction
# of the largest image token: rounding (bfloat16, fused kernels) stays far below it; a wrong
# position id or mask moves the tokens by their own size.
AGREEMENT = 1e-2


class GraphedImageEmbedding:
    """Stands in for ``vlm_with_expert.embed_image`` (same argument, same result) when
    installed: install it after every cast or move of the model."""

    def __init__(self, vlm_with_expert, cuda_graph: bool = True, compile: bool = False):
        self.owner = vlm_with_expert
        self.eager = vlm_with_expert.embed_image  # LeRobot's, bound
        vlm = vlm_with_expert.get_vlm_model()
        self.vision, self.connector = vlm.vision_model, vlm.connector
        self.cuda_graph = cuda_graph
        self.capture_error = ""  # why images are embedded by LeRobot's call instead
        self._graphs: dict[tuple, tuple] = {}
        self._lock = threading.Lock()
        self._static_call = torch.compile(self.static, dynamic=False) if compile else self.static

    def install(self) -> None:
        self.owner.embed_image = self

    def __call__(self, image: torch.Tensor) -> torch.Tensor:
        if self.capture_error:
            return self.eager(image)
        key = (tuple(image.shape), image.dtype, str(image.device))
        with self._lock, torch.no_grad():
            try:
                if key not in self._graphs:
                    self._graphs[key] = self._prepare(image)
            except Exception as error:  # noqa: BLE001 - whatever failed, LeRobot's call works
                # Not retried from now on.
                self.capture_error = failure(error)
                warnings.warn(f"image embedding graph failed ({self.capture_error}); images are "
                              "embedded eagerly instead", RuntimeWarning, stacklevel=2)
                return self.eager(image)
            graph, buffer, out, constants = self._graphs[key]
            if graph is None:  # no graph asked for: the recorded path, run as it is
                return self._static_call(image, *constants)
            buffer.copy_(image)
            graph.replay()
            return out.clone()

    def record(self, image: torch.Tensor) -> tuple[tuple, torch.Tensor]:
        """(the recorded constants for images of this shape, LeRobot's embedding of image)."""
        seen: dict[str, object] = {}

        def position_ids(_module, args):
            if len(args) != 1:
                raise ValueError("the position embedding is called with other arguments than "
                                 "the position ids")
            seen["position_ids"] = args[0]

        def encoder(_module, args, kwargs):
            if args or "inputs_embeds" not in kwargs:
                raise ValueError("the vision encoder is not called with keyword arguments")
            # The mask, and whatever else this transformers version passes (output flags)
            seen["encoder_kwargs"] = {k: v for k, v in kwargs.items() if k != "inputs_embeds"}

        hooks = [self.vision.embeddings.position_embedding.register_forward_pre_hook(position_ids),
                 self.vision.encoder.register_forward_pre_hook(encoder, with_kwargs=True)]
        try:
            expected = self.eager(image)
        finally:
            for hook in hooks:
                hook.remove()
        if set(seen) != {"position_ids", "encoder_kwargs"}:
            raise ValueError("the vision encoder's forward did not run its position embedding "
                             "and encoder")
        return (seen["position_ids"], seen["encoder_kwargs"]), expected

    def static(self, image: torch.Tensor, position_ids: torch.Tensor,
               encoder_kwargs: dict) -> torch.Tensor:
        """``embed_image`` with the recorded constants: transformers' SmolVLM vision forward
        (its embeddings' operations, encoder and final norm) and connector, in their order."""
        embeddings = self.vision.embeddings
        pixels = image.to(dtype=self.vision.dtype)
        patches = embeddings.patch_embedding(pixels).flatten(2).transpose(1, 2)
        hidden = patches + embeddings.position_embedding(position_ids)
        hidden = self.vision.encoder(inputs_embeds=hidden, **encoder_kwargs)[0]  # output or tuple
        return self.connector(self.vision.post_layernorm(hidden))

    def _prepare(self, image: torch.Tensor) -> tuple:
        """(graph, its input buffer, its output, the constants it reads) for this shape; the
        first three None without a graph."""
        constants, expected = self.record(image)
        ours = self._static_call(image, *constants)
        scale = float(expected.abs().max())
        if ours.shape != expected.shape or float((ours - expected).abs().max()) > AGREEMENT * scale:
            raise ValueError("the recorded vision path does not give LeRobot's image embedding")
        if not self.cuda_graph:
            return None, None, None, constants
        buffer = image.clone()
        graph, out = capture(lambda pixels: self._static_call(pixels, *constants), buffer)
        return graph, buffer, out, constants
