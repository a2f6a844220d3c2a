"""Terrain self-labels.

Terrain self-labels: the roughness signal, the camera projection, the patch labels,
and the signal's validation on real Husky data (BorealTC).
"""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from ssl_robot.labelling import build_trajectory, imu_roughness, label_terrain, TerrainParams
from ssl_robot.labelling.terrain import project_ground_points, RoughnessSeries, slip_at

BOREALTC = Path(__file__).resolve().parents[2] / 'shared' / 'data' / 'real' / 'terrain' / \
    'borealtc'
MS = 1_000_000
K = np.array([[80.0, 0.0, 63.5], [0.0, 80.0, 47.5], [0.0, 0.0, 1.0]])   # 128 x 96 image


def imu_stream(seconds=4.0, rate=100.0, vib_hz=15.0, vib_amp=0.0, slow_amp=0.0, gyro_amp=0.0):
    t = np.arange(int(seconds * rate)) / rate
    az = 9.81 + vib_amp * np.sin(2 * np.pi * vib_hz * t) + slow_amp * np.sin(2 * np.pi * t)
    accel = np.column_stack([np.zeros_like(t), np.zeros_like(t), az])
    gyro = np.column_stack([gyro_amp * np.sin(2 * np.pi * 3 * t), np.zeros_like(t),
                            np.zeros_like(t)])
    return (t * 1e9).astype(np.int64), accel, gyro


@pytest.mark.parametrize('vib_hz,expected', [(15.0, 1.0 / math.sqrt(2)), (2.0, 0.0)])
def test_vibration_is_the_band_limited_rms_of_vertical_acceleration(vib_hz, expected):
    params = TerrainParams(window_s=1.0, hop_s=0.5, band_hz=(5.0, 30.0))
    series = imu_roughness(*imu_stream(vib_hz=vib_hz, vib_amp=1.0), params)
    assert series.sample_rate_hz == pytest.approx(100.0)
    np.testing.assert_allclose(series.features[:, 0], expected, atol=0.05)


def test_attitude_rate_and_slip_add_to_the_signal():
    params = TerrainParams(window_s=1.0, hop_s=0.5, gyro_weight=2.0, slip_weight=3.0)
    stamps, accel, gyro = imu_stream(gyro_amp=0.2)
    odom_t = np.arange(0, 4000, 20) * MS
    series = imu_roughness(stamps, accel, gyro, params, cmd_stamps_ns=np.array([0]),
                           cmd_speed=np.array([0.2]), odom_stamps_ns=odom_t,
                           odom_speed=np.full(len(odom_t), 0.15))
    # RMS over roll and pitch together: roll is a 0.2 rad/s sine, pitch is still.
    np.testing.assert_allclose(series.features[:, 1], 0.2 / math.sqrt(2) / math.sqrt(2),
                               atol=0.01)
    np.testing.assert_allclose(series.features[:, 2], 0.05, atol=1e-9)
    np.testing.assert_allclose(series.signal, series.features[:, 0] + 2 * series.features[:, 1]
                               + 3 * 0.05, atol=1e-9)


def test_slip_is_zero_when_not_commanded_to_move():
    odom_t = np.arange(0, 2000, 20) * MS
    slip = slip_at(np.array([1000]) * MS, np.array([0]), np.array([0.0]), odom_t,
                   np.full(len(odom_t), 0.1), TerrainParams())
    assert slip[0] == 0.0


def test_imu_gap_makes_windows_unknown():
    stamps, accel, gyro = imu_stream(seconds=6.0, vib_amp=1.0)
    keep = (stamps < 2 * 10**9) | (stamps > 3 * 10**9)
    series = imu_roughness(stamps[keep], accel[keep], gyro[keep], TerrainParams(window_s=0.5))
    unknown = series.stamps_ns[np.isnan(series.signal)]
    assert len(unknown) and unknown.min() > 1.6e9 and unknown.max() < 3.4e9
    assert series.counts['gap_windows'] == len(unknown)


def test_projection_hand_computed():
    # The optical axis meets the ground camera_z / tan(pitch) ahead of the camera: the
    # principal point. Points to the left land left of the image centre.
    pitch, cam = 0.35, (0.10, 0.0, 0.12)
    x_axis = cam[0] + cam[2] / math.tan(pitch)
    u, v, front = project_ground_points(np.array([[x_axis, 0.0], [x_axis, 0.05],
                                                  [0.0, 0.0]]), K, cam, pitch)
    assert front[0] and front[1] and not front[2]            # behind the camera
    np.testing.assert_allclose([u[0], v[0]], [63.5, 47.5], atol=1e-9)
    assert u[1] < 63.5 and v[1] == pytest.approx(47.5)
    # Further away is higher in the image.
    _, v_far, _ = project_ground_points(np.array([[1.0, 0.0]]), K, cam, pitch)
    assert v_far[0] < 47.5


def test_terrain_labels_land_where_the_rough_patch_is_seen():
    # Straight at 0.1 m/s; rough ground (signal 5) for x in [0.45, 0.55], smooth (1) else.
    t = np.arange(0, 1001) * 10 * MS
    x = 0.1 * t / 1e9
    traj = build_trajectory(t, np.column_stack([x, np.zeros_like(x), np.zeros_like(x)]))
    sig_t = t[::10]
    sig_x = x[::10]
    signal = np.where((sig_x >= 0.45) & (sig_x <= 0.55), 5.0, 1.0)
    series = RoughnessSeries(sig_t, signal, np.zeros((len(sig_t), 3)), 100.0, (5.0, 30.0))
    params = TerrainParams(grid=(6, 8), horizon_s=6.0, footprint_points=1,
                           camera_xyz=(0.10, 0.0, 0.12), camera_pitch=0.35)
    out = label_terrain(np.array([0]), traj, series, K, (96, 128), params)
    # Hand-computed rows: ground x in camera rows, v = cy + f * tan(angle below axis).
    def row_of(ground_x):
        angle = math.atan2(0.12, ground_x - 0.10) - 0.35
        return int((47.5 + 80.0 * math.tan(angle)) * 6 / 96)
    rough_rows = {row_of(xg) for xg in np.arange(0.45, 0.5501, 0.01)}
    assert out.mask[0].any()
    assert not out.mask[0, :, [0, 1, 2, 5, 6, 7]].any()     # only the centre columns
    hot = {r for r in range(6) if (out.values[0, r] * out.mask[0, r]).max() > 1.0}
    assert hot and hot <= rough_rows
    assert out.mask[0, row_of(0.3)].any() and out.values[0, row_of(0.3), 3:5].max() == 1.0
    # A patch holds the mean over the footprints seen in it: rough and smooth mix at edges.
    assert 3.0 < out.values[0][out.mask[0]].max() <= 5.0
    assert out.values[0][out.mask[0]].min() == pytest.approx(1.0)
    # A frame later than the patch never sees it (the footprint is behind the camera).
    later = label_terrain(np.array([6000 * MS]), traj, series, K, (96, 128), params)
    assert later.values[0][later.mask[0]].max() == pytest.approx(1.0)


@pytest.mark.skipif(not BOREALTC.is_dir(), reason='real BorealTC data not present')
def test_roughness_signal_separates_real_terrains():
    from ssl_robot.labelling.borealtc import run_features, separation_report
    report = separation_report(run_features(BOREALTC))
    assert report['runs'] >= 50 and len(report['classes']) == 5
    # Chance is 1/5; shuffling the run labels through the same pipeline stays near it.
    assert report['balanced_accuracy'] > 0.38, report
    assert report['balanced_accuracy'] > report['shuffled_balanced_accuracy'] + 0.1
    assert report['kruskal_p'] < 1e-20
    # Flooring (indoors, smooth) vibrates less than snow and asphalt outdoors.
    assert report['pair_auc']['FLOORING>SNOW'] < 0.35
    assert report['pair_auc']['ASPHALT>FLOORING'] > 0.65
