"""Label a recorded bag: read its streams (header stamps), call `label_streams`.

Frames are subsampled to `frame_rate_hz` while reading: a frame is kept when it is the
first of its 1/rate time slot (by header stamp, so the choice does not depend on the
order the messages arrive in), and only kept frames are decoded. In rosbag2 (CDR) bags
the header stamp of an image is read straight from the serialised bytes, so skipped
images are never deserialised.

Extra cameras (`LabellingParams.view_topics`) are read after the main pass: their stamps
first, then only the frames that match a kept main-camera frame (nearest header stamp
within `view_match_tolerance_s`, `match_views`) are decoded. A view without a match is
masked for that frame (and counted as `views_missing_<k>` by `label_streams`), never
filled in. An extra
camera whose images have another size than the main camera's is an error (LabelError):
views are stored at the main camera's size and are not resized, since stretching another
aspect ratio or field of view would change what the TCN learns to match.
"""
from __future__ import annotations

from dataclasses import dataclass, field
import logging
from pathlib import Path
import struct
from typing import Any, Callable, TYPE_CHECKING

import numpy as np

from ssl_robot.bags.fastcdr import FieldReader, READERS
from ssl_robot.bags.reader import BagReader
from ssl_robot.bags.typestore import cdr_header_stamp_ns
from ssl_robot.labelling import LabelError
from ssl_robot.labelling.buffers import FrameAdmission
from ssl_robot.labelling.descriptor import wheels_from_joint_states
from ssl_robot.labelling.params import absolute, LabellingParams
from ssl_robot.labelling.scan import scan_fields, ScanSectorReader
from ssl_robot.labelling.streams import label_streams, LabelResult, match_views, SensorStreams
from ssl_robot.msgconv import image_to_rgb, MessageError, odometry_to_pose2d, stamp_ns

if TYPE_CHECKING:
    from collections.abc import Sequence

_LOG = logging.getLogger(__name__)

#: Extra streams read for evaluation when present (simulator bags).
GROUND_TRUTH_TOPIC = '/ground_truth/odom'
WORLD_TOPIC = '/sim/world'


@dataclass
class BagStreams:
    """A bag's streams plus what reading them found."""

    streams: SensorStreams
    counts: dict[str, int] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    has_camera: bool = True
    ground_truth: tuple[np.ndarray, np.ndarray] | None = None
    world_json: str | None = None
    duration_s: float = 0.0


@dataclass
class LabelledBag:
    """Result of `label_bag`: dataset rows, the labelling result, provenance, notes."""

    paths: list[str]
    result: LabelResult
    bag: BagStreams
    params: LabellingParams

    @property
    def rows(self) -> dict[str, np.ndarray]:
        return self.result.rows

    @property
    def provenance(self) -> dict[str, Any]:
        return {'paths': self.paths, 'params': self.params.as_dict(),
                'counts': {**self.bag.counts, **self.result.counts}, 'notes': self.bag.notes}


def read_bag_streams(paths: Sequence[Path | str], params: LabellingParams, *,
                     progress: Callable[[float, float], None] | None = None,
                     read_ground_truth: bool = True, frames_only: bool = False) -> BagStreams:
    """Read everything the labeller needs from one recording (one or more bag files).

    With `frames_only` only the cameras are read (frames, intrinsics, extra views): a
    camera-only bag needs no odometry, and every label of its frames is unknown.

    Raises:
        LabelError: Without an odometry stream (without a camera stream when
            `frames_only`), or for an extra camera whose images have another size than
            the main camera's.
        BagError: When the bag cannot be read.
    """
    image_t, info_t = absolute(params.image_topic), absolute(params.camera_info_topic)
    odom_t, imu_t, cmd_t = (absolute(params.odom_topic), absolute(params.imu_topic),
                            absolute(params.cmd_vel_topic))
    range_ts = [absolute(t) for t in params.range_topics]
    # The same frame admission as the live labeller's (one frame per rate slot, decoded,
    # of the first frame's size), its drop counts merged into ours below.
    admission = FrameAdmission(params.frame_rate_hz)
    counts = {'frames_read': 0, 'messages_bad': 0}
    notes: list[str] = []
    frames: list[np.ndarray] = []
    frame_stamps: list[int] = []
    k_matrix = None
    rng = {t: ([], []) for t in range_ts}
    odom_s, odom_p, odom_v = [], [], []
    imu_s, imu_a, imu_g = [], [], []
    cmd_s, cmd_v = [], []
    gt_s, gt_p = [], []
    bump_t = absolute(params.bumper_topic) if params.bumper_topic else ''
    bump_s, bump_f = [], []
    joint_t = absolute(params.joint_states_topic) if params.joint_states_topic else ''
    joints: tuple[list, list, list, list] = ([], [], [], [])   # stamps, names, vel, effort
    world_json = None
    with BagReader(paths) as bag:
        topics = bag.topics
        has_camera = image_t in topics
        scan = _read_scan(bag, params, counts, notes, read=not frames_only)
        if frames_only and not has_camera:
            raise LabelError(
                f'{", ".join(map(str, paths))}: no camera stream (topic {image_t}); the bag '
                f'has {", ".join(sorted(topics)) or "no topics"} (remap topics with '
                f'--remap KEY:=TOPIC)')
        if odom_t not in topics and not frames_only:
            camera = '' if has_camera else f' and no camera stream (topic {image_t})'
            frames = ('; --frames-only labels its camera frames alone (every label masked)'
                      if has_camera else '')
            raise LabelError(
                f'{", ".join(map(str, paths))}: no odometry stream (topic {odom_t}){camera}; '
                f'{_scan_note(bag, params, scan, counts)}the bag has '
                f'{", ".join(sorted(topics)) or "no topics"} (remap topics with '
                f'--remap KEY:=TOPIC){frames}')
        if not has_camera:
            notes.append(f'no camera stream (topic {image_t}): no frames to label; the '
                         f'terrain signal and poses are still computed')
        elif info_t not in topics:
            notes.append(f'no camera intrinsics (topic {info_t}): terrain labels unknown')
        for t in () if frames_only else range_ts:
            if t not in topics:
                notes.append(f'no proximity stream (topic {t}): its labels are unknown')
        if imu_t not in topics and not frames_only:
            notes.append(f'no IMU stream (topic {imu_t}): terrain labels unknown')
        if joint_t and joint_t not in topics and not frames_only:
            notes.append(f'no wheel joint states (topic {joint_t}): the wheel entries of the '
                         f'terrain descriptor are masked')
        wanted = [t for t in (image_t, info_t, odom_t, imu_t, cmd_t, *range_ts, bump_t,
                              joint_t) if t and t in topics]
        if frames_only:
            notes.append('frames only: every label is unknown (masked)')
            wanted = [t for t in (image_t, info_t) if t in topics]
        elif read_ground_truth:
            wanted += [t for t in (GROUND_TRUTH_TOPIC, WORLD_TOPIC) if t in topics]
        start, duration = bag.start_time_ns, max(bag.duration_s, 1e-9)
        reader = bag._reader  # AnyReader: deserialises ROS 1 and ROS 2 alike
        cdr = reader.is2
        fields = {t: FieldReader(topics[t], reader.deserialize, cdr=cdr)
                  for t in (odom_t, imu_t, *range_ts) if topics.get(t) in READERS}
        for count, (conn, log_time, raw) in enumerate(bag.raw_messages(wanted)):
            topic = conn.topic
            if progress is not None and count % 1024 == 0:
                progress((log_time - start) / 1e9, duration)
            if topic == info_t and k_matrix is not None:
                continue  # the intrinsics are known: the rest are not even decoded
            try:
                if topic == image_t:
                    counts['frames_read'] += 1
                    stamp = cdr_header_stamp_ns(raw) if cdr else None
                    msg = None
                    if stamp is None:
                        msg = reader.deserialize(raw, conn.msgtype)
                        stamp = stamp_ns(msg.header)
                    if admission.slot_taken(stamp):
                        continue  # the slot has its frame: this one is not even decoded
                    rgb, why = admission.admit(stamp, msg or reader.deserialize(
                        raw, conn.msgtype))
                    if rgb is None:
                        _LOG.debug(why)
                        continue
                    frames.append(rgb)
                    frame_stamps.append(stamp)
                    continue
                # High-rate streams: only the fields used, read straight from the bytes
                # (checked against full deserialisation; see fastcdr).
                if topic == odom_t and topic in fields:
                    stamp, pose, speed = fields[topic](raw)
                    odom_s.append(stamp)
                    odom_p.append(pose)
                    odom_v.append(speed)
                    continue
                if topic == imu_t and topic in fields:
                    stamp, accel, gyro = fields[topic](raw)
                    imu_s.append(stamp)
                    imu_a.append(accel)
                    imu_g.append(gyro)
                    continue
                if topic in rng and topic in fields:
                    stamp, value = fields[topic](raw)
                    rng[topic][0].append(stamp)
                    rng[topic][1].append(value)
                    continue
                msg = reader.deserialize(raw, conn.msgtype)
                if topic in (odom_t, imu_t) or topic in rng:
                    raise MessageError(f'{topic} carries {conn.msgtype}, not the type the '
                                       f'labeller reads')
                if topic == cmd_t:
                    # geometry_msgs/Twist has no header: bag time is its only time.
                    twist = getattr(msg, 'twist', msg)
                    cmd_s.append(stamp_ns(msg.header) if hasattr(msg, 'header') else log_time)
                    cmd_v.append(float(twist.linear.x))
                elif topic == info_t:
                    if k_matrix is None:
                        k_matrix = np.asarray(msg.k, np.float64).reshape(3, 3)
                elif topic == GROUND_TRUTH_TOPIC:
                    gt_s.append(stamp_ns(msg.header))
                    gt_p.append(odometry_to_pose2d(msg))
                elif topic == bump_t:
                    # geometry_msgs/WrenchStamped: the force on the robot (bumper, contacts).
                    force = msg.wrench.force
                    bump_s.append(stamp_ns(msg.header))
                    bump_f.append(float(np.hypot(force.x, force.y)))
                elif topic == WORLD_TOPIC and world_json is None:
                    world_json = str(msg.data)
                elif topic == joint_t:
                    # sensor_msgs/JointState: wheel velocity (rad/s) and effort per joint.
                    for part, value in zip(joints, (stamp_ns(msg.header), tuple(msg.name),
                                                    np.asarray(msg.velocity, np.float64),
                                                    np.asarray(msg.effort, np.float64))):
                        part.append(value)
            except (MessageError, AttributeError, ValueError, struct.error) as exc:
                counts['messages_bad'] += 1
                _LOG.debug('message on %s dropped: %s', topic, exc)
        image_hw = admission.image_hw
        counts.update(admission.counts)
        views, views_mask = _read_views(bag, params, np.asarray(frame_stamps, np.int64),
                                        image_hw, counts, notes)
    if has_camera and not frames:
        notes.append(f'camera stream {image_t} has no usable frame')
    if k_matrix is not None and image_hw is not None and k_matrix[0, 0] <= 0:
        notes.append('camera intrinsics are zero: terrain labels unknown')
        k_matrix = None
    h, w = image_hw or (0, 0)
    streams = SensorStreams(
        frame_stamps=np.asarray(frame_stamps, np.int64),
        frames=np.stack(frames) if frames else np.zeros((0, h, w, 3), np.uint8),
        k_matrix=k_matrix, image_hw=tuple(image_hw) if image_hw else None,
        range_stamps=[np.asarray(rng[t][0], np.int64) for t in range_ts]
        + ([scan[0]] * len(params.scan_sectors) if scan is not None else []),
        ranges=[np.asarray(rng[t][1], np.float64) for t in range_ts]
        + (list(scan[1].T) if scan is not None else []),
        odom_stamps=np.asarray(odom_s, np.int64), odom_poses=np.asarray(odom_p).reshape(-1, 3),
        odom_speed=np.asarray(odom_v, np.float64),
        imu_stamps=np.asarray(imu_s, np.int64),
        imu_accel=np.asarray(imu_a, np.float64).reshape(-1, 3),
        imu_gyro=np.asarray(imu_g, np.float64).reshape(-1, 3),
        cmd_stamps=np.asarray(cmd_s, np.int64), cmd_speed=np.asarray(cmd_v, np.float64),
        views=views, views_mask=views_mask,
        bumper_stamps=np.asarray(bump_s, np.int64) if bump_s else None,
        bumper_force=np.asarray(bump_f, np.float64) if bump_s else None,
        wheels=wheels_from_joint_states(*joints, left=params.wheel_joints[0],
                                        right=params.wheel_joints[1],
                                        radius_m=params.wheel_radius_m) if joints[0] else None)
    gt = (np.asarray(gt_s, np.int64), np.asarray(gt_p).reshape(-1, 3)) if gt_s else None
    return BagStreams(streams, counts, notes, has_camera, gt, world_json, duration)


def _read_scan(bag: BagReader, params: LabellingParams, counts: dict[str, int],
               notes: list[str], *, read: bool = True
               ) -> tuple[np.ndarray, np.ndarray] | None:
    """The scan sectors' readings: (stamps int64 [T], readings [T, S]), None without a scan.

    Without the scan topic in the bag the sectors read NaN (their labels unknown) and a
    note says so; `counts` gets the scans read and beams found invalid.
    """
    if not params.scan_topic:
        return None
    topic, n = absolute(params.scan_topic), len(params.scan_sectors)
    stamps: list[int] = []
    rows: list[np.ndarray] = []
    sectors = ScanSectorReader(params.scan_sectors)
    if not read:
        pass
    elif topic not in bag.topics:
        notes.append(f'no laser scan (topic {topic}): the labels of its sectors are unknown')
    elif bag.topics[topic] != 'sensor_msgs/msg/LaserScan':
        raise LabelError(f'{topic} carries {bag.topics[topic]}, not sensor_msgs/msg/LaserScan')
    else:
        for conn, _, raw in bag.raw_messages([topic]):
            try:
                msg = bag.deserialize(raw, conn.msgtype)
                ranges, geometry = scan_fields(msg)
                rows.append(sectors(ranges, **geometry))
                stamps.append(stamp_ns(msg.header))
            except (AttributeError, ValueError, struct.error) as exc:
                counts['messages_bad'] = counts.get('messages_bad', 0) + 1
                _LOG.debug('scan dropped: %s', exc)
    counts.update(sectors.counts)
    return np.asarray(stamps, np.int64), np.asarray(rows, np.float64).reshape(-1, n)


def _scan_note(bag: BagReader, params: LabellingParams,
               scan: tuple[np.ndarray, np.ndarray] | None, counts: dict[str, int]) -> str:
    """What the bag's laser scans gave, for the message of a bag that cannot be labelled."""
    scans = [t for t, kind in bag.topics.items() if kind == 'sensor_msgs/msg/LaserScan']
    if scan is not None and len(scan[0]):
        names = ', '.join(s.name for s in params.scan_sectors)
        return (f'its laser scan {absolute(params.scan_topic)} was read as proximity sensors '
                f'{names} ({len(scan[0])} scans, {counts.get("scan_beams_invalid", 0)} '
                f'invalid beams), but labels need odometry, and a camera for frames; ')
    if scans:
        return (f'laser scans on {", ".join(scans)} could serve as proximity sensors '
                f'(--remap scan:={scans[0]}), but labels need odometry, and a camera for '
                f'frames; ')
    return ''


def _read_views(bag: BagReader, params: LabellingParams, frame_stamps: np.ndarray,
                image_hw: tuple[int, int] | None, counts: dict[str, int], notes: list[str]
                ) -> tuple[np.ndarray | None, np.ndarray | None]:
    """The extra cameras' frames matched to the kept frames: (views, views_mask) or Nones.

    Two passes over the extra image topics: header stamps only, then decoding just the
    matched messages (the k-th message of a topic is the same in both passes).

    Raises:
        LabelError: For an extra camera whose images have another size than the main one's.
    """
    if not params.view_topics:
        return None, None
    h, w = image_hw or (0, 0)
    n, v_count = len(frame_stamps), len(params.view_topics)
    views = np.zeros((n, v_count, h, w, 3), np.uint8)
    mask = np.zeros((n, v_count), bool)
    tolerance_ns = int(round(params.view_match_tolerance_s * 1e9))
    reader = bag._reader
    topics = [absolute(t) for t in params.view_topics]
    present = [t for t in topics if t in bag.topics]
    for t in topics:
        if t not in bag.topics:
            notes.append(f'no extra camera stream (topic {t}): that view is masked in every '
                         f'frame')
    stamps: dict[str, list[int]] = {t: [] for t in present}
    if n and present:
        for conn, _, raw in bag.raw_messages(present):
            try:
                stamp = cdr_header_stamp_ns(raw) if reader.is2 else stamp_ns(
                    reader.deserialize(raw, conn.msgtype).header)
            except (AttributeError, ValueError, struct.error):
                stamp = -(1 << 62)  # unreadable: never matches
            stamps[conn.topic].append(stamp)
    # (topic, k-th message of the topic) -> frames it is the view of.
    wanted: dict[tuple[str, int], list[tuple[int, int]]] = {}
    for v, t in enumerate(topics):
        if t in stamps:
            for row, k in enumerate(match_views(frame_stamps, stamps[t], tolerance_ns)):
                if k >= 0:
                    wanted.setdefault((t, int(k)), []).append((row, v))
    if wanted:
        seen = dict.fromkeys(present, -1)
        for conn, _, raw in bag.raw_messages(present):
            seen[conn.topic] += 1
            rows = wanted.get((conn.topic, seen[conn.topic]))
            if rows is None:
                continue
            try:
                rgb = image_to_rgb(reader.deserialize(raw, conn.msgtype))
            except (MessageError, AttributeError, ValueError) as exc:
                counts['views_bad_encoding'] = counts.get('views_bad_encoding', 0) + len(rows)
                _LOG.debug('view frame on %s dropped: %s', conn.topic, exc)
                continue
            if rgb.shape[:2] != (h, w):
                raise LabelError(
                    f'extra camera {conn.topic} has {rgb.shape[1]}x{rgb.shape[0]} images, the '
                    f'main camera {absolute(params.image_topic)} {w}x{h}: views must have the '
                    f"main camera's size (they are not resized)")
            for row, v in rows:
                views[row, v] = rgb
                mask[row, v] = True
    return views, mask


def label_bag(paths: Sequence[Path | str] | Path | str, params: LabellingParams, *,
              progress: Callable[[float, float], None] | None = None,
              read_ground_truth: bool = True, frames_only: bool = False) -> LabelledBag:
    """Read one recording and label its frames.

    Args:
        paths: The bag (a rosbag2 directory, an .mcap/.db3 file, a ROS 1 .bag), or
            several files of one recording.
        params: Labelling parameters (`labelling_params(load_node_parameters('labeller'))`).
        progress: Called with (seconds of bag read, bag duration).
        read_ground_truth: Also read simulator truth (/ground_truth/odom, /sim/world)
            when the bag has it, for evaluation.
        frames_only: Read only the cameras (no odometry needed); every label is masked.

    Returns:
        The labelled bag; without a camera stream it has no rows but still its
        trajectory and terrain signal, and `bag.notes` says so.

    Raises:
        LabelError: Without odometry (without a camera when `frames_only`).
        BagError: When the bag cannot be read.
    """
    if isinstance(paths, (str, Path)):
        paths = [paths]
    bag = read_bag_streams(paths, params, progress=progress,
                           read_ground_truth=read_ground_truth, frames_only=frames_only)
    result = label_streams(bag.streams, params)
    return LabelledBag([str(p) for p in paths], result, bag, params)
