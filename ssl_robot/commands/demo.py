"""`ssl-robot demo`: the end-to-end run on the simulated robot (what `make demo` runs).

Simulate several seeded worlds — one recorded through the real recorder node over DDS,
the rest written straight from the simulator — label them, train the obstacle, terrain
and TCN models, export ONNX, replay a held-out world through the inference node, and
print one table (labels made, AUC per distance vs baselines, terrain correlation,
inference latency) with an HTML/PNG report under the run directory.

Every stage runs the package's own commands and nodes as they are used by hand, so the
demo is also the widest integration check the package has.
"""
from __future__ import annotations

import argparse
from dataclasses import dataclass, field
import html
import json
import os
from pathlib import Path
import shutil
import signal
import subprocess
import sys
import time
from typing import Any

#: World seeds: training worlds first, the held-out world last.
DEFAULT_TRAIN_SEEDS = (1, 2, 3, 4)
DEFAULT_HELDOUT_SEED = 99


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Register `ssl-robot demo`."""
    parser = subparsers.add_parser(
        'demo', help='end-to-end demo on the simulated robot',
        description=__doc__.split('\n\n')[0])
    parser.add_argument('--out', type=Path, default=Path('runs/demo'),
                        help='run directory (replaced if it exists)')
    parser.add_argument('--seeds', type=int, nargs='+', default=list(DEFAULT_TRAIN_SEEDS),
                        help='training world seeds (the first is recorded through DDS)')
    parser.add_argument('--heldout-seed', type=int, default=DEFAULT_HELDOUT_SEED,
                        help='seed of the held-out world (evaluation and replay)')
    parser.add_argument('--duration', type=float, default=150.0,
                        help='simulated seconds per world written straight to a bag')
    parser.add_argument('--dds-duration', type=float, default=40.0,
                        help='simulated seconds recorded through the recorder node')
    parser.add_argument('--epochs', type=int, default=8, help='training epochs per model')
    parser.add_argument('--replay-seconds', type=float, default=20.0,
                        help='bag seconds replayed through the inference node')
    parser.add_argument('--domain-id', type=int, default=int(os.environ.get(
        'ROS_DOMAIN_ID', '0')) or 90, help='ROS_DOMAIN_ID for the DDS stages')
    parser.set_defaults(func=run)


@dataclass
class _Stages:
    """Times each stage and prints progress lines a person can follow."""

    start: float = field(default_factory=time.monotonic)
    times: dict[str, float] = field(default_factory=dict)
    _current: str = ''
    _t0: float = 0.0

    def begin(self, name: str, total: int, index: int) -> None:
        self._current, self._t0 = name, time.monotonic()
        print(f'\n=== [{index}/{total}] {name} (t+{self._t0 - self.start:.0f}s) ===', flush=True)

    def end(self) -> None:
        self.times[self._current] = time.monotonic() - self._t0
        print(f'--- {self._current}: done in {self.times[self._current]:.1f}s', flush=True)


def _ssl_robot(*args: str | Path, env: dict[str, str] | None = None) -> None:
    """Run an `ssl-robot` sub-command in this interpreter's environment; raise on failure."""
    cmd = [sys.executable, '-m', 'ssl_robot.cli', *map(str, args)]
    print('$ ssl-robot ' + ' '.join(map(str, args)), flush=True)
    subprocess.run(cmd, check=True, env=env)


def _node_cmd(executable: str, params: dict[str, Any]) -> list[str]:
    """Command line that starts a node of the package as its own process."""
    from ssl_robot.paths import config_path
    cmd = [sys.executable, '-m', f'ssl_robot.nodes.{executable}', '--ros-args',
           '--params-file', str(config_path())]
    for key, value in params.items():
        cmd += ['-p', f'{key}:={json.dumps(value) if not isinstance(value, str) else value}']
    return cmd


def _stop(proc: subprocess.Popen, timeout: float = 20.0) -> int:
    """SIGINT a node process, then SIGTERM/SIGKILL if it does not exit."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            return proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.send_signal(sig)
    return proc.wait()


def _dds_env(domain_id: int) -> dict[str, str]:
    env = dict(os.environ)
    env.setdefault('ROS_AUTOMATIC_DISCOVERY_RANGE', 'LOCALHOST')
    env['ROS_DOMAIN_ID'] = str(domain_id)
    return env


def record_through_dds(seed: int, duration_s: float, out: Path, domain_id: int) -> None:
    """Run sim_robot and the recorder as real processes over DDS until the sim ends."""
    env = _dds_env(domain_id)
    recorder = subprocess.Popen(_node_cmd('recorder', {'output': str(out)}), env=env)
    try:
        time.sleep(2.0)  # let the recorder's subscriptions match before the sim starts
        sim = subprocess.Popen(_node_cmd('sim_robot', {
            'seed': seed, 'duration': duration_s, 'rate_hz': 10.0}), env=env)
        try:
            deadline = time.monotonic() + duration_s * 3 + 60
            while sim.poll() is None and time.monotonic() < deadline:
                time.sleep(1.0)
        finally:
            _stop(sim)
        time.sleep(1.0)  # the last messages reach the recorder
    finally:
        code = _stop(recorder)
    if code not in (0, -signal.SIGINT, 130):
        raise RuntimeError(f'recorder exited with {code}')


def run(args: argparse.Namespace) -> int:
    """Run the whole demo; returns 0 when every stage succeeded."""
    out: Path = args.out
    if out.exists():
        shutil.rmtree(out)
    bags, data, models = out / 'bags', out / 'data', out / 'models'
    for d in (bags, data, models):
        d.mkdir(parents=True)
    stages = _Stages()
    total = 7
    results: dict[str, Any] = {'seeds': args.seeds, 'heldout_seed': args.heldout_seed}

    stages.begin('simulate worlds', total, 1)
    dds_seed, direct_seeds = args.seeds[0], args.seeds[1:]
    for seed in [*direct_seeds, args.heldout_seed]:
        _ssl_robot('sim', '--seed', seed, '--duration', args.duration,
                   '--out', bags / f'world_{seed}', '--camera-rate', 10)
    stages.end()

    stages.begin('record a world through the recorder node (DDS)', total, 2)
    record_through_dds(dds_seed, args.dds_duration, bags / f'world_{dds_seed}',
                       args.domain_id)
    _ssl_robot('bag', 'info', bags / f'world_{dds_seed}')
    stages.end()

    stages.begin('label', total, 3)
    train_bags = [bags / f'world_{s}' for s in args.seeds]
    _ssl_robot('label', *train_bags, '--out', data / 'train')
    _ssl_robot('label', bags / f'world_{args.heldout_seed}', '--out', data / 'heldout')
    stages.end()

    stages.begin('train obstacle, terrain and TCN models', total, 4)
    for task in ('obstacle', 'terrain', 'tcn'):
        _ssl_robot('train', '--task', task, '--dataset', data / 'train',
                   '--out', models / task, '--epochs', args.epochs)
    stages.end()

    stages.begin('evaluate on the held-out world', total, 5)
    for task in ('obstacle', 'terrain', 'tcn'):
        _ssl_robot('eval', models / task, '--dataset', data / 'heldout',
                   '--out', models / task / 'eval')
        results[task] = json.loads((models / task / 'eval' / 'metrics.json').read_text())
    stages.end()

    stages.begin('export ONNX', total, 6)
    for task in ('obstacle', 'terrain', 'tcn'):
        _ssl_robot('export', models / task, '--out', models / f'{task}.onnx')
    stages.end()

    stages.begin('replay the held-out world through the inference node', total, 7)
    results['inference'] = replay_through_inference(
        bags / f'world_{args.heldout_seed}', models / 'obstacle.onnx', args.replay_seconds,
        args.domain_id)
    stages.end()

    results['stage_seconds'] = stages.times
    (out / 'results.json').write_text(json.dumps(results, indent=2, default=str))
    print_table(results)
    write_report(out, results)
    print(f'\nreport: {out / "report.html"}  (total {time.monotonic() - stages.start:.0f}s)')
    return 0


def replay_through_inference(bag: Path, model: Path, seconds: float,
                             domain_id: int) -> dict[str, float]:
    """Replay a bag with /clock into the inference node and measure prediction latency."""
    from ssl_robot.demo_probe import measure_inference_over_dds
    return measure_inference_over_dds(bag, model, seconds, _dds_env(domain_id), _node_cmd,
                                      _stop)


def print_table(results: dict[str, Any]) -> None:
    """Print the demo's final table."""
    print('\n' + '=' * 72)
    print('ssl_robot demo: results on the held-out world')
    print('=' * 72)
    for key in ('obstacle', 'terrain', 'tcn', 'inference'):
        print(f'{key}: {json.dumps(results.get(key), default=str)[:400]}')


def write_report(out: Path, results: dict[str, Any]) -> None:
    """Write report.html linking every PNG the stages produced."""
    figures = sorted(p.relative_to(out) for p in out.rglob('*.png'))
    body = ''.join(f'<h3>{html.escape(str(p))}</h3><img src="{html.escape(str(p))}" '
                   f'style="max-width:900px">' for p in figures)
    (out / 'report.html').write_text(
        '<html><head><title>ssl_robot demo</title></head><body>'
        '<h1>ssl_robot demo</h1><pre>'
        + html.escape(json.dumps(results, indent=2, default=str)) + '</pre>' + body
        + '</body></html>')
