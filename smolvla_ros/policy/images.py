"""Camera messages to RGB numpy arrays, without cv_bridge (it breaks under numpy 2).

Works on the fields of sensor_msgs/Image and CompressedImage, not the message classes, so
it stays ROS-free and testable on plain bytes.
"""

from __future__ import annotations

import numpy as np

CHANNELS = {"rgb8": 3, "bgr8": 3, "rgba8": 4, "bgra8": 4, "mono8": 1}


class ImageError(ValueError):
    """A malformed or unsupported image; the message is one line."""


def image_to_rgb(encoding: str, height: int, width: int, step: int, data: bytes) -> np.ndarray:
    """A sensor_msgs/Image as HxWx3 uint8 RGB (a new array: message buffers are read-only)."""
    if encoding not in CHANNELS:
        raise ImageError(f"encoding '{encoding}' is not supported (use {', '.join(CHANNELS)})")
    channels = CHANNELS[encoding]
    if height <= 0 or width <= 0:
        raise ImageError(f"empty image ({width}x{height})")
    if step < width * channels:
        raise ImageError(f"step {step} is shorter than a row ({width} px x {channels} bytes)")
    if len(data) < step * height:
        raise ImageError(f"{len(data)} bytes of data for {height} rows of {step} bytes")
    rows = np.frombuffer(data, dtype=np.uint8, count=step * height).reshape(height, step)
    pixels = rows[:, : width * channels].reshape(height, width, channels)
    if encoding == "mono8":
        return np.repeat(pixels, 3, axis=2)
    if encoding.startswith("bgr"):
        return np.ascontiguousarray(pixels[:, :, 2::-1])
    return np.array(pixels[:, :, :3])


def compressed_to_rgb(data: bytes) -> np.ndarray:
    """A sensor_msgs/CompressedImage (JPEG or PNG) as HxWx3 uint8 RGB."""
    import cv2

    buffer = np.frombuffer(data, dtype=np.uint8)
    bgr = cv2.imdecode(buffer, cv2.IMREAD_COLOR) if buffer.size else None
    if bgr is None:
        raise ImageError(f"cannot decode {buffer.size} bytes of compressed image data")
    return np.ascontiguousarray(bgr[:, :, ::-1])


COMPRESSED_FORMATS = {"jpeg": ".jpg", "png": ".png"}


def rgb_to_compressed(rgb: np.ndarray, fmt: str, jpeg_quality: int = 90) -> tuple[str, bytes]:
    """HxWx3 RGB to a CompressedImage's (format, data), image_transport's format string."""
    import cv2

    if fmt not in COMPRESSED_FORMATS:
        raise ImageError(f"compression '{fmt}' is not supported (use {', '.join(COMPRESSED_FORMATS)})")
    params = [cv2.IMWRITE_JPEG_QUALITY, jpeg_quality] if fmt == "jpeg" else []
    ok, data = cv2.imencode(COMPRESSED_FORMATS[fmt], np.ascontiguousarray(rgb[:, :, ::-1]), params)
    if not ok:
        raise ImageError(f"{fmt} encoding failed")
    return f"rgb8; {fmt} compressed bgr8", data.tobytes()
