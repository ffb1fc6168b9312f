"""Capturing a function of tensors as a CUDA graph, the way both of the runtime's graphs
(policy.static_expert's loop, policy.graphed_vision's image embedding) need it."""

from __future__ import annotations

import contextlib

import torch


def capture(run, *buffers: torch.Tensor) -> tuple[torch.cuda.CUDAGraph, torch.Tensor]:
    """(graph, its output) of ``run(*buffers)``: replaying the graph recomputes the output
    from whatever the buffers then hold. Raises RuntimeError (for tensors not on CUDA, or
    host work inside ``run``) if it cannot be captured.

    Everything happens on the buffers' device (``cuda:1`` included: torch's streams and its
    shared capture stream are otherwise the current device's, and the graph would record
    nothing of work on another). The second warm-up refuses host synchronisation, so a
    ``run`` that reads back to the host fails there, before a capture that CUDA would
    invalidate: torch leaves such a capture half-ended (its stream still current, its
    allocator still capturing), which breaks every later capture and ``empty_cache``."""
    device = buffers[0].device
    if device.type != "cuda":
        raise RuntimeError(f"a CUDA graph needs CUDA tensors, not {device} ones")
    with torch.cuda.device(device):
        main = torch.cuda.current_stream(device)
        side = torch.cuda.Stream(device)
        side.wait_stream(main)
        with torch.cuda.stream(side):  # warm up outside the capture, as CUDA graphs need
            run(*buffers)  # compiles and autotunes, which may synchronise
            with _host_syncs_refused():
                run(*buffers)
        main.wait_stream(side)
        graph = torch.cuda.CUDAGraph()
        try:
            # thread_local: CUDA calls of other threads (camera decoding...) cannot break it
            with torch.cuda.graph(graph, stream=torch.cuda.Stream(device),
                                  capture_error_mode="thread_local"):
                out = run(*buffers)
        finally:
            torch.cuda.set_stream(main)  # torch skips this when ending the capture raises
    return graph, out


@contextlib.contextmanager
def _host_syncs_refused():
    """torch raises on an operation that synchronises with the host (process-wide setting)."""
    before = torch.cuda.get_sync_debug_mode()
    torch.cuda.set_sync_debug_mode("error")
    try:
        yield
    finally:
        torch.cuda.set_sync_debug_mode(before)


def failure(error: BaseException) -> str:
    """Why a graph could not be used, in one line (for a warning and the runtime's mode).
    When ending a capture fails, torch's error says only that; the one that broke the
    capture is its context, and is named too."""
    def said(exception: BaseException) -> str:
        return f"{type(exception).__name__}: {(str(exception).splitlines() or [''])[0]}"

    cause = error.__cause__ or (None if error.__suppress_context__ else error.__context__)
    return said(error) if cause is None else f"{said(error)} (after {said(cause)})"
