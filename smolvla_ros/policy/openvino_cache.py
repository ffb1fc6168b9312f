"""Converted OpenVINO graphs kept on disk, so that a policy's next load skips the conversion.

``vision_runtime`` and ``expert_runtime`` openvino take their graphs from LeRobot's modules
with ``torch.export`` and convert them: in one measured load of the full-size policy with
both, 44 of its 54 s (6 s for the vision encoder, 38 s for the flow step; compiling, which
stays, took 5 s). A converted graph is a function of the model's tensors and configs, the
code that exports it and the versions of the libraries doing it, so it is saved under a key
made of all of them:
- every tensor of the model as loaded (hashed, so a changed checkpoint or fine-tune never
  meets a stale graph), the policy's config, and the VLM's and the expert's configs
  (another ``vlm_path``, or the same one edited); ``num_steps`` only in the flow step's
  (its dt is in that graph);
- this package's and LeRobot's SmolVLA source files, by content;
- the versions of torch, transformers, lerobot and openvino.

Each graph's folder holds a ``sha256sums`` of its files (``sha256sum -c`` reads it), checked
before the graph is read: a file damaged on disk, even by one flipped bit in the weights, would
otherwise move the arm on wrong weights. Files are flushed to disk before the folder is
renamed into place, so a power cut leaves a whole graph or none.

Compiling a graph read back still took 1.1-2.3 s for each full-size one, so beside it goes the
graph as compiled for this CPU with the policy's settings (precision, threads, int8 group
size), as OpenVINO exports it: reading, hashing and importing that took 0.4-0.5 s. Its name
holds its own sha256, checked before it is imported, and a key of the settings, this CPU and
OpenVINO's version (``compiled_key``): another machine sharing the folder, or other
settings, compile from the graph and replace it (one compiled graph per folder).

Where: ``$SMOLVLA_ROS_OPENVINO_CACHE`` (``none``: no cache), else ``openvino/`` in the cache
scripts/setup.sh keeps its venvs in (``$SMOLVLA_ROS_CACHE``, else
``$XDG_CACHE_HOME/smolvla_ros``, else ``~/.cache/smolvla_ros``). The most recently used few
are kept; only this module's own folders are ever deleted there. Whatever goes wrong with
the cache (unreadable, unwritable, a full disk, a graph that no longer compiles) costs a
conversion and a note, never the load.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import importlib.metadata
import os
import re
import shutil
import tempfile
import time
from pathlib import Path
from typing import Callable

CACHE_ENV = "SMOLVLA_ROS_OPENVINO_CACHE"
KEEP = 6  # graphs kept (each holds its weights: 0.39 GB for the full-size encoder or step)
LIBRARIES = ("torch", "transformers", "lerobot", "openvino")
GRAPH = re.compile(r"(vision|step)-[0-9a-f]{32}")  # a folder of ours; nothing else is deleted
STAGING = re.compile(r"\.(vision|step)-.+")
STAGING_LEFT_AFTER_S = 86400  # a killed load's half-written graph, removed after a day
SUMS = "sha256sums"  # in each graph's folder: "<sha256>  <file>" per file, as sha256sum writes
FILES = ("model.xml", "model.bin")
COMPILED = re.compile(r"compiled-(?P<key>[0-9a-f]{16})-(?P<sha256>[0-9a-f]{64})\.blob")


def cache_dir() -> Path | None:
    """Where converted graphs go, or None where the user turned the cache off (or there is
    no home folder to put it in)."""
    chosen = os.environ.get(CACHE_ENV, "").strip()
    if chosen.lower() == "none":
        return None
    root = chosen or os.environ.get("SMOLVLA_ROS_CACHE", "").strip() or \
        str(Path(os.environ.get("XDG_CACHE_HOME", "").strip() or "~/.cache") / "smolvla_ros")
    try:
        root = Path(root).expanduser()
    except RuntimeError:  # "~" with no HOME and no passwd entry
        return None
    return root if chosen else root / "openvino"


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
    # num_steps is left to the step's own key: the vision graph is the same for any.
    settings = {field.name: getattr(policy_config, field.name)
                for field in dataclasses.fields(policy_config) if field.name != "num_steps"}
    digest.update(repr(settings).encode())
    vlm_with_expert = model.vlm_with_expert
    for config in (vlm_with_expert.config, vlm_with_expert.lm_expert.config):
        digest.update(config.to_json_string().encode())
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

    def compiled(self, what: str, detail: str, convert: Callable[[], object],
                 settings: dict):
        """The graph of ``what`` (``detail``: what else it depends on, e.g. the image size)
        compiled for the CPU with ``settings``: imported if compiled so before, else compiled
        from the cached graph, else ``convert()``-ed (and saved). Only ``convert`` and the
        compilation of a converted graph raise: the cache's own failures become notes."""
        import openvino

        core = openvino.Core()
        folder = self._folder(what, detail)
        if folder is not None:
            key = compiled_key(core, settings)
            ready = self._import(what, folder, key, core, settings)
            if ready is None:
                graph = self._read(what, folder)
                if graph is not None:
                    try:
                        ready = core.compile_model(graph, "CPU", settings)
                    except Exception as error:  # e.g. saved by another OpenVINO build
                        self._drop(what, folder, f"does not compile ({type(error).__name__})")
                    else:
                        self._export(ready, folder, key)
            if ready is not None:
                self.notes.append(f"OpenVINO {what} graph read from {folder}")
                with contextlib.suppress(OSError):  # a read-only cache still serves
                    os.utime(folder)  # recently used: kept the longest
                return ready
        graph = convert()
        if folder is not None:
            self._save(what, graph, folder)
        ready = core.compile_model(graph, "CPU", settings)
        if folder is not None and folder.is_dir():
            self._export(ready, folder, key)
        return ready

    def _folder(self, what: str, detail: str) -> Path | None:
        if self.root is None:
            return None
        try:
            self._made = self._made or self._fingerprint()
        except Exception as error:  # an unreadable source file, a tensor it cannot hash...
            self.notes.append(f"OpenVINO {what} graph converted, not cached: the model could "
                              f"not be hashed ({type(error).__name__}: {error})")
            return None
        key = hashlib.sha256(f"{self._made} {what} {detail}".encode()).hexdigest()[:32]
        return self.root / f"{what}-{key}"

    def _read(self, what: str, folder: Path):
        """The saved graph, or None (not saved yet, or dropped as unreadable)."""
        import openvino

        xml = folder / "model.xml"
        try:
            if not xml.is_file():
                return None
            damage = _damage(folder)
            if damage:
                self._drop(what, folder, f"is damaged ({damage})")
                return None
            return openvino.Core().read_model(xml)
        except Exception as error:  # foreign, or a folder this user cannot enter
            self._drop(what, folder, f"is unreadable ({type(error).__name__})")
            return None

    def _import(self, what: str, folder: Path, key: str, core, settings: dict):
        """The graph as compiled with ``key``'s settings before, or None (never compiled so,
        or damaged, or refused by this OpenVINO: then removed, and compiled again)."""
        blob = None
        try:
            blob = next(folder.glob(f"compiled-{key}-*.blob"), None)
            if blob is None:
                return None
            data = blob.read_bytes()
            if hashlib.sha256(data).hexdigest() != COMPILED.fullmatch(blob.name)["sha256"]:
                raise ValueError("does not match its sha256")
            return core.import_model(data, "CPU", settings)
        except Exception as error:  # unreadable, damaged, or from a build that cannot read it
            if blob is None:  # a folder this user cannot list: _read says so
                return None
            reason = str(error) if isinstance(error, ValueError) else type(error).__name__
            self.notes.append(f"OpenVINO {what} graph compiled in {blob} {reason}, compiled again")
            with contextlib.suppress(OSError):
                blob.unlink()
            return None

    def _export(self, compiled, folder: Path, key: str) -> None:
        """``compiled`` saved beside its graph, replacing one compiled with other settings;
        if it cannot be (a read-only or full cache), the next load compiles again."""
        staging = None
        try:
            data = compiled.export_model().getbuffer()
            descriptor, staging = tempfile.mkstemp(prefix=".compiled-", dir=folder)
            with os.fdopen(descriptor, "wb") as file:
                file.write(data)
                file.flush()
                os.fsync(file.fileno())
            blob = folder / f"compiled-{key}-{hashlib.sha256(data).hexdigest()}.blob"
            os.replace(staging, blob)
            staging = None
            for other in folder.glob("compiled-*.blob"):
                if other != blob:
                    other.unlink()
            _flush(folder)
        except Exception:  # as a graph that cannot be saved: costs a compilation, not the load
            pass
        finally:
            if staging is not None:
                with contextlib.suppress(OSError):
                    os.unlink(staging)

    def _drop(self, what: str, folder: Path, why: str) -> None:
        self.notes.append(f"OpenVINO {what} graph in {folder} {why}, converted again")
        shutil.rmtree(folder, ignore_errors=True)

    def _save(self, what: str, graph, folder: Path) -> None:
        """Written to a staging folder and renamed, so a reader never sees half a graph."""
        import openvino

        staging = None
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            staging = Path(tempfile.mkdtemp(prefix=f".{what}-", dir=self.root))
            openvino.save_model(graph, staging / "model.xml", compress_to_fp16=False)
            sums = "".join(f"{_sha256(staging / name)}  {name}\n" for name in FILES)
            (staging / SUMS).write_text(sums)
            for path in (*(staging / name for name in (*FILES, SUMS)), staging):
                _flush(path)
            staging.rename(folder)
            _flush(self.root)  # the rename itself
            staging = None
            self.notes.append(f"OpenVINO {what} graph converted and saved to {folder}")
        except Exception as error:  # a full disk, a read-only home, another load that won
            if (folder / "model.xml").exists():
                self.notes.append(f"OpenVINO {what} graph converted; another load saved it "
                                  f"to {folder} first")
            else:
                reason = getattr(error, "strerror", None) or str(error).splitlines()[0]
                self.notes.append(f"OpenVINO {what} graph converted, not saved to {self.root} "
                                  f"({type(error).__name__}: {reason})")
        finally:
            if staging is not None:
                shutil.rmtree(staging, ignore_errors=True)
        self._evict()

    def _evict(self) -> None:
        """Keep the KEEP most recently used graphs, and no staging folder a killed load left
        a day ago. Only folders named as this module names them: the root may be a folder
        the user also keeps other things in."""
        try:
            entries = sorted(((entry.stat().st_mtime, entry) for entry in self.root.iterdir()
                              if entry.is_dir()), reverse=True)
        except OSError:
            return
        graphs = [entry for _, entry in entries if GRAPH.fullmatch(entry.name)]
        left = [entry for at, entry in entries if STAGING.fullmatch(entry.name)
                and at < time.time() - STAGING_LEFT_AFTER_S]
        for old in graphs[KEEP:] + left:
            shutil.rmtree(old, ignore_errors=True)


def compiled_key(core, settings: dict) -> str:
    """What a graph compiled for this CPU depends on besides the graph: the settings, the
    CPU (OpenVINO's name for it, its capabilities, and the kernel's CPU flags where there
    are any) and OpenVINO's version."""
    import openvino

    cpu = [core.get_property("CPU", name) for name in ("FULL_DEVICE_NAME",
                                                        "OPTIMIZATION_CAPABILITIES")]
    text = repr((sorted(settings.items()), cpu, sorted(cpu_flags()), openvino.get_version()))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def cpu_flags() -> set[str]:
    """The kernel's flags for this CPU (empty where there is no /proc/cpuinfo): what a
    compiled graph was made for, and what `smolvla-ros doctor` reads the fast modes from."""
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            line = next((line for line in cpuinfo if line.startswith("flags")), "")
    except OSError:
        return set()
    return set(line.partition(":")[2].split())


def _damage(folder: Path) -> str:
    """Why the graph in ``folder`` cannot be trusted ('' when its files match its sums)."""
    try:
        lines = (folder / SUMS).read_text().splitlines()
    except FileNotFoundError:
        return f"no {SUMS}"
    sums = {}
    for line in lines:
        digest, _, name = line.partition("  ")
        sums[name] = digest
    for name in FILES:
        if name not in sums:
            return f"{name} is not in {SUMS}"
        if _sha256(folder / name) != sums[name]:
            return f"{name} does not match its sha256"
    return ""


def _sha256(path: Path) -> str:
    """The full-size graphs' weights are 0.39 GB each (0.23 s at 1.7 GB/s)."""
    with open(path, "rb") as file:
        return hashlib.file_digest(file, "sha256").hexdigest()


def _flush(path: Path) -> None:
    """fsync a file or a folder (a folder's entries: a new name in it)."""
    descriptor = os.open(path, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)
