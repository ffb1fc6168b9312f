"""Episode bags to a LeRobotDataset (v3.0) that ``lerobot-train`` reads (``smolvla-ros convert``).

One bag = one episode. Each frame at ``k / fps`` takes, per topic, the latest message
measured at or before it (by the messages' own stamps: a recording that missed its nominal
rate is resampled, not assumed), and gaps longer than a frame are reported:

- ``observation.state``: the follower's ``joint_states``, in LeRobot units (units module) of
  the follower's calibration;
- ``action``: the leader's ``leader/joint_states`` (teleoperation) in LeRobot units of the
  leader's own calibration, which is what ``lerobot-record`` stores (the leader's normalised
  ``get_action()``); or else the trajectory the arm executed from ``action_chunk``, replayed
  through the same TrajectoryExecutor the arm nodes run, in the follower's units;
- ``observation.images.<name>``: ``cameras/<name>/image_raw`` (or ``/compressed``), as video
  (LeRobot's default, lossy), or with ``video=False`` (``--no-video``) as lossless PNG frames,
  as ``lerobot-record --dataset.video=false`` stores them: training sees exactly the pixels the
  policy will see, but LeRobot's loader reads them slower (measured in the README);
- ``task``: the instruction in force at the frame (episode metadata and ``task_instruction``
  messages; ``--task`` where none is).

Frames run from the moment every needed topic has data to the moment one of them ends.
Every bag is checked before anything is written, so a missing topic costs nothing.

Each arm's calibration comes from, first to last: ``--robot-id`` / ``--leader-id`` (files, or
``mock``); the calibration stored in the bag (what was in force when it was recorded); the id
stored in the bag (its file here). A bag with a leader but no leader calibration at all (from
an older recorder, or ``ros2 bag record``) falls back to the follower's, with a warning.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from smolvla_ros.calibration import (
    MOCK_ROBOT_ID, calibration_from_json, calibration_path, robot_calibration,
)
from smolvla_ros.recording.bag_reader import (
    ACTION_CHUNK, JOINT_STATES, LEADER_JOINT_STATES, TASK_INSTRUCTION, BagContents, BagError,
    iter_images, read_bag,
)
from smolvla_ros.recording.episode import ROBOT_TYPE
from smolvla_ros.trajectory import TrajectoryError, TrajectoryExecutor
from smolvla_ros.units import SO101_JOINTS, ArmUnits

GAP_TOLERANCE = 1.25  # a gap is longer than this many frame periods (jitter is not a gap)


@dataclass
class ConvertConfig:
    output: Path
    fps: int = 30
    repo_id: str = "local/so101_demonstrations"
    task: str = ""  # where no instruction is in force
    action: str = "auto"  # leader | trajectory | auto (leader if the bag has it)
    robot_id: str = ""  # follower calibration file; '' = the calibration stored in the bag
    leader_id: str = ""  # leader calibration file; '' = the calibration stored in the bag
    calibration_dir: str = ""
    use_degrees: bool = True
    namespace: str = ""  # '' = the recorder's, stored in the bag
    robot_type: str = ""  # '' = stored in the bag, else LeRobot's so_follower
    video: bool = True  # cameras as video (LeRobot's default); False = lossless PNG frames


@dataclass
class EpisodePlan:
    """One bag turned into frames, everything but the images decoded."""

    bag: BagContents
    action_source: str
    times_ns: np.ndarray  # (F,) frame times
    state: np.ndarray  # (F, 6) LeRobot units
    action: np.ndarray  # (F, 6) LeRobot units
    tasks: list[str]
    images: dict[str, list[tuple[int, int]]]  # camera -> place of each frame's image
    gaps: list[str] = field(default_factory=list)
    skipped_without_task: int = 0
    calibrations: dict[str, str] = field(default_factory=dict)  # role -> where it came from
    warnings: list[str] = field(default_factory=list)

    @property
    def frames(self) -> int:
        return len(self.times_ns)


# custom_data keys of each arm's calibration (EpisodeInfo), and the option that overrides it
STORED_CALIBRATION = {"follower": ("calibration_id", "calibration_json"),
                      "leader": ("leader_calibration_id", "leader_calibration_json")}
OPTION = {"follower": "--robot-id", "leader": "--leader-id"}
DEFAULT_ROBOT_ID = "so101_follower"  # the follower's id for bags that store none


def _units(robot_id: str, role: str, config: ConvertConfig, why: str = "") -> tuple[ArmUnits, str]:
    """The arm's units from its calibration file (or the built-in ``mock``), and its source."""
    path = calibration_path(robot_id, role, config.calibration_dir)
    try:
        calibration = robot_calibration(robot_id, role, config.calibration_dir)
    except FileNotFoundError:
        raise BagError(f"no {role} calibration {path}{why}: LeRobot units need it (pass "
                       f"{OPTION[role]} / --calibration-dir, or {OPTION[role]} mock for the emulated "
                       "or simulated arm)") from None
    except ValueError as error:
        raise BagError(str(error)) from None
    source = "built-in (mock)" if robot_id == MOCK_ROBOT_ID else str(path)
    return _arm_units(calibration, config, source), f"{robot_id} ({source})"


def _arm_units(calibration, config: ConvertConfig, source: str) -> ArmUnits:
    try:
        return ArmUnits(calibration, use_degrees=config.use_degrees)
    except ValueError as error:
        raise BagError(f"{source}: {error}") from None


def arm_units(bag: BagContents, role: str, config: ConvertConfig) -> tuple[ArmUnits, str] | None:
    """One arm's units and where its calibration came from: the option (a file), else the
    calibration stored in the bag, else the file of the id stored in the bag; None if none."""
    explicit = config.robot_id if role == "follower" else config.leader_id
    if explicit:
        return _units(explicit, role, config)
    id_key, json_key = STORED_CALIBRATION[role]
    stored_id = bag.custom_data.get(id_key, "")
    if bag.custom_data.get(json_key):
        source = f"{bag.path}: the {role} calibration stored in the bag"
        try:
            calibration = calibration_from_json(bag.custom_data[json_key], source)
        except ValueError as error:
            raise BagError(str(error)) from None
        return _arm_units(calibration, config, source), f"{stored_id or '?'} (stored in the bag)"
    if stored_id:
        return _units(stored_id, role, config,
                      f" ({bag.path} stores the id '{stored_id}' but not its calibration)")
    return None


def _task_events(bag: BagContents) -> list[tuple[int, str]]:
    """When each instruction came into force: the episode's own record, then the messages."""
    events = [(int(ns), text) for ns, text in json.loads(bag.custom_data.get("tasks", "[]"))]
    if not events and bag.custom_data.get("task"):
        events = [(0, bag.custom_data["task"])]
    return sorted(events + bag.instructions, key=lambda event: event[0])


def _latest(stamps: np.ndarray, times: np.ndarray) -> np.ndarray:
    """Index of the latest stamp at or before each time."""
    return np.searchsorted(stamps, times, side="right") - 1


def _gaps(name: str, stamps: np.ndarray, start: int, stop: int, fps: int) -> str | None:
    inside = stamps[(stamps >= start) & (stamps <= stop)]
    steps = np.diff(inside) * 1e-9
    long = steps > GAP_TOLERANCE / fps
    if not long.any():
        return None
    worst = int(np.argmax(steps))
    return (f"{name}: {int(long.sum())} gap(s) longer than a frame, longest {steps[worst]:.3f} s "
            f"at {(inside[worst] - start) * 1e-9:.2f} s")


def _executed(bag: BagContents, times: np.ndarray, follower_at: np.ndarray, origin: int,
              joints: tuple[str, ...]) -> np.ndarray:
    """The target the arm's executor held at each frame, replaying the chunks as they came;
    before the first chunk the arm held where it was (``follower_at``, at each frame)."""
    executor = TrajectoryExecutor(joints)
    out = np.empty((len(times), len(joints)))
    pending = sorted(bag.chunks, key=lambda chunk: chunk[0])
    k = 0
    for f, t in enumerate(times):
        while k < len(pending) and pending[k][0] <= t:
            receive_ns, start_ns, chunk = pending[k]
            now = (receive_ns - origin) * 1e-9
            start = (start_ns - origin) * 1e-9 if start_ns else 0.0
            current = bag.follower.positions[max(_latest(bag.follower.stamps, np.array([receive_ns]))[0], 0)]
            try:
                executor.replace(replace(chunk, start=start), now, current)
            except TrajectoryError:
                pass  # the arm rejects a chunk whose points all lie in the past; so does replay
            k += 1
        target = executor.sample((t - origin) * 1e-9)
        out[f] = follower_at[f] if target is None else target
    return out


def action_source(bag: BagContents, config: ConvertConfig) -> str:
    """leader or trajectory, as ``config.action`` asks and the bag allows."""
    if bag.follower is None:
        raise BagError(f"{bag.path}: no '{JOINT_STATES}' topic (observation.state comes from it); "
                       f"topics in the bag: {bag.topics}")
    source = config.action
    if source == "auto":
        source = "leader" if bag.leader is not None else "trajectory"
    if source == "leader" and bag.leader is None:
        raise BagError(f"{bag.path}: no '{LEADER_JOINT_STATES}' topic for the action; "
                       f"topics in the bag: {bag.topics}")
    if source == "trajectory" and not bag.chunks:
        raise BagError(f"{bag.path}: no '{LEADER_JOINT_STATES}' or usable '{ACTION_CHUNK}' topic for "
                       f"the action; topics in the bag: {bag.topics}")
    return source


def plan_episode(bag: BagContents, config: ConvertConfig, source: str, follower_units: ArmUnits,
                 leader_units: ArmUnits | None) -> EpisodePlan:
    """``source``: ``action_source``'s; ``leader_units`` converts ``leader/joint_states``, only
    needed for a leader action."""
    streams = {JOINT_STATES: bag.follower.stamps}
    streams.update({camera.topic: camera.stamps for camera in bag.cameras.values()})
    if source == "leader":
        streams[LEADER_JOINT_STATES] = bag.leader.stamps
    first = max(int(stamps[0]) for stamps in streams.values())
    if source == "trajectory":
        first = max(first, min(receive for receive, _, _ in bag.chunks))
    last = min(int(stamps[-1]) for stamps in streams.values())
    period_ns = 1e9 / config.fps
    count = int(np.floor((last - first) / period_ns)) + 1 if last >= first else 0
    times = (first + np.round(np.arange(count) * period_ns)).astype(np.int64)

    events = _task_events(bag)
    event_stamps = np.array([ns for ns, _ in events], dtype=np.int64)
    active = _latest(event_stamps, times) if events else np.full(count, -1)
    tasks = [events[i][1] if i >= 0 and events[i][1] else config.task for i in active]
    keep = np.array([bool(task) for task in tasks], dtype=bool)
    if count and not keep.any():
        raise BagError(f"{bag.path}: no task: the bag has no '{TASK_INSTRUCTION}' messages or episode "
                       "task; pass --task 'what the demonstration does'")

    follower_at = bag.follower.positions[_latest(bag.follower.stamps, times)]
    if source == "leader":
        action = to_lerobot(leader_units, bag.leader.positions[_latest(bag.leader.stamps, times)])
    else:
        origin = min(int(bag.follower.stamps[0]), min(r for r, _, _ in bag.chunks)) - 10**10
        executed = _executed(bag, times, follower_at, origin, follower_units.joints)
        action = to_lerobot(follower_units, executed)
    state = to_lerobot(follower_units, follower_at)
    images = {name: [camera.places[i] for i in _latest(camera.stamps, times[keep])]
              for name, camera in bag.cameras.items()}
    gaps = [gap for name, stamps in streams.items()
            if (gap := _gaps(name, stamps, first, last, config.fps))]
    return EpisodePlan(bag, source, times[keep], state[keep], action[keep],
                       [task for task, k in zip(tasks, keep) if k], images, gaps,
                       int((~keep).sum()))


def to_lerobot(units: ArmUnits, radians: np.ndarray) -> np.ndarray:
    """Rows of radians to LeRobot units, as float32 (LeRobot's dtype for state and action)."""
    return np.array([units.radians_to_lerobot(row) for row in radians], dtype=np.float32)


def dataset_features(joints: tuple[str, ...], cameras: dict[str, tuple[int, int, int]],
                     video: bool = True) -> dict:
    """The SO-101 follower's features, as LeRobot's own recording names them."""
    motors = [f"{joint}.pos" for joint in joints]
    features = {
        "observation.state": {"dtype": "float32", "shape": (len(motors),), "names": motors},
        "action": {"dtype": "float32", "shape": (len(motors),), "names": motors},
    }
    for name, shape in cameras.items():
        features[f"observation.images.{name}"] = {
            "dtype": "video" if video else "image", "shape": tuple(shape), "names": ["height", "width", "channels"]}
    return features


def plan_all(bags: list[Path], config: ConvertConfig) -> list[EpisodePlan]:
    """Read and check every bag (no images yet); raises BagError before anything is written."""
    plans = []
    for path in bags:
        bag = read_bag(path, SO101_JOINTS, config.namespace)
        follower_units, follower_source = (arm_units(bag, "follower", config)
                                           or _units(DEFAULT_ROBOT_ID, "follower", config))
        calibrations, warnings = {"follower": follower_source}, []
        leader_units = None
        source = action_source(bag, config)
        if source == "leader":  # a trajectory action needs no leader
            leader = arm_units(bag, "leader", config)
            if leader is None:
                leader = follower_units, f"the follower's: {follower_source}"
                warnings.append(f"{bag.path}: the bag has '{LEADER_JOINT_STATES}' but no leader "
                                "calibration (an older recorder, or recorded without leader_id): the "
                                "action uses the follower's calibration; pass --leader-id for the "
                                "leader's own, as lerobot-record would store it")
            leader_units, calibrations["leader"] = leader
        plan = plan_episode(bag, config, source, follower_units, leader_units)
        plan.calibrations, plan.warnings = calibrations, warnings
        plans.append(plan)
    shapes = {name: camera.shape for name, camera in plans[0].bag.cameras.items()}
    for plan in plans[1:]:
        other = {name: camera.shape for name, camera in plan.bag.cameras.items()}
        if other != shapes:
            raise BagError(f"{plan.bag.path}: cameras {other} differ from {plans[0].bag.path}'s {shapes}; "
                           "one dataset needs the same cameras and sizes in every episode")
    return plans


def write_dataset(plans: list[EpisodePlan], config: ConvertConfig, progress=None):
    """Write the planned episodes; returns the finalized LeRobotDataset."""
    from lerobot.datasets.lerobot_dataset import LeRobotDataset

    if Path(config.output).exists():
        raise BagError(f"{config.output} exists; the dataset needs a new folder")
    cameras = {name: camera.shape for name, camera in plans[0].bag.cameras.items()}
    robot_type = config.robot_type or plans[0].bag.custom_data.get("robot_type") or ROBOT_TYPE
    dataset = LeRobotDataset.create(config.repo_id, config.fps, dataset_features(SO101_JOINTS, cameras, config.video),
                                    root=config.output, robot_type=robot_type, use_videos=config.video,
                                    image_writer_threads=2 * len(cameras))
    try:
        for plan in plans:
            for frame in _frames(plan):
                dataset.add_frame(frame)
                if progress is not None:
                    progress.update(1)
            dataset.save_episode()
    finally:
        dataset.finalize()
    return dataset


def _frames(plan: EpisodePlan):
    """The episode's frames in order; each image decoded once and kept only while needed."""
    def frame(k: int, images: dict) -> dict:
        out = {"observation.state": plan.state[k], "action": plan.action[k], "task": plan.tasks[k]}
        out.update({f"observation.images.{name}": images[name] for name in plan.images})
        return out

    if not plan.images:
        for k in range(plan.frames):
            yield frame(k, {})
        return
    last_use = {name: {} for name in plan.images}
    for name, places in plan.images.items():
        for k, place in enumerate(places):
            last_use[name][place] = k
    decoded: dict[str, dict] = {name: {} for name in plan.images}
    k = 0
    for name, place, rgb in iter_images(plan.bag.path, plan.bag.cameras, plan.bag.namespace):
        if place in last_use[name]:
            decoded[name][place] = rgb
        while k < plan.frames and all(plan.images[n][k] in decoded[n] for n in plan.images):
            yield frame(k, {n: decoded[n][plan.images[n][k]] for n in plan.images})
            for n in plan.images:
                if last_use[n][plan.images[n][k]] == k:
                    del decoded[n][plan.images[n][k]]
            k += 1


def convert(bags: list[Path], config: ConvertConfig, progress=None):
    plans = plan_all(bags, config)
    return plans, write_dataset(plans, config, progress)
