"""Evaluation against the simulator's truth: truth of every frame, detector, truth labels."""
from __future__ import annotations

import math

import numpy as np
import pytest

from ssl_robot.config import load_node_parameters
from ssl_robot.dataset import DatasetWriter
from ssl_robot.labelling import labelling_params
from ssl_robot.labelling.bag import label_bag
from ssl_robot.labelling.sim_truth import dataset_proximity_truth, proximity_truth, read_sim_truth
from ssl_robot.robot.ground_detector import ground_colour_scores, strip_pixels
from ssl_robot.robot.truth_eval import thirds, truth_report
from ssl_robot.sim import ROBOT, write_sim_bag

PARAMS = labelling_params(load_node_parameters('labeller'))


@pytest.fixture(scope='module')
def sim_dataset(tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp('truth')
    bag = root / 'bag'
    # A crowded randomised world, 20 s at 10 Hz, tiny images: a few seconds to simulate.
    write_sim_bag(8, 20.0, bag, width=32, height=24, camera_rate_hz=10.0,
                  world_params={'n_obstacles': 20})
    lb = label_bag(bag, PARAMS)
    writer = DatasetWriter(root / 'data', distances_m=PARAMS.proximity.distances_m,
                           sensors=PARAMS.sensors, terrain_grid=PARAMS.terrain.grid,
                           image_hw=lb.rows['frames'].shape[1:3], params=PARAMS.as_dict())
    writer.add_bag(bag, lb.rows, params=PARAMS.as_dict())
    return writer.commit(), lb


def test_truth_is_known_for_frames_without_pseudo_labels(sim_dataset) -> None:
    data, lb = sim_dataset
    truth, known = dataset_proximity_truth(data)
    pseudo = np.asarray(data.proximity_mask)
    far = ~pseudo[:, -1].any(axis=1)
    assert far.any()  # frames with no pseudo-label at the farthest distance...
    assert known[far, -1].all()  # ...still have their truth there
    assert known.all() and known.sum() > pseudo.sum()
    # The same truth as computed straight from the labelled bag's true trajectory.
    direct, direct_known = proximity_truth(
        read_sim_truth(data.meta['bags'][0]['path']).world, *lb.bag.ground_truth,
        lb.rows['stamps_ns'], PARAMS.proximity.distances_m,
        [ROBOT.proximity_poses[s] for s in PARAMS.sensors], PARAMS.proximity.obstacle_range_m)
    np.testing.assert_array_equal(truth, direct)
    np.testing.assert_array_equal(known, direct_known)
    rows = np.arange(3, len(data), 2)
    sub, sub_known = dataset_proximity_truth(data, rows)
    np.testing.assert_array_equal(sub, truth[rows])


def test_truth_behind_a_wall_is_obstacle_not_free() -> None:
    from ssl_robot.sim.world import Obstacle, World
    # A thin wall across the way, front face 0.29 m ahead of base_link; the robot at the
    # origin facing it. Centre sensor 0.062 m ahead: its ray meets the wall within 0.12 m
    # once d > 0.29 - 0.062 - 0.12 = 0.108 m. The robot's front (0.055 m ahead) touches
    # the wall after 0.235 m: at d = 0.3 and 0.5 it cannot stand there, and the sensor
    # would stand behind the wall seeing nothing - the truth there is 'obstacle'.
    wall = Obstacle('box', 0.30, 0.0, 0.0, (0.01, 0.3), 0.2, (0.5, 0.5, 0.5))
    world = World(0, 2.0, 0.3, (wall,), (), (0.0, 0.0, 0.0))
    stamps = np.array([0, 100_000_000])
    poses = np.zeros((2, 3))
    sensors = [ROBOT.proximity_poses[s] for s in ('left', 'center', 'right')]
    truth, known = proximity_truth(world, stamps, poses, stamps[:1], [0.0, 0.1, 0.2, 0.3, 0.5],
                                   sensors, 0.12)
    assert known.all()
    np.testing.assert_array_equal(truth[0].T, [[False, False, True, True, True]] * 3)
    # Facing away, the same wall is never in the way.
    away, _ = proximity_truth(world, stamps, np.array([[0.0, 0.0, math.pi]] * 2), stamps[:1],
                              [0.0, 0.5], sensors, 0.12)
    assert not away.any()


def test_truth_report_scores_every_frame_with_truth(sim_dataset) -> None:
    data, _ = sim_dataset
    truth, known = dataset_proximity_truth(data)
    assert truth[known].any()
    rng = np.random.default_rng(0)
    perfect = truth + 0.1 * rng.random(truth.shape)
    report = truth_report({'perfect': perfect, 'noise': rng.random(truth.shape)}, truth, known,
                          pseudo_labels=np.asarray(data.proximity),
                          pseudo_mask=np.asarray(data.proximity_mask),
                          distances_m=data.distances_m, sensors=data.sensors, groups=None,
                          n_boot=20)
    overall = report['models']['perfect']['overall']
    assert overall['n_known'] == int(known.sum()) > int(np.asarray(data.proximity_mask).sum())
    assert overall['auc'] == 1.0
    assert 0.3 < report['models']['noise']['overall']['auc'] < 0.7
    assert report['frames_with_truth'] == len(data)
    assert report['labels_with_truth'] == known.sum() > report['labels_with_pseudo_label']
    noise = report['label_noise']['overall']
    assert noise['known'] == int(np.asarray(data.proximity_mask).sum())
    assert thirds([{'auc': a} for a in (1.0, 0.9, 0.8, 0.7, 0.6, 0.5)]) == {
        'nearest_third_auc': 0.95, 'farthest_third_auc': 0.55}


def test_obstacle_task_trains_on_truth_labels(sim_dataset) -> None:
    from ssl_robot.robot.tasks import ObstacleTask
    data, _ = sim_dataset
    truth, known = dataset_proximity_truth(data)
    task = ObstacleTask({'dataset': str(data.path), 'labels': 'truth', 'split_by': 'time',
                         'val_fraction': 0.25})
    train_set, _ = task.datasets()
    item = train_set[0]
    row = int(train_set.indices[0])
    np.testing.assert_array_equal(item['proximity'].numpy(), truth[row].astype(np.float32))
    np.testing.assert_array_equal(item['proximity_mask'].numpy(), known[row])


def test_truth_labels_keep_the_pseudo_labels_of_frames_without_a_true_pose(
        sim_dataset, tmp_path) -> None:
    # The demo's world 1 comes through the recorder node, which records no true pose: an
    # upper bound that dropped its frames trained on fewer worlds than the model it bounds.
    from ssl_robot.robot.tasks import ObstacleTask
    data, lb = sim_dataset
    sim_bag = data.meta['bags'][0]['path']
    later = {**lb.rows, 'stamps_ns': lb.rows['stamps_ns'] + 1000 * 10**9}
    writer = DatasetWriter(tmp_path / 'two', distances_m=PARAMS.proximity.distances_m,
                           sensors=PARAMS.sensors, terrain_grid=PARAMS.terrain.grid,
                           image_hw=lb.rows['frames'].shape[1:3], params=PARAMS.as_dict())
    writer.add_bag(sim_bag, lb.rows, params=PARAMS.as_dict())
    # Frames of a bag without truth (here its bag is not on disk: no world, no true pose).
    writer.add_bag(tmp_path / 'recorded_without_truth', later, params=PARAMS.as_dict())
    two = writer.commit()
    n = len(data)
    truth, known = dataset_proximity_truth(data)
    pseudo_mask = lb.rows['proximity_mask'].astype(bool)
    assert known.all() and not pseudo_mask.all()  # the two halves can be told apart
    task = ObstacleTask({'dataset': str(two.path), 'labels': 'truth', 'split_by': 'bag',
                         'val_fraction': 0.5})
    arrays = task.truth_labels()
    np.testing.assert_array_equal(arrays['proximity'][:n], truth.astype(np.float32))
    np.testing.assert_array_equal(arrays['proximity_mask'][:n], known)
    np.testing.assert_array_equal(arrays['proximity'][n:], lb.rows['proximity'])
    np.testing.assert_array_equal(arrays['proximity_mask'][n:], pseudo_mask)
    # What the trainer gets: each bag's frames with those labels, in both splits.
    sets = task.datasets()
    items = {int(s.indices[0]): s[0] for s in sets}
    assert sorted(r < n for r in items) == [False, True]
    for row, item in items.items():
        np.testing.assert_array_equal(item['proximity_mask'].numpy(),
                                      known[row] if row < n else pseudo_mask[row - n])


def test_ground_colour_detector_on_a_synthetic_image() -> None:
    h, w = 96, 128
    cam = dict(camera_xyz_m=ROBOT.camera_xyz_m, camera_pitch_rad=ROBOT.camera_pitch_rad,
               camera_fovy_deg=ROBOT.camera_fovy_deg)
    sensors = [ROBOT.proximity_poses[s] for s in ('left', 'center', 'right')]
    # Rows of the ground 0.40 m and 0.48 m ahead (pinhole: camera 0.12 m high at x=0.10,
    # pitched 0.35 rad down, fy = 48 / tan(30 deg)).
    f = 0.5 * h / math.tan(math.radians(30))

    def row(x: float) -> int:
        angle = math.atan2(ROBOT.camera_xyz_m[2], x - ROBOT.camera_xyz_m[0])
        return int(round((h - 1) / 2 + f * math.tan(angle - ROBOT.camera_pitch_rad)))

    rng = np.random.default_rng(0)
    image = np.clip(rng.normal(120, 4, (1, h, w, 3)), 0, 255).astype(np.uint8)
    image[0, row(0.48):row(0.40) + 1, w // 2 - 8:w // 2 + 8] = (200, 30, 30)  # red, ahead
    scores = ground_colour_scores(image, distances_m=[0.0, 0.3, 0.5], sensor_poses=sensors,
                                  obstacle_range_m=0.12, **cam)[0]
    # The centre strip at d = 0.3 m spans 0.36-0.48 m ahead: it holds the red patch.
    assert scores[1, 1] > 5.0
    assert scores[0].max() < 2.5 and scores[2].max() < 2.5  # nearer / farther strips: ground
    assert scores[1, 1] > 2 * max(scores[1, 0], scores[1, 2])
    rows, _ = strip_pixels(distances_m=[0.0], sensor_poses=sensors, obstacle_range_m=0.12,
                           image_hw=(h, w), **cam)
    assert (rows == h - 1).all()  # 6-18 cm ahead is below the view: read at the bottom row


def test_eval_reports_truth_next_to_baselines(sim_dataset, tmp_path) -> None:
    from ssl_robot.robot import build_task
    from ssl_robot.robot.evaluate import evaluate_run
    from ssl_robot.train import TrainConfig, Trainer
    data, _ = sim_dataset
    task = build_task('obstacle', {'dataset': str(data.path), 'split_by': 'time'})
    Trainer(task, TrainConfig(out_dir=str(tmp_path / 'run'), task='obstacle',
                              task_params=task.params, epochs=1, max_steps=2,
                              progress=False)).fit()
    report = evaluate_run(tmp_path / 'run', n_boot=10)
    truth = report['truth']
    assert set(truth['models']) == {'trained', 'random_init', 'hand_detector', 'truth_trained'}
    assert truth['frames_with_truth'] == report['n_val_frames']
    assert truth['labels_with_truth'] > truth['labels_with_pseudo_label']
    assert set(truth['thirds']['trained']) == {'nearest_third_auc', 'farthest_third_auc'}
    assert (tmp_path / 'run' / 'eval' / 'truth_run' / 'best.pt').exists()



def test_obstacle_task_trains_on_completed_labels(sim_dataset) -> None:
    from ssl_robot.robot.consistency import complete_labels_beyond_obstacles
    from ssl_robot.robot.tasks import ObstacleTask
    from ssl_robot.train import TrainError
    data, _ = sim_dataset
    # In this 20 s world only the left sensor ever felt an obstacle, so the wiring is
    # checked with it (the completion's truth is checked on a wall, test_state_consistency).
    task = ObstacleTask({'dataset': str(data.path), 'label_completion': True,
                         'completion_sensor': 'left', 'split_by': 'time', 'val_fraction': 0.25})
    labels, mask = complete_labels_beyond_obstacles(
        np.asarray(data.proximity), np.asarray(data.proximity_mask),
        distances_m=list(data.distances_m), sensor_index=0, margin_m=0.13)
    assert (mask & ~np.asarray(data.proximity_mask).astype(bool)).any()
    train_set, val_set = task.datasets()
    for items in (train_set, val_set):
        for i in range(0, len(items), 7):
            row = int(items.indices[i])
            np.testing.assert_array_equal(items[i]['proximity_mask'].numpy(), mask[row])
            np.testing.assert_array_equal(items[i]['proximity'].numpy(), labels[row])
    with pytest.raises(TrainError, match='no sensor'):
        ObstacleTask({'dataset': str(data.path), 'label_completion': True,
                      'completion_sensor': 'rear'}).datasets()
