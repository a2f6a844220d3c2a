"""Fault suite, data loss: no command deletes or replaces what it was not asked to.

`demo --out` onto a directory that is not a demo run, `train --out` onto an existing run,
`export --out` onto a checkpoint, the same bag labelled twice, a second writer creating
the same new dataset, and `bag reindex` of a killed bag whose cut split cannot be
salvaged, of a copied/renamed killed bag, and of a cut top-level .mcap. Each case
asserts the refusal (or the salvage) and that every byte that was there is still there.
"""
from __future__ import annotations

import hashlib
from pathlib import Path
import shutil
import sys

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).parent))
from ssl_robot.bags.reader import BagReader
from ssl_robot.bags.recovery import (
    _mcap_complete_prefix,  # noqa: E402
    needs_recovery,
)
from ssl_robot.cli import main  # noqa: E402
from ssl_robot.dataset import DatasetError, DatasetWriter, LabelledDataset  # noqa: E402

from bag_factory import write_sensor_bag  # noqa: E402
from robot_data import render_bag, write_synthetic_dataset  # noqa: E402


def _digest(path: Path) -> dict[str, str]:
    """sha256 of every file under `path` (the bytes a refusal must leave alone)."""
    files = [path] if path.is_file() else sorted(p for p in path.rglob('*') if p.is_file())
    return {str(p): hashlib.sha256(p.read_bytes()).hexdigest() for p in files}


def _run(argv: list[str], capsys: pytest.CaptureFixture) -> tuple[int, str]:
    capsys.readouterr()
    code = main(argv)
    return code, capsys.readouterr().err.strip()


def test_demo_out_refuses_a_directory_that_is_not_a_demo_run(tmp_path, capsys,
                                                             fault_case) -> None:
    out = tmp_path / 'work'
    out.mkdir()
    (out / 'thesis.tex').write_text('months of work')
    (out / 'data').mkdir()
    before = _digest(out)
    code, err = _run(['demo', '--out', str(out)], capsys)
    assert code == 2 and 'not an earlier demo run' in err and str(out) in err, err
    assert _digest(out) == before
    fault_case.lost = len(before) - len(_digest(out))


def test_train_out_refuses_an_existing_run(tmp_path, capsys, fault_case) -> None:
    data = write_synthetic_dataset(tmp_path / 'ds', n_bags=2, frames_per_bag=10, hw=(24, 32))
    run = tmp_path / 'run'
    run.mkdir()
    (run / 'best.pt').write_bytes(b'an earlier run')
    (run / 'metrics.csv').write_text('epoch,step\n0,1\n')
    before = _digest(run)
    code, err = _run(['train', '--task', 'obstacle', '--dataset', str(data), '--out', str(run),
                      '--epochs', '1', '--no-progress'], capsys)
    assert code == 2 and 'holds a run already' in err and '--overwrite' in err, err
    assert _digest(run) == before


def test_export_out_refuses_to_overwrite_a_checkpoint(tmp_path, capsys, fault_case) -> None:
    run = tmp_path / 'run'
    run.mkdir()
    (run / 'best.pt').write_bytes(b'weights')
    before = _digest(run)
    code, err = _run(['export', str(run), '--out', str(run / 'best.pt')], capsys)
    assert code == 2 and 'end in .onnx' in err, err
    assert _digest(run) == before


@pytest.mark.parametrize('again', ['same-path', 'renamed-copy'])
def test_dataset_refuses_a_bag_it_holds_already(again: str, tmp_path, fault_case) -> None:
    rows = render_bag(np.random.default_rng(0), 12, (24, 32))
    bag = tmp_path / 'bag.mcap'
    bag.write_bytes(b'x')
    path = tmp_path / 'ds'
    shape = dict(distances_m=[0.0, 0.1, 0.2, 0.3], sensors=['left', 'center', 'right'],
                 terrain_grid=(3, 4), image_hw=(24, 32))
    with DatasetWriter(path, **shape) as writer:
        writer.add_bag(str(bag), rows)
    other = {**rows, 'proximity': np.zeros_like(rows['proximity'])}  # relabelled
    name = str(bag) if again == 'same-path' else str(tmp_path / 'copy_of_bag.mcap')
    with pytest.raises(DatasetError, match='already'):
        with DatasetWriter(path, append=True) as writer:
            writer.add_bag(name, other if again == 'same-path' else rows)
    assert len(LabelledDataset.open(path)) == 12


def test_a_second_writer_never_replaces_a_new_dataset(tmp_path, fault_case) -> None:
    # Two `label --out NEW` at once: both start while NEW is absent.
    rows = render_bag(np.random.default_rng(0), 8, (24, 32))
    shape = dict(distances_m=[0.0, 0.1, 0.2, 0.3], sensors=['left', 'center', 'right'],
                 terrain_grid=(3, 4), image_hw=(24, 32))
    path = tmp_path / 'new'
    first, second = DatasetWriter(path, **shape), DatasetWriter(path, **shape)
    first.add_bag('a.mcap', rows)
    second.add_bag('b.mcap', render_bag(np.random.default_rng(1), 5, (24, 32)))
    first.commit()
    with pytest.raises(DatasetError, match='another writer'):
        second.commit()
    assert len(LabelledDataset.open(path)) == 8
    fault_case.lost = 8 - len(LabelledDataset.open(path))


@pytest.fixture
def finished_bag(tmp_path) -> Path:
    bag = tmp_path / 'src' / 'bag'
    write_sensor_bag(bag, seconds=1.0)
    return next(bag.glob('*.mcap'))


def _cut(finished: Path) -> bytes:
    """The file as a killed writer leaves it: its chunks, then half a record, no summary."""
    data = finished.read_bytes()
    end = _mcap_complete_prefix(data)  # where the data-end record (then the summary) starts
    assert 0 < end < len(data)
    return data[:end] + data[end:end + 5]


def _count(bag: Path) -> int:
    with BagReader(bag) as reader:
        return sum(reader.message_counts.values())


def test_reindex_keeps_a_split_it_cannot_salvage_and_fails(finished_bag, tmp_path, capsys,
                                                           fault_case) -> None:
    bag = tmp_path / 'killed'
    bag.mkdir()
    shutil.copy(finished_bag, bag / 'killed_0.mcap')
    (bag / 'killed_1').mkdir()
    garbage = bag / 'killed_1' / 'killed_1.mcap'
    garbage.write_bytes(b'\x00' * 5000)  # killed before anything reached the disk
    code, err = _run(['bag', 'reindex', str(bag)], capsys)
    assert code == 1 and 'could not salvage killed_1.mcap' in err, err
    # Kept, not deleted: moved out of the bag's files, so the bag is finished.
    assert not garbage.exists()
    assert (bag / 'killed_1.mcap.cut').read_bytes() == b'\x00' * 5000
    assert (bag / 'metadata.yaml').is_file() and not needs_recovery(bag)
    assert _count(bag) == 70  # the finished split's messages, all of them


def test_reindex_finds_a_renamed_split_by_content(finished_bag, tmp_path, capsys,
                                                  fault_case) -> None:
    # A killed bag `recording` copied to `copy`: its cut split keeps the old name.
    bag = tmp_path / 'copy'
    bag.mkdir()
    (bag / 'recording_0').mkdir()
    (bag / 'recording_0' / 'recording_0.mcap').write_bytes(_cut(finished_bag))
    code, err = _run(['bag', 'reindex', str(bag)], capsys)
    assert code == 0, err
    got = _count(bag)
    assert got > 0
    fault_case.notes.append(f'{got}/70 messages salvaged from a cut split')


def test_reindex_salvages_a_cut_top_level_mcap(finished_bag, tmp_path, capsys,
                                               fault_case) -> None:
    bag = tmp_path / 'cut'
    bag.mkdir()
    cut = _cut(finished_bag)
    (bag / 'cut_0.mcap').write_bytes(cut)
    code, err = _run(['bag', 'reindex', str(bag)], capsys)
    assert code == 0, err
    assert (bag / 'cut_0.mcap.cut').read_bytes() == cut  # the original is kept
    got = _count(bag)
    assert got > 0
    fault_case.notes.append(f'{got}/70 messages salvaged from a cut file')


def test_labeller_node_with_an_unwritable_dataset_exits_non_zero(tmp_path, fault_case) -> None:
    import json
    import signal

    from std_msgs.msg import String
    from test_labeller_node_dds import _publish_drive, TOPICS

    from ros_procs import copy_config, Probe, start_node
    reliable = {f'qos_overrides./{t}.subscription.reliability': 'reliable' for t in TOPICS}
    dataset = Path('/sys/ssl_robot_test_dataset')  # even root cannot write in sysfs
    config = copy_config(tmp_path, labeller={
        'dataset': str(dataset), 'frame_rate_hz': 5.0, 'label_horizon_s': 1.0,
        'terrain_horizon_s': 1.0, 'buffer_seconds': 10.0, 'flush_every_s': 0.5,
        'status_period_s': 0.2, 'label_period_s': 0.2, 'queue_depth': 200,
        'label_distances': [0.0, 0.1], **reliable})
    node = start_node('labeller', domain_id=116, log_dir=tmp_path, params_file=config)
    try:
        with Probe(116) as probe:
            status = probe.subscribe('/labeller/status', String, reliable=True)
            assert probe.wait_for_node('labeller', timeout=30), node.output()
            _publish_drive(probe, seconds=2.5)
            assert probe.spin_until(
                lambda: bool(status) and json.loads(status[-1].data)['flush_errors'] > 0,
                30), node.output()
        node.signal(signal.SIGINT)
        code = node.wait(30)
    finally:
        node.stop()
    log = node.log_path.read_text()
    assert code == 1, log[-2000:]
    assert 'could not be written' in log and str(dataset) in log, log[-2000:]
    assert not dataset.exists()


def test_split_writer_on_a_full_disk_reports_the_real_cause_once(tmp_path, fault_case):
    from test_faults_disk import _mount_tmpfs, _umount

    from ssl_robot.bags.split import SplitBagWriter
    from ssl_robot.bags.typestore import BagError
    disk = tmp_path / 'tiny'
    if not _mount_tmpfs(disk, 'size=256k'):
        pytest.skip('cannot mount a tmpfs here (needs root)')
    try:
        writer = SplitBagWriter(disk / 'rec', max_duration_s=1.0, flush_period_s=0.1)
        writer.open()
        payload = b'\0\1\0\0' + bytes(20_000)
        failure = None
        for i in range(200):
            try:
                writer.write_raw('/image_raw', 'sensor_msgs/msg/Image', payload,
                                 1_000_000_000 + i * 50_000_000)
            except BagError as exc:
                failure = exc
                break
        assert failure is not None, 'the 256 KiB disk never filled'
        assert 'No space left on device (ENOSPC)' in str(failure), failure
        with pytest.raises(BagError) as again:  # later writes: the same cause, at once
            writer.write_raw('/image_raw', 'sensor_msgs/msg/Image', payload, 10**11)
        assert again.value is failure and 'exists already' not in str(again.value)
        writer.close()
        with BagReader(disk / 'rec') as reader:
            on_disk = sum(reader.message_counts.values())
        assert on_disk == writer.durable_messages, (on_disk, writer.durable_messages)
        fault_case.notes.append(f'{on_disk} messages on the full disk, all counted')
    finally:
        _umount(disk)


def test_recorder_on_a_full_disk_says_why_counts_what_is_on_disk_and_fails(tmp_path,
                                                                         fault_case):
    import json
    import signal

    from std_msgs.msg import String
    from test_faults_disk import _mount_tmpfs, _umount
    from test_faults_messages import _image

    from ros_procs import copy_config, Probe, start_node
    disk = tmp_path / 'tiny'
    if not _mount_tmpfs(disk, 'size=256k'):
        pytest.skip('cannot mount a tmpfs here (needs root)')
    out = disk / 'rec'
    config = copy_config(tmp_path, recorder={'output': str(out), 'max_bag_duration': 1.0,
                                             'flush_period': 0.5, 'status_period': 0.2})
    try:
        with start_node('recorder', domain_id=117, log_dir=tmp_path,
                        params_file=config) as recorder, Probe(117) as probe:
            status = probe.subscribe('/recorder/status', String, reliable=True)
            pub = probe.publisher('/image_raw', type(_image(0)), reliable=True)
            assert probe.spin_until(lambda: probe.node.count_subscribers('/image_raw') > 0,
                                    60), recorder.output()[-2000:]
            probe.spin(1.0)
            for i in range(60):  # 60 x 14 KB: far more than the 256 KiB disk holds
                pub.publish(_image(1000 * 10**9 + i * 10**8, h=60, w=80))
                probe.spin(0.05)
            assert probe.spin_until(
                lambda: bool(status) and json.loads(status[-1].data).get('failure'), 20), \
                recorder.output()[-2000:]
            recorder.signal(signal.SIGINT)
            code = recorder.wait(30)
        log = recorder.log_path.read_text()
        last = json.loads(status[-1].data)
        with BagReader(out) as reader:
            on_disk = reader.message_counts.get('/image_raw', 0)
    finally:
        _umount(disk)
    assert code == 1, log[-2000:]
    assert 'No space left on device' in log and 'exists already' not in log, log[-2000:]
    assert log.count('bag write failed') <= 2, log[-2000:]
    assert last['written'] == on_disk, (last['written'], on_disk)
    fault_case.notes.append(f'{on_disk}/60 images fit; status said {last["written"]}')
