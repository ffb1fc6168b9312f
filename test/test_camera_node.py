"""camera_node over real DDS, fed a video file through OpenCV's VideoCapture (as it would a
/dev/video device); a camera that cannot be opened is one error line, the others run on."""

from __future__ import annotations

import numpy as np
from conftest import wait_for
from ros_probe import NodeProcess, RosProbe
from sensor_msgs.msg import Image


def write_video(path, frames: int = 30):
    import cv2

    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10, (64, 48))
    for _ in range(frames):
        frame = np.zeros((48, 64, 3), np.uint8)
        frame[:, :, 2] = 200  # BGR: red
        writer.write(frame)
    writer.release()
    return path


def test_camera_publishes_rgb_images_and_survives_a_missing_device(tmp_path):
    video = write_video(tmp_path / "front.avi")
    probe = RosProbe()
    probe.subscribe(Image, "cameras/front/image_raw")
    node = NodeProcess("camera_node", "-p", 'names:=["front", "side"]',
                       "-p", f'devices:=["{video}", "/dev/does_not_exist"]', "-p", "fps:=20.0")
    try:
        assert wait_for(lambda: len(probe.messages("cameras/front/image_raw")) >= 10, 60), node.output()
        node.wait_for_output("camera 'side': cannot open '/dev/does_not_exist'")
    finally:
        assert node.stop() == 0, node.output()
        probe.close()
    image = probe.messages("cameras/front/image_raw")[-1]
    assert (image.height, image.width, image.encoding, image.step) == (48, 64, "rgb8", 192)
    rgb = np.frombuffer(bytes(image.data), np.uint8).reshape(48, 64, 3).astype(int)
    assert abs(rgb[..., 0].mean() - 200) < 15 and rgb[..., 1:].mean() < 15  # red stays red
