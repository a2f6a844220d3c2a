"""Learning by crashing: collision detection and collision prediction vs the simulator's truth.

    python benchmarks/bench_collision.py [--stage sim|label|train|eval|all] [--epochs 8]

Worlds are randomised simulator worlds whose driver does not stop for obstacles
(`--crash-rate`, 1.0 here: every approach ends in a crash; the demo's default is 0).
The robot publishes its obstacle contacts (`/bumper`, geometry_msgs/WrenchStamped), the
contact truth.

1. Collision detection on the test worlds: the proprioceptive detector (IMU forward
   deceleration or stall while commanded forward, no bumper) against the contact truth
   (onsets within 0.3 s), and the bumper detector itself.
2. Collision prediction: the `collision` task trained on the crash labels of the train
   worlds (after Gandhi et al. 2017; labels from the bumper, or from proprioception in
   the `proprio` run), scored on every frame of held-out worlds against the simulator's
   geometric truth (`collision_truth`: an obstacle within the distance driven in the
   horizon, across the robot's width). Next to it: the same network at random init, and
   the obstacle model trained on the proximity pseudo-labels of the same frames, whose
   probability at 0 m (max over its sensors) is read as a collision score.

Stages cache under benchmarks/.cache/collision so each stays short; `--stage all` runs
what is missing, then the detection stage below. Writes
benchmarks/results/bench_collision.json and prints the tables.

`--stage detect` is the detection part alone, light (physics only, no camera, no bags, no
training): held-out worlds `DETECT_SEEDS`, 60 s each, written to
benchmarks/results/bench_collision_detection.json.
"""
from __future__ import annotations

import argparse
import json
import os
from pathlib import Path
import shutil
import sys
import time
from typing import Any

import numpy as np

os.environ.setdefault('MUJOCO_GL', 'egl')

ROOT = Path(__file__).resolve().parent
CACHE = ROOT / '.cache' / 'collision'
RESULTS = ROOT / 'results' / 'bench_collision.json'
DETECT_RESULTS = ROOT / 'results' / 'bench_collision_detection.json'
#: Worlds of the light detection stage (never used to tune the thresholds: seeds 100-107).
DETECT_SEEDS = list(range(600, 604))

#: World seeds of each set (randomised styles); the test worlds are never trained on.
SETS = {'train': list(range(400, 406)), 'test': list(range(500, 503))}
#: Training runs: (task, labelling overrides of its dataset).
RUNS = {'collision': ('collision', 'bumper'), 'proprio': ('collision', 'proprio'),
        'obstacle': ('obstacle', 'bumper')}


def tag(args: argparse.Namespace) -> str:
    """What the cached bags, datasets and runs depend on (so other arguments never reuse them)."""
    return f'{args.duration:.0f}s_crash{args.crash_rate:g}'


def bag_path(seed: int, args: argparse.Namespace) -> Path:
    return CACHE / 'bags' / f'seed{seed}_{tag(args)}'


def data_dir(name: str, source: str, args: argparse.Namespace) -> Path:
    return CACHE / f'data_{name}_{source}_{tag(args)}'


def run_dir(name: str, args: argparse.Namespace) -> Path:
    return CACHE / f'run_{name}_{tag(args)}_{args.epochs}ep'


def simulate(args: argparse.Namespace) -> None:
    """Write every missing bag (a .tmp directory first, renamed when complete)."""
    from ssl_robot.sim import write_sim_bag
    for seeds in SETS.values():
        for seed in seeds:
            out = bag_path(seed, args)
            if out.exists():
                continue
            tmp = out.with_name(out.name + '.tmp')
            shutil.rmtree(tmp, ignore_errors=True)
            s = write_sim_bag(seed, args.duration, tmp, width=64, height=48,
                              camera_rate_hz=5.0, contacts=True, crash_rate=args.crash_rate,
                              progress_every_s=1e9)
            tmp.rename(out)
            print(f'{out.name}: {s.sim_seconds:.0f} s simulated in {s.wall_seconds:.0f} s',
                  flush=True)


def labelling(source: str) -> Any:
    """Labelling parameters; 'proprio' ignores the bumper (proprioceptive detector)."""
    from ssl_robot.config import load_node_parameters
    from ssl_robot.labelling import labelling_params
    config = load_node_parameters('labeller')
    if source == 'proprio':
        config['bumper_topic'] = ''
    return labelling_params(config)


def label(args: argparse.Namespace) -> None:
    """One dataset per (set, collision source), cached; detection scores per test bag."""
    from ssl_robot.dataset import DatasetWriter
    from ssl_robot.labelling.bag import label_bag
    from ssl_robot.labelling.jobs import dataset_layout
    for name, seeds in SETS.items():
        for source in ('bumper', 'proprio'):
            out = data_dir(name, source, args)
            if (out / 'meta.json').exists():
                continue
            params = labelling(source)
            writer = None
            for seed in seeds:
                bag = bag_path(seed, args)
                lb = label_bag(bag, params, read_ground_truth=False)
                if writer is None:
                    writer = DatasetWriter(out, image_hw=lb.rows['frames'].shape[1:3],
                                           overwrite=True, **dataset_layout(params))
                writer.add_bag(bag, lb.rows, params=params.as_dict(),
                               counts=lb.provenance['counts'])
            writer.commit()
            print(f'{out.name}: labelled', flush=True)


def train(args: argparse.Namespace) -> None:
    """The collision models (bumper / proprioceptive labels) and the obstacle model."""
    from ssl_robot.robot import build_task
    from ssl_robot.train import TrainConfig, Trainer
    for name, (task_name, source) in RUNS.items():
        out = run_dir(name, args)
        if (out / 'best.pt').exists():
            continue
        task = build_task(task_name, {'dataset': str(data_dir('train', source, args))})
        config = TrainConfig(out_dir=str(out), task=task_name, task_params=task.params,
                             epochs=args.epochs, progress=False, seed=0, device='cpu')
        t0 = time.monotonic()
        result = Trainer(task, config).fit()
        print(f'run_{name}: trained in {time.monotonic() - t0:.0f} s, {result.metrics}',
              flush=True)


def detection(args: argparse.Namespace) -> dict[str, Any]:
    """Detector precision/recall against the contact truth over the test bags."""
    from ssl_robot.labelling.bag import read_bag_streams
    from ssl_robot.labelling.collision import detect_collisions, event_precision_recall
    from ssl_robot.labelling.streams import sort_dedup
    params = labelling('bumper')
    totals = {'matched': 0, 'detected': 0, 'true': 0, 'true_while_forward': 0,
              'matched_while_forward': 0}
    per_bag = []
    for seed in SETS['test']:
        s = read_bag_streams([bag_path(seed, args)], params, read_ground_truth=False).streams
        c = params.collision
        truth = detect_collisions(c, bumper_stamps_ns=s.bumper_stamps,
                                  bumper_force_n=s.bumper_force)
        it, (acc,), _ = sort_dedup(s.imu_stamps, s.imu_accel)
        ot, (ov,), _ = sort_dedup(s.odom_stamps, s.odom_speed)
        ct, (cv,), _ = sort_dedup(s.cmd_stamps, s.cmd_speed)
        found = detect_collisions(c, imu_stamps_ns=it, imu_forward_accel=acc[:, 0],
                                  odom_stamps_ns=ot, odom_speed=ov, cmd_stamps_ns=ct,
                                  cmd_speed=cv)
        scores = event_precision_recall(found.onsets_ns, truth.onsets_ns, args.tolerance)
        # Truth onsets while commanded forward: what a forward-driving detector can see.
        idx = np.clip(np.searchsorted(ct, truth.onsets_ns, 'right') - 1, 0, len(ct) - 1)
        forward = truth.onsets_ns[cv[idx] >= c.cmd_forward_mps]
        fwd = event_precision_recall(found.onsets_ns, forward, args.tolerance)
        per_bag.append({'seed': seed, **scores, 'true_while_forward': len(forward)})
        for key in ('matched', 'detected', 'true'):
            totals[key] += scores[key]
        totals['true_while_forward'] += len(forward)
        totals['matched_while_forward'] += fwd['matched']
    return {'tolerance_s': args.tolerance, 'per_bag': per_bag, **totals,
            'precision': totals['matched'] / max(totals['detected'], 1),
            'recall': totals['matched'] / max(totals['true'], 1),
            'recall_while_forward': totals['matched_while_forward']
            / max(totals['true_while_forward'], 1),
            'thresholds': {k: getattr(params.collision, k) for k in (
                'decel_mps2', 'accel_window_s', 'cmd_forward_mps', 'cmd_hold_s',
                'stall_ratio', 'stall_s', 'merge_gap_s', 'bumper_force_n')}}


def detect_only(args: argparse.Namespace) -> dict[str, Any]:
    """Detector precision/recall vs contact truth from physics-only runs (no camera)."""
    from ssl_robot.labelling.collision import detect_collisions, event_precision_recall
    from ssl_robot.sim import generate_world
    from ssl_robot.sim.session import SimOptions, SimSession
    c = labelling('bumper').collision
    totals = {'matched': 0, 'detected': 0, 'true': 0, 'true_while_forward': 0,
              'matched_while_forward': 0, 'simulated_s': 0.0}
    per_world = []
    for seed in DETECT_SEEDS:
        session = SimSession(generate_world(seed), SimOptions(
            render=False, contacts=True, crash_rate=args.crash_rate))
        try:
            out = session.advance(int(args.detect_duration * 1e9))
        finally:
            session.close()

        def stream(topic: str, field: Any) -> tuple[np.ndarray, np.ndarray]:
            rows = [(stamp, field(msg)) for name, msg, stamp in out if name == topic]
            return (np.array([r[0] for r in rows], np.int64),
                    np.array([r[1] for r in rows], np.float64))

        bt, bf = stream('bumper', lambda m: np.hypot(m.wrench.force.x, m.wrench.force.y))
        it, ia = stream('imu', lambda m: m.linear_acceleration.x)
        ot, ov = stream('odom', lambda m: m.twist.twist.linear.x)
        ct, cv = stream('cmd_vel', lambda m: m.linear.x)
        truth = detect_collisions(c, bumper_stamps_ns=bt, bumper_force_n=bf)
        found = detect_collisions(c, imu_stamps_ns=it, imu_forward_accel=ia,
                                  odom_stamps_ns=ot, odom_speed=ov, cmd_stamps_ns=ct,
                                  cmd_speed=cv)
        scores = event_precision_recall(found.onsets_ns, truth.onsets_ns, args.tolerance)
        idx = np.clip(np.searchsorted(ct, truth.onsets_ns, 'right') - 1, 0, len(ct) - 1)
        forward = truth.onsets_ns[cv[idx] >= c.cmd_forward_mps]
        fwd = event_precision_recall(found.onsets_ns, forward, args.tolerance)
        per_world.append({'seed': seed, **scores, 'true_while_forward': len(forward),
                          'crashes_driven': session.policy.mode_counts.get('crash', 0)})
        for key in ('matched', 'detected', 'true'):
            totals[key] += scores[key]
        totals['true_while_forward'] += len(forward)
        totals['matched_while_forward'] += fwd['matched']
        totals['simulated_s'] += args.detect_duration
    return {'seeds': DETECT_SEEDS, 'crash_rate': args.crash_rate,
            'tolerance_s': args.tolerance, 'per_world': per_world, **totals,
            'precision': totals['matched'] / max(totals['detected'], 1),
            'recall': totals['matched'] / max(totals['true'], 1),
            'recall_while_forward': totals['matched_while_forward']
            / max(totals['true_while_forward'], 1)}


def print_detection(det: dict[str, Any], worlds: int) -> None:
    print(f'collision detection on {worlds} held-out worlds (onsets within '
          f'{det["tolerance_s"]} s of the contact truth)')
    print('| detector | precision | recall | recall (while commanded forward) |')
    print('|---|---|---|---|')
    print(f'| proprioception (IMU + odometry + cmd_vel) | {det["precision"]:.2f} '
          f'({det["matched"]}/{det["detected"]}) | {det["recall"]:.2f} ({det["matched"]}/'
          f'{det["true"]}) | {det["recall_while_forward"]:.2f} '
          f'({det["matched_while_forward"]}/{det["true_while_forward"]}) |')


def predict(model: Any, task_name: str, dataset: Path, params: dict[str, Any]) -> np.ndarray:
    """Collision scores of every frame: P(collision) or the obstacle model's max P at 0 m."""
    from torch.utils.data import DataLoader

    from ssl_robot.robot import build_task
    from ssl_robot.robot.tasks import FrameItems
    task = build_task(task_name, {**params, 'dataset': str(dataset)})
    fields = ('collision', 'collision_mask') if task_name == 'collision' else (
        'proximity', 'proximity_mask')
    items = FrameItems(task.data, np.arange(len(task.data)), fields)
    probs = task.predict(model, DataLoader(items, batch_size=128, collate_fn=task.collate))[0]
    if task_name == 'collision':
        return probs
    distances = np.asarray(task.data.distances_m)
    return probs[:, int(np.argmin(np.abs(distances))), :].max(axis=1)


def evaluate(args: argparse.Namespace) -> dict[str, Any]:
    """AUC vs the simulator's truth of every scorer on the test worlds (block bootstrap)."""
    import torch

    from ssl_robot.dataset import LabelledDataset
    from ssl_robot.labelling.collision import collision_truth
    from ssl_robot.labelling.sim_truth import read_sim_truth
    from ssl_robot.metrics import bootstrap_ci, roc_auc, time_blocks
    from ssl_robot.robot.nets import build_robot_model
    from ssl_robot.robot.tasks import model_from_checkpoint
    runs = {name: model_from_checkpoint(run_dir(name, args) / 'best.pt')
            for name in RUNS}
    path = data_dir('test', 'bumper', args)
    data = LabelledDataset.open(path)
    horizon = float(data.meta['params']['collision']['horizon_s'])
    reach = args.cruise * horizon
    truth = np.zeros(len(data), bool)
    known = np.zeros(len(data), bool)
    for bag in data.meta['bags']:
        rows = np.flatnonzero(np.asarray(data.bag_ids) == int(bag['id']))
        sim = read_sim_truth(bag['path'])
        truth[rows], known[rows] = collision_truth(
            sim.world, sim.stamps_ns, sim.poses, np.asarray(data.stamps_ns)[rows],
            reach_m=reach)
    params = {name: state['config']['task_params'] for name, (_, state) in runs.items()}
    torch.manual_seed(0)
    random_init = build_robot_model(runs['collision'][0].spec).eval()
    scores = {
        'collision (bumper crash labels)': predict(runs['collision'][0], 'collision', path,
                                                   params['collision']),
        'collision (proprioceptive crash labels)': predict(
            runs['proprio'][0], 'collision', path, params['proprio']),
        'random init': predict(random_init, 'collision', path, params['collision']),
        'obstacle model (proximity), P at 0 m': predict(runs['obstacle'][0], 'obstacle',
                                                        path, params['obstacle']),
    }
    groups = time_blocks(np.asarray(data.bag_ids), np.asarray(data.stamps_ns))[known]
    y = truth[known].astype(np.float64)
    table = {}
    for name, s in scores.items():
        auc = roc_auc(s[known], y)
        lo, hi = bootstrap_ci(roc_auc, s[known], y, n_boot=args.bootstrap, groups=groups)
        table[name] = {'auc': auc, 'ci95': [lo, hi]}
    # The crash labels themselves against the truth (how noisy the training signal is).
    lab = {}
    for source in ('bumper', 'proprio'):
        d = LabelledDataset.open(data_dir('test', source, args))
        m = np.asarray(d.collision_mask) & known
        pred, true = np.asarray(d.collision)[m] > 0.5, truth[m]
        lab[source] = {'known_fraction': float(np.asarray(d.collision_mask).mean()),
                       'ahead': int(pred.sum()), 'free': int((~pred).sum()),
                       'precision': float((pred & true).sum() / max(pred.sum(), 1)),
                       'free_precision': float((~pred & ~true).sum() / max((~pred).sum(), 1))}
    train_meta = LabelledDataset.open(data_dir('train', 'bumper', args))
    return {
        'sets': SETS, 'duration_s': args.duration, 'crash_rate': args.crash_rate,
        'epochs': args.epochs, 'camera': '64x48 at 5 Hz, labelled at 5 Hz',
        'horizon_s': horizon, 'truth_reach_m': reach,
        'test_frames': int(known.sum()), 'test_positives': int(truth[known].sum()),
        'train_frames': len(train_meta),
        'train_known_crash_labels': int(np.asarray(train_meta.collision_mask).sum()),
        'train_collision_ahead': int(np.asarray(train_meta.collision).sum()),
        'prediction_auc_vs_truth': table, 'crash_labels_vs_truth': lab,
        'bootstrap': {'resamples': args.bootstrap, 'unit': '5 s time blocks per bag'},
        'detection': detection(args),
        # best.pt is the best epoch's checkpoint: its last history row holds its metrics.
        'val_metrics': {name: {'best_epoch': state['epoch'], **state['history'][-1]}
                        for name, (_, state) in runs.items()}}


def print_tables(result: dict[str, Any]) -> None:
    print_detection(result['detection'], len(SETS['test']))
    print(f'\ncollision prediction vs simulator truth ({result["test_frames"]} frames of '
          f'held-out worlds, {result["test_positives"]} with an obstacle within '
          f'{result["truth_reach_m"]:.2f} m ahead)')
    print('| scorer | AUC | 95% CI |')
    print('|---|---|---|')
    for name, row in result['prediction_auc_vs_truth'].items():
        print(f'| {name} | {row["auc"]:.3f} | {row["ci95"][0]:.3f}-{row["ci95"][1]:.3f} |')


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--stage', choices=('sim', 'label', 'train', 'eval', 'all', 'detect'),
                        default='all')
    parser.add_argument('--duration', type=float, default=75.0, help='simulated s per world')
    parser.add_argument('--crash-rate', type=float, default=1.0)
    parser.add_argument('--epochs', type=int, default=5)
    parser.add_argument('--cruise', type=float, default=0.15,
                        help="the driver's cruise speed (m/s): truth reach = cruise x horizon")
    parser.add_argument('--tolerance', type=float, default=0.3, help='detection match (s)')
    parser.add_argument('--bootstrap', type=int, default=500)
    parser.add_argument('--detect-duration', type=float, default=60.0,
                        help='simulated s per world of --stage detect')
    args = parser.parse_args(argv)
    stages = (('sim', 'label', 'train', 'eval', 'detect') if args.stage == 'all'
              else (args.stage,))
    for stage in stages:
        t0 = time.monotonic()
        if stage == 'sim':
            simulate(args)
        elif stage == 'label':
            label(args)
        elif stage == 'train':
            train(args)
        elif stage == 'detect':
            det = detect_only(args)
            DETECT_RESULTS.parent.mkdir(parents=True, exist_ok=True)
            DETECT_RESULTS.write_text(json.dumps({'arguments': vars(args), **det}, indent=1,
                                                 default=float))
            print_detection(det, len(DETECT_SEEDS))
            print(f'wrote {DETECT_RESULTS}')
        else:
            result = evaluate(args)
            RESULTS.parent.mkdir(parents=True, exist_ok=True)
            RESULTS.write_text(json.dumps({'arguments': vars(args), **result}, indent=1,
                                          default=float))
            print_tables(result)
            print(f'wrote {RESULTS}')
        print(f'stage {stage}: {time.monotonic() - t0:.0f} s', file=sys.stderr, flush=True)
    return 0


if __name__ == '__main__':
    sys.exit(main())
