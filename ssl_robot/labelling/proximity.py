"""Proximity self-labels after Nava et al. (RA-L 2019).

Proximity self-labels after Nava et al., "Learning long-range perception using
self-supervision from short-range sensors and odometry", RA-L 2019.

For a frame at time t (pose P(t)) and a distance d ahead, the label comes from the
proximity sensors at the later time t' when the robot stood at P(t) advanced by d along
its heading: the odometry sample whose pose, in the frame of P(t), is closest to
(d, 0, 0) within tolerances on x, y and heading (wrapped difference). Where no such
sample exists, or the sensor had no valid reading then, the label is unknown (masked).

Search. Candidates t' are odometry samples of the same segment as t, not earlier than t,
at most `horizon_s` later, whose driven path length since t lies in
[d - tol_x, d + tol_x + max_path_slack_m]. The lower bound loses nothing (a chord is never
longer than the path); the upper bound rejects a robot that wandered off and came back
to the spot, where odometry drift makes the match unreliable. The path length is
monotonic, so each window is two `searchsorted` calls; the windows' candidates are then
scored at once (vectorised), for O((N D + M) log M + C) work with C the candidates in the
windows, which the horizon bounds.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ssl_robot.labelling.poses import interpolate_poses, relative_pose, Trajectory


@dataclass(frozen=True)
class ProximityParams:
    """How proximity labels are made (stored with every dataset).

    The defaults are those of the one parameter table (`ssl_robot.labelling.params`).

    Attributes:
        distances_m: Distances ahead at which a frame gets labelled.
        obstacle_range_m: A reading below this (or -inf, too close) means obstacle.
        tol_x_m, tol_y_m, tol_yaw_rad: Tolerances of the pose at t' around (d, 0, 0).
        max_path_slack_m: Path driven beyond d + tol_x that still counts as "went there".
        horizon_s: Longest t' - t searched.
        range_tolerance_s: Longest distance in time between t' and the reading used.
    """

    distances_m: tuple[float, ...] = tuple(round(0.05 * i, 2) for i in range(11))  # 0..0.5 m
    obstacle_range_m: float = 0.12
    tol_x_m: float = 0.02
    tol_y_m: float = 0.02
    tol_yaw_rad: float = 0.15
    max_path_slack_m: float = 0.05
    horizon_s: float = 10.0
    range_tolerance_s: float = 0.05


@dataclass
class ProximityLabels:
    """Labels of N frames at D distances for S sensors.

    Attributes:
        labels: float32 [N, D, S], 1 obstacle / 0 free (0 where unknown).
        mask: bool [N, D, S], True where known.
        t_future_ns: int64 [N, D], the t' used (-1 when no pose matched).
        pose_err: float32 [N, D, 3], (dx - d, dy, dyaw) of the pose at t' (NaN unknown).
        counts: 'frames_without_pose', 'ambiguous', 'no_match', 'no_reading', 'nan_reading'.
    """

    labels: np.ndarray
    mask: np.ndarray
    t_future_ns: np.ndarray
    pose_err: np.ndarray
    counts: dict[str, int] = field(default_factory=dict)


def reading_labels(readings: np.ndarray, obstacle_range_m: float) -> tuple[np.ndarray,
                                                                          np.ndarray]:
    """REP-117 readings -> (label 1 obstacle / 0 free, known mask).

    -inf (closer than min_range) and finite readings below the threshold are obstacles;
    +inf (nothing in range) and readings at or beyond it are free; NaN is unknown.
    """
    readings = np.asarray(readings, dtype=np.float64)
    known = ~np.isnan(readings)
    with np.errstate(invalid='ignore'):
        obstacle = known & (readings < obstacle_range_m)
    return obstacle.astype(np.float32), known


def match_readings(range_stamps: np.ndarray, ranges: np.ndarray, query_ns: np.ndarray,
                   tolerance_ns: int) -> np.ndarray:
    """The reading nearest in time to each query stamp, NaN when none within tolerance.

    Args:
        range_stamps: int64 [R] sorted stamps of one sensor.
        ranges: [R] its readings (REP-117).
        query_ns: int64 [Q] stamps.
        tolerance_ns: Largest |stamp - query| accepted.
    """
    out = np.full(len(query_ns), np.nan)
    if len(range_stamps) == 0 or len(query_ns) == 0:
        return out
    i = np.clip(np.searchsorted(range_stamps, query_ns), 1, len(range_stamps) - 1) \
        if len(range_stamps) > 1 else np.zeros(len(query_ns), np.int64)
    if len(range_stamps) > 1:
        left = np.abs(query_ns - range_stamps[i - 1])
        right = np.abs(range_stamps[i] - query_ns)
        i = np.where(left <= right, i - 1, i)
    near = np.abs(range_stamps[i] - query_ns) <= tolerance_ns
    out[near] = np.asarray(ranges, dtype=np.float64)[i[near]]
    return out


def _sensor_labels(t_future: np.ndarray, range_stamps: list[np.ndarray],
                   ranges: list[np.ndarray], params: ProximityParams,
                   counts: dict[str, int]) -> tuple[np.ndarray, np.ndarray]:
    n, d = t_future.shape
    s = len(ranges)
    labels = np.zeros((n, d, s), np.float32)
    mask = np.zeros((n, d, s), bool)
    matched = t_future >= 0
    tol = int(params.range_tolerance_s * 1e9)
    for k in range(s):
        reading = match_readings(range_stamps[k], ranges[k], t_future[matched], tol)
        lab, known = reading_labels(reading, params.obstacle_range_m)
        labels[:, :, k][matched] = lab
        mask[:, :, k][matched] = known
        counts['no_reading'] += int(np.isnan(reading).sum())
    labels[~mask] = 0.0
    return labels, mask


def label_proximity_at_distances(
    frame_stamps: np.ndarray, traj: Trajectory, range_stamps: list[np.ndarray],
    ranges: list[np.ndarray], params: ProximityParams, *, chunk_candidates: int = 2_000_000,
) -> ProximityLabels:
    """Proximity labels of frames at each distance and sensor (vectorised search).

    Args:
        frame_stamps: int64 [N] frame stamps (header.stamp).
        traj: Odometry (see `build_trajectory`).
        range_stamps: Per sensor, int64 [R_s] sorted reading stamps.
        ranges: Per sensor, [R_s] readings with REP-117 semantics.
        params: Distances, threshold, tolerances.
        chunk_candidates: Candidates scored at once (bounds memory).

    Returns:
        The labels, masks and provenance.
    """
    frame_stamps = np.asarray(frame_stamps, dtype=np.int64).reshape(-1)
    dist = np.asarray(params.distances_m, dtype=np.float64)
    n, d = len(frame_stamps), len(dist)
    counts = {'frames_without_pose': 0, 'ambiguous': 0, 'no_match': 0, 'no_reading': 0}
    t_future = np.full((n, d), -1, np.int64)
    pose_err = np.full((n, d, 3), np.nan, np.float32)
    at = interpolate_poses(traj, frame_stamps)
    counts['frames_without_pose'] = int((~at.known).sum())
    counts['ambiguous'] = at.ambiguous
    horizon = int(params.horizon_s * 1e9)
    lo_off = dist - params.tol_x_m
    hi_off = dist + params.tol_x_m + params.max_path_slack_m
    for k in range(traj.n_segments):
        frames = np.flatnonzero(at.segment == k)
        if len(frames) == 0:
            continue
        sl = traj.segment(k)
        s_stamps, s_path, s_poses = traj.stamps_ns[sl], traj.path_length[sl], traj.poses[sl]
        t = frame_stamps[frames]
        first = np.searchsorted(s_stamps, t, side='left')          # t' >= t
        last = np.searchsorted(s_stamps, t + horizon, side='right')  # t' <= t + horizon
        path_t = at.path_length[frames]
        lo = np.searchsorted(s_path, path_t[:, None] + lo_off[None, :], side='left')
        hi = np.searchsorted(s_path, path_t[:, None] + hi_off[None, :], side='right')
        lo = np.maximum(lo, first[:, None])
        hi = np.minimum(hi, last[:, None])
        size = np.maximum(hi - lo, 0).ravel()
        query_frame = np.repeat(np.arange(len(frames)), d)
        query_dist = np.tile(np.arange(d), len(frames))
        # Score the candidates of consecutive queries in chunks of bounded size.
        ends = np.cumsum(size)
        q0 = 0
        while q0 < len(size):
            base = ends[q0 - 1] if q0 else 0
            q1 = max(q0 + 1, int(np.searchsorted(ends, base + chunk_candidates, 'right')))
            q1 = min(q1, len(size))
            _score_chunk(q0, q1, size, lo.ravel(), query_frame, query_dist, frames,
                         at.poses, s_stamps, s_poses, dist, params, t_future, pose_err)
            q0 = q1
    counts['no_match'] = int(((t_future < 0) & at.known[:, None]).sum())
    labels, mask = _sensor_labels(t_future, range_stamps, ranges, params, counts)
    return ProximityLabels(labels, mask, t_future, pose_err, counts)


def _score_chunk(q0: int, q1: int, size: np.ndarray, lo: np.ndarray, query_frame: np.ndarray,
                 query_dist: np.ndarray, frames: np.ndarray, frame_poses: np.ndarray,
                 s_stamps: np.ndarray, s_poses: np.ndarray, dist: np.ndarray,
                 params: ProximityParams, t_future: np.ndarray, pose_err: np.ndarray) -> None:
    sizes = size[q0:q1]
    total = int(sizes.sum())
    if total == 0:
        return
    qid = np.repeat(np.arange(q0, q1), sizes)
    offsets = np.cumsum(sizes) - sizes
    cand = lo[qid] + (np.arange(total) - np.repeat(offsets, sizes))
    fi = query_frame[qid]
    di = query_dist[qid]
    rel = relative_pose(frame_poses[frames[fi]], s_poses[cand])
    err = np.column_stack([rel[:, 0] - dist[di], rel[:, 1], rel[:, 2]])
    ok = ((np.abs(err[:, 0]) <= params.tol_x_m) & (np.abs(err[:, 1]) <= params.tol_y_m)
          & (np.abs(err[:, 2]) <= params.tol_yaw_rad))
    if not ok.any():
        return
    score = ((err[:, 0] / params.tol_x_m) ** 2 + (err[:, 1] / params.tol_y_m) ** 2
             + (err[:, 2] / params.tol_yaw_rad) ** 2)
    qid, cand, err, score = qid[ok], cand[ok], err[ok], score[ok]
    # Closest candidate per query; lexsort is stable, so ties go to the earliest t'.
    order = np.lexsort((score, qid))
    qid, cand, err = qid[order], cand[order], err[order]
    first = np.ones(len(qid), bool)
    first[1:] = qid[1:] != qid[:-1]
    qid, cand, err = qid[first], cand[first], err[first]
    rows, cols = frames[query_frame[qid]], query_dist[qid]
    t_future[rows, cols] = s_stamps[cand]
    pose_err[rows, cols] = err


def label_proximity_naive(
    frame_stamps: np.ndarray, traj: Trajectory, range_stamps: list[np.ndarray],
    ranges: list[np.ndarray], params: ProximityParams,
) -> ProximityLabels:
    """Reference implementation: every frame against every odometry sample (tests, bench).

    Same criteria as `label_proximity_at_distances`, written as plainly as possible.
    """
    frame_stamps = np.asarray(frame_stamps, dtype=np.int64).reshape(-1)
    dist = np.asarray(params.distances_m, dtype=np.float64)
    n, d = len(frame_stamps), len(dist)
    counts = {'frames_without_pose': 0, 'ambiguous': 0, 'no_match': 0, 'no_reading': 0}
    t_future = np.full((n, d), -1, np.int64)
    pose_err = np.full((n, d, 3), np.nan, np.float32)
    at = interpolate_poses(traj, frame_stamps)
    counts['frames_without_pose'] = int((~at.known).sum())
    counts['ambiguous'] = at.ambiguous
    seg_of = traj.segment_ids()
    horizon = int(params.horizon_s * 1e9)
    for i in range(n):
        if not at.known[i]:
            continue
        for j in range(len(dist)):
            best, best_score = -1, np.inf
            for m in range(len(traj.stamps_ns)):
                if seg_of[m] != at.segment[i]:
                    continue
                dt = traj.stamps_ns[m] - frame_stamps[i]
                if dt < 0 or dt > horizon:
                    continue
                driven = traj.path_length[m] - at.path_length[i]
                if not (dist[j] - params.tol_x_m <= driven
                        <= dist[j] + params.tol_x_m + params.max_path_slack_m):
                    continue
                rel = relative_pose(at.poses[i], traj.poses[m])
                ex, ey, eyaw = rel[0] - dist[j], rel[1], rel[2]
                if (abs(ex) > params.tol_x_m or abs(ey) > params.tol_y_m
                        or abs(eyaw) > params.tol_yaw_rad):
                    continue
                score = ((ex / params.tol_x_m) ** 2 + (ey / params.tol_y_m) ** 2
                         + (eyaw / params.tol_yaw_rad) ** 2)
                if score < best_score:
                    best, best_score = m, score
                    pose_err[i, j] = (ex, ey, eyaw)
            if best >= 0:
                t_future[i, j] = traj.stamps_ns[best]
    counts['no_match'] = int(((t_future < 0) & at.known[:, None]).sum())
    labels, mask = _sensor_labels(t_future, range_stamps, ranges, params, counts)
    return ProximityLabels(labels, mask, t_future, pose_err, counts)
