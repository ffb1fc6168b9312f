"""An episode's camera frames as an MP4 (PyAV, which LeRobot installs for its datasets)."""

from __future__ import annotations

from pathlib import Path

import numpy as np


class Mp4Writer:
    """H.264 (MPEG-4 part 2 where this FFmpeg build has no H.264 encoder), yuv420p."""

    def __init__(self, path: Path, fps: float):
        self.path, self.fps = Path(path), fps
        self._container = self._stream = None
        self.frames = 0

    def add(self, rgb: np.ndarray) -> None:
        import av

        if self._container is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._container = av.open(str(self.path), "w")
            for codec in ("libx264", "h264", "mpeg4"):
                try:
                    self._stream = self._container.add_stream(codec, rate=round(self.fps))
                    break
                except (av.error.FFmpegError, ValueError):
                    continue
            height, width = rgb.shape[:2]
            self._stream.width, self._stream.height = width - width % 2, height - height % 2
            self._stream.pix_fmt = "yuv420p"
        frame = av.VideoFrame.from_ndarray(
            np.ascontiguousarray(rgb[: self._stream.height, : self._stream.width]), format="rgb24")
        for packet in self._stream.encode(frame):
            self._container.mux(packet)
        self.frames += 1

    def close(self) -> Path | None:
        if self._container is None:
            return None
        for packet in self._stream.encode():
            self._container.mux(packet)
        self._container.close()
        self._container = None
        return self.path
