"""Laser-scan sectors as proximity sensors: hand-made scans, parameters, a real Hokuyo bag."""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from ssl_robot.labelling import LabelError, labelling_params
from ssl_robot.labelling.bag import read_bag_streams
from ssl_robot.labelling.scan import (
    parse_sectors,
    ScanMount,
    ScanSector,
    ScanSectorReader,
    sector_masks,
    sector_readings,
    sensor_poses,
)

HOKUYO = Path('/work/shared/data/real/bags/hokuyo_scan_demo.bag')
INF, NAN = math.inf, math.nan


def _scan_9() -> dict[str, float]:
    """Nine beams from -0.8 to 0.8 rad, 0.2 rad apart; range 0.05 to 4 m."""
    return {'angle_min_rad': -0.8, 'angle_increment_rad': 0.2, 'range_min_m': 0.05,
            'range_max_m': 4.0}


def test_sector_masks_follow_beam_angles() -> None:
    sectors = parse_sectors(['right:-0.7:-0.3', 'center:-0.1:0.1', 'left:0.3:0.7'])
    masks = sector_masks(sectors, 9, -0.8, 0.2)
    # beams at -0.8 -0.6 -0.4 -0.2 0 0.2 0.4 0.6 0.8
    assert masks[0].tolist() == [0, 1, 1, 0, 0, 0, 0, 0, 0]
    assert masks[1].tolist() == [0, 0, 0, 0, 1, 0, 0, 0, 0]
    assert masks[2].tolist() == [0, 0, 0, 0, 0, 0, 1, 1, 0]


def test_sector_bounds_are_inclusive_and_wrap_around() -> None:
    # A sector behind the robot across +-pi, in a full-turn scan of 8 beams.
    behind = ScanSector('rear', 3.0, 3.0 + 2 * 0.3)
    angles = -math.pi + np.arange(8) * (math.pi / 4)  # -pi, -3pi/4, ..., 3pi/4
    assert behind.contains(angles).tolist() == [1, 0, 0, 0, 0, 0, 0, 0]
    edge = ScanSector('edge', -0.4, 0.0)
    assert edge.contains(np.array([-0.4, -0.2, 0.0, 0.2])).tolist() == [1, 1, 1, 0]
    # A negative increment (scanner mounted upside down) gives the same beams reversed.
    up = sector_masks([edge], 5, 0.4, -0.2)
    assert up[0].tolist() == [0, 0, 1, 1, 1]


@pytest.mark.parametrize(('beams', 'expected'), [
    ([1.0, 0.5, 2.0], 0.5),             # nearest valid beam
    ([1.0, INF, 2.0], 1.0),             # +inf beside a finite beam: the finite one
    ([INF, INF, INF], INF),             # nothing in range
    ([1.0, -INF, 0.3], -INF),           # one beam too close: the sector is too close
    ([NAN, NAN, NAN], NAN),             # all erroneous: unknown
    ([NAN, 0.7, NAN], 0.7),             # NaN beams are ignored
    ([0.01, 9.0, NAN], NAN),            # finite but outside [range_min, range_max]: invalid
    ([0.01, 9.0, INF], INF),            # invalid beams ignored, +inf remains
    ([0.05, 4.0, NAN], 0.05),           # the bounds themselves are valid
])
def test_sector_reading_rep117(beams: list[float], expected: float) -> None:
    scan = np.array([5.0, *beams, 5.0, 5.0, 5.0, 5.0, 5.0])  # the sector holds beams 1-3
    masks = sector_masks([ScanSector('s', -0.65, -0.15)], 9, -0.8, 0.2)
    assert masks[0].tolist() == [0, 1, 1, 1, 0, 0, 0, 0, 0]
    value = sector_readings(scan, masks, 0.05, 4.0)[0]
    if math.isnan(expected):
        assert math.isnan(value)
    else:
        assert value == expected


def test_reader_over_scans_counts_and_handles_empty_sectors() -> None:
    reader = ScanSectorReader(parse_sectors(['front:-0.1:0.1', 'back:3.0:3.2']))
    scan = np.array([1.0, 0.0, NAN, 2.0, 0.8, 2.0, 30.0, 1.0, 1.0])
    out = reader(scan, **_scan_9())
    assert out[0] == 0.8
    assert math.isnan(out[1])  # no beam of a 160-degree scan looks backwards
    assert reader.counts == {'scans': 1, 'scan_beams_invalid': 3, 'scan_sector_empty': 1}
    # Batched: [T, B] scans give [T, S].
    batch = sector_readings(np.stack([scan, np.full(9, INF)]),
                            sector_masks(reader.sectors, 9, -0.8, 0.2), 0.05, 4.0)
    assert batch.shape == (2, 2) and batch[1, 0] == INF


def test_virtual_sensor_poses_compose_the_scan_mount() -> None:
    sectors = parse_sectors(['left:0.2:0.6', 'center:-0.2:0.2'])
    poses = sensor_poses(sectors, ScanMount(0.05, 0.01, math.pi))
    assert poses[0] == pytest.approx((0.05, 0.01, -math.pi + 0.4))
    assert poses[1] == pytest.approx((0.05, 0.01, math.pi), abs=1e-12) or poses[1][2] == \
        pytest.approx(-math.pi)


@pytest.mark.parametrize('spec', ['left', 'left:a:b', 'left:0.5:0.1', ':0:1', 'x:0:7'])
def test_bad_sector_specs_are_refused(spec: str) -> None:
    with pytest.raises(LabelError):
        parse_sectors([spec])


def test_params_scan_sectors_become_sensors() -> None:
    params = labelling_params({'scan_topic': 'scan', 'range_topics': [],
                               'scan_sectors': ['l:0.2:0.6', 'c:-0.2:0.2'],
                               'scan_pose': [0.1, 0.0, 0.0]})
    assert params.sensors == ['l', 'c']
    assert params.scan_mount == ScanMount(0.1, 0.0, 0.0)
    assert labelling_params({}).sensors == ['left', 'center', 'right']  # no scan by default
    with pytest.raises(LabelError, match='repeat'):
        labelling_params({'scan_topic': 'scan', 'scan_sectors': ['left:0:1']})
    with pytest.raises(LabelError, match='scan_pose'):
        labelling_params({'scan_topic': 'scan', 'scan_pose': [0.0, 0.0]})


@pytest.mark.skipif(not HOKUYO.exists(), reason='real Hokuyo bag not present')
def test_real_hokuyo_bag_says_what_is_missing() -> None:
    params = labelling_params({'scan_topic': '/scan'})
    with pytest.raises(LabelError) as info:
        read_bag_streams([HOKUYO], params)
    text = str(info.value)
    assert 'no odometry stream (topic /odom)' in text
    assert 'no camera stream (topic /image_raw)' in text
    assert 'read as proximity sensors scan_left, scan_center, scan_right (360 scans' in text
    # Without scan_topic the message points at the scan it could use.
    with pytest.raises(LabelError, match=r'--remap scan:=/scan'):
        read_bag_streams([HOKUYO], labelling_params({}))


@pytest.mark.skipif(not HOKUYO.exists(), reason='real Hokuyo bag not present')
def test_real_hokuyo_scans_read_as_sectors() -> None:
    from ssl_robot.bags.reader import BagReader
    from ssl_robot.labelling.scan import scan_fields
    reader = ScanSectorReader(parse_sectors(['center:-0.2:0.2']))
    with BagReader(HOKUYO) as bag:
        for k, message in enumerate(bag.messages(['/scan'])):
            ranges, geometry = scan_fields(message.msg)
            value = reader(ranges, **geometry)[0]
            centre = np.abs(np.arange(len(ranges)) * geometry['angle_increment_rad']
                            + geometry['angle_min_rad']) <= 0.2
            good = ranges[centre][(ranges[centre] >= geometry['range_min_m'])
                                  & (ranges[centre] <= geometry['range_max_m'])]
            assert value == pytest.approx(good.min())
            if k == 20:
                break
    assert len(ranges) == 681
    assert reader.counts['scans'] == 21


def test_simulated_scan_labels_like_the_range_sensors(tmp_path: Path) -> None:
    """End to end: `ssl-robot sim --scan` bag -> sector labels that agree with the IR ones."""
    from ssl_robot.labelling.bag import label_bag
    from ssl_robot.sim.bag import write_sim_bag
    from ssl_robot.sim.scan import scan_mount_param
    bag = tmp_path / 'scan_run'
    write_sim_bag(2, 15.0, bag, width=32, height=24, camera_rate_hz=10.0, scan=True)
    lidar = labelling_params({'scan_topic': 'scan', 'range_topics': [],
                              'scan_sectors': ['front:-0.1:0.1'],
                              'scan_pose': scan_mount_param()})
    scan_only = label_bag(bag, lidar, read_ground_truth=False)
    both = label_bag(bag, labelling_params({'scan_topic': 'scan',
                                            'scan_sectors': ['front:-0.1:0.1']}),
                     read_ground_truth=False)
    assert scan_only.params.sensors == ['front']
    assert scan_only.rows['proximity'].shape[2] == 1
    assert scan_only.provenance['counts']['scans'] == 150
    known = scan_only.rows['proximity_mask'][:, :, 0]
    assert known.mean() > 0.3
    # Same frames, same odometry matches: the front sector and the centre IR sensor agree.
    ir, sector = both.rows['proximity'][:, :, 1], both.rows['proximity'][:, :, 3]
    common = both.rows['proximity_mask'][:, :, 1] & both.rows['proximity_mask'][:, :, 3]
    assert common.sum() > 100
    assert (ir[common] == sector[common]).mean() > 0.9
    assert np.array_equal(scan_only.rows['proximity'][:, :, 0], sector)


def test_label_command_remaps_a_lidar_only_robot() -> None:
    from ssl_robot.commands.label import apply_remaps
    config = apply_remaps({}, ['scan:=/front/scan', 'range:=none'])
    assert config == {'scan_topic': '/front/scan', 'range_topics': []}
    params = labelling_params(config)
    assert params.sensors == ['scan_left', 'scan_center', 'scan_right']
