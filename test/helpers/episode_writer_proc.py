"""Test helper: writes an episode until killed, or until the file-size limit stops it.

    episode_writer_proc.py FOLDER MSG_DIR [FSIZE_LIMIT_BYTES]

Prints "flushed N" each time written chunks reach the OS, and "error: ..." if writing fails.
"""

import resource
import signal
import sys
import time
from pathlib import Path

import numpy as np
from rclpy.serialization import serialize_message
from sensor_msgs.msg import Image

from smolvla_ros.recording.episode import (
    EpisodeInfo, EpisodeWriteError, EpisodeWriter, make_typestore, msg_definitions,
)


def main() -> None:
    folder, msg_dir = Path(sys.argv[1]), Path(sys.argv[2])
    if len(sys.argv) > 3:  # a "disk" that fills: writes past the limit fail with EFBIG
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        limit = int(sys.argv[3])
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
    writer = EpisodeWriter(folder, EpisodeInfo(episode_index=7, task="stack the blocks"),
                           make_typestore(msg_definitions(msg_dir)))
    writer.FLUSH_PERIOD_S = 0.0
    image = Image(height=240, width=320, encoding="rgb8", step=960,
                  data=np.random.default_rng(0).integers(0, 256, 240 * 320 * 3, np.uint8).tobytes())
    for k in range(100000):
        image.header.frame_id = str(k)
        try:
            writer.write("cameras/front/image_raw", "sensor_msgs/msg/Image", 1_000_000 + k,
                         serialize_message(image))
        except EpisodeWriteError as error:
            print(f"error: {error}", flush=True)
            return
        print(f"flushed {writer.messages}", flush=True)
        time.sleep(0.001)


if __name__ == "__main__":
    main()
