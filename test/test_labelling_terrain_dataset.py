"""Terrain descriptors as patch labels, in the dataset, and from `ssl-robot label`.

The footprint projection, the dataset arrays (format 2; format-1 datasets still open),
the fitted types stored with the dataset, and `ssl-robot label` on a simulator bag.
"""
from __future__ import annotations

import json

import numpy as np
import pytest

from ssl_robot.dataset import DatasetWriter, LabelledDataset
from ssl_robot.labelling import build_trajectory, TerrainParams
from ssl_robot.labelling.descriptor import DescriptorLayout, DescriptorSeries
from ssl_robot.labelling.terrain import (
    footprint_cells,
    label_terrain,
    label_terrain_descriptors,
    RoughnessSeries,
)
from ssl_robot.labelling.terrain_types import (
    load_dataset_types,
    patch_types,
    save_dataset_types,
    TerrainTypes,
)

MS = 1_000_000
K = np.array([[80.0, 0.0, 63.5], [0.0, 80.0, 47.5], [0.0, 0.0, 1.0]])   # 128 x 96 image
SHAPE = {'distances_m': [0.0, 0.1], 'sensors': ['center'], 'terrain_grid': [2, 3],
         'image_hw': [4, 5]}
LAYOUT = DescriptorLayout(100.0, ((2.0, 50.0),), ('a', 'b', 'c'), 1.0, 0.5)


def straight_run():
    t = np.arange(0, 1001) * 10 * MS
    x = 0.1 * t / 1e9
    return t, x, build_trajectory(t, np.column_stack([x, np.zeros_like(x), np.zeros_like(x)]))


def test_descriptor_patches_take_the_footprint_projection_of_the_signal():
    t, x, traj = straight_run()
    win_t, win_x = t[::10], x[::10]
    rough = np.where((win_x >= 0.45) & (win_x <= 0.55), 5.0, 1.0)
    values = np.column_stack([rough, 10 * rough, np.zeros_like(rough)])
    mask = np.ones(values.shape, bool)
    mask[:, 2] = False                        # an input never published
    mask[win_x > 0.5, 1] = False              # and one that stops half-way
    values[~mask] = np.nan
    series = DescriptorSeries(win_t, values, mask, rough, LAYOUT)
    params = TerrainParams(grid=(6, 8), horizon_s=6.0, footprint_points=1)
    frames = np.array([0, 2000 * MS])
    felt = label_terrain_descriptors(frames, traj, series, K, (96, 128), params)
    scalar = label_terrain(frames, traj, RoughnessSeries(win_t, rough, np.zeros((101, 3)),
                                                         100.0, (5.0, 30.0)), K, (96, 128),
                           params)
    assert felt.values.shape == (2, 6, 8, 3)
    np.testing.assert_array_equal(felt.mask[..., 0], scalar.mask)
    np.testing.assert_allclose(felt.values[..., 0][scalar.mask], scalar.values[scalar.mask],
                               rtol=1e-6)
    assert not felt.mask[..., 2].any() and np.isnan(felt.values[..., 2]).all()
    # Entry b is known only where footprints up to x = 0.5 landed; each entry is the mean
    # over the footprints where it was known (a loop over the projected points).
    b_known = felt.mask[..., 1]
    assert b_known.any() and (b_known <= felt.mask[..., 0]).all() and not (
        b_known == felt.mask[..., 0]).all()
    cell, window, _ = footprint_cells(frames, traj, win_t, K, (96, 128), params)
    expected = {}
    for c, w in zip(cell, window):
        if mask[w, 1]:
            expected.setdefault(int(c), []).append(values[w, 1])
    flat_b = felt.values[..., 1].reshape(-1)
    assert sorted(expected) == np.flatnonzero(b_known.reshape(-1)).tolist()
    for c, vals in expected.items():
        assert flat_b[c] == pytest.approx(np.mean(vals), rel=1e-6)
    # Provenance: the earliest t' felt in a patch is after the frame, within the horizon.
    seen = felt.t_future_ns >= 0
    np.testing.assert_array_equal(seen, felt.mask.any(axis=-1))
    for f, stamp in enumerate(frames):
        tf = felt.t_future_ns[f][seen[f]]
        assert (tf > stamp).all() and (tf <= stamp + 6 * 10**9).all()


def rows(n, dt=3, seed=0):
    rng = np.random.default_rng(seed)
    desc = rng.normal(size=(n, 2, 3, dt)).astype(np.float32)
    mask = rng.random((n, 2, 3, dt)) > 0.3
    desc[~mask] = np.nan
    return {'frames': np.zeros((n, 4, 5, 3), np.uint8),
            'stamps_ns': np.arange(n, dtype=np.int64) * 10**8,
            'proximity': np.zeros((n, 2, 1), np.float32),
            'proximity_mask': np.zeros((n, 2, 1), bool),
            'terrain': np.zeros((n, 2, 3), np.float32), 'terrain_mask': np.zeros((n, 2, 3), bool),
            'prov_t_future_ns': np.full((n, 2), -1), 'prov_pose_err': np.zeros((n, 2, 3),
                                                                               np.float32),
            'terrain_descriptor': desc, 'terrain_descriptor_mask': mask,
            'prov_terrain_t_future_ns': rng.integers(-1, 10**9, (n, 2, 3))}


def test_format_one_datasets_open_without_descriptors(tmp_path):
    with DatasetWriter(tmp_path / 'old', **SHAPE) as writer:
        writer.add_bag('a.mcap', rows(4))           # descriptor arrays given but not stored
    meta_path = tmp_path / 'old' / 'meta.json'
    meta = json.loads(meta_path.read_text())
    assert not (tmp_path / 'old' / 'terrain_descriptor.npy').exists()
    meta['format_version'] = 1
    del meta['terrain_descriptor']
    meta_path.write_text(json.dumps(meta))
    ds = LabelledDataset.open(tmp_path / 'old')
    assert ds.terrain_descriptor.shape == (4, 2, 3, 0)
    assert ds.terrain_descriptor_mask.shape == (4, 2, 3, 0)
    assert (ds.prov_terrain_t_future_ns == -1).all()
    assert patch_types(ds) is None


def test_descriptors_and_types_round_trip_with_the_dataset(tmp_path):
    a, b = rows(5, seed=1), rows(3, seed=2)
    with DatasetWriter(tmp_path / 'ds', **SHAPE, terrain_descriptor=LAYOUT.as_dict()) as w:
        w.add_bag('a.mcap', a)
    with DatasetWriter(tmp_path / 'ds', append=True) as w:   # the layout comes from it
        w.add_bag('b.mcap', b)
    ds = LabelledDataset.open(tmp_path / 'ds')
    assert ds.meta['format_version'] == 2
    assert DescriptorLayout.from_dict(ds.meta['terrain_descriptor']) == LAYOUT
    for name in ('terrain_descriptor', 'terrain_descriptor_mask', 'prov_terrain_t_future_ns'):
        np.testing.assert_array_equal(getattr(ds, name), np.concatenate([a[name], b[name]]))
    flat = np.asarray(ds.terrain_descriptor).reshape(-1, 3)
    flat_mask = np.asarray(ds.terrain_descriptor_mask).reshape(-1, 3)
    types = TerrainTypes.fit(flat, flat_mask, n_types=2, columns=np.arange(3))
    save_dataset_types(types, tmp_path / 'ds')
    assert not any(p.suffix == '.pkl' for p in (tmp_path / 'ds').iterdir())
    ids, conf = patch_types(LabelledDataset.open(tmp_path / 'ds'))
    assert ids.shape == (8, 2, 3) and conf.shape == (8, 2, 3)
    known = ds.terrain_descriptor_mask.any(axis=-1)
    assert ((ids >= 0) == known).all() and (conf[known] > 0.5).all()
    np.testing.assert_array_equal(load_dataset_types(tmp_path / 'ds').weights, types.weights)
    # Another layout (another IMU rate) cannot be appended to this dataset.
    with pytest.raises(Exception, match='terrain_descriptor'):
        DatasetWriter(tmp_path / 'ds', append=True,
                      terrain_descriptor={**LAYOUT.as_dict(), 'sample_rate_hz': 30.0})


def test_label_command_stores_descriptor_patches_and_types(tmp_path, capsys):
    from ssl_robot.cli import main
    from ssl_robot.sim import write_sim_bag
    bag = tmp_path / 'sim'
    write_sim_bag(3, 12.0, bag, width=32, height=24, camera_rate_hz=10.0)
    assert main(['label', str(bag), '--out', str(tmp_path / 'ds'), '--no-figures']) == 0
    out = capsys.readouterr().out
    assert 'terrain descriptor in' in out and 'IMU 100.0 Hz' in out
    ds = LabelledDataset.open(tmp_path / 'ds')
    layout = DescriptorLayout.from_dict(ds.meta['terrain_descriptor'])
    assert max(h for _, h in layout.bands_hz) == pytest.approx(50.0)
    mask = np.asarray(ds.terrain_descriptor_mask)
    names = list(layout.names)
    # The simulator publishes no wheel joint states: wheel entries masked, IMU ones known
    # exactly where the scalar terrain label is.
    np.testing.assert_array_equal(mask[..., 0], ds.terrain_mask)
    assert ds.terrain_mask.any()
    assert not mask[..., names.index('wheel_speed')].any()
    assert np.isnan(np.asarray(ds.terrain_descriptor)[..., names.index('wheel_speed')]).all()
    ids, conf = patch_types(ds)
    assert ((ids >= 0) == mask.any(axis=-1)).all()
    assert load_dataset_types(tmp_path / 'ds').n_types >= 2


def test_wheel_joint_states_of_a_bag_fill_the_wheel_entries(tmp_path):
    from ssl_robot.bags.writer import BagWriter
    from ssl_robot.config import load_node_parameters
    from ssl_robot.labelling import labelling_params
    from ssl_robot.labelling.bag import label_bag

    from bag_factory import default_msg, header, sensor_messages
    params = labelling_params({**load_node_parameters('labeller'), 'wheel_radius_m': 0.05,
                               'wheel_track_m': 0.2,
                               'wheel_joints_left': ['front_left', 'rear_left'],
                               'wheel_joints_right': ['front_right', 'rear_right']})
    bag = tmp_path / 'joints'
    with BagWriter(bag) as writer:
        for i in range(400):                              # 4 s at 100 Hz
            t = 1_000_000_000 + i * 10_000_000
            for topic, msgtype, msg in sensor_messages(t, x=0.2 * i / 100):
                if topic in ('/imu', '/odom') or i % 10 == 0:
                    writer.write(topic, msgtype, msg, t)
            if i % 2 == 0:                                # joint states at 50 Hz
                joint = default_msg(
                    'sensor_msgs/msg/JointState', header=header(t, 'base_link'),
                    name=['front_left', 'front_right', 'rear_left', 'rear_right', 'arm'],
                    position=np.zeros(5), velocity=np.array([2.0, 6.0, 4.0, 6.0, 9.0]),
                    effort=np.array([1.0, 3.0, 1.0, 3.0, 0.0]))
                writer.write('/joint_states', 'sensor_msgs/msg/JointState', joint, t)
    lb = label_bag(bag, params)
    desc = lb.result.descriptors
    v = dict(zip(desc.layout.names, desc.values[len(desc.values) // 2]))
    assert v['wheel_speed'] == pytest.approx(0.225)       # left 0.15 m/s, right 0.30 m/s
    assert v['wheel_yaw_rate'] == pytest.approx(0.75)     # (0.30 - 0.15) / 0.2
    assert v['effort_mean'] == pytest.approx(2.0) and v['effort_diff'] == pytest.approx(2.0)
    # Without the topic the wheel entries are masked and the bag says so.
    no_joints = label_bag(bag, labelling_params({**load_node_parameters('labeller'),
                                                 'joint_states_topic': 'other_joints'}))
    names = no_joints.result.descriptors.layout.names
    assert not no_joints.result.descriptors.mask[:, names.index('wheel_speed')].any()
    assert any('no wheel joint states' in note for note in no_joints.bag.notes)


def test_live_buffer_turns_joint_states_into_the_same_wheel_data():
    from ssl_robot.labelling import labelling_params
    from ssl_robot.labelling.buffers import LiveLabelBuffer
    from ssl_robot.labelling.descriptor import wheels_from_joint_states
    params = labelling_params({'wheel_radius_m': 0.1})
    buffer = LiveLabelBuffer(params, buffer_s=10.0)
    stamps = np.arange(20) * 50 * MS
    for t in stamps:
        buffer.sensors.add_joint_state(int(t), ('right_wheel', 'left_wheel'), [3.0, 1.0],
                                       [0.5, 0.2])
    wheels = buffer.streams([]).wheels
    offline = wheels_from_joint_states(stamps, [('right_wheel', 'left_wheel')] * 20,
                                       [np.array([3.0, 1.0])] * 20, [np.array([0.5, 0.2])] * 20,
                                       left=('left_wheel',), right=('right_wheel',),
                                       radius_m=0.1)
    np.testing.assert_allclose(wheels.velocity, [[0.1, 0.3]] * 20)
    np.testing.assert_array_equal(wheels.velocity, offline.velocity)
    np.testing.assert_array_equal(wheels.effort, offline.effort)
    assert LiveLabelBuffer(params, buffer_s=10.0).streams([]).wheels is None
