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

#: World seeds; the first is recorded through DDS. The trainer holds out whole worlds.
DEFAULT_SEEDS = (1, 2, 3, 4, 5)


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Register `ssl-robot demo`."""
    parser = subparsers.add_parser(
        'demo', help='end-to-end demo on the simulated robot',
        description=__doc__.split('\n\n')[0])
    parser.add_argument('--out', type=Path, default=Path('runs/demo'),
                        help='run directory (an earlier demo run there is replaced; any '
                             'other existing directory is refused)')
    parser.add_argument('--seeds', type=int, nargs='+', default=list(DEFAULT_SEEDS),
                        help='world seeds (the first is recorded through the recorder '
                             'node over DDS)')
    parser.add_argument('--duration', type=float, default=240.0,
                        help='simulated seconds per world written straight to a bag')
    parser.add_argument('--dds-duration', type=float, default=40.0,
                        help='simulated seconds recorded through the recorder node')
    parser.add_argument('--epochs', type=int, default=10, help='training epochs per model')
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
        # node:key form: a plain `-p` applies to '/**', which the node's own section of
        # the parameter file overrides.
        text = value if isinstance(value, str) else json.dumps(value)
        cmd += ['-p', f'{executable}:{key}:={text}']
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
    # The world and the true pose too (typed, so subscribed before the sim starts: the
    # world is published once): the evaluation's truth of this world needs both.
    recorder = subprocess.Popen(_node_cmd('recorder', {'output': str(out), 'extra_topics': [
        'sim/world=std_msgs/msg/String', 'ground_truth/odom=nav_msgs/msg/Odometry']}),
        env=env)
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


#: The file that marks a directory as a demo run (the only kind `--out` may replace).
DEMO_MARKER = '.ssl_robot_demo'
#: What a demo writes into --out (a run of an older version has no marker, only these).
DEMO_OUTPUTS = frozenset({'bags', 'data', 'models', 'results.json', 'report.html',
                          DEMO_MARKER})


def _is_demo_run(out: Path) -> bool:
    """Whether `out` is a demo's output (its marker, or only what a demo writes)."""
    if (out / DEMO_MARKER).is_file():
        return True
    names = {p.name for p in out.iterdir()} if out.is_dir() else {'?'}
    return bool(names) and 'results.json' in names and names <= DEMO_OUTPUTS


def run(args: argparse.Namespace) -> int:
    """Run the whole demo; returns 0 when every stage succeeded."""
    out: Path = args.out
    if out.exists():
        if not _is_demo_run(out):
            from ssl_robot.errors import ConfigError
            if out.is_dir() and not any(out.iterdir()):
                out.rmdir()
            else:
                raise ConfigError(f'--out {out}: exists and is not an earlier demo run (no '
                                  f'{DEMO_MARKER}); refusing to delete it; choose a new '
                                  'directory')
        else:
            shutil.rmtree(out)  # an earlier demo run: the demo replaces its own output
    bags, data, models = out / 'bags', out / 'data', out / 'models'
    for d in (bags, data, models):
        d.mkdir(parents=True)
    (out / DEMO_MARKER).write_text('written by ssl-robot demo; --out may replace this '
                                   'directory\n')
    stages = _Stages()
    total = 7
    results: dict[str, Any] = {'seeds': args.seeds}
    tasks = ('obstacle', 'terrain', 'tcn')

    stages.begin('simulate worlds straight to bags', total, 1)
    dds_seed, direct_seeds = args.seeds[0], args.seeds[1:]
    for seed in direct_seeds:
        _ssl_robot('sim', '--seed', seed, '--duration', args.duration,
                   '--out', bags / f'world_{seed}', '--camera-rate', 10)
    stages.end()

    stages.begin('record a world through the recorder node (DDS)', total, 2)
    record_through_dds(dds_seed, args.dds_duration, bags / f'world_{dds_seed}',
                       args.domain_id)
    _ssl_robot('bag', 'info', bags / f'world_{dds_seed}')
    stages.end()

    stages.begin('label every world', total, 3)
    dataset = data / 'worlds'
    _ssl_robot('label', *[bags / f'world_{s}' for s in args.seeds], '--out', dataset)
    results['labels'] = label_summary(dataset)
    stages.end()

    stages.begin('train obstacle, terrain and TCN models', total, 4)
    for task in tasks:
        _ssl_robot('train', '--task', task, '--dataset', dataset, '--out', models / task,
                   '--epochs', args.epochs)
    stages.end()

    # The held-out worlds are the bags of the trainer's own validation split (by bag).
    stages.begin('evaluate on the held-out worlds', total, 5)
    for task in tasks:
        _ssl_robot('eval', models / task, '--out', models / task / 'eval')
        results[task] = json.loads((models / task / 'eval' / 'eval.json').read_text())
    results['obstacle_vs_truth'] = truth_summary(results['obstacle'])
    heldout = heldout_bags(models / 'obstacle')
    results['heldout_bags'] = [str(b) for b in heldout]
    stages.end()

    stages.begin('export ONNX', total, 6)
    for task in tasks:
        _ssl_robot('export', models / task, '--out', models / f'{task}.onnx')
    stages.end()

    stages.begin('replay a held-out world through the inference node', total, 7)
    results['inference'] = replay_through_inference(
        heldout[0], models / 'obstacle.onnx', args.replay_seconds, args.domain_id)
    stages.end()

    results['stage_seconds'] = stages.times
    results['arguments'] = {k: v for k, v in vars(args).items() if k != 'func'}
    (out / 'results.json').write_text(json.dumps(results, indent=2, default=str))
    print_table(results)
    write_report(out, results)
    print(f'\nreport: {out / "report.html"}  (total {time.monotonic() - stages.start:.0f}s)')
    return 0


def label_summary(dataset: Path) -> dict[str, Any]:
    """Frames, known proximity labels (and positives) and terrain yield of a dataset."""
    import numpy as np

    from ssl_robot.dataset import LabelledDataset
    data = LabelledDataset.open(dataset)
    mask = np.asarray(data.proximity_mask)
    labels = np.asarray(data.proximity)
    return {'frames': len(data), 'bags': len(data.meta['bags']),
            'known_proximity_labels': int(mask.sum()),
            'obstacle_labels': int((labels[mask] > 0.5).sum()),
            'proximity_yield': float(mask.mean()),
            'terrain_patch_yield': float(np.asarray(data.terrain_mask).mean())}


def truth_summary(obstacle: dict[str, Any]) -> dict[str, Any]:
    """AUC vs the simulator's truth per scorer, and the label noise (empty without truth).

    From the obstacle eval report: overall AUC, the nearest/farthest third of the
    distances, pseudo-label precision/recall vs truth.
    """
    truth = obstacle.get('truth')
    if not truth:
        return {}
    return {'truth_auc': {name: t['overall']['auc'] for name, t in truth['models'].items()},
            'truth_auc_thirds': truth.get('thirds', {}),
            'truth_label_noise': truth['label_noise']['overall'],
            'frames_with_truth': truth['frames_with_truth']}


def heldout_bags(run: Path) -> list[Path]:
    """Bags of the validation split of a training run (the worlds it never trained on)."""
    import numpy as np

    from ssl_robot.dataset import LabelledDataset
    params = json.loads((run / 'config.json').read_text())['task_params']
    data = LabelledDataset.open(params['dataset'])
    _, val = data.split(float(params['val_fraction']), by=params['split_by'],
                        seed=int(params['split_seed']))
    ids = sorted(set(np.asarray(data.bag_ids)[val].tolist()))
    paths = {int(b['id']): Path(b['path']) for b in data.meta['bags']}
    return [paths[i] for i in ids]


def replay_through_inference(bag: Path, model: Path, seconds: float,
                             domain_id: int) -> dict[str, float]:
    """Replay a bag with /clock into the inference node and measure prediction latency."""
    from ssl_robot.commands.demo_probe import measure_inference_over_dds
    return measure_inference_over_dds(bag, model, seconds, _dds_env(domain_id),
                                      model.parent.parent)


def _auc(entry: dict[str, Any] | None) -> str:
    if not entry or entry.get('auc') is None:
        return 'n/a'
    return f"{entry['auc']:.3f} [{entry['ci_low']:.2f},{entry['ci_high']:.2f}]"


def final_table(results: dict[str, Any]) -> str:
    """The demo's final table, as text."""
    lines = ['=' * 78, 'ssl_robot demo: results on held-out worlds '
             f"({', '.join(Path(b).name for b in results.get('heldout_bags', []))})", '=' * 78]
    lab = results.get('labels', {})
    lines.append(f"labels made: {lab.get('frames', 0)} frames from {lab.get('bags', 0)} bags, "
                 f"{lab.get('known_proximity_labels', 0)} known proximity labels "
                 f"({100 * lab.get('proximity_yield', 0):.0f}% yield, "
                 f"{lab.get('obstacle_labels', 0)} 'obstacle'), terrain patch yield "
                 f"{100 * lab.get('terrain_patch_yield', 0):.0f}%")
    obstacle = results.get('obstacle', {}).get('models', {})
    if obstacle:
        lines.append(f"\nobstacle AUC (95% CI)  {'trained':>22} {'random init':>22} "
                     f"{'chance':>7}")
        trained, rnd = obstacle.get('trained', {}), obstacle.get('random_init', {})
        lines.append(f"{'overall':>22} {_auc(trained.get('overall')):>22} "
                     f"{_auc(rnd.get('overall')):>22} {0.5:>7.3f}")
        for t, r in zip(trained.get('per_distance', []), rnd.get('per_distance', [])):
            lines.append(f"{'d = %.2f m' % t['distance_m']:>22} {_auc(t):>22} {_auc(r):>22} "
                         f"{0.5:>7.3f}")
    truth = results.get('obstacle', {}).get('truth')
    if truth:
        noise = truth['label_noise']['overall']
        names = list(truth['models'])
        lines.append(f"\nobstacle AUC vs the simulator's geometric truth "
                     f"({truth['frames_with_truth']} frames with a true pose; pseudo-labels "
                     f"vs truth: precision "
                     f"{noise['precision']:.3f}, recall {noise['recall']:.3f})")
        lines.append(f"{'':>12}" + ''.join(f'{n:>17}' for n in names))
        lines.append(f"{'overall':>12}" + ''.join(
            f"{truth['models'][n]['overall']['auc']:>17.3f}" for n in names))
        for i, e in enumerate(truth['models'][names[0]]['per_distance']):
            lines.append(f"{'d = %.2f m' % e['distance_m']:>12}" + ''.join(
                f"{truth['models'][n]['per_distance'][i]['auc']:>17.3f}" for n in names))
    terrain = results.get('terrain', {}).get('models', {})
    if terrain:
        lines.append('\nterrain: Spearman rank correlation of predicted vs felt roughness')
        for name, m in terrain.items():
            types = '' if 'type_accuracy' not in m else (
                f"; terrain type accuracy {m['type_accuracy']:.3f} (balanced "
                f"{m['type_balanced_accuracy']:.3f}, chance {m['type_chance']:.3f})")
            lines.append(f"{name:>22} {m['spearman']:.3f} [{m['ci_low']:.2f},{m['ci_high']:.2f}]"
                         f" (n={m['n_known']}){types}")
    tcn = results.get('tcn', {}).get('models', {})
    if tcn:
        lines.append('\nTCN: temporal-neighbour retrieval, and linear probe AUC of obstacle '
                     'labels on frozen embeddings')
        for name, m in tcn.items():
            probe = m.get('probe', {}).get('overall')
            lines.append(f"{name:>22} retrieval {m.get('retrieval_accuracy', float('nan')):.3f}"
                         f"   probe AUC {_auc(probe)}")
    inf = results.get('inference')
    if inf:
        starting = inf.get('frames_before_first_prediction')
        up = (f" ({starting} of them played before its first prediction, while it started; "
              f"{inf['predictions']} of the {inf['frames_from_first_prediction']} after)"
              if starting is not None else '')
        lines.append(f"\ninference node (ONNX, replayed bag over DDS): {inf['predictions']} "
                     f"predictions for {inf['frames']} frames{up}, publish->prediction latency "
                     f"median {inf['latency_median_ms']:.1f} ms, p99 {inf['latency_p99_ms']:.1f}"
                     f" ms (first/last third {inf['latency_first_third_ms']:.1f}/"
                     f"{inf['latency_last_third_ms']:.1f} ms)")
    stages = results.get('stage_seconds', {})
    if stages:
        lines.append('\nstage times: ' + ', '.join(f'{k} {v:.0f}s' for k, v in stages.items()))
    return '\n'.join(lines)


def print_table(results: dict[str, Any]) -> None:
    """Print the demo's final table."""
    print('\n' + final_table(results), flush=True)


def write_report(out: Path, results: dict[str, Any]) -> None:
    """Write report.html linking every PNG the stages produced."""
    figures = sorted(p.relative_to(out) for p in out.rglob('*.png'))
    body = ''.join(f'<h3>{html.escape(str(p))}</h3><img src="{html.escape(str(p))}" '
                   f'style="max-width:900px">' for p in figures)
    (out / 'report.html').write_text(
        '<html><head><title>ssl_robot demo</title></head><body>'
        '<h1>ssl_robot demo</h1><pre>' + html.escape(final_table(results)) + '</pre>'
        + body + '<h2>all results</h2><pre>'
        + html.escape(json.dumps(results, indent=2, default=str)) + '</pre>'
        + '</body></html>')
