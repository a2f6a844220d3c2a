"""Collisions as labels: a detector from bumpers or proprioception, and crash labels.

After Gandhi, Pinto and Gupta, "Learning to Fly by Crashing" (IROS 2017): a collision
the robot later feels labels the frames that saw it coming; no proximity sensor needed.

Detection (`detect_collisions`), from what the robot has:

* bumper / contact messages (`geometry_msgs/WrenchStamped` on the configured topic, the
  force on the robot; the simulator publishes its obstacle contacts so): a collision
  is in progress while |force_xy| >= `bumper_force_n`;
* without them, proprioception: while the robot is commanded forward (cmd_vel linear.x
  >= `cmd_forward_mps`, held for `cmd_hold_s`), either a sharp deceleration — the
  forward IMU acceleration, averaged over `accel_window_s`, below `-decel_mps2` — or a
  stall — wheel odometry speed below `stall_ratio` x the command for `stall_s`.

Samples in collision closer than `merge_gap_s` are one collision; a collision's onset
is its first sample. Thresholds (defaults tuned on simulator runs against the
contact truth, see benchmarks/bench_collision.py): a 0.15 m/s robot that hits a wall
decelerates at 5-10 m/s^2 within 0.05 s; braking on command or rolling over terrain
bumps stays below 1 m/s^2 forward, and a commanded stop is not "commanded forward".

Crash labels (`label_collisions`), per frame at t with the next collision onset t_c > t:

* 'collision ahead' (1) when t_c - t <= `horizon_s` and the robot was commanded forward
  at t_c (it drove into something: a scrape while turning or backing is no collision
  ahead of the camera), with the time to impact t_c - t and the distance to impact
  (odometry path length between t and t_c) as provenance;
* 'free' (0) when no collision starts within `horizon_s` + `free_margin_s`, the robot is
  not in a collision at t, it was commanded forward over all of [t, t + horizon_s] (it
  drove and did not crash) and the recording goes on past that window;
* unknown (masked) otherwise: a stop, a turn in place, the end of the recording, or the
  margin between the two.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ssl_robot.labelling.poses import build_trajectory, interpolate_poses, Trajectory


@dataclass(frozen=True)
class CollisionParams:
    """How collisions are detected and frames labelled (stored with every dataset).

    Attributes:
        bumper_force_n: Contact force (N, in the ground plane) that is a collision.
        cmd_forward_mps: Commanded forward speed that counts as driving forward.
        cmd_hold_s: How long the command must have been forward already.
        decel_mps2: Forward deceleration (m/s^2, IMU x averaged) that is an impact.
        accel_window_s: Averaging window of the IMU forward acceleration.
        stall_ratio: Odometry speed below this fraction of the command is a stall ...
        stall_s: ... when it lasts this long.
        merge_gap_s: Collision samples closer than this are one collision.
        horizon_s: Frames up to this long before an onset are 'collision ahead'.
        free_margin_s: Extra time without collision that a 'free' frame needs.
    """

    bumper_force_n: float = 0.3
    cmd_forward_mps: float = 0.05
    cmd_hold_s: float = 0.3
    decel_mps2: float = 2.5
    accel_window_s: float = 0.02
    stall_ratio: float = 0.3
    stall_s: float = 0.3
    merge_gap_s: float = 1.0
    horizon_s: float = 1.0
    free_margin_s: float = 1.0


@dataclass
class Collisions:
    """Detected collisions.

    Attributes:
        onsets_ns: int64 [K] first sample of each collision.
        ends_ns: int64 [K] last sample of each collision.
        source: 'bumper', 'proprioception' or 'none' (nothing to detect from).
        counts: 'collisions', 'impacts' (deceleration samples), 'stall_samples'.
    """

    onsets_ns: np.ndarray
    ends_ns: np.ndarray
    source: str
    counts: dict[str, int] = field(default_factory=dict)


@dataclass
class CollisionLabels:
    """Crash labels of N frames.

    Attributes:
        labels: float32 [N], 1 collision ahead / 0 free (0 where unknown).
        mask: bool [N], True where known.
        time_to_impact_ns: int64 [N], t_c - t of 'collision ahead' frames, -1 otherwise.
        distance_to_impact_m: float32 [N], odometry path from t to t_c, NaN otherwise.
        counts: 'ahead', 'free', 'unknown'.
    """

    labels: np.ndarray
    mask: np.ndarray
    time_to_impact_ns: np.ndarray
    distance_to_impact_m: np.ndarray
    counts: dict[str, int] = field(default_factory=dict)


def merge_events(stamps_ns: np.ndarray, active: np.ndarray, gap_ns: int
                 ) -> tuple[np.ndarray, np.ndarray]:
    """(onsets, ends) of runs of active samples; runs closer than `gap_ns` are merged."""
    t = np.asarray(stamps_ns, np.int64)[np.asarray(active, bool)]
    if not len(t):
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    new = np.ones(len(t), bool)
    new[1:] = np.diff(t) >= gap_ns
    starts = np.flatnonzero(new)
    ends = np.append(starts[1:] - 1, len(t) - 1)
    return t[starts], t[ends]


def _held_forward(cmd_stamps: np.ndarray, cmd_speed: np.ndarray, query_ns: np.ndarray,
                  params: CollisionParams) -> np.ndarray:
    """Whether every command in [t - cmd_hold_s, t] (and the last one before) is forward."""
    if not len(cmd_stamps):
        return np.zeros(len(query_ns), bool)
    forward = np.asarray(cmd_speed) >= params.cmd_forward_mps
    # Index of the latest command at or before t, and at or before t - hold.
    last = np.searchsorted(cmd_stamps, query_ns, 'right') - 1
    first = np.searchsorted(cmd_stamps, query_ns - int(params.cmd_hold_s * 1e9), 'right') - 1
    not_forward = np.concatenate([[0], np.cumsum(~forward)])
    ok = (last >= 0) & (first >= 0)
    lo, hi = np.clip(first, 0, None), np.clip(last, 0, None)
    return ok & (not_forward[hi + 1] - not_forward[lo] == 0)


def detect_collisions(params: CollisionParams, *, bumper_stamps_ns: np.ndarray | None = None,
                      bumper_force_n: np.ndarray | None = None,
                      imu_stamps_ns: np.ndarray | None = None,
                      imu_forward_accel: np.ndarray | None = None,
                      odom_stamps_ns: np.ndarray | None = None,
                      odom_speed: np.ndarray | None = None,
                      cmd_stamps_ns: np.ndarray | None = None,
                      cmd_speed: np.ndarray | None = None) -> Collisions:
    """Collisions from the bumper when there is one, else from proprioception.

    Args:
        params: Thresholds.
        bumper_stamps_ns, bumper_force_n: Sorted contact samples and |force_xy| (N).
        imu_stamps_ns, imu_forward_accel: Sorted IMU samples, x acceleration (m/s^2).
        odom_stamps_ns, odom_speed: Sorted odometry samples, forward speed (m/s).
        cmd_stamps_ns, cmd_speed: Sorted velocity commands, forward speed (m/s).

    Returns:
        The collisions and which source found them.
    """
    gap = int(params.merge_gap_s * 1e9)
    if bumper_stamps_ns is not None and len(bumper_stamps_ns):
        on, end = merge_events(bumper_stamps_ns,
                               np.asarray(bumper_force_n) >= params.bumper_force_n, gap)
        return Collisions(on, end, 'bumper', {'collisions': len(on)})
    cmd_t = np.asarray(cmd_stamps_ns if cmd_stamps_ns is not None else [], np.int64)
    cmd_v = np.asarray(cmd_speed if cmd_speed is not None else [], np.float64)
    stamps, active = [np.zeros(0, np.int64)], [np.zeros(0, bool)]
    counts = {'impacts': 0, 'stall_samples': 0}
    have_imu = imu_stamps_ns is not None and len(imu_stamps_ns) > 1
    have_odom = odom_stamps_ns is not None and len(odom_stamps_ns) > 1
    if not len(cmd_t) or not (have_imu or have_odom):
        return Collisions(np.zeros(0, np.int64), np.zeros(0, np.int64), 'none',
                          {'collisions': 0, **counts})
    if have_imu:
        t = np.asarray(imu_stamps_ns, np.int64)
        a = np.asarray(imu_forward_accel, np.float64)
        rate = (len(t) - 1) / max((t[-1] - t[0]) / 1e9, 1e-9)
        k = max(1, int(round(params.accel_window_s * rate)))
        smooth = np.convolve(a, np.ones(k) / k, mode='full')[:len(a)]  # trailing mean
        impact = (smooth <= -params.decel_mps2) & _held_forward(cmd_t, cmd_v, t, params)
        counts['impacts'] = int(impact.sum())
        stamps.append(t)
        active.append(impact)
    if have_odom:
        t = np.asarray(odom_stamps_ns, np.int64)
        v = np.asarray(odom_speed, np.float64)
        idx = np.clip(np.searchsorted(cmd_t, t, 'right') - 1, 0, len(cmd_t) - 1)
        slow = (v < params.stall_ratio * cmd_v[idx]) & _held_forward(cmd_t, cmd_v, t, params)
        # A stall is slow for stall_s: keep samples whose run of slow samples is that long.
        run_start = _run_start(slow, t)
        stall = slow & (t - run_start >= int(params.stall_s * 1e9))
        counts['stall_samples'] = int(stall.sum())
        stamps.append(t)
        active.append(stall)
    t = np.concatenate(stamps)
    on = np.concatenate(active)
    order = np.argsort(t, kind='stable')
    onsets, ends = merge_events(t[order], on[order], gap)
    return Collisions(onsets, ends, 'proprioception', {'collisions': len(onsets), **counts})


def _run_start(flags: np.ndarray, stamps: np.ndarray) -> np.ndarray:
    """For each sample, the stamp where its current run of True flags began."""
    flags = np.asarray(flags, bool)
    start = np.zeros(len(flags), np.int64)
    begin = np.flatnonzero(flags & ~np.concatenate([[False], flags[:-1]]))
    run_id = np.cumsum(flags & ~np.concatenate([[False], flags[:-1]])) - 1
    start[flags] = stamps[begin[run_id[flags]]]
    return start


def label_collisions(frame_stamps: np.ndarray, collisions: Collisions, traj: Trajectory,
                     cmd_stamps_ns: np.ndarray, cmd_speed: np.ndarray,
                     params: CollisionParams, *, end_ns: int | None = None
                     ) -> CollisionLabels:
    """Crash labels of frames (see the module docstring).

    Args:
        frame_stamps: int64 [N] sorted frame stamps.
        collisions: From `detect_collisions`.
        traj: Odometry (distance to impact).
        cmd_stamps_ns, cmd_speed: Sorted velocity commands (collision-free driving).
        params: Horizon and margin.
        end_ns: Last stamp of the recording (default: last command or odometry stamp).

    Returns:
        Labels, mask and provenance.
    """
    t = np.asarray(frame_stamps, np.int64).reshape(-1)
    n = len(t)
    labels = np.zeros(n, np.float32)
    mask = np.zeros(n, bool)
    tti = np.full(n, -1, np.int64)
    dist = np.full(n, np.nan, np.float32)
    cmd_t = np.asarray(cmd_stamps_ns, np.int64)
    cmd_v = np.asarray(cmd_speed, np.float64)
    if collisions.source == 'none' or not n:
        return CollisionLabels(labels, mask, tti, dist, {'ahead': 0, 'free': 0, 'unknown': n})
    if end_ns is None:
        ends = [s[-1] for s in (cmd_t, traj.stamps_ns) if len(s)]
        end_ns = int(max(ends)) if ends else int(t[-1])
    horizon = int(params.horizon_s * 1e9)
    onsets, finish = collisions.onsets_ns, collisions.ends_ns
    nxt = np.searchsorted(onsets, t, 'right')          # first onset > t
    has_next = nxt < len(onsets)
    t_c = np.where(has_next, onsets[np.clip(nxt, 0, max(len(onsets) - 1, 0))]
                   if len(onsets) else 0, np.iinfo(np.int64).max)
    # Only collisions driven into (forward command at the onset) are 'ahead' of a camera;
    # frames before a scrape while turning or backing are unknown, not free.
    frontal = _forward_over(cmd_t, cmd_v, onsets, onsets, params.cmd_forward_mps)
    next_frontal = has_next & frontal[np.clip(nxt, 0, max(len(onsets) - 1, 0))] \
        if len(onsets) else has_next
    ahead = next_frontal & (t_c - t <= horizon)
    # In a collision at t: the previous collision's [onset, end] holds t.
    prev = nxt - 1
    in_collision = (prev >= 0) & (t <= np.where(prev >= 0, finish[np.clip(prev, 0, None)]
                                                if len(finish) else 0, -1))
    quiet = (t_c - t > horizon + int(params.free_margin_s * 1e9)) & ~in_collision
    observed = t + horizon + int(params.free_margin_s * 1e9) <= end_ns
    driving = _forward_over(cmd_t, cmd_v, t, t + horizon, params.cmd_forward_mps)
    free = quiet & observed & driving & ~ahead
    labels[ahead] = 1.0
    mask[ahead | free] = True
    tti[ahead] = t_c[ahead] - t[ahead]
    if ahead.any():
        at_t = interpolate_poses(traj, t[ahead])
        at_c = interpolate_poses(traj, t_c[ahead])
        ok = at_t.known & at_c.known & (at_t.segment == at_c.segment)
        d = np.where(ok, at_c.path_length - at_t.path_length, np.nan)
        dist[np.flatnonzero(ahead)] = d.astype(np.float32)
    counts = {'ahead': int(ahead.sum()), 'free': int(free.sum()),
              'unknown': int(n - ahead.sum() - free.sum())}
    return CollisionLabels(labels, mask, tti, dist, counts)


def _forward_over(cmd_t: np.ndarray, cmd_v: np.ndarray, lo_ns: np.ndarray, hi_ns: np.ndarray,
                  forward_mps: float) -> np.ndarray:
    """Whether the command in force was forward over all of [lo, hi] for each window."""
    if not len(cmd_t):
        return np.zeros(len(lo_ns), bool)
    not_forward = np.concatenate([[0], np.cumsum(cmd_v < forward_mps)])
    first = np.searchsorted(cmd_t, lo_ns, 'right') - 1   # the command in force at lo
    last = np.searchsorted(cmd_t, hi_ns, 'right') - 1
    ok = first >= 0
    lo = np.clip(first, 0, None)
    return ok & (not_forward[last + 1] - not_forward[lo] == 0)


def event_precision_recall(detected_ns: np.ndarray, truth_ns: np.ndarray, tolerance_s: float
                           ) -> dict[str, float]:
    """Precision and recall of detected collision onsets against true onsets.

    A detection matches a true onset within `tolerance_s` (each true onset at most once,
    nearest first in time order).
    """
    det = np.sort(np.asarray(detected_ns, np.int64))
    truth = np.sort(np.asarray(truth_ns, np.int64))
    tol = int(tolerance_s * 1e9)
    used = np.zeros(len(truth), bool)
    tp = 0
    for d in det:
        close = np.flatnonzero(~used & (np.abs(truth - d) <= tol))
        if len(close):
            used[close[np.argmin(np.abs(truth[close] - d))]] = True
            tp += 1
    return {'precision': tp / max(len(det), 1), 'recall': tp / max(len(truth), 1),
            'detected': int(len(det)), 'true': int(len(truth)), 'matched': int(tp)}


def collision_truth(world: object, gt_stamps_ns: np.ndarray, gt_poses: np.ndarray,
                    frame_stamps_ns: np.ndarray, *, reach_m: float, front_m: float = 0.022,
                    half_width_m: float = 0.0475) -> tuple[np.ndarray, np.ndarray]:
    """Simulator truth of 'collision ahead': would driving straight on hit something soon.

    True when an obstacle or wall lies within `reach_m` of the robot's front along its
    heading, anywhere across its width (rays from the centre and both wheels), at the
    frame's true pose: `World.obstacle_distance` of the simulated world, no sensor and no
    odometry involved. For the simulated robot the wheels are what touches (front_m:
    wheel radius ahead of base_link, half_width_m: half the wheel base).

    Returns:
        (truth bool [N], known bool [N]: the true pose at the frame is known).
    """
    traj = build_trajectory(gt_stamps_ns, gt_poses, max_jump_m=10.0, max_jump_rad=7.0)
    at = interpolate_poses(traj, np.asarray(frame_stamps_ns, np.int64))
    truth = np.zeros(len(at.known), bool)
    for i in np.flatnonzero(at.known):
        x, y, yaw = at.poses[i]
        c, s = np.cos(yaw), np.sin(yaw)
        nearest = min(world.obstacle_distance(x - s * off, y + c * off, yaw)
                      for off in (-half_width_m, 0.0, half_width_m))
        truth[i] = nearest < front_m + reach_m
    return truth, at.known.copy()
