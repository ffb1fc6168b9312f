"""camera_node: USB cameras through OpenCV, as ``cameras/<name>/image_raw`` (rgb8).

For users without v4l2_camera or usb_cam: one ``VideoCapture`` per entry of ``devices``
(an index like ``0``, a path like ``/dev/video2``, or a video file, which is how the tests
feed it), published under the matching name of ``names``. A camera that cannot be opened
or stops delivering is one error line; the node keeps the others running and retries it.
Each camera is read on its own thread, so a slow one does not hold the others back.
"""

from __future__ import annotations

import threading
import time

from rclpy.node import Node
from sensor_msgs.msg import Image

from smolvla_ros.nodes.common import declare_parameters, rgb_image, run

PARAMETERS = {
    "names": (["front"], "camera names: topics cameras/<name>/image_raw"),
    "devices": (["0"], "one per name: /dev/video index, device path or video file"),
    "width": (640, "requested image width (the camera may choose another)"),
    "height": (480, "requested image height"),
    "fps": (30.0, "requested and published rate"),
    "retry_period_s": (2.0, "how often to try again to open a camera that failed"),
}


class Camera:
    """One VideoCapture on its own thread, publishing what it reads."""

    def __init__(self, node: Node, name: str, device: str, p: dict):
        self.node, self.name, self.device, self.p = node, name, device, p
        self.publisher = node.create_publisher(Image, f"cameras/{name}/image_raw", 5)
        self.frames = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name=f"camera-{name}", daemon=True)
        self._thread.start()

    def _open(self):
        import cv2

        source = int(self.device) if self.device.isdigit() else self.device
        capture = cv2.VideoCapture(source)
        if not capture.isOpened():
            capture.release()
            return None
        capture.set(cv2.CAP_PROP_FRAME_WIDTH, self.p["width"])
        capture.set(cv2.CAP_PROP_FRAME_HEIGHT, self.p["height"])
        capture.set(cv2.CAP_PROP_FPS, self.p["fps"])
        return capture

    def _loop(self) -> None:
        import cv2

        log = self.node.get_logger()
        period = 1.0 / self.p["fps"]
        while not self._stop.is_set() and self.node.context.ok():
            capture = self._open()
            if capture is None:
                log.error(f"camera '{self.name}': cannot open '{self.device}'; retrying every "
                          f"{self.p['retry_period_s']} s")
                self._stop.wait(self.p["retry_period_s"])
                continue
            log.info(f"camera '{self.name}': {self.device} open")
            next_frame = time.monotonic()
            while not self._stop.is_set():
                ok, bgr = capture.read()
                if not ok:
                    log.error(f"camera '{self.name}': '{self.device}' stopped delivering images; reopening")
                    break
                rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
                msg = rgb_image(rgb, self.node.get_clock().now().to_msg(), f"{self.name}_camera")
                if not self.node.context.ok():
                    break  # shutting down (Ctrl-C): the publisher is gone
                self.publisher.publish(msg)
                self.frames += 1
                next_frame += period  # a file plays at fps; a camera paces itself anyway
                self._stop.wait(max(0.0, next_frame - time.monotonic()))
            capture.release()
            self._stop.wait(self.p["retry_period_s"])

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)


class CameraNode(Node):
    def __init__(self):
        super().__init__("camera_node")
        p = declare_parameters(self, PARAMETERS)
        if len(p["names"]) != len(p["devices"]):
            raise ValueError(f"names {p['names']} and devices {p['devices']} must pair up one to one")
        self.cameras = [Camera(self, name, str(device), p) for name, device in zip(p["names"], p["devices"])]

    def destroy_node(self) -> None:
        for camera in self.cameras:
            camera.stop()
        super().destroy_node()


def main(args: list[str] | None = None) -> int:
    return run(CameraNode, args)
