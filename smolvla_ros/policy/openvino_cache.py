"""Converted OpenVINO graphs kept on disk, so that a policy's next load skips the conversion.

``vision_runtime`` and ``expert_runtime`` openvino take their graphs from LeRobot's modules
with ``torch.export`` and convert them: 40 of the 54 s the full-size policy took to load with
both (8.6 s for the vision encoder, 31 s for the flow step; compiling them, which stays, took
5 s). A converted graph is a function of the model's tensors, its config, the code that
exports it and the versions of the libraries doing it, so it is saved under a key made of all
of them:
- every tensor of the model as loaded (hashed, so a changed checkpoint, a fine-tune or another
  ``vlm_path`` never meets a stale graph);
- the policy's config (``num_steps`` is in the step's graph);
- this package's and LeRobot's SmolVLA source files, by content;
- the versions of torch, transformers, lerobot and openvino.

Where: ``$SMOLVLA_ROS_OPENVINO_CACHE`` (``none``: no cache), else ``openvino/`` in the cache
scripts/setup.sh keeps its venvs in (``$SMOLVLA_ROS_CACHE``, else
``$XDG_CACHE_HOME/smolvla_ros``, else ``~/.cache/smolvla_ros``). The most recently used few
are kept. A cache that cannot be read or written costs a conversion, never the load.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.metadata
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Callable

CACHE_ENV = "SMOLVLA_ROS_OPENVINO_CACHE"
KEEP = 6  # graphs kept (each holds its weights: ~0.4 GB for the full-size encoder or step)
LIBRARIES = ("torch", "transformers", "lerobot", "openvino")


def cache_dir() -> Path | None:
    """Where converted graphs go, or None where the user turned the cache off."""
    chosen = os.environ.get(CACHE_ENV, "").strip()
    if chosen.lower() == "none":
        return None
    if chosen:
        return Path(chosen).expanduser()
    root = os.environ.get("SMOLVLA_ROS_CACHE", "").strip() or \
        str(Path(os.environ.get("XDG_CACHE_HOME", "").strip() or "~/.cache") / "smolvla_ros")
    return Path(root).expanduser() / "openvino"


def model_fingerprint(model, policy_config) -> str:
    """A hash of everything a graph exported from ``model`` depends on (module docstring)."""
    import lerobot.policies.smolvla.modeling_smolvla as modeling
    import lerobot.policies.smolvla.smolvlm_with_expert as with_expert
    import torch

    import smolvla_ros.policy as ours

    digest = hashlib.sha256()
    for name, tensor in sorted(model.state_dict(keep_vars=False).items()):
        digest.update(f"{name} {tensor.dtype} {tuple(tensor.shape)}\n".encode())
        digest.update(tensor.detach().cpu().contiguous().view(-1).view(torch.uint8).numpy())
    digest.update(repr(policy_config).encode())
    sources = [Path(modeling.__file__), Path(with_expert.__file__),
               *sorted(Path(ours.__file__).parent.glob("*.py"))]
    for source in sources:
        digest.update(source.name.encode() + source.read_bytes())
    for library in LIBRARIES:
        try:
            version = importlib.metadata.version(library)
        except importlib.metadata.PackageNotFoundError:  # e.g. run from a source tree
            version = "unknown"
        digest.update(f"{library} {version}\n".encode())
    return digest.hexdigest()


class GraphCache:
    """Converted graphs of one loaded model, by what they are (``vision``, ``step``)."""

    def __init__(self, fingerprint: Callable[[], str], root: Path | None):
        """``fingerprint``: made when the first graph is asked for (hashing the full-size
        model takes a second), never where ``root`` is None (no cache)."""
        self._fingerprint, self._made = fingerprint, ""
        self.root = root
        self.notes: list[str] = []  # what happened, one line each, for the node's load line

    def model(self, what: str, detail: str, convert: Callable[[], object]):
        """The OpenVINO model for ``what`` (``detail``: what else its graph depends on, e.g.
        the image size): read from the cache, else ``convert()``-ed and saved there."""
        import openvino

        if self.root is None:
            return convert()
        self._made = self._made or self._fingerprint()
        key = hashlib.sha256(f"{self._made} {what} {detail}".encode()).hexdigest()[:32]
        folder = self.root / f"{what}-{key}"
        xml = folder / "model.xml"
        if xml.is_file():
            try:
                model = openvino.Core().read_model(xml)
            except Exception as error:  # a truncated or foreign file: convert anew
                self.notes.append(f"OpenVINO {what} graph in {folder} unreadable "
                                  f"({type(error).__name__}), converted again")
                shutil.rmtree(folder, ignore_errors=True)
            else:
                self.notes.append(f"OpenVINO {what} graph read from {folder}")
                with contextlib.suppress(OSError):  # a read-only cache still serves
                    os.utime(folder)  # recently used: kept the longest
                return model
        model = convert()
        self._save(openvino, model, what, folder)
        return model

    def _save(self, openvino, model, what: str, folder: Path) -> None:
        """Written to a temporary folder and renamed, so a reader never sees half a graph."""
        staging = None
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            staging = Path(tempfile.mkdtemp(prefix=f".{what}-", dir=self.root))
            openvino.save_model(model, staging / "model.xml", compress_to_fp16=False)
            staging.rename(folder)
            staging = None
            self.notes.append(f"OpenVINO {what} graph converted and saved to {folder}")
        except OSError as error:  # a full disk, a read-only home, another load that won
            if not (folder / "model.xml").is_file():
                self.notes.append(f"OpenVINO {what} graph converted, not saved to {self.root} "
                                  f"({error.strerror or error})")
        finally:
            if staging is not None:
                shutil.rmtree(staging, ignore_errors=True)
        self._evict()

    def _evict(self) -> None:
        """Keep the KEEP most recently used graphs, and no staging folder a killed load left
        behind a day ago."""
        try:
            entries = sorted(((entry.stat().st_mtime, entry) for entry in self.root.iterdir()
                              if entry.is_dir()), reverse=True)
        except OSError:
            return
        graphs = [entry for _, entry in entries if not entry.name.startswith(".")]
        left = [entry for at, entry in entries
                if entry.name.startswith(".") and at < time.time() - 86400]
        for old in graphs[KEEP:] + left:
            shutil.rmtree(old, ignore_errors=True)
