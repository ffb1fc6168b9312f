"""Benchmark: recorder_node under two 640x480 rgb8 cameras at 30 Hz and joint states at 100 Hz.

A publisher process (this script) and recorder_node run side by side for --seconds; then the
bag is read back with the mcap library. Printed, not asserted, for raw and JPEG storage:
messages written vs published (goal: all), the recorder's CPU time (user+sys over wall),
MB/s written, and bag size.   python bench/recorder_throughput.py [--seconds 60]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import tempfile
import time
from pathlib import Path

import rclpy
from ament_index_python.packages import get_package_prefix
from mcap.reader import make_reader
from rclpy.qos import QoSProfile
from sensor_msgs.msg import Image, JointState
from std_srvs.srv import Trigger

HEIGHT, WIDTH = 480, 640
CAMERAS = ("front", "wrist")


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def call(node, name: str) -> str:
    client = node.create_client(Trigger, name)
    assert client.wait_for_service(timeout_sec=30), name
    future = client.call_async(Trigger.Request())
    rclpy.spin_until_future_complete(node, future, timeout_sec=30)
    return future.result().message


def run(seconds: float, compress: str, folder: Path) -> dict:
    recorder = subprocess.Popen(
        [os.path.join(get_package_prefix("smolvla_ros"), "lib", "smolvla_ros", "recorder_node"),
         "--ros-args", "-p", f"output_dir:={folder}",
         *(["-p", f"compress_images:={compress}"] if compress else [])],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    node = rclpy.create_node("bench_publisher")
    # Reliable topics recover a sample lost from a full UDP socket (the cameras flood it) only
    # while the publisher still holds it: Fast DDS re-sends on its next heartbeat (~3 s), so
    # keep more than 3 s of history, as so101_node does for joint_states.
    cameras = {name: node.create_publisher(Image, f"cameras/{name}/image_raw", QoSProfile(depth=100))
               for name in CAMERAS}
    joints = node.create_publisher(JointState, "joint_states", QoSProfile(depth=500))
    frame = bytes(range(256)) * (HEIGHT * WIDTH * 3 // 256)
    deadline = time.monotonic() + 60
    while any(p.get_subscription_count() == 0 for p in (*cameras.values(), joints)):
        assert time.monotonic() < deadline, "recorder never subscribed"
        time.sleep(0.1)
    call(node, "start_episode")
    published = 0
    cpu_start, start = cpu_seconds(recorder.pid), time.monotonic()
    tick = 0
    while time.monotonic() - start < seconds:
        stamp = node.get_clock().now().to_msg()
        msg = JointState(name=["shoulder_pan"], position=[0.0])
        msg.header.stamp = stamp
        joints.publish(msg)
        published += 1
        if tick % 3 == 0:  # 100 Hz joints, ~33 Hz cameras
            for publisher in cameras.values():
                image = Image(height=HEIGHT, width=WIDTH, encoding="rgb8", step=WIDTH * 3, data=frame)
                image.header.stamp = stamp
                publisher.publish(image)
                published += 1
        tick += 1
        time.sleep(max(0.0, start + tick / 100 - time.monotonic()))
    wall = time.monotonic() - start
    time.sleep(4.0)  # a heartbeat period for late re-sends, before the episode is stopped
    cpu = cpu_seconds(recorder.pid) - cpu_start
    call(node, "stop_episode")
    node.destroy_node()
    recorder.terminate()
    recorder.wait()
    (bag,) = folder.glob("episode_000000/*.mcap")
    with open(bag, "rb") as file:
        topics = [channel.topic for _, channel, _ in make_reader(file).iter_messages()]
    written = len(topics)
    size = bag.stat().st_size
    return {"published": published, "written": written, "cpu": cpu / wall, "mb": size / 1e6,
            "mbps": size / 1e6 / wall, "wall": wall}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60.0)
    args = parser.parse_args()
    rclpy.init()
    results = {}
    try:
        for compress in ("", "jpeg"):
            with tempfile.TemporaryDirectory() as folder:
                results[compress or "raw"] = run(args.seconds, compress, Path(folder))
    finally:
        rclpy.try_shutdown()
    print(f"recorder_node, 2 cameras {WIDTH}x{HEIGHT} rgb8 ~33 Hz + joint_states 100 Hz, "
          f"{args.seconds:.0f} s each")
    for name, r in results.items():
        print(f"  {name:<5} written {r['written']}/{r['published']} "
              f"({100 * r['written'] / r['published']:.1f}%), recorder CPU {r['cpu'] * 100:.0f}% "
              f"of a core, {r['mbps']:.1f} MB/s, bag {r['mb']:.0f} MB")
    print(f"  size jpeg/raw x{results['jpeg']['mb'] / results['raw']['mb']:.3f}")


if __name__ == "__main__":
    main()
