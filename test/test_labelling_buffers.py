"""The live labelling buffer and frame admission: pure core, no rclpy (shared with offline)."""
from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import yaml

from ssl_robot.labelling import labelling_params
from ssl_robot.labelling.buffers import FrameAdmission, LiveLabelBuffer, SensorBuffer
from ssl_robot.labelling.params import DEFAULTS, DESCRIPTIONS, PARAMETERS
from ssl_robot.labelling.proximity import ProximityParams
from ssl_robot.paths import config_path


def _image(h: int = 4, w: int = 6, encoding: str = 'rgb8', value: int = 7) -> SimpleNamespace:
    channels = 1 if encoding == 'mono8' else 3
    return SimpleNamespace(height=h, width=w, encoding=encoding, step=w * channels,
                           is_bigendian=0, data=bytes([value]) * (h * w * channels))


def test_admission_keeps_one_frame_per_slot_and_counts_every_drop_by_cause():
    adm = FrameAdmission(frame_rate_hz=5.0)                      # 200 ms slots
    kept = []
    for stamp, msg in [(0, _image()), (100_000_000, _image()),  # same slot: skipped
                       (200_000_000, _image(encoding='yuv422')),  # bad encoding
                       (250_000_000, _image(h=5)),              # other size
                       (390_000_000, _image(value=9))]:         # slot 1 still free: kept
        if adm.slot_taken(stamp):
            continue
        rgb, why = adm.admit(stamp, msg)
        if rgb is not None:
            kept.append((stamp, int(rgb[0, 0, 0])))
        else:
            assert why
    assert kept == [(0, 7), (390_000_000, 9)]
    assert adm.counts == {'frames_skipped_rate': 1, 'frames_bad_encoding': 1,
                          'frames_bad_size': 1}
    assert adm.image_hw == (4, 6)


def test_sensor_buffer_counts_odometry_and_range_anomalies():
    buf = SensorBuffer(n_ranges=2, odom_max_jump_m=0.5, odom_max_jump_rad=1.0)
    assert buf.add_odom(10, (0.0, 0.0, 0.0), 0.1) == ''
    buf.add_odom(10, (0.0, 0.0, 0.0), 0.1)                      # duplicate
    buf.add_odom(5, (0.01, 0.0, 0.0), 0.1)                      # out of order
    assert 'reset' in buf.add_odom(20, (2.0, 0.0, 0.0), 0.1)    # a jump
    for value in (float('nan'), -np.inf, np.inf, 0.05):
        buf.add_range(1, 30, value)
    assert buf.counts == {'odom_out_of_order': 1, 'odom_duplicate': 1, 'odom_jumps': 1,
                          'range_nan': 1, 'range_too_close': 1, 'range_nothing': 1}
    arrays = buf.arrays()
    assert arrays['odom_poses'].shape == (4, 3) and len(arrays['ranges'][1]) == 4
    buf.forget_before(15)
    assert [o[0] for o in buf.odom] == [20]


def _drive(buffer: LiveLabelBuffer, t0_s: float, seconds: float) -> None:
    """1 m/s straight ahead from x = 0 at t0, odometry 50 Hz, a clear centre range."""
    for i in range(int(seconds * 50)):
        t = t0_s + i / 50
        stamp = int(t * 1e9)
        buffer.add_odom(stamp, ((t - t0_s) * 0.1, 0.0, 0.0), 0.1)
        for k in range(3):
            buffer.sensors.add_range(k, stamp, np.inf)


def test_live_buffer_labels_only_frames_whose_future_is_known_and_stays_bounded():
    params = labelling_params({'label_horizon_s': 2.0, 'terrain_horizon_s': 1.0})
    buffer = LiveLabelBuffer(params, buffer_s=6.0)
    assert buffer.wait_ns == int(2.0 * 1e9)
    for i in range(10):                                           # frames at 0.0 .. 1.8 s
        assert buffer.add_frame(int(i * 0.2e9), _image()) == ''
    _drive(buffer, 0.0, 3.0)                                      # odometry up to ~3 s
    ready = buffer.ready_frames()
    assert ready and max(f[0] for f in ready) <= 3.0e9 - buffer.wait_ns
    result = buffer.label()
    assert len(result.rows['stamps_ns']) == len(ready)
    assert len(buffer.frames) == 10 - len(ready)                  # the rest still wait
    _drive(buffer, 3.0, 8.0)                                      # far past the buffer
    buffer.prune()
    newest = buffer.newest_odom_ns
    assert min(o[0] for o in buffer.sensors.odom) >= newest - buffer.buffer_ns - 2e9
    assert not buffer.frames and buffer.counts['frames_dropped_buffer'] == 10 - len(ready)


def test_live_buffer_restart_labels_pending_frames_and_starts_over():
    params = labelling_params({'label_horizon_s': 2.0})
    buffer = LiveLabelBuffer(params, buffer_s=10.0)
    buffer.add_frame(int(0.5e9), _image())
    _drive(buffer, 0.0, 2.0)
    note, restarted = buffer.add_odom(int(0.1e9), (0.0, 0.0, 0.0), 0.0)   # time went back
    assert 'restart' in note and buffer.counts['time_restarts'] == 1
    assert restarted is not None and len(restarted.rows['stamps_ns']) == 1
    assert not buffer.frames and len(buffer.sensors.odom) == 1
    assert buffer.image_hw == (4, 6)                              # the camera stays the same


def test_one_parameter_table_for_node_core_and_config():
    labeller = yaml.safe_load(config_path().read_text())['labeller']['ros__parameters']
    for key, value in labeller.items():
        if key in DEFAULTS:
            assert value == DEFAULTS[key], key
    assert set(PARAMETERS) <= set(DESCRIPTIONS)
    assert ProximityParams().distances_m == tuple(DEFAULTS['label_distances'])
    assert '(m)' in DESCRIPTIONS['label_distances']
