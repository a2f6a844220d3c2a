"""The terrain descriptor: bands by IMU rate, masks, cost, types, run-grouped CV.

Bands follow the IMU rate, wheel and slip entries are masked when absent, the scalar
cost grows with vibration, terrain types round-trip as plain arrays, and the run-grouped
validation never splits a run.
"""
from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from ssl_robot.labelling.descriptor import (
    band_layout,
    DescriptorParams,
    IMU_AXES,
    terrain_descriptors,
    WheelData,
)
from ssl_robot.labelling.terrain_types import purity, TerrainTypes

BOREALTC = Path(__file__).resolve().parents[2] / 'shared' / 'data' / 'real' / 'terrain' / \
    'borealtc'


def imu_at(rate, seconds=6.0, axis=2, freq=None, amp=1.0):
    t = np.arange(int(seconds * rate)) / rate
    accel = np.zeros((len(t), 3))
    accel[:, 2] = 9.81
    gyro = np.zeros((len(t), 3))
    if freq is not None:
        target = accel if axis < 3 else gyro
        target[:, axis % 3] += amp * np.sin(2 * np.pi * freq * t)
    return np.round(t * 1e9).astype(np.int64), accel, gyro


@pytest.mark.parametrize('rate', [30.0, 50.0, 100.0, 200.0])
@pytest.mark.parametrize('axis', [2, 4])
def test_a_sinusoid_puts_its_power_in_its_band(rate, axis):
    params = DescriptorParams(window_s=1.0, hop_s=0.5, n_bands=8)
    bands, _ = band_layout(rate, int(rate), params)
    # Welch segments of 0.5 s: bins every 2 Hz. Pick a bin inside the middle band.
    lo, hi = bands[len(bands) // 2]
    freq = 2.0 * math.ceil(lo / 2.0)
    assert lo <= freq < hi
    series = terrain_descriptors(*imu_at(rate, axis=axis, freq=freq, amp=0.5), params)
    layout = series.layout
    assert layout.sample_rate_hz == pytest.approx(rate)
    assert max(h for _, h in layout.bands_hz) == pytest.approx(rate / 2)   # never above
    assert all(a < b for a, b in layout.bands_hz)
    b = layout.n_bands
    assert len(layout.names) == 6 * b + 9
    power = 10.0 ** series.values[:, axis * b:(axis + 1) * b]
    # Parseval: a sine of amplitude A has power A^2 / 2 (the Hann leakage stays inside).
    np.testing.assert_allclose(power.sum(axis=1), 0.125, rtol=0.02)
    assert (power.argmax(axis=1) == len(bands) // 2).all()
    # Hann main lobe: the neighbour bins hold a quarter each at most.
    assert (power[:, len(bands) // 2] / power.sum(axis=1) > 0.6).all()
    # Other axes are silent; the gravity offset of accel z is removed.
    others = [k for k in range(6) if k != axis]
    silent = 10.0 ** series.values[:, [k * b + j for k in others for j in range(b)]]
    assert silent.max() < 1e-9


def test_bands_follow_the_rate():
    params = DescriptorParams(window_s=1.0, n_bands=8)
    slow, _ = band_layout(30.0, 30, params)
    fast, _ = band_layout(200.0, 200, params)
    assert slow[-1][1] == 15.0 and fast[-1][1] == 100.0
    assert len(slow) < len(fast) == 8          # empty bands of the 30 Hz IMU are merged


def test_missing_wheel_topic_masks_only_the_wheel_entries():
    params = DescriptorParams(window_s=1.0, hop_s=0.5)
    stamps, accel, gyro = imu_at(100.0, freq=12.0)
    series = terrain_descriptors(stamps, accel, gyro, params)
    names = series.layout.names
    imu = [k for k, n in enumerate(names) if n.split('_b')[0] in IMU_AXES]
    rest = [k for k in range(len(names)) if k not in imu]
    assert series.mask[:, imu].all() and not series.mask[:, rest].any()
    assert np.isnan(series.values[:, rest]).all()           # masked, never zero-filled
    assert np.isfinite(series.cost).all()


def test_wheel_entries_hand_computed():
    params = DescriptorParams(window_s=1.0, hop_s=0.5, wheel_track_m=0.5)
    stamps, accel, gyro = imu_at(100.0)
    gyro[:, 2] = 0.3                                        # turning at 0.3 rad/s
    wt = np.arange(0, 6000, 50) * 1_000_000                 # 20 Hz joint states
    vel = np.tile([0.1, 0.3], (len(wt), 1))                 # left, right rim speed
    effort = np.tile([2.0, 5.0], (len(wt), 1))
    odom_t = np.arange(0, 6000, 20) * 1_000_000
    series = terrain_descriptors(stamps, accel, gyro, params,
                                 wheels=WheelData(wt, vel, effort),
                                 cmd_stamps_ns=np.array([0]), cmd_speed=np.array([0.25]),
                                 odom_stamps_ns=odom_t, odom_speed=np.full(len(odom_t), 0.15))
    v = dict(zip(series.layout.names, series.values[2]))
    assert series.mask[2].all()
    assert v['wheel_speed'] == pytest.approx(0.2)
    assert v['wheel_speed_std'] == pytest.approx(0.0, abs=1e-9)
    assert v['wheel_yaw_rate'] == pytest.approx(0.4)        # (0.3 - 0.1) / 0.5
    assert v['yaw_slip'] == pytest.approx(0.1)              # 0.4 commanded by wheels, 0.3 felt
    assert v['effort_mean'] == pytest.approx(3.5) and v['effort_diff'] == pytest.approx(3.0)
    assert v['cmd_slip'] == pytest.approx(0.1)              # |0.25 - 0.15|
    assert v['wheel_slip'] == pytest.approx(0.05)           # |0.2 - 0.15|
    # Without effort only the effort entries are masked.
    no_effort = terrain_descriptors(stamps, accel, gyro, params, wheels=WheelData(wt, vel))
    names = no_effort.layout.names
    effort_cols = [names.index(n) for n in ('effort_mean', 'effort_std', 'effort_diff')]
    assert not no_effort.mask[:, effort_cols].any()
    assert no_effort.mask[:, names.index('wheel_speed')].all()


def test_imu_gap_masks_the_windows_over_it():
    stamps, accel, gyro = imu_at(100.0, seconds=8.0, freq=12.0)
    keep = (stamps < 3 * 10**9) | (stamps > 4 * 10**9)
    series = terrain_descriptors(stamps[keep], accel[keep], gyro[keep],
                                 DescriptorParams(window_s=0.5, hop_s=0.1))
    unknown = ~series.mask[:, 0]
    assert unknown.any() and series.counts['gap_windows'] == unknown.sum()
    t = series.stamps_ns[unknown]
    assert t.min() > 2.7e9 and t.max() < 4.3e9
    assert np.isnan(series.cost[unknown]).all() and np.isfinite(series.cost[~unknown]).all()


def test_cost_is_the_band_limited_vibration_and_grows_with_it():
    params = DescriptorParams(window_s=1.0, hop_s=0.5, band_hz=(5.0, 30.0))
    calm = terrain_descriptors(*imu_at(100.0, freq=16.0, amp=0.5), params)
    rough = terrain_descriptors(*imu_at(100.0, freq=16.0, amp=1.0), params)
    outside = terrain_descriptors(*imu_at(100.0, freq=40.0, amp=1.0), params)
    np.testing.assert_allclose(rough.cost, 1.0 / math.sqrt(2), rtol=0.02)   # RMS of the sine
    assert (rough.cost > calm.cost).all()
    assert outside.cost.max() < 0.05                      # 40 Hz is outside 5-30 Hz


def blobs(rng, n=300, d=4):
    a = rng.normal(0.0, 1.0, (n, d))
    b = rng.normal(6.0, 1.0, (n, d))
    return np.concatenate([a, b]), np.repeat([0, 1], n)


def test_terrain_types_find_two_blobs_and_survive_a_round_trip(tmp_path):
    rng = np.random.default_rng(0)
    x, truth = blobs(rng)
    mask = np.ones_like(x, bool)
    types = TerrainTypes.fit(x, mask, seed=0, k_range=(1, 4))
    assert types.n_types == 2 and min(types.bic, key=types.bic.get) == 2
    ids, conf = types.assign(x, mask)
    assert purity(ids, truth) > 0.99 and conf.min() > 0.9
    types.save(tmp_path / 'types.npz')
    again = TerrainTypes.load(tmp_path / 'types.npz')
    np.testing.assert_array_equal(again.assign(x, mask)[0], ids)
    # A masked entry is left out, not read as zero: one known entry still decides.
    partial = mask.copy()
    partial[:, 1:] = False
    assert purity(types.assign(x, partial)[0], truth) > 0.95
    none_known = np.zeros_like(mask)
    unknown_ids, unknown_conf = types.assign(x, none_known)
    assert (unknown_ids == -1).all() and (unknown_conf == 0).all()


def test_run_grouped_folds_never_split_a_run():
    from ssl_robot.labelling.borealtc import grouped_folds
    rng = np.random.default_rng(1)
    runs = np.repeat(np.arange(30), rng.integers(5, 40, 30))
    y = (np.arange(30) % 3)[runs]
    folds = grouped_folds(y, runs, folds=5, seed=0)
    seen = np.zeros(len(y), int)
    for train, test in folds:
        assert not set(runs[train]) & set(runs[test])
        assert set(y[test]) == {0, 1, 2}                  # stratified: every class tested
        seen[test] += 1
    assert (seen == 1).all()


@pytest.mark.skipif(not BOREALTC.is_dir(), reason='real BorealTC data not present')
def test_terrain_eval_command_on_real_runs(tmp_path, capsys):
    from ssl_robot.cli import main
    out = tmp_path / 'eval.json'
    assert main(['terrain-eval', str(BOREALTC), '--max-runs-per-class', '3', '--folds', '3',
                 '--classifier', 'logreg', '--hop-s', '2.0', '--no-types',
                 '--json', str(out)]) == 0
    last = capsys.readouterr().out.strip().splitlines()[-1]
    report = json.loads(out.read_text())
    assert out.with_suffix('.png').is_file()
    best = report['variants'][report['best']]
    assert last == f'balanced accuracy {best["balanced_accuracy"]:.3f} (chance 0.200)'
    assert report['layout']['sample_rate_hz'] == pytest.approx(100.0)
    assert report['arguments']['hop_s'] == 2.0 and report['arguments']['no_types']
    assert set(report['variants']) == {'imu', 'imu_wheel', 'old_scalar', 'shuffled'}
    assert best['balanced_accuracy'] > report['variants']['old_scalar']['balanced_accuracy']
    assert best['balanced_accuracy'] > 0.5
