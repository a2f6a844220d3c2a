"""`make demo`'s command, end to end at a small size: every stage runs for real.

Simulated worlds, a DDS recording through the recorder node, labelling, training the
three models, evaluation, ONNX export and the replay through the inference node. The
learning figures themselves are not asserted at this size (1 epoch on a minute of data);
the test checks that every stage ran and reported what the README's table shows.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys

from ros_procs import dds_env

DOMAIN_ID = 71


def test_demo_runs_every_stage_and_writes_its_report(tmp_path):
    out = tmp_path / 'demo'
    env = {**os.environ, **dds_env(DOMAIN_ID)}
    proc = subprocess.run(
        [sys.executable, '-m', 'ssl_robot.cli', 'demo', '--out', str(out),
         '--seeds', '1', '2', '3', '--duration', '40', '--dds-duration', '15',
         '--epochs', '1', '--replay-seconds', '6', '--domain-id', str(DOMAIN_ID)],
        env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    results = json.loads((out / 'results.json').read_text())
    assert list(results['stage_seconds']) == [
        'simulate worlds straight to bags', 'record a world through the recorder node (DDS)',
        'label every world', 'train obstacle, terrain and TCN models',
        'evaluate on the held-out worlds', 'export ONNX',
        'replay a held-out world through the inference node']
    assert results['labels']['bags'] == 3 and results['labels']['frames'] > 100
    assert results['arguments']['seeds'] == [1, 2, 3]
    assert results['arguments']['duration'] == 40
    # Counted independently of the demo's own summary: the dataset on disk, and the camera
    # messages in the bags (the labeller keeps at most one frame per 1/frame_rate_hz slot).
    from ssl_robot.bags.reader import BagReader
    from ssl_robot.dataset import LabelledDataset
    dataset = LabelledDataset.open(out / 'data' / 'worlds')
    assert len(dataset) == results['labels']['frames']
    assert len(dataset.meta['bags']) == 3
    camera = 0
    for bag in sorted((out / 'bags').iterdir()):
        with BagReader(bag) as reader:
            camera += reader.message_counts.get('/image_raw', 0)
    assert 0.3 * camera <= len(dataset) <= camera, (len(dataset), camera)
    assert results['labels']['known_proximity_labels'] > 0
    for task in ('obstacle', 'terrain', 'tcn'):
        assert set(results[task]['models']) >= {'trained', 'random_init'}, task
    # Simulator worlds: AUC against the geometric truth, next to the hand-made detector
    # and the truth-trained upper bound.
    assert set(results['obstacle_vs_truth']['truth_auc']) == {
        'trained', 'random_init', 'hand_detector', 'truth_trained'}
    assert "simulator's geometric truth" in proc.stdout
    inference = results['inference']
    assert inference['frames'] > 0 and inference['predictions'] > 0
    # Frames played while the node was still starting are counted apart.
    assert (inference['frames_before_first_prediction']
            + inference['frames_from_first_prediction']) == inference['frames']
    assert 0 < inference['predicted_fraction_once_up'] <= 1
    # The bag player waits for the inference node's camera subscription (wait_for_topics),
    # so at most a frame or two can be played before the node has matched the player.
    assert inference['frames_before_first_prediction'] <= 3, inference
    assert 'of them played before its first prediction' in proc.stdout
    for name in ('obstacle', 'terrain', 'tcn'):
        assert (out / 'models' / f'{name}.onnx').stat().st_size > 1000, name
    report = (out / 'report.html').read_text()
    assert 'obstacle' in report and '<img' in report
    # The final table is on stdout, as a person running `make demo` sees it.
    assert 'results on held-out worlds' in proc.stdout
