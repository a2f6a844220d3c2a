"""Trainer node as a real process: online retraining hot-swaps the inference model (domain 42)."""
from __future__ import annotations

from pathlib import Path
import sys

sys.path.insert(0, str(Path(__file__).parent))
from robot_data import write_synthetic_dataset  # noqa: E402
from ros_procs import copy_config, Probe, start_node  # noqa: E402

DOMAIN = 42


def test_trainer_retrains_and_hands_model_to_inference(tmp_path: Path) -> None:
    from std_msgs.msg import String

    from ssl_robot.dataset import DatasetWriter
    data = write_synthetic_dataset(tmp_path / 'ds', n_bags=2, frames_per_bag=40)
    config = copy_config(
        tmp_path,
        trainer={'dataset': str(data), 'run_dir': str(tmp_path / 'runs'),
                 'retrain_every_frames': 60, 'poll_period_s': 0.5, 'epochs': 1,
                 'batch_size': 16, 'train_params': ['width=4', 'input_hw=[24,32]'],
                 'niceness': 0},
        inference={'model_path': ''})
    inference = start_node('inference', domain_id=DOMAIN, log_dir=tmp_path, params_file=config)
    trainer = start_node('trainer', domain_id=DOMAIN, log_dir=tmp_path, params_file=config)
    try:
        with Probe(DOMAIN) as probe:
            assert probe.wait_for_node('inference', timeout=30), inference.output()
            assert probe.wait_for_node('trainer', timeout=30), trainer.output()
            # 80 frames >= 60: the first round starts; the node answers while it trains.
            assert trainer.wait_for_output('round 1: training', timeout=20), trainer.output()
            assert probe.responsive('trainer', timeout=5)
            updates = probe.subscribe('/model_updates', String, reliable=True)
            assert trainer.wait_for_output('inference node now uses', timeout=120), \
                trainer.output()
            onnx = tmp_path / 'runs' / 'round_001' / 'obstacle.onnx'
            assert onnx.is_file()
            values = probe.get_parameters('inference', ['model_path'])
            assert values is not None and values[0].string_value == str(onnx.resolve())
            assert probe.spin_until(lambda: bool(updates), timeout=10)
            assert updates[-1].data == str(onnx.resolve())
            # The handed-over model configures the inference node.
            assert probe.change_state('inference', 'configure') is True

            # More labelled frames -> a second round, hot-swapped into the configured node.
            from robot_data import render_bag
            import numpy as np
            with DatasetWriter(data, append=True) as writer:
                writer.add_bag('more.mcap', render_bag(np.random.default_rng(5), 60, (48, 64)))
            assert trainer.wait_for_output('round 2: new model', timeout=120), trainer.output()
            assert inference.wait_for_output('hot-swapped model to', timeout=30), \
                inference.output()
    finally:
        trainer.stop()
        inference.stop()
    for node in (trainer, inference):
        log = node.log_path.read_text()
        assert 'Traceback' not in log, log
