"""The policy node's logic, ROS-free: instruction, observations, inference worker, chunks.

Inputs arrive from any thread (``set_instruction``, ``update_image``, ``update_joints``);
``tick(now)`` runs at the control rate and decides when to infer; a single worker thread
runs the model, so callbacks never wait on it. Each result becomes a chunk of joint
positions in radians stamped with its observation time, handed to ``publish``.

- A new instruction re-plans at once: inference starts on the freshest observation (after
  the one in flight, whose result is then dropped). The same text again changes nothing.
  An empty text stops: a hold at the current position, no more inference.
- Stale input (older than ``stale_after_s``) is never inferred on: the arm holds and the
  status says which input and why.
- Timing ``async`` (the default, LeRobot's async inference): a chunk is timed from its
  observation, so what elapsed while the model ran is skipped, and the next inference starts
  while the current chunk still runs. Timing ``sync`` (LeRobot's synchronous rollout, for a
  machine slower than a chunk): a chunk is timed from its arrival (header stamp zero), run
  from its first action with nothing skipped, and the next inference starts once it has
  been executed; the arm holds on its last action while the model runs, and says so.
- A camera the checkpoint declares but nobody publishes (``set_publishers``: no publisher,
  and no image ever received) is absent: left out of the observation, as LeRobot's SmolVLA
  leaves out a missing image input. A camera with a publisher is waited for, and one that
  has sent images never becomes absent: it holds when it goes stale. The set of cameras in
  use is logged whenever it changes; with none, the arm holds and says so.
"""

from __future__ import annotations

import math
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from smolvla_ros.policy.chunks import REPLACE, RTC, ChunkSchedule
from smolvla_ros.units import ArmUnits

LOADING, IDLE, RUNNING, HOLDING, ERROR = "loading", "idle", "running", "holding", "error"
ASYNC, SYNC = "async", "sync"


@dataclass
class PolicyControllerConfig:
    fps: float = 30.0
    chunk_threshold: float = 0.5
    aggregate: str = REPLACE
    stale_after_s: float = 0.5
    noise_seed: int = -1  # >= 0: the same flow-matching noise for every chunk (reproducible)
    rtc_execution_horizon: int = 10  # aggregate "rtc": actions of the old chunk to agree with
    rtc_max_guidance_weight: float = 10.0
    timing: str = ASYNC  # async: timed from the observation; sync: from arrival, see the module


@dataclass
class PolicyState:
    state: str = IDLE
    message: str = ""
    instruction: str = ""
    inference_latency: float = 0.0  # seconds, observation taken -> chunk ready
    observation_age: float = 0.0  # seconds, age of the oldest input the last chunk used
    chunks_published: int = 0
    queue_depth: int = 0  # actions of the current chunk still ahead
    starved_ticks: int = 0  # control ticks with an instruction but no action left
    dropped_results: int = 0  # chunks discarded because the instruction changed
    cameras: tuple[str, ...] = ()  # in the observation (or awaited: they have a publisher)
    absent_cameras: tuple[str, ...] = ()  # declared, nobody publishes: left out
    # input (camera name or "joint_states") -> why its last message was refused, until one is
    # accepted again: a hold on stale input then says why the input is stale
    rejected_inputs: dict[str, str] = field(default_factory=dict)


@dataclass
class _Observation:
    time: float  # the joint state's stamp: the chunk's time origin (scheduling)
    stamp_ns: int  # the same, exact: the chunk's header.stamp
    age: float
    images: dict[str, np.ndarray]
    state: np.ndarray  # LeRobot units
    positions: np.ndarray  # radians, for holds
    task: str
    generation: int
    rtc_prefix: object = None  # torch tensor (horizon, action_dim), model space
    rtc_delay: int = 0


@dataclass
class ChunkOut:
    """What the node publishes: positions (n, joints) in radians, point k at
    stamp + first_s + k/fps; stamp 0 means "from arrival" (trajectory semantics). The stamp is
    integer nanoseconds, the observation's exactly (float seconds would round it)."""

    stamp_ns: int
    joint_names: tuple[str, ...]
    positions: np.ndarray
    fps: float
    first_s: float = 0.0


Log = Callable[[str, str], None]


class PolicyController:
    def __init__(self, runtime, units: ArmUnits, config: PolicyControllerConfig,
                 publish: Callable[[ChunkOut], None], log: Log, clock: Callable[[], float]):
        self.runtime = runtime
        self.units = units
        self.config = config
        if config.timing not in (ASYNC, SYNC):
            raise ValueError(f"timing must be '{ASYNC}' or '{SYNC}', not '{config.timing}'")
        if config.timing == SYNC and config.aggregate == RTC:
            raise ValueError("aggregate 'rtc' needs timing 'async': in sync timing no part of "
                             "a chunk is left unexecuted to agree with")
        self.sync = config.timing == SYNC
        # sync: the next inference once nothing of the chunk is left (threshold 0)
        self.schedule = ChunkSchedule(config.fps, 0.0 if self.sync else config.chunk_threshold,
                                      config.aggregate)
        self.rtc = config.aggregate == RTC
        if self.rtc:
            runtime.enable_rtc(config.rtc_execution_horizon, config.rtc_max_guidance_weight)
        self._model_chunk = None  # RTC: (times, model-space actions) of the current chunk
        self._latencies: list[float] = []  # recent inference latencies, for RTC's delay
        self.status = PolicyState()
        self.camera_topics = {name: f"cameras/{name}/image_raw" for name in runtime.camera_names}
        self._publish = publish
        self._log = log
        self._clock = clock
        self._lock = threading.Lock()
        self._images: dict[str, tuple[float, np.ndarray]] = {}
        self._publishers: dict[str, int] | None = None  # per camera; None: not looked yet
        self.status.cameras = tuple(self.camera_topics)
        self._joints: tuple[float, np.ndarray, int] | None = None  # (s, radians, stamp ns)
        self._generation = 0
        self._replan = False
        self._paused = False
        self._busy = False
        self._holding_stale = False
        self._cameras_logged = False
        self._requests: queue.Queue[_Observation | None] = queue.Queue(maxsize=1)
        self._worker = threading.Thread(target=self._work, name="policy-inference", daemon=True)
        self._worker.start()

    # --- inputs ------------------------------------------------------------------------------
    def set_instruction(self, text: str, now: float) -> None:
        with self._lock:
            if text == self.status.instruction:
                return  # `ros2 topic pub` repeats at 1 Hz: the same text is not a new instruction
            self.status.instruction = text
            self._generation += 1
            self._forget_chunks()
            if not text:
                self._log("info", "empty instruction: holding, inference stopped")
                self._set(IDLE, "no instruction")
                self._hold(now)
                return
            self._replan = True
        self.tick(now)  # re-plan at once, not at the next tick
        # Said once the model has its request: a log line costs ~0.5 ms, the tokenizer more.
        tokens = self.runtime.token_count(text)
        if tokens > self.runtime.tokenizer_max_length:
            self._log("warn", f"instruction is {tokens} tokens, the policy reads "
                              f"{self.runtime.tokenizer_max_length}: it will be truncated "
                              "(parameter tokenizer_max_length)")
        self._log("info", f"new instruction: {text!r}")

    def update_image(self, name: str, rgb: np.ndarray, stamp: float) -> None:
        with self._lock:
            self._images[name] = (stamp, rgb)
            self.status.rejected_inputs.pop(name, None)

    def reject_input(self, source: str, reason: str) -> None:
        """A message of ``source`` (a camera's name, or "joint_states") was refused, and why."""
        with self._lock:
            self.status.rejected_inputs[source] = reason

    def set_publishers(self, counts: dict[str, int]) -> None:
        """How many publishers each camera's topic has (the node looks periodically)."""
        with self._lock:
            self._publishers = dict(counts)

    def update_joints(self, names, positions, stamp_ns: int) -> None:
        """Map a JointState by name (its stamp in integer nanoseconds); raises ValueError for
        missing joints or NaN."""
        by_name = dict(zip(names, positions))
        missing = [joint for joint in self.units.joints if joint not in by_name]
        if missing:
            raise ValueError(f"joint_states lacks {missing}")
        vector = np.array([by_name[joint] for joint in self.units.joints], dtype=float)
        if not np.all(np.isfinite(vector)):
            raise ValueError("joint_states holds NaN or infinite positions")
        with self._lock:
            self._joints = (stamp_ns * 1e-9, vector, stamp_ns)
            self.status.rejected_inputs.pop("joint_states", None)

    def pause(self, paused: bool) -> str:
        with self._lock:
            self._paused = paused
            if paused:
                self._generation += 1
                self._forget_chunks()
                self._hold(self._clock())
                self._set(HOLDING, "paused")
            else:
                self._replan = bool(self.status.instruction)
        return "paused" if paused else "resumed"

    def reset(self) -> str:
        """Forget the instruction and the chunk, hold: as after start-up."""
        with self._lock:
            self._generation += 1
            self.status.instruction = ""
            self._forget_chunks()
            self._paused = False
            self._hold(self._clock())
            self._set(IDLE, "reset")
        return "reset"

    # --- the control clock ----------------------------------------------------------------------
    def tick(self, now: float) -> None:
        with self._lock:
            self.status.queue_depth = self.schedule.remaining(now)
            self._update_cameras()
            if not self.status.instruction or self._paused:
                return
            if not self.sync and self.schedule.current is not None and self.schedule.starved(now):
                self.status.starved_ticks += 1  # (sync timing holds between chunks by design)
            problem = self._stale_input(now)
            if problem:
                if not self._holding_stale:  # once on entering: one log line, one hold
                    self._holding_stale = True
                    self._generation += 1  # a result in flight must not move the arm now
                    self._log("warn", f"holding: {problem}")
                    self._hold(now)
                    self._forget_chunks()
                self._set(HOLDING, problem)  # the message keeps the current age
                return
            self._holding_stale = False
            if self._busy or not (self._replan or self.schedule.needs_inference(now)):
                return
            self._replan = False
            self._busy = True
            observation = self._snapshot(now)
            if self.sync and self.schedule.current is not None:
                self._set(HOLDING, "synchronous timing: the arm holds while the model runs")
        self._requests.put(observation)
        # Hand the GIL to the worker now: otherwise it waits for this thread to block or for
        # the 5 ms switch interval (measured 2 ms median, instruction to model start).
        time.sleep(0)

    def _stale_input(self, now: float) -> str:
        """Why the freshest input cannot be used ('' when it can), with the reason its
        messages were refused if they were: the cause, not only the symptom."""
        rejected = self.status.rejected_inputs
        if self._joints is None:
            return self._with_rejection("no joint_states received yet", rejected.get("joint_states"))
        if now - self._joints[0] > self.config.stale_after_s:
            return self._with_rejection(f"joint_states is {now - self._joints[0]:.2f} s old",
                                        rejected.get("joint_states"))
        if not self.status.cameras:
            return f"no camera publishes (waiting on {', '.join(self.camera_topics.values())})"
        for name in self.status.cameras:
            topic = self.camera_topics[name]
            if name not in self._images:
                return self._with_rejection(f"no image yet from camera '{name}' (waiting on {topic})",
                                            rejected.get(name))
            age = now - self._images[name][0]
            if age > self.config.stale_after_s:
                return self._with_rejection(f"camera '{name}' image is {age:.2f} s old ({topic})",
                                            rejected.get(name))
        return ""

    @staticmethod
    def _with_rejection(problem: str, reason: str | None) -> str:
        return f"{problem}: {reason}" if reason else problem

    def _snapshot(self, now: float) -> _Observation:
        stamp, positions, stamp_ns = self._joints
        images = {name: self._images[name] for name in self.status.cameras}
        oldest = min([stamp, *(t for t, _ in images.values())])
        observation = _Observation(
            time=stamp, stamp_ns=stamp_ns, age=now - oldest,
            images={name: rgb for name, (_, rgb) in images.items()},
            state=self.units.radians_to_lerobot(positions), positions=positions,
            task=self.status.instruction, generation=self._generation)
        if self.rtc and self._model_chunk is not None and self.schedule.current is not None:
            observation.rtc_prefix = self._rtc_prefix(now)
            # As LeRobot's RTC engine: the delay is the worst recent latency, in actions.
            observation.rtc_delay = math.ceil(max(self._latencies, default=0.0) * self.config.fps)
        return observation

    def _update_cameras(self) -> None:
        """Absent: no publisher and never an image. Log the set whenever it changes."""
        if self._publishers is None:
            return  # not looked yet: every camera is awaited
        absent = tuple(name for name in self.camera_topics
                       if not self._publishers.get(name) and name not in self._images)
        if absent == self.status.absent_cameras and self._cameras_logged:
            return
        self._cameras_logged = True
        self.status.absent_cameras = absent
        self.status.cameras = tuple(name for name in self.camera_topics if name not in absent)
        listed = ", ".join(f"{name} ({self.camera_topics[name]})" for name in self.status.cameras)
        missing = ", ".join(f"{name} ({self.camera_topics[name]})" for name in absent)
        if not self.status.cameras:
            self._log("warn", f"no camera publishes: holding until one of {missing} does (camera_map "
                              "maps your camera names to the checkpoint's, e.g. front=camera1)")
        elif absent:
            self._log("info", f"cameras in use: {listed}; absent, left out of the observation "
                              f"(no publisher): {missing}")
        else:
            self._log("info", f"cameras in use: {listed}")

    def status_message(self) -> str:
        """The status message, which also names absent cameras, or says that none publishes."""
        message = self.status.message
        if not self.status.cameras:
            note = "no camera publishes"
            if message.startswith(note):
                return message
        elif self.status.absent_cameras:
            note = "absent cameras: " + ", ".join(self.status.absent_cameras)
        else:
            return message
        return f"{message}; {note}" if message else note

    def _rtc_prefix(self, now: float):
        """The unexecuted model-space actions of the current chunk, padded or cut to the
        execution horizon (what LeRobot's RTC engine passes as prev_chunk_left_over)."""
        import torch

        times, actions = self._model_chunk
        left = actions[torch.from_numpy(times > now)]
        horizon = self.config.rtc_execution_horizon
        prefix = torch.zeros((horizon, actions.shape[1]), dtype=actions.dtype, device=actions.device)
        prefix[: min(horizon, len(left))] = left[:horizon]
        return prefix

    # --- the worker ------------------------------------------------------------------------------
    def _work(self) -> None:
        while (observation := self._requests.get()) is not None:
            started = time.perf_counter()
            try:
                noise = (self.runtime.make_noise(self.config.noise_seed)
                         if self.config.noise_seed >= 0 else None)
                actions = self.runtime.infer(observation.images, observation.state,
                                             observation.task, noise=noise,
                                             rtc_prefix=observation.rtc_prefix,
                                             rtc_delay=observation.rtc_delay)
                radians = self.units.lerobot_chunk_to_radians(actions)
            except Exception as error:  # the model failing must not kill the node
                message = f"inference failed: {error!r}".splitlines()[0]
                with self._lock:
                    self._busy = False
                    repeated = self.status.message == message
                    self._set(ERROR, message)
                if not repeated:  # it is retried at the control rate: log each new failure once
                    self._log("error", message)
                continue
            with self._lock:
                self._busy = False
                if observation.generation != self._generation:
                    self.status.dropped_results += 1  # the instruction changed meanwhile
                    continue
                now = self._clock()
                # sync: action k is due k+1 periods after arrival (the first one is not past)
                first_s = 1.0 / self.config.fps if self.sync else 0.0
                chunk = self.schedule.merge(now + first_s if self.sync else observation.time, radians)
                if self.rtc:
                    self._model_chunk = (chunk.times, self.runtime.last_model_actions)
                self.status.inference_latency = now - observation.time
                self._latencies = [*self._latencies[-9:], self.status.inference_latency]
                self.status.observation_age = observation.age
                if chunk.times[-1] <= now:
                    # Slower than a whole chunk: every action is already past. Say so, once.
                    message = (f"inference took {self.status.inference_latency:.2f} s, longer than "
                               f"a chunk ({len(chunk) / self.config.fps:.2f} s): the arm holds")
                    if self.status.message != message:
                        self._log("warn", message)
                    self._set(HOLDING, message)
                    continue
                self.status.chunks_published += 1
                self._set(RUNNING, f"last inference took {time.perf_counter() - started:.3f} s")
                try:
                    self._publish(ChunkOut(0 if self.sync else observation.stamp_ns,
                                           self.units.joints, chunk.actions, self.config.fps,
                                           first_s=first_s))
                except Exception as error:  # a failing publisher must not end the worker
                    self._log("error", f"publishing a chunk failed: {error!r}")

    def _hold(self, now: float) -> None:
        """Publish one point at the current position, one control period after it arrives:
        timed from arrival, it cannot come too late however slow the machine or the network
        (timed from ``now`` it did, and the arm rejected it)."""
        if self._joints is None:
            return
        try:
            self._publish(ChunkOut(0, self.units.joints, self._joints[1][None, :], self.config.fps,
                                   first_s=1.0 / self.config.fps))
        except Exception as error:  # a failing publisher must not end the caller's callback
            self._log("error", f"publishing a hold failed: {error!r}")

    def _forget_chunks(self) -> None:
        self.schedule.clear()
        self._model_chunk = None

    def _set(self, state: str, message: str) -> None:
        self.status.state, self.status.message = state, message

    def close(self) -> None:
        while True:  # replace a pending request (if any) with the stop sentinel
            try:
                self._requests.put_nowait(None)
                break
            except queue.Full:
                try:
                    self._requests.get_nowait()
                except queue.Empty:
                    pass  # the worker took it meanwhile
        self._worker.join(timeout=30)
