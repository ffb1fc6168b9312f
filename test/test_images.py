"""Camera messages to RGB arrays, every supported encoding, and clear errors for the rest."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from smolvla_ros.policy.images import ImageError, compressed_to_rgb, image_to_rgb

RGB = np.arange(4 * 5 * 3, dtype=np.uint8).reshape(4, 5, 3)


@pytest.mark.parametrize("encoding, pixels", [
    ("rgb8", RGB),
    ("bgr8", RGB[:, :, ::-1]),
    ("rgba8", np.concatenate([RGB, np.full((4, 5, 1), 255, np.uint8)], axis=2)),
    ("bgra8", np.concatenate([RGB[:, :, ::-1], np.full((4, 5, 1), 7, np.uint8)], axis=2)),
])
def test_color_encodings_with_row_padding(encoding, pixels):
    channels = pixels.shape[2]
    step = 5 * channels + 3  # padded rows, as some drivers send
    rows = np.zeros((4, step), np.uint8)
    rows[:, : 5 * channels] = pixels.reshape(4, -1)
    rgb = image_to_rgb(encoding, 4, 5, step, rows.tobytes())
    np.testing.assert_array_equal(rgb, RGB)
    assert rgb.flags.writeable and rgb.flags.c_contiguous


def test_mono8_becomes_grey_rgb():
    grey = np.arange(20, dtype=np.uint8).reshape(4, 5)
    rgb = image_to_rgb("mono8", 4, 5, 5, grey.tobytes())
    np.testing.assert_array_equal(rgb, np.repeat(grey[:, :, None], 3, axis=2))


@pytest.mark.parametrize("args, message", [
    (("yuv422", 4, 5, 10, bytes(40)), "encoding 'yuv422' is not supported"),
    (("rgb8", 4, 5, 15, bytes(59)), "59 bytes of data for 4 rows of 15 bytes"),
    (("rgb8", 4, 5, 10, bytes(60)), "step 10 is shorter than a row"),
    (("rgb8", 0, 5, 15, b""), "empty image"),
])
def test_malformed_images_are_clear_errors(args, message):
    with pytest.raises(ImageError, match=message):
        image_to_rgb(*args)


def test_compressed_png_and_jpeg():
    ok, png = cv2.imencode(".png", RGB[:, :, ::-1])
    np.testing.assert_array_equal(compressed_to_rgb(png.tobytes()), RGB)
    big = np.full((32, 32, 3), (200, 30, 90), np.uint8)
    ok, jpeg = cv2.imencode(".jpg", big[:, :, ::-1], [cv2.IMWRITE_JPEG_QUALITY, 95])
    assert np.abs(compressed_to_rgb(jpeg.tobytes()).astype(int) - big).max() <= 3
    with pytest.raises(ImageError, match="cannot decode 4 bytes"):
        compressed_to_rgb(b"junk")
