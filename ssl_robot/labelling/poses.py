"""Odometry as a trajectory on SE(2): segments that are never bridged, and interpolation.

Odometry is cut into segments wherever it cannot be trusted to be continuous: the stamps
go back by more than `max_backstep_s` (a clock or odometry restart) or consecutive poses
jump by more than `max_jump_m` / `max_jump_rad` (a reset, a relocalisation). Poses are
only ever compared within one segment. Between two samples of a segment a pose is
interpolated on SE(2) (constant twist between the samples), and only when the samples
are at most `max_gap_s` apart: inside a longer gap the pose is unknown.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


def wrap_angle(angle: np.ndarray | float) -> np.ndarray:
    """Wrap angles to [-pi, pi)."""
    return (np.asarray(angle) + np.pi) % (2.0 * np.pi) - np.pi


def _v_terms(w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """A = sin(w)/w and B = (1 - cos(w))/w, with their series near w = 0."""
    small = np.abs(w) < 1e-6
    safe = np.where(small, 1.0, w)
    a = np.where(small, 1.0 - w * w / 6.0, np.sin(safe) / safe)
    b = np.where(small, w / 2.0 - w ** 3 / 24.0, (1.0 - np.cos(safe)) / safe)
    return a, b


def relative_pose(base: np.ndarray, other: np.ndarray) -> np.ndarray:
    """Pose `other` expressed in the frame of pose `base` (both [..., 3] x, y, yaw).

    The returned yaw is wrapped to [-pi, pi).
    """
    dx = other[..., 0] - base[..., 0]
    dy = other[..., 1] - base[..., 1]
    c, s = np.cos(base[..., 2]), np.sin(base[..., 2])
    return np.stack([c * dx + s * dy, -s * dx + c * dy,
                     wrap_angle(other[..., 2] - base[..., 2])], axis=-1)


def se2_interpolate(p0: np.ndarray, p1: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """Pose a fraction `alpha` of the way from p0 to p1 along the SE(2) geodesic.

    The geodesic is the motion at constant body twist, the model of a differential-drive
    robot between two odometry samples. The yaw of the result is continuous with p0's
    (not wrapped), so unwrapped trajectories stay unwrapped.
    """
    rel = relative_pose(p0, p1)
    w = rel[..., 2]
    a, b = _v_terms(w)
    det = a * a + b * b
    # log: twist (u, v) = V^-1 t
    u = (a * rel[..., 0] + b * rel[..., 1]) / det
    v = (-b * rel[..., 0] + a * rel[..., 1]) / det
    wa = w * alpha
    a2, b2 = _v_terms(wa)
    tx = alpha * (a2 * u - b2 * v)
    ty = alpha * (b2 * u + a2 * v)
    c, s = np.cos(p0[..., 2]), np.sin(p0[..., 2])
    return np.stack([p0[..., 0] + c * tx - s * ty, p0[..., 1] + s * tx + c * ty,
                     p0[..., 2] + wa], axis=-1)


@dataclass(frozen=True)
class Trajectory:
    """Odometry sorted and cut into segments.

    Attributes:
        stamps_ns: int64 [M], ascending within each segment; segments concatenated.
        poses: float64 [M, 3] x, y, yaw with yaw unwrapped (continuous within a segment).
        starts: int64 [K + 1], sample index where segment k starts; starts[-1] = M.
        path_length: float64 [M], distance driven since the segment start (m).
        max_gap_ns: Longest interval between two samples that is interpolated.
        counts: What was dropped or cut: 'invalid', 'duplicate', 'out_of_order',
            'backstep', 'jump', 'gaps'.
    """

    stamps_ns: np.ndarray
    poses: np.ndarray
    starts: np.ndarray
    path_length: np.ndarray
    max_gap_ns: int
    counts: dict[str, int] = field(default_factory=dict)

    @property
    def n_segments(self) -> int:
        return len(self.starts) - 1

    def segment_ids(self) -> np.ndarray:
        """Segment index of every sample."""
        return np.repeat(np.arange(self.n_segments), np.diff(self.starts))

    def segment(self, k: int) -> slice:
        return slice(int(self.starts[k]), int(self.starts[k + 1]))


def build_trajectory(stamps_ns: np.ndarray, poses: np.ndarray, *, max_gap_s: float = 0.5,
                     max_jump_m: float = 0.5, max_jump_rad: float = 1.0,
                     max_backstep_s: float = 1.0) -> Trajectory:
    """Build a Trajectory from odometry samples in the order they were received.

    Args:
        stamps_ns: int64 [M] header stamps, in receive order.
        poses: [M, 3] x, y, yaw.
        max_gap_s: Samples further apart than this are not interpolated between.
        max_jump_m, max_jump_rad: A step larger than either between consecutive samples
            is a reset: the trajectory is cut there.
        max_backstep_s: A stamp earlier than the latest one so far by more than this is
            a restart (cut); smaller backsteps are reordering, fixed by sorting.

    Returns:
        The trajectory; `counts` says what was dropped or cut.
    """
    stamps = np.asarray(stamps_ns, dtype=np.int64).reshape(-1)
    poses = np.asarray(poses, dtype=np.float64).reshape(-1, 3)
    counts = {'invalid': 0, 'duplicate': 0, 'out_of_order': 0, 'backstep': 0, 'jump': 0,
              'gaps': 0}
    finite = np.isfinite(poses).all(axis=1)
    counts['invalid'] = int((~finite).sum())
    stamps, poses = stamps[finite], poses[finite]
    if len(stamps) == 0:
        return Trajectory(np.zeros(0, np.int64), np.zeros((0, 3)), np.zeros(1, np.int64),
                          np.zeros(0), int(max_gap_s * 1e9), counts)
    backstep = np.zeros(len(stamps), bool)
    limit = int(max_backstep_s * 1e9)
    start = 0
    while True:  # one pass per restart (there are few): the running max restarts with it
        running = np.maximum.accumulate(stamps[start:])
        back = np.flatnonzero(stamps[start + 1:] < running[:-1] - limit)
        if len(back) == 0:
            break
        start += int(back[0]) + 1
        backstep[start] = True
    group = np.cumsum(backstep)
    running_max = np.zeros(len(stamps), np.int64)
    for g in range(group[-1] + 1):
        sel = group == g
        running_max[sel] = np.maximum.accumulate(stamps[sel])
    counts['backstep'] = int(backstep.sum())
    late = np.zeros(len(stamps), bool)
    late[1:] = (stamps[1:] < running_max[:-1]) & ~backstep[1:]
    counts['out_of_order'] = int(late.sum())
    order = np.lexsort((stamps, group))
    stamps, poses, group = stamps[order], poses[order], group[order]
    dup = np.zeros(len(stamps), bool)
    dup[1:] = (stamps[1:] == stamps[:-1]) & (group[1:] == group[:-1])
    counts['duplicate'] = int(dup.sum())
    stamps, poses, group = stamps[~dup], poses[~dup], group[~dup]
    step = np.hypot(np.diff(poses[:, 0]), np.diff(poses[:, 1]))
    turn = np.abs(wrap_angle(np.diff(poses[:, 2])))
    jump = (step > max_jump_m) | (turn > max_jump_rad)
    new_group = np.diff(group) != 0
    counts['jump'] = int((jump & ~new_group).sum())
    cut = np.flatnonzero(jump | new_group) + 1
    starts = np.concatenate([[0], cut, [len(stamps)]]).astype(np.int64)
    max_gap_ns = int(max_gap_s * 1e9)
    dt = np.diff(stamps)
    counts['gaps'] = int(((dt > max_gap_ns) & ~(jump | new_group)).sum())
    yaw = np.unwrap(poses[:, 2])
    poses = np.column_stack([poses[:, :2], yaw])
    steps = np.concatenate([[0.0], step])
    steps[starts[:-1]] = 0.0
    path = np.cumsum(steps)
    # Make path length restart at 0 in every segment (for readability; only differences
    # within a segment are ever used).
    path -= np.repeat(path[starts[:-1]], np.diff(starts))
    return Trajectory(stamps, poses, starts, path, max_gap_ns, counts)


@dataclass(frozen=True)
class PoseQuery:
    """Poses of a trajectory at query stamps.

    Attributes:
        poses: float64 [Q, 3] (NaN where unknown).
        segment: int64 [Q] segment index, -1 where unknown.
        index: int64 [Q] index of the last trajectory sample at or before the stamp.
        path_length: float64 [Q] distance driven since the segment start (NaN unknown).
        ambiguous: int, queries inside two segments (after a time restart) -> unknown.
    """

    poses: np.ndarray
    segment: np.ndarray
    index: np.ndarray
    path_length: np.ndarray
    ambiguous: int = 0

    @property
    def known(self) -> np.ndarray:
        return self.segment >= 0


def interpolate_poses(traj: Trajectory, query_ns: np.ndarray) -> PoseQuery:
    """Interpolate the trajectory at arbitrary stamps (SE(2) between bracketing samples).

    A stamp is known when it lies in exactly one segment, between two samples at most
    `traj.max_gap_ns` apart (or exactly on a sample). Otherwise it is unknown.
    """
    query = np.asarray(query_ns, dtype=np.int64).reshape(-1)
    q = len(query)
    poses = np.full((q, 3), np.nan)
    segment = np.full(q, -1, np.int64)
    index = np.full(q, -1, np.int64)
    path = np.full(q, np.nan)
    hits = np.zeros(q, np.int64)
    for k in range(traj.n_segments):
        sl = traj.segment(k)
        s = traj.stamps_ns[sl]
        inside = (query >= s[0]) & (query <= s[-1])
        if not inside.any():
            continue
        hits += inside
        qi = np.flatnonzero(inside)
        i = np.searchsorted(s, query[qi], side='right') - 1
        exact = s[i] == query[qi]
        j = np.minimum(i + 1, len(s) - 1)
        ok = exact | ((s[j] - s[i]) <= traj.max_gap_ns)
        qi, i, j, exact = qi[ok], i[ok], j[ok], exact[ok]
        p = traj.poses[sl]
        span = np.maximum(s[j] - s[i], 1).astype(np.float64)
        alpha = np.where(exact, 0.0, (query[qi] - s[i]) / span)
        poses[qi] = se2_interpolate(p[i], p[j], alpha)
        pl = traj.path_length[sl]
        path[qi] = pl[i] + alpha * (pl[j] - pl[i])
        segment[qi] = k
        index[qi] = i + sl.start
    ambiguous = hits > 1
    poses[ambiguous] = np.nan
    segment[ambiguous] = -1
    index[ambiguous] = -1
    path[ambiguous] = np.nan
    return PoseQuery(poses, segment, index, path, int(ambiguous.sum()))
