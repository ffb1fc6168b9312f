"""Capturing a function of tensors as a CUDA graph, the way both of the runtime's graphs
(policy.static_expert's loop, policy.graphed_vision's image embedding) need it."""

from __future__ import annotations

import torch


def capture(run, *buffers: torch.Tensor) -> tuple[torch.cuda.CUDAGraph, torch.Tensor]:
    """(graph, its output) of ``run(*buffers)``: replaying the graph recomputes the output
    from whatever the buffers then hold. Raises (AssertionError without CUDA, RuntimeError
    for host work inside ``run``) if it cannot be captured."""
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):  # warm up outside the capture, as CUDA graphs need
        for _ in range(2):
            run(*buffers)
    torch.cuda.current_stream().wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    # thread_local: CUDA calls of other threads (camera decoding...) cannot break the capture
    with torch.cuda.graph(graph, capture_error_mode="thread_local"):
        out = run(*buffers)
    return graph, out


def failure(error: BaseException) -> str:
    """Why a graph could not be used, in one line (for a warning and the runtime's mode)."""
    return f"{type(error).__name__}: {(str(error).splitlines() or [''])[0]}"
