"""Frame admission and sensor buffers: what the live labeller and `ssl-robot label` share.

Both paths keep the same camera frames (one per `frame_rate_hz` slot, decoded, of the
first frame's size) through `FrameAdmission`, and gather odometry, IMU, proximity and
command samples into `SensorBuffer`, whose `arrays()` fill a `SensorStreams`. The live
node adds `LiveLabelBuffer`: bounded memory, readiness (a frame is labelled once its
future is in the buffer), restarts when stamps go back. Pure numpy, no rclpy: messages
are duck-typed (rclpy and rosbags messages have the same field names).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, TYPE_CHECKING

import numpy as np

from ssl_robot.labelling.descriptor import WheelData, wheels_from_joint_states
from ssl_robot.labelling.poses import wrap_angle
from ssl_robot.labelling.streams import gather_views, label_streams, match_views, SensorStreams
from ssl_robot.msgconv import image_to_rgb, MessageError

if TYPE_CHECKING:
    from ssl_robot.labelling.params import LabellingParams
    from ssl_robot.labelling.streams import LabelResult

#: Why a camera frame was not kept (the keys of `FrameAdmission.counts`).
FRAME_DROPS = ('frames_skipped_rate', 'frames_bad_encoding', 'frames_bad_size')


class FrameAdmission:
    """Which camera frames are kept, and why the others are not.

    Which camera frames are kept: the first of each `1 / frame_rate_hz` slot that decodes
    and has the size of the first kept frame. Every other frame is counted by cause.

    Args:
        frame_rate_hz: Frames kept per second (<= 0: every frame).
    """

    def __init__(self, frame_rate_hz: float) -> None:
        self.period_ns = int(round(1e9 / frame_rate_hz)) if frame_rate_hz > 0 else 1
        self.slots: set[int] = set()
        self.image_hw: tuple[int, int] | None = None
        self.counts = dict.fromkeys(FRAME_DROPS, 0)

    def slot_taken(self, stamp_ns: int) -> bool:
        """Whether a frame of this stamp's slot is kept already (counted as skipped)."""
        if stamp_ns // self.period_ns in self.slots:
            self.counts['frames_skipped_rate'] += 1
            return True
        return False

    def admit(self, stamp_ns: int, msg: Any) -> tuple[np.ndarray | None, str]:
        """Decode a frame and keep it if it fits; (rgb, '') or (None, why it was dropped).

        Call `slot_taken` first: a frame whose slot is taken should not even be decoded.
        """
        try:
            rgb = image_to_rgb(msg)
        except MessageError as exc:
            self.counts['frames_bad_encoding'] += 1
            return None, f'frame dropped: {exc}'
        if self.image_hw is None:
            self.image_hw = (int(rgb.shape[0]), int(rgb.shape[1]))
        elif rgb.shape[:2] != self.image_hw:
            self.counts['frames_bad_size'] += 1
            return None, (f'frame of size {rgb.shape[:2]} dropped: the dataset holds '
                          f'{self.image_hw}')
        self.slots.add(stamp_ns // self.period_ns)
        return rgb, ''

    def free_slot_near(self, stamp_ns: int, tolerance_ns: int) -> bool:
        """Whether a frame within `tolerance_ns` of `stamp_ns` could still be kept."""
        first = (stamp_ns - tolerance_ns) // self.period_ns
        last = (stamp_ns + tolerance_ns) // self.period_ns
        return any(slot not in self.slots for slot in range(first, last + 1))

    def forget_before(self, stamp_ns: int) -> None:
        """Drop the slots older than `stamp_ns` (bounded memory on a live stream)."""
        self.slots = {s for s in self.slots if s * self.period_ns >= stamp_ns}


@dataclass
class SensorBuffer:
    """Odometry, IMU, proximity and commanded-speed samples, in arrival order.

    Anomalies are counted as they arrive (`counts`); labelling later sorts, de-duplicates
    and splits the streams (`label_streams`), so nothing is dropped here.
    """

    n_ranges: int
    odom_max_jump_m: float = float('inf')
    odom_max_jump_rad: float = float('inf')
    odom: list[tuple[int, tuple[float, float, float], float]] = field(default_factory=list)
    imu: list[tuple[int, np.ndarray, np.ndarray]] = field(default_factory=list)
    cmd: list[tuple[int, float]] = field(default_factory=list)
    ranges: list[list[tuple[int, float]]] = field(default_factory=list)
    bumper: list[tuple[int, float]] = field(default_factory=list)
    joints: list[tuple[int, tuple[str, ...], np.ndarray, np.ndarray]] = field(
        default_factory=list)
    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(
        ('odom_out_of_order', 'odom_duplicate', 'odom_jumps', 'range_nan', 'range_too_close',
         'range_nothing'), 0))

    def __post_init__(self) -> None:
        if not self.ranges:
            self.ranges = [[] for _ in range(self.n_ranges)]

    def add_odom(self, stamp_ns: int, pose: tuple[float, float, float], speed: float) -> str:
        """Add a pose; returns '' or a note on a jump (a reset, never bridged later)."""
        note = ''
        if self.odom:
            last_stamp, last_pose, _ = self.odom[-1]
            if stamp_ns == last_stamp:
                self.counts['odom_duplicate'] += 1
            elif stamp_ns < last_stamp:
                self.counts['odom_out_of_order'] += 1
            step = float(np.hypot(pose[0] - last_pose[0], pose[1] - last_pose[1]))
            turn = abs(wrap_angle(pose[2] - last_pose[2]))
            if step > self.odom_max_jump_m or turn > self.odom_max_jump_rad:
                self.counts['odom_jumps'] += 1
                note = f'odometry jumped {step:.2f} m / {turn:.2f} rad: a reset, never bridged'
        self.odom.append((int(stamp_ns), tuple(float(v) for v in pose), float(speed)))
        return note

    def add_imu(self, stamp_ns: int, accel: np.ndarray, gyro: np.ndarray) -> None:
        self.imu.append((int(stamp_ns), np.asarray(accel, np.float64),
                         np.asarray(gyro, np.float64)))

    def add_range(self, k: int, stamp_ns: int, value: float) -> None:
        """Add reading `value` (REP-117: NaN invalid, -inf too close, +inf nothing) of sensor k."""
        if np.isnan(value):
            self.counts['range_nan'] += 1
        elif value == -np.inf:
            self.counts['range_too_close'] += 1
        elif value == np.inf:
            self.counts['range_nothing'] += 1
        self.ranges[k].append((int(stamp_ns), float(value)))

    def add_cmd(self, stamp_ns: int, speed: float) -> None:
        self.cmd.append((int(stamp_ns), float(speed)))

    def add_bumper(self, stamp_ns: int, force_n: float) -> None:
        """Add a contact sample: |force| on the robot in the ground plane (N)."""
        self.bumper.append((int(stamp_ns), float(force_n)))

    def add_joint_state(self, stamp_ns: int, names: tuple[str, ...], velocity: np.ndarray,
                        effort: np.ndarray) -> None:
        """Add a sensor_msgs/JointState sample (wheel velocity rad/s and effort)."""
        self.joints.append((int(stamp_ns), tuple(names), np.asarray(velocity, np.float64),
                            np.asarray(effort, np.float64)))

    def newest_stamps(self) -> list[int]:
        """The newest stamp of every stream that has data, odometry first."""
        out = [max(o[0] for o in self.odom)] if self.odom else []
        out += [max(r[0] for r in rs) for rs in self.ranges if rs]
        out += [max(i[0] for i in self.imu)] if self.imu else []
        return out

    def forget_before(self, stamp_ns: int) -> None:
        """Drop samples older than `stamp_ns`."""
        self.odom = [o for o in self.odom if o[0] >= stamp_ns]
        self.imu = [i for i in self.imu if i[0] >= stamp_ns]
        self.cmd = [c for c in self.cmd if c[0] >= stamp_ns]
        self.ranges = [[r for r in rs if r[0] >= stamp_ns] for rs in self.ranges]
        self.bumper = [b for b in self.bumper if b[0] >= stamp_ns]
        self.joints = [j for j in self.joints if j[0] >= stamp_ns]

    def arrays(self) -> dict[str, Any]:
        """The `SensorStreams` fields of these samples."""
        return dict(
            range_stamps=[np.array([r[0] for r in rs], np.int64) for rs in self.ranges],
            ranges=[np.array([r[1] for r in rs], np.float64) for rs in self.ranges],
            odom_stamps=np.array([o[0] for o in self.odom], np.int64),
            odom_poses=np.array([o[1] for o in self.odom], np.float64).reshape(-1, 3),
            odom_speed=np.array([o[2] for o in self.odom], np.float64),
            imu_stamps=np.array([i[0] for i in self.imu], np.int64),
            imu_accel=np.array([i[1] for i in self.imu], np.float64).reshape(-1, 3),
            imu_gyro=np.array([i[2] for i in self.imu], np.float64).reshape(-1, 3),
            cmd_stamps=np.array([c[0] for c in self.cmd], np.int64),
            cmd_speed=np.array([c[1] for c in self.cmd], np.float64),
            bumper_stamps=np.array([b[0] for b in self.bumper], np.int64) if self.bumper
            else None,
            bumper_force=np.array([b[1] for b in self.bumper], np.float64) if self.bumper
            else None)


class LiveLabelBuffer:
    """The live labeller's memory: frames waiting for their future, views, sensor samples.

    A frame is labelled once every live stream has passed its stamp by `wait_ns` (the
    future its labels need); memory stays bounded to `buffer_ns` behind the newest
    odometry. When odometry stamps go back by more than `odom_max_backstep_s` (a restart)
    the pending frames are labelled with what the buffer holds, and it starts over.

    Args:
        params: The labelling parameters (the same as `ssl-robot label`'s).
        buffer_s: Seconds of sensor data kept.
    """

    def __init__(self, params: LabellingParams, *, buffer_s: float) -> None:
        self.params = params
        self.buffer_ns = int(float(buffer_s) * 1e9)
        horizon = max(params.proximity.horizon_s, params.terrain.horizon_s
                      + params.terrain.window_s)
        self.wait_ns = int(min(horizon, float(buffer_s) / 2) * 1e9)
        self.view_tolerance_ns = int(round(params.view_match_tolerance_s * 1e9))
        self.k_matrix: np.ndarray | None = None
        self.counts = {'frames_dropped_buffer': 0, 'time_restarts': 0, 'views_bad_encoding': 0,
                       'views_bad_size': 0}
        self.admission = FrameAdmission(params.frame_rate_hz)
        self._reset()

    def _reset(self) -> None:
        kept = self.admission.image_hw
        counts = self.admission.counts
        self.admission = FrameAdmission(self.params.frame_rate_hz)
        self.admission.image_hw, self.admission.counts = kept, counts
        old = getattr(self, 'sensors', None)
        # Range topics first, then the laser scan's sectors (see labelling.scan).
        self.sensors = SensorBuffer(len(self.params.sensors),
                                    odom_max_jump_m=self.params.odom_max_jump_m,
                                    odom_max_jump_rad=self.params.odom_max_jump_rad)
        if old is not None:
            self.sensors.counts = old.counts
        self.frames: list[tuple[int, np.ndarray]] = []
        self.views: list[list[tuple[int, np.ndarray]]] = [[] for _ in self.params.view_topics]
        self.newest_frame_ns: int | None = None
        self.newest_odom_ns: int | None = None

    @property
    def image_hw(self) -> tuple[int, int] | None:
        return self.admission.image_hw

    # ------------------------------------------------------------------ input
    def add_frame(self, stamp_ns: int, msg: Any) -> str:
        """Offer a camera frame; returns '' or why it was dropped (counted)."""
        self.newest_frame_ns = stamp_ns if self.newest_frame_ns is None else max(
            self.newest_frame_ns, stamp_ns)
        if self.admission.slot_taken(stamp_ns):
            return ''
        first = self.admission.image_hw is None
        rgb, why = self.admission.admit(stamp_ns, msg)
        if rgb is None:
            return why
        if first:  # view frames that came before the first frame are checked now
            self.views = [[f for f in frames if not self._view_misfit(f[1])]
                          for frames in self.views]
        self.frames.append((stamp_ns, rgb))
        return ''

    def add_view(self, v: int, stamp_ns: int, msg: Any) -> str:
        """Offer extra camera v's frame; decoded only if a frame may still match it."""
        if not self.views_wanted(np.array([stamp_ns], np.int64))[0]:
            return ''
        try:
            rgb = image_to_rgb(msg)
        except MessageError as exc:
            self.counts['views_bad_encoding'] += 1
            return f'view frame dropped: {exc}'
        why = self._view_misfit(rgb)
        if not why:
            self.views[v].append((stamp_ns, rgb))
        return why

    def _view_misfit(self, rgb: np.ndarray) -> str:
        """'' when a view frame has the main camera's size, else why not (counted)."""
        if self.image_hw is None or rgb.shape[:2] == self.image_hw:
            return ''
        self.counts['views_bad_size'] += 1
        return (f'view frame of size {rgb.shape[:2]} dropped: views must have the main '
                f"camera's size {self.image_hw} (they are not resized)")

    def views_wanted(self, stamps: np.ndarray) -> np.ndarray:
        """Which view stamps a frame may still be matched to.

        Those within the tolerance of a waiting frame, and those a frame on its way may
        match: not older than the newest frame, with a frame slot within the tolerance
        still free (a slot keeps only its first frame).
        """
        tol = self.view_tolerance_ns
        waiting = np.array([f[0] for f in self.frames], np.int64)
        near = match_views(stamps, waiting, tol) >= 0
        newest = self.newest_frame_ns
        to_come = np.array([(newest is None or s >= newest - tol)
                            and self.admission.free_slot_near(s, tol)
                            for s in stamps.tolist()], bool)
        return near | to_come

    def set_camera_info(self, k: np.ndarray) -> None:
        k = np.asarray(k, np.float64).reshape(3, 3)
        if k[0, 0] > 0 and k[1, 1] > 0:
            self.k_matrix = k

    def add_odom(self, stamp_ns: int, pose: tuple[float, float, float], speed: float
                 ) -> tuple[str, LabelResult | None]:
        """Add a pose: (a note for the log or '', the result of labelling on a restart)."""
        limit = int(self.params.odom_max_backstep_s * 1e9)
        restarted = None
        note = ''
        if self.newest_odom_ns is not None and stamp_ns < self.newest_odom_ns - limit:
            # Time went back (a simulator or robot restart): label what is pending with
            # what the buffer holds, then start over; the two timelines never mix.
            self.counts['time_restarts'] += 1
            note = (f'odometry stamp went back {(self.newest_odom_ns - stamp_ns) / 1e9:.1f} s: '
                    f'restart; labelling {len(self.frames)} pending frames and clearing the '
                    f'buffer')
            restarted = self.label(everything=True)
            self._reset()
        note = self.sensors.add_odom(stamp_ns, pose, speed) or note
        self.newest_odom_ns = stamp_ns if self.newest_odom_ns is None else max(
            self.newest_odom_ns, stamp_ns)
        return note, restarted

    # ------------------------------------------------------------------ labelling
    def streams(self, frames: list[tuple[int, np.ndarray]]) -> SensorStreams:
        """The buffer as `SensorStreams` for these frames."""
        h, w = self.image_hw or (0, 0)
        stamps = np.array([f[0] for f in frames], np.int64)
        views, views_mask = None, None
        if self.views:
            views, views_mask = gather_views(stamps, self.views, self.view_tolerance_ns, (h, w))
        return SensorStreams(
            frame_stamps=stamps,
            frames=np.stack([f[1] for f in frames]) if frames else np.zeros((0, h, w, 3),
                                                                             np.uint8),
            k_matrix=self.k_matrix, image_hw=self.image_hw, views=views,
            views_mask=views_mask, wheels=self._wheels(), **self.sensors.arrays())

    def _wheels(self) -> WheelData | None:
        """The buffered joint states as wheel data (as `ssl-robot label` reads them)."""
        joints = self.sensors.joints
        if not joints:
            return None
        return wheels_from_joint_states(
            np.array([j[0] for j in joints], np.int64), [j[1] for j in joints],
            [j[2] for j in joints], [j[3] for j in joints], left=self.params.wheel_joints[0],
            right=self.params.wheel_joints[1], radius_m=self.params.wheel_radius_m)

    def ready_frames(self, *, everything: bool = False) -> list[tuple[int, np.ndarray]]:
        """The waiting frames whose future is known (all of them when `everything`)."""
        if self.newest_odom_ns is None or not self.frames:
            return []
        if everything:
            return list(self.frames)
        # A frame's future is known when every stream seen so far has passed t + wait (the
        # executor may deliver one topic's backlog before another's); a stream silent for
        # half the buffer is dead and must not hold labelling up.
        alive = [t for t in self.sensors.newest_stamps()
                 if t >= self.newest_odom_ns - self.buffer_ns // 2]
        cutoff = min(alive) - self.wait_ns
        return [f for f in self.frames if f[0] <= cutoff]

    def label(self, *, everything: bool = False) -> LabelResult | None:
        """Label the ready frames and forget them; None when none is ready."""
        ready = self.ready_frames(everything=everything)
        result = None
        if ready:
            result = label_streams(self.streams(ready), self.params)
            done = {f[0] for f in ready}
            self.frames = [f for f in self.frames if f[0] not in done]
        self.prune()
        return result

    def prune(self) -> None:
        """Keep the buffer bounded: `buffer_s` behind the newest odometry."""
        if self.newest_odom_ns is None:
            return
        keep_from = self.newest_odom_ns - self.buffer_ns
        before = len(self.frames)
        self.frames = [f for f in self.frames if f[0] >= keep_from]
        self.counts['frames_dropped_buffer'] += before - len(self.frames)
        oldest_frame = min((f[0] for f in self.frames), default=keep_from)
        # Data just before the oldest waiting frame is still needed to interpolate at it.
        keep_data = min(keep_from, oldest_frame - int(2e9))
        self.sensors.forget_before(keep_data)
        self.admission.forget_before(keep_data)
        for v, frames in enumerate(self.views):
            wanted = self.views_wanted(np.array([f[0] for f in frames], np.int64))
            self.views[v] = [f for f, keep in zip(frames, wanted) if keep and f[0] >= keep_from]

    def all_counts(self) -> dict[str, int]:
        """Every counter of the buffer: admission, sensor anomalies, buffer, restarts."""
        return {**self.admission.counts, **self.sensors.counts, **self.counts}
