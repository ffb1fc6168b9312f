"""Our nodes as separate processes, as ``ros2 launch`` starts them (no launch_ros needed).

Each node is the installed executable (``lib/smolvla_ros/<node>``, what ``ros2 run`` runs)
with a parameter file written from its config/ YAML plus overrides; its output goes to
``<log_dir>/<node>.log``. Separate processes: one node's Python (a model's inference, the
simulation's rendering) does not hold up another's.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path


class NodeExited(RuntimeError):
    pass


def executable_path(executable: str) -> Path:
    from ament_index_python.packages import get_package_prefix

    return Path(get_package_prefix("smolvla_ros")) / "lib" / "smolvla_ros" / executable


class NodeProcesses:
    def __init__(self, log_dir: Path):
        self.log_dir = Path(log_dir)
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self.processes: dict[str, subprocess.Popen] = {}

    def start(self, executable: str, parameters: dict, remaps: dict[str, str] | None = None) -> None:
        import yaml

        params = self.log_dir / f"{executable}.yaml"
        params.write_text(yaml.safe_dump({"/**": {"ros__parameters": parameters}}))
        remap_args = [arg for name, to in (remaps or {}).items() for arg in ("-r", f"{name}:={to}")]
        log = open(self.log_dir / f"{executable}.log", "w")  # noqa: SIM115 (the child keeps it)
        self.processes[executable] = subprocess.Popen(
            [str(executable_path(executable)), "--ros-args", "--params-file", str(params), *remap_args],
            stdout=log, stderr=subprocess.STDOUT, env=dict(os.environ, PYTHONUNBUFFERED="1"))
        log.close()

    def log_tail(self, executable: str, lines: int = 15) -> str:
        text = (self.log_dir / f"{executable}.log").read_text(errors="replace").splitlines()
        return "\n".join(text[-lines:])

    def check(self) -> None:
        """NodeExited, with the end of its log, when a node stopped by itself."""
        for name, process in self.processes.items():
            if process.poll() is not None:
                raise NodeExited(f"{name} exited with status {process.returncode}; the end of "
                                 f"{self.log_dir / name}.log:\n{self.log_tail(name)}")

    def stop(self, timeout_s: float = 20.0) -> None:
        """Ctrl-C to each (the recorder closes its bag), then kill what is left."""
        for process in self.processes.values():
            if process.poll() is None:
                process.send_signal(signal.SIGINT)
        deadline = time.monotonic() + timeout_s
        for process in self.processes.values():
            try:
                process.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        self.processes.clear()
