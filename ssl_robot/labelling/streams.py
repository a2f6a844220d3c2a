"""Sensor streams as arrays, and the one function that turns them into labelled rows.

`label_streams` is what both the live node (over its buffer) and `ssl-robot label`
(over a whole bag) call; the two differ only in how they fill `SensorStreams`.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from ssl_robot.labelling.collision import (
    CollisionLabels,
    Collisions,
    detect_collisions,
    label_collisions,
)
from ssl_robot.labelling.descriptor import DescriptorSeries, terrain_descriptors, WheelData
from ssl_robot.labelling.params import LabellingParams
from ssl_robot.labelling.poses import build_trajectory, Trajectory
from ssl_robot.labelling.proximity import label_proximity_at_distances, ProximityLabels
from ssl_robot.labelling.terrain import (
    DescriptorLabels,
    imu_roughness,
    label_terrain,
    label_terrain_descriptors,
    RoughnessSeries,
    TerrainLabels,
)

if TYPE_CHECKING:
    from collections.abc import Sequence


def sort_dedup(stamps: np.ndarray, *values: np.ndarray) -> tuple[np.ndarray, list, dict]:
    """Sort by stamp and drop repeated stamps (first kept); counts of both fixes."""
    stamps = np.asarray(stamps, np.int64).reshape(-1)
    late = int((stamps[1:] < np.maximum.accumulate(stamps)[:-1]).sum()) if len(stamps) else 0
    if len(stamps) < 2 or bool(np.all(stamps[1:] > stamps[:-1])):
        # Already in order without repeats (the usual case): no copy of big arrays.
        return stamps, [np.asarray(v) for v in values], {'out_of_order': 0, 'duplicate': 0}
    order = np.argsort(stamps, kind='stable')
    stamps = stamps[order]
    keep = np.ones(len(stamps), bool)
    keep[1:] = stamps[1:] != stamps[:-1]
    out = [np.asarray(v)[order[keep]] for v in values]
    return stamps[keep], out, {'out_of_order': late, 'duplicate': int((~keep).sum())}


def match_views(frame_stamps: np.ndarray, view_stamps: np.ndarray, tolerance_ns: int
                ) -> np.ndarray:
    """For each frame, the index of the view frame nearest in stamp, -1 if none is close.

    Args:
        frame_stamps: [N] main-camera stamps (any order).
        view_stamps: [M] stamps of one extra camera's frames (any order).
        tolerance_ns: Largest |view stamp - frame stamp| that matches (inclusive).

    Returns:
        int64 [N]: an index into `view_stamps` (the earlier one on a tie), or -1.
    """
    frames = np.asarray(frame_stamps, np.int64).reshape(-1)
    views = np.asarray(view_stamps, np.int64).reshape(-1)
    out = np.full(len(frames), -1, np.int64)
    if not len(views) or not len(frames):
        return out
    order = np.argsort(views, kind='stable')
    ordered = views[order]
    right = np.clip(np.searchsorted(ordered, frames, 'left'), 0, len(ordered) - 1)
    left = np.clip(right - 1, 0, len(ordered) - 1)
    use_left = np.abs(frames - ordered[left]) <= np.abs(ordered[right] - frames)
    nearest = np.where(use_left, left, right)
    close = np.abs(ordered[nearest] - frames) <= int(tolerance_ns)
    out[close] = order[nearest[close]]
    return out


def gather_views(frame_stamps: np.ndarray,
                 view_frames: Sequence[Sequence[tuple[int, np.ndarray]]],
                 tolerance_ns: int, image_hw: tuple[int, int]
                 ) -> tuple[np.ndarray, np.ndarray]:
    """Each frame's matching frame of every extra camera, from buffered (stamp, rgb) frames.

    The live labeller's counterpart of reading views from a bag: frames are matched with
    `match_views`; a view without a frame within `tolerance_ns` is masked, its pixels zero.

    Args:
        frame_stamps: [N] main-camera stamps.
        view_frames: Per extra camera, its (stamp, uint8 [H, W, 3]) frames (any order).
        tolerance_ns: Largest |view stamp - frame stamp| that matches (inclusive).
        image_hw: (H, W) of the main camera; every buffered view frame has this size.

    Returns:
        views uint8 [N, V, H, W, 3] and views_mask bool [N, V].
    """
    frame_stamps = np.asarray(frame_stamps, np.int64).reshape(-1)
    n, h, w = len(frame_stamps), *image_hw
    views = np.zeros((n, len(view_frames), h, w, 3), np.uint8)
    mask = np.zeros((n, len(view_frames)), bool)
    for v, frames in enumerate(view_frames):
        stamps = np.array([stamp for stamp, _ in frames], np.int64)
        for row, k in enumerate(match_views(frame_stamps, stamps, tolerance_ns)):
            if k >= 0:
                views[row, v] = frames[k][1]
                mask[row, v] = True
    return views, mask


@dataclass
class SensorStreams:
    """Everything the labeller needs, as arrays (stamps are header stamps, int64 ns).

    Attributes:
        frame_stamps: [N]; frames: uint8 [N, H, W, 3].
        k_matrix: 3x3 camera intrinsics or None; image_hw: (H, W) or None.
        range_stamps, ranges: per sensor, [R_s] stamps and REP-117 readings.
        odom_stamps: [M]; odom_poses: [M, 3]; odom_speed: [M] forward speed (m/s).
        imu_stamps: [I]; imu_accel, imu_gyro: [I, 3].
        cmd_stamps: [C]; cmd_speed: [C] commanded forward speed (m/s).
        wheels: wheel joint velocity (and effort) per side, or None where the robot
            publishes none (the descriptor's wheel entries are then masked).
        views: uint8 [N, V, H, W, 3] extra camera frames matched to the frames (None:
            no extra cameras); views_mask: bool [N, V], False where a view had no match.
        bumper_stamps: [B] contact samples, bumper_force: [B] |force_xy| (N) on the robot
            (None: the robot has no bumper; collisions come from proprioception).
    """

    frame_stamps: np.ndarray
    frames: np.ndarray
    k_matrix: np.ndarray | None
    image_hw: tuple[int, int] | None
    range_stamps: list[np.ndarray]
    ranges: list[np.ndarray]
    odom_stamps: np.ndarray
    odom_poses: np.ndarray
    odom_speed: np.ndarray
    imu_stamps: np.ndarray
    imu_accel: np.ndarray
    imu_gyro: np.ndarray
    cmd_stamps: np.ndarray
    cmd_speed: np.ndarray
    views: np.ndarray | None = None
    views_mask: np.ndarray | None = None
    bumper_stamps: np.ndarray | None = None
    bumper_force: np.ndarray | None = None
    wheels: WheelData | None = None


@dataclass
class LabelResult:
    """Labelled rows (dataset arrays without bag_ids) and what was found on the way."""

    rows: dict[str, np.ndarray]
    trajectory: Trajectory
    roughness: RoughnessSeries
    proximity: ProximityLabels
    terrain: TerrainLabels
    counts: dict[str, int] = field(default_factory=dict)
    collisions: Collisions | None = None
    crash: CollisionLabels | None = None
    descriptors: DescriptorSeries | None = None


def label_streams(streams: SensorStreams, params: LabellingParams) -> LabelResult:
    """Label every frame of `streams` (proximity at distances per sensor, terrain patches).

    Frames, ranges and IMU may come in any order and with repeated stamps; they are
    sorted and deduplicated here (counted). Odometry goes through `build_trajectory`
    in receive order, so resets are found before sorting.
    """
    counts: dict[str, int] = {}
    views, views_mask = streams.views, streams.views_mask
    if views is None or views_mask is None:
        h, w = streams.frames.shape[1:3]
        views = np.zeros((len(streams.frames), 0, h, w, 3), np.uint8)
        views_mask = np.zeros((len(streams.frames), 0), bool)
    fstamps, (frames, views, views_mask), c = sort_dedup(streams.frame_stamps, streams.frames,
                                                         views, views_mask)
    counts.update({f'frames_{k}': v for k, v in c.items()})
    for v, matched in enumerate(views_mask.sum(axis=0).tolist()):
        counts[f'views_matched_{v}'] = int(matched)
        counts[f'views_missing_{v}'] = len(fstamps) - int(matched)
    rstamps, rvalues = [], []
    for k, (st, rv) in enumerate(zip(streams.range_stamps, streams.ranges)):
        st, (rv,), c = sort_dedup(st, rv)
        rstamps.append(st)
        rvalues.append(rv.astype(np.float64))
        for key, v in c.items():
            counts[f'range_{key}'] = counts.get(f'range_{key}', 0) + v
        counts['range_nan'] = counts.get('range_nan', 0) + int(np.isnan(rv).sum())
        counts['range_too_close'] = counts.get('range_too_close', 0) + int(np.isneginf(rv).sum())
        counts['range_nothing'] = counts.get('range_nothing', 0) + int(np.isposinf(rv).sum())
    traj = build_trajectory(streams.odom_stamps, streams.odom_poses,
                            **params.trajectory_kwargs())
    counts.update({f'odom_{k}': v for k, v in traj.counts.items()})
    prox = label_proximity_at_distances(fstamps, traj, rstamps, rvalues, params.proximity)
    counts.update({f'proximity_{k}': v for k, v in prox.counts.items()})
    ostamps, (ospeed,), _ = sort_dedup(streams.odom_stamps, streams.odom_speed)
    rough = imu_roughness(streams.imu_stamps, streams.imu_accel, streams.imu_gyro,
                          params.terrain, cmd_stamps_ns=streams.cmd_stamps,
                          cmd_speed=streams.cmd_speed, odom_stamps_ns=ostamps,
                          odom_speed=ospeed)
    counts.update({f'imu_{k}': v for k, v in rough.counts.items()})
    descriptors = terrain_descriptors(
        streams.imu_stamps, streams.imu_accel, streams.imu_gyro,
        params.terrain.descriptor_params(), wheels=streams.wheels,
        cmd_stamps_ns=streams.cmd_stamps, cmd_speed=streams.cmd_speed, odom_stamps_ns=ostamps,
        odom_speed=ospeed)
    gh, gw = params.terrain.grid
    if streams.k_matrix is not None and streams.image_hw is not None and len(fstamps):
        terrain = label_terrain(fstamps, traj, rough, streams.k_matrix, streams.image_hw,
                                params.terrain)
        felt = label_terrain_descriptors(fstamps, traj, descriptors, streams.k_matrix,
                                         streams.image_hw, params.terrain)
    else:
        n = len(fstamps)
        terrain = TerrainLabels(np.zeros((n, gh, gw), np.float32), np.zeros((n, gh, gw), bool),
                                {'no_camera_info': 1})
        dt = len(descriptors.layout.names)
        felt = DescriptorLabels(np.full((n, gh, gw, dt), np.nan, np.float32),
                                np.zeros((n, gh, gw, dt), bool),
                                np.full((n, gh, gw), -1, np.int64))
    counts.update({f'terrain_{k}': v for k, v in terrain.counts.items()})
    collisions, crash = _crash_labels(streams, fstamps, traj, ostamps, ospeed, params)
    counts.update({f'collision_{k}': v for k, v in {**collisions.counts,
                                                     **crash.counts}.items()})
    rows = {'frames': frames, 'stamps_ns': fstamps, 'proximity': prox.labels,
            'proximity_mask': prox.mask, 'terrain': terrain.values,
            'terrain_mask': terrain.mask, 'prov_t_future_ns': prox.t_future_ns,
            'prov_pose_err': prox.pose_err, 'views': views, 'views_mask': views_mask,
            'collision': crash.labels, 'collision_mask': crash.mask,
            'prov_collision_tti_ns': crash.time_to_impact_ns,
            'prov_collision_dist_m': crash.distance_to_impact_m,
            'terrain_descriptor': felt.values, 'terrain_descriptor_mask': felt.mask,
            'prov_terrain_t_future_ns': felt.t_future_ns}
    return LabelResult(rows, traj, rough, prox, terrain, counts, collisions, crash,
                       descriptors)


def _crash_labels(streams: SensorStreams, fstamps: np.ndarray, traj: Trajectory,
                  ostamps: np.ndarray, ospeed: np.ndarray, params: LabellingParams
                  ) -> tuple[Collisions, CollisionLabels]:
    """Collisions (bumper, else proprioception) and the crash labels of the frames."""
    bumper = None
    if streams.bumper_stamps is not None and len(streams.bumper_stamps):
        bstamps, (bforce,), _ = sort_dedup(streams.bumper_stamps, streams.bumper_force)
        bumper = (bstamps, bforce)
    istamps, (accel,), _ = sort_dedup(streams.imu_stamps, streams.imu_accel)
    cstamps, (cspeed,), _ = sort_dedup(streams.cmd_stamps, streams.cmd_speed)
    collisions = detect_collisions(
        params.collision, bumper_stamps_ns=None if bumper is None else bumper[0],
        bumper_force_n=None if bumper is None else bumper[1], imu_stamps_ns=istamps,
        imu_forward_accel=accel[:, 0] if len(accel) else accel.reshape(-1),
        odom_stamps_ns=ostamps, odom_speed=ospeed, cmd_stamps_ns=cstamps, cmd_speed=cspeed)
    crash = label_collisions(fstamps, collisions, traj, cstamps, cspeed, params.collision)
    return collisions, crash
