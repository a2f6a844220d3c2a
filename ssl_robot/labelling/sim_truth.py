"""How right the pseudo-labels are, on simulator bags where the geometry is known.

For frame t, distance d and sensor s, the truth is whether the simulated world has an
obstacle closer than the threshold along sensor s's ray when the robot stands at its
ground-truth pose at t advanced by d along its heading: `World.obstacle_distance` from
the sensor's position, in the sensor's direction. Where an obstacle blocks the straight
way there (the robot's front would touch it first), the robot cannot stand at that pose:
the truth is 'obstacle' at d, not what the sensor would see from behind the obstacle
(free, behind a wall). The pseudo-labels come from drifting odometry and real
(simulated) sensor readings; the truth from neither.

A simulator bag carries its world (`/sim/world`) and the true pose (`/ground_truth/odom`),
so the truth of every frame of a dataset made from such bags can be rebuilt from the
bags alone (`read_sim_truth`, `dataset_proximity_truth`) - for every frame with a known
true pose, whether or not the labeller found a pseudo-label for it.
"""
from __future__ import annotations

from dataclasses import dataclass
import logging
from pathlib import Path
from typing import Any

import numpy as np

from ssl_robot.bags.reader import BagReader
from ssl_robot.labelling.errors import LabelError
from ssl_robot.labelling.poses import build_trajectory, interpolate_poses
from ssl_robot.msgconv import odometry_to_pose2d, stamp_ns
from ssl_robot.sim.world import ROBOT, World

_LOG = logging.getLogger(__name__)

#: Topics of the simulator's truth in a sim bag.
GROUND_TRUTH_TOPIC = '/ground_truth/odom'
WORLD_TOPIC = '/sim/world'


@dataclass(frozen=True)
class SimTruth:
    """The simulator's truth of one bag.

    Attributes:
        world: The world the bag was simulated in.
        stamps_ns: Stamps of the true poses.
        poses: True (x, y, yaw) of base_link in the world [N, 3].
    """

    world: World
    stamps_ns: np.ndarray
    poses: np.ndarray


def read_sim_truth(bag: Path | str | list[Path | str]) -> SimTruth | None:
    """The world and true trajectory of a simulator bag; None for a bag without them.

    Args:
        bag: The bag, or the files of one recording.

    Raises:
        BagError: When the bag cannot be read.
        SimError: When its world description is invalid.
    """
    with BagReader(bag) as reader:
        if not {GROUND_TRUTH_TOPIC, WORLD_TOPIC} <= set(reader.topics):
            return None
        world_json, stamps, poses = None, [], []
        for m in reader.messages([GROUND_TRUTH_TOPIC, WORLD_TOPIC]):
            if m.topic == WORLD_TOPIC:
                world_json = world_json or str(m.msg.data)
            else:
                stamps.append(stamp_ns(m.msg.header))
                poses.append(odometry_to_pose2d(m.msg))
    if world_json is None or not stamps:
        return None
    return SimTruth(World.from_json(world_json), np.asarray(stamps, np.int64),
                    np.asarray(poses, np.float64).reshape(-1, 3))


def dataset_proximity_truth(data: Any, indices: np.ndarray | None = None, *,
                            obstacle_range_m: float | None = None
                            ) -> tuple[np.ndarray, np.ndarray]:
    """Geometric truth [n, D, S] of a dataset's proximity labels, and where it is known.

    Every frame whose bag is a simulator bag (world and true poses inside) and whose
    stamp lies within the true trajectory gets a truth at every distance and sensor; other
    frames are unknown.

    Args:
        data: A `LabelledDataset`.
        indices: Rows to evaluate (default: all).
        obstacle_range_m: Range below which a ray hit is an obstacle (default: the
            threshold each bag was labelled with).

    Returns:
        (truth bool [n, D, S], known bool [n, D, S]).

    Raises:
        LabelError: For a sensor the simulated robot does not have.
        BagError: When a source bag cannot be read.
    """
    idx = np.arange(len(data)) if indices is None else np.asarray(indices, np.int64)
    sensors = list(data.sensors)
    missing = [s for s in sensors if s not in ROBOT.proximity_poses]
    if missing:
        raise LabelError(f'sensors {missing} are not on the simulated robot '
                         f'({", ".join(ROBOT.proximity_poses)})')
    poses = [ROBOT.proximity_poses[s] for s in sensors]
    distances = list(data.distances_m)
    bag_ids = np.asarray(data.bag_ids)[idx]
    stamps = np.asarray(data.stamps_ns)[idx]
    truth = np.zeros((len(idx), len(distances), len(sensors)), bool)
    known = np.zeros_like(truth)
    for bag in data.meta['bags']:
        rows = np.flatnonzero(bag_ids == int(bag['id']))
        if not len(rows):
            continue
        files = str(bag['path']).split(', ')  # the files of one recording
        if not all(Path(f).exists() for f in files):
            # A dataset outlives its bags (moved, deleted, or never a bag): no truth there.
            _LOG.info('%s: bag not found; no simulator truth for its frames', bag['path'])
            continue
        sim = read_sim_truth(files)
        if sim is None:
            continue
        threshold = obstacle_range_m if obstacle_range_m is not None else float(
            bag.get('params', {}).get('proximity', {}).get('obstacle_range_m', 0.12))
        t, k = proximity_truth(sim.world, sim.stamps_ns, sim.poses, stamps[rows], distances,
                               poses, threshold)
        truth[rows], known[rows] = t, k
    return truth, known


def proximity_truth(world: object, gt_stamps: np.ndarray, gt_poses: np.ndarray,
                    frame_stamps: np.ndarray, distances_m: list[float],
                    sensor_poses: list[tuple[float, float, float]],
                    obstacle_range_m: float, *,
                    body_half_size_m: tuple[float, float] = ROBOT.body_half_size_m[:2],
                    ) -> tuple[np.ndarray, np.ndarray]:
    """Ground-truth obstacle labels [N, D, S] and where they are defined (gt pose known).

    Args:
        world: The world (`World.obstacle_distance`).
        gt_stamps, gt_poses: The true trajectory (x, y, yaw).
        frame_stamps: Stamps of the frames.
        distances_m: Distances ahead.
        sensor_poses: (x, y, yaw) of each sensor in base_link.
        obstacle_range_m: A ray hit closer than this is an obstacle.
        body_half_size_m: The robot's half length and half width: its front edge sweeps
            the way ahead (rays 1.5 cm apart or closer, so no pole slips between).
    """
    traj = build_trajectory(gt_stamps, gt_poses, max_jump_m=10.0, max_jump_rad=7.0)
    at = interpolate_poses(traj, frame_stamps)
    n, d, s = len(frame_stamps), len(distances_m), len(sensor_poses)
    truth = np.zeros((n, d, s), bool)
    front_x, half_y = body_half_size_m
    front_y = np.linspace(-half_y, half_y, max(2, int(np.ceil(2 * half_y / 0.015)) + 1))
    for i in np.flatnonzero(at.known):
        x, y, yaw = at.poses[i]
        c, si = np.cos(yaw), np.sin(yaw)
        # How far the robot can drive straight ahead before its front touches something.
        way = min(world.obstacle_distance(x + c * front_x - si * fy, y + si * front_x + c * fy,
                                          yaw) for fy in front_y)
        for j, dist in enumerate(distances_m):
            if dist > way:
                truth[i, j] = True
                continue
            bx, by = x + dist * c, y + dist * si
            for k, (sx, sy, syaw) in enumerate(sensor_poses):
                ox, oy = bx + c * sx - si * sy, by + si * sx + c * sy
                truth[i, j, k] = world.obstacle_distance(ox, oy, yaw + syaw) < obstacle_range_m
    return truth, np.broadcast_to(at.known[:, None, None], truth.shape).copy()


def precision_recall(labels: np.ndarray, mask: np.ndarray, truth: np.ndarray,
                     truth_known: np.ndarray) -> dict[str, float]:
    """Precision, recall, accuracy of known pseudo-labels against the truth."""
    sel = mask & truth_known
    pred, true = labels[sel] > 0.5, truth[sel]
    tp = int((pred & true).sum())
    fp = int((pred & ~true).sum())
    fn = int((~pred & true).sum())
    return {'precision': tp / max(tp + fp, 1), 'recall': tp / max(tp + fn, 1),
            'accuracy': float((pred == true).mean()) if sel.any() else float('nan'),
            'known': int(sel.sum()), 'positives_true': int(true.sum()),
            'tp': tp, 'fp': fp, 'fn': fn}
