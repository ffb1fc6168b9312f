"""Benchmark: the SO-101 control loop on the emulated bus, ours vs LeRobot's bus code.

Runs the emulated arm in a separate process (so it does not share the GIL with the
SDK's reads), then in this process:

1. control cycles per second and CPU per cycle: our ArmController.step() (one sync read of
   position+velocity, trajectory sample, clamp, one sync write) vs LeRobot's
   FeetechMotorsBus sync_read("Present_Position") + sync_write("Goal_Position"), the loop
   LeRobot's SO follower runs;
2. how long one read blocks when a servo stays silent (timeout x attempts), both drivers
   with 2 retries, measured on an in-process emulator where the silence can be injected.

Printed, not asserted:  python bench/bus_loop.py [--seconds 5]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from lerobot.motors import Motor, MotorNormMode
from lerobot.motors import MotorCalibration as LeRobotCalibration
from lerobot.motors.feetech import FeetechMotorsBus

from smolvla_ros.arm_controller import ArmController, ArmControllerConfig
from smolvla_ros.feetech.bus import SO101_MOTORS, BusConfig, BusError, FeetechBus
from smolvla_ros.feetech.emulator import MOCK_CALIBRATION, EmulatedBus
from smolvla_ros.units import ArmUnits


def lerobot_bus(port: str) -> FeetechMotorsBus:
    motors = {name: Motor(i, "sts3215", MotorNormMode.DEGREES) for name, i in SO101_MOTORS.items()}
    calibration = {name: LeRobotCalibration(**vars(m)) for name, m in MOCK_CALIBRATION.items()}
    bus = FeetechMotorsBus(port=port, motors=motors, calibration=calibration)
    bus.connect(handshake=True)
    return bus


def timed_loop(cycle, seconds: float) -> tuple[float, float]:
    """Cycles per second and CPU milliseconds per cycle."""
    cycles, wall0, cpu0 = 0, time.perf_counter(), time.process_time()
    while time.perf_counter() - wall0 < seconds:
        cycle()
        cycles += 1
    wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
    return cycles / wall, cpu / cycles * 1e3


def ours(port: str):
    controller = ArmController(FeetechBus(BusConfig(port=port)), MOCK_CALIBRATION,
                               ArmUnits(MOCK_CALIBRATION), ArmControllerConfig(), lambda *_: None)
    assert controller.connect(time.monotonic())
    return lambda: controller.step(time.monotonic()), controller.shutdown


def theirs(port: str):
    bus = lerobot_bus(port)
    bus.enable_torque()

    def cycle():
        present = bus.sync_read("Present_Position", num_retry=2)
        bus.sync_write("Goal_Position", present)
    return cycle, bus.disconnect


def blocked_read_ms(read, attempts: int = 5) -> float:
    start = time.perf_counter()
    for _ in range(attempts):
        try:
            read()
        except (BusError, ConnectionError, RuntimeError):
            pass
    return (time.perf_counter() - start) / attempts * 1e3


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5.0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        port = str(Path(folder) / "ttySO101")
        emulator = subprocess.Popen([sys.executable, "-m", "smolvla_ros.feetech.emulator",
                                     "--port", port], stdout=subprocess.PIPE, text=True)
        try:
            emulator.stdout.readline()
            results = {}
            for name, make in (("smolvla_ros", ours), ("lerobot", theirs)):
                cycle, close = make(port)
                results[name] = timed_loop(cycle, args.seconds)
                close()
        finally:
            emulator.terminate()
            emulator.wait()

    print(f"control loop on the emulated bus, {args.seconds:.0f} s each (emulator in its own process)")
    for name, (rate, cpu_ms) in results.items():
        print(f"  {name:<12} {rate:8.0f} cycles/s   {cpu_ms:6.3f} ms CPU/cycle")
    (rate_a, cpu_a), (rate_b, cpu_b) = results["smolvla_ros"], results["lerobot"]
    print(f"  ratio smolvla_ros/lerobot: cycles/s x{rate_a / rate_b:.2f}, CPU/cycle x{cpu_a / cpu_b:.2f}"
          " (ours also reads velocity and samples a trajectory each cycle)")

    with EmulatedBus() as emulator:
        emulator.load_calibration(MOCK_CALIBRATION)
        bus = FeetechBus(BusConfig(port=emulator.port))
        bus.connect()
        baseline = lerobot_bus(emulator.port)
        emulator.silence(3)
        ours_ms = blocked_read_ms(lambda: bus.sync_read("Present_Position"))
        theirs_ms = blocked_read_ms(lambda: baseline.sync_read("Present_Position", num_retry=2))
        bus.close()
    print("one sync read with a silent servo (3 attempts, 50 ms reply timeout each):")
    print(f"  smolvla_ros {ours_ms:7.1f} ms blocked   lerobot {theirs_ms:7.1f} ms blocked"
          f"   ratio x{ours_ms / theirs_ms:.2f}")


if __name__ == "__main__":
    main()
