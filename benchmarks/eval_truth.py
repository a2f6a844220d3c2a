"""Obstacle perception judged against the simulator's truth on held-out randomised worlds.

    python benchmarks/eval_truth.py [--stage sim|label|train|eval|all] [--epochs 10]

Trains the obstacle model on the pseudo-labels of randomised worlds of some appearance
families (the demo's data budget by default: 4 worlds x 240 s, camera at 10 Hz,
labelled at 5 Hz) and tests it on worlds of new seeds: held-out worlds of the same
families (randomised, unseen), and worlds of a family never trained on (domain shift).
Every frame with a true pose counts (`ssl_robot.labelling.sim_truth`), not only the
pseudo-labelled ones; CIs are block bootstraps over 5 s blocks of each bag.

Scorers side by side: the trained model, the same network at random init, the hand-made
ground-colour detector (`ssl_robot.robot.ground_detector`), and the same network trained
on the simulator's truth labels of the same frames (upper bound). Also: AUC vs the test
worlds' own pseudo-labels (what `ssl-robot eval` reported before) and the label noise
(pseudo-label precision/recall vs truth).

Stages cache their outputs under benchmarks/.cache/truth (bags, datasets, runs), so each
stays short; `--stage all` runs what is missing. Writes
benchmarks/results/truth_eval.json and prints the tables.
"""
from __future__ import annotations

import argparse
import json
import os
from pathlib import Path
import sys
import time
from typing import Any

import numpy as np

os.environ.setdefault('MUJOCO_GL', 'egl')

ROOT = Path(__file__).resolve().parent
CACHE = ROOT / '.cache' / 'truth'
RESULTS = ROOT / 'results' / 'truth_eval.json'

#: (seed, style) of the worlds of each set; the test sets use seeds never trained on.
SETS = {
    'train': [(101, 'indoor'), (102, 'workshop'), (103, 'indoor'), (104, 'workshop')],
    'test': [(201, 'indoor'), (202, 'workshop')],
    'shift': [(301, 'outdoor'), (302, 'outdoor')],
}


#: Training runs on the train set: pseudo-labels with the task's defaults (the model),
#: truth labels (upper bound), and the refinements switched from their default: weighted
#: by uncertainty, with the state-consistency loss, with stronger photometric augmentation
#: (jitter 0.4, grey and blurred frames; all three off by default), without label
#: completion (on by default).
RUNS = {'pseudo': {'labels': 'pseudo'}, 'truth': {'labels': 'truth'},
        'weighted': {'labels': 'pseudo', 'label_weighting': True},
        'consistency': {'labels': 'pseudo', 'state_consistency': 1.0},
        'no_completion': {'labels': 'pseudo', 'label_completion': False},
        'photometric': {'labels': 'pseudo', 'jitter': 0.4, 'grayscale_p': 0.2, 'blur_p': 0.3}}
#: Refinement name -> (its run, its scorer name, whether the default model has it on).
REFINEMENTS = {'label_weighting': ('weighted', 'trained_label_weighting', False),
               'state_consistency': ('consistency', 'trained_state_consistency', False),
               'label_completion': ('no_completion', 'trained_no_completion', True),
               'photometric_augmentation': ('photometric', 'trained_photometric', False)}


#: Short experiments (`--stage experiment`): obstacle-task parameters of each variant (and
#: 'epochs' where it differs), each trained per seed and compared with 'baseline' of the
#: same seed on the same test frames (paired block-bootstrap CI of the AUC difference).
#: The obstacle task's settings before this comparison (every variant starts from them,
#: so a cached run keeps its meaning when the task's defaults change).
BEFORE = {'label_completion': False, 'jitter': 0.2, 'grayscale_p': 0.0, 'blur_p': 0.0,
          'readout': 'mean', 'input_hw': [48, 64]}
#: The obstacle head reading a 3x4 grid of the feature map instead of its global mean.
GRID = {'readout': 'grid'}
#: Photometric augmentation tried: stronger colour jitter, grey and blurred frames.
PHOTOMETRIC = {'jitter': 0.4, 'grayscale_p': 0.2, 'blur_p': 0.3}
COMPLETION = {'label_completion': True}
#: The model reading the camera's full 96x128 frame (the task's default input is 48x64).
HIRES = {'input_hw': [96, 128]}
#: Twice the encoder's channels (32, 64, 128, 128; the task's default width is 16).
WIDE = {'width': 32}
VARIANTS: dict[str, dict[str, Any]] = {
    'baseline': BEFORE,
    'completion': {**BEFORE, **COMPLETION},
    'completion_pos_weight': {**BEFORE, **COMPLETION, 'pos_weight': 3.0},
    'pos_weight': {**BEFORE, 'pos_weight': 3.0},
    'completion_epochs_20': {**BEFORE, **COMPLETION, 'epochs': 20},
    'completion_weighted': {**BEFORE, **COMPLETION, 'label_weighting': True},
    'completion_consistency': {**BEFORE, **COMPLETION, 'state_consistency': 0.3},
    'completion_photometric': {**BEFORE, **COMPLETION, **PHOTOMETRIC},
    'photometric': {**BEFORE, **PHOTOMETRIC},
    # 'tcn': the encoder of a TCN (npairs, 10 epochs) trained on the same training frames.
    'completion_tcn_init': {**BEFORE, **COMPLETION, 'init_from': 'tcn'},
    'completion_photometric_epochs_20': {**BEFORE, **COMPLETION, **PHOTOMETRIC, 'epochs': 20},
    'completion_photometric_weighted': {**BEFORE, **COMPLETION, **PHOTOMETRIC,
                                        'label_weighting': True},
    'completion_photometric_consistency': {**BEFORE, **COMPLETION, **PHOTOMETRIC,
                                           'state_consistency': 0.3},
    'completion_grid': {**BEFORE, **COMPLETION, **GRID},
    # The trainer's step size and batch (defaults lr 1e-3, batch 64, no warm-up).
    'completion_lr3e3': {**BEFORE, **COMPLETION, 'lr': 3e-3, 'warmup_steps': 30},
    'completion_bs32': {**BEFORE, **COMPLETION, 'batch_size': 32},
    'completion_lr3e3_bs32': {**BEFORE, **COMPLETION, 'lr': 3e-3, 'warmup_steps': 30,
                              'batch_size': 32},
    # Trained on the simulator's truth: how much of a gap is the network's, not the labels'.
    'truth_labels': {**BEFORE, 'labels': 'truth'},
    'truth_labels_grid': {**BEFORE, 'labels': 'truth', **GRID},
    'completion_photometric_grid': {**BEFORE, **COMPLETION, **PHOTOMETRIC, **GRID},
    # The network's input and size: the camera's full 96x128 instead of 48x64 (a 6x8
    # feature map instead of 3x4), twice the channels, and both with the grid readout.
    'completion_hires': {**BEFORE, **COMPLETION, **HIRES},
    'completion_hires_grid': {**BEFORE, **COMPLETION, **HIRES, **GRID},
    'hires_grid': {**BEFORE, **HIRES, **GRID},
    'completion_wide': {**BEFORE, **COMPLETION, **WIDE},
    'completion_hires_epochs_20': {**BEFORE, **COMPLETION, **HIRES, 'epochs': 20},
    'truth_labels_hires': {**BEFORE, 'labels': 'truth', **HIRES},
    'completion_wide_grid': {**BEFORE, **COMPLETION, **WIDE, **GRID},
    'completion_wide_hires_grid': {**BEFORE, **COMPLETION, **WIDE, **HIRES, **GRID},
    'completion_wide_epochs_30': {**BEFORE, **COMPLETION, **WIDE, 'epochs': 30},
    'completion_wide_grid_epochs_30': {**BEFORE, **COMPLETION, **WIDE, **GRID, 'epochs': 30},
    'completion_width_48': {**BEFORE, **COMPLETION, 'width': 48},
    'truth_labels_wide': {**BEFORE, 'labels': 'truth', **WIDE},
    'truth_labels_wide_grid': {**BEFORE, 'labels': 'truth', **WIDE, **GRID},
    'truth_labels_hires_grid': {**BEFORE, 'labels': 'truth', **HIRES, **GRID},
    'completion_hires_grid_epochs_20': {**BEFORE, **COMPLETION, **HIRES, **GRID, 'epochs': 20},
    'completion_hires_grid_photometric': {**BEFORE, **COMPLETION, **HIRES, **GRID,
                                          **PHOTOMETRIC},
    # Hue turns of up to 180 / 90 degrees per frame (colour palettes of unseen families).
    'completion_hires_grid_hue': {**BEFORE, **COMPLETION, **HIRES, **GRID, 'hue': 1.0},
    'completion_hires_grid_hue_half': {**BEFORE, **COMPLETION, **HIRES, **GRID, 'hue': 0.5},
    # The grid readout at the full 6x8 feature map of a 96x128 input.
    'completion_hires_grid_6x8': {**BEFORE, **COMPLETION, **HIRES, 'readout': 'grid',
                                  'readout_grid': [6, 8]},
}


#: Keys of a variant that are trainer settings (`TrainConfig`), not task parameters.
TRAINER_KEYS = ('lr', 'batch_size', 'warmup_steps', 'weight_decay')


#: Labelling settings: the package's (config/robot.yaml) and Nava et al.'s released code's
#: (0-0.30 m in 1 cm steps, 1 cm / 0.05 rad pose tolerance); the bags are the same.
PROTOCOLS = {
    'package': {},
    'nava': {'label_distances': [round(0.01 * i, 2) for i in range(31)],
             'pose_tolerance_x': 0.01, 'pose_tolerance_y': 0.01, 'pose_tolerance_yaw': 0.05},
}


def tag(args: argparse.Namespace) -> str:
    """Suffix of the datasets, runs and result file of a labelling protocol."""
    protocol = getattr(args, 'protocol', 'package')
    return '' if protocol == 'package' else f'_{protocol}'


def bag_path(seed: int, style: str, duration: float) -> Path:
    return CACHE / 'bags' / f'seed{seed}_{style}_{duration:.0f}s'


def simulate(args: argparse.Namespace) -> None:
    """Write every missing bag (a .tmp directory first, renamed when complete)."""
    import shutil

    from ssl_robot.sim import write_sim_bag
    for name, worlds in SETS.items():
        duration = args.duration if name == 'train' else args.test_duration
        for seed, style in worlds:
            out = bag_path(seed, style, duration)
            if out.exists():
                continue
            tmp = out.with_name(out.name + '.tmp')
            shutil.rmtree(tmp, ignore_errors=True)
            s = write_sim_bag(seed, duration, tmp, camera_rate_hz=10.0,
                              world_params={'style': style}, progress_every_s=1e9)
            tmp.rename(out)
            print(f'{out.name}: {s.sim_seconds:.0f} s simulated in {s.wall_seconds:.0f} s',
                  flush=True)


def label(args: argparse.Namespace) -> None:
    """One dataset per set (cached)."""
    from ssl_robot.config import load_node_parameters
    from ssl_robot.dataset import DatasetWriter
    from ssl_robot.labelling import labelling_params
    from ssl_robot.labelling.bag import label_bag
    params = labelling_params({**load_node_parameters('labeller'),
                               **PROTOCOLS[getattr(args, 'protocol', 'package')]})
    for name, worlds in SETS.items():
        out = CACHE / f'data_{name}{tag(args)}'
        if (out / 'meta.json').exists():
            continue
        duration = args.duration if name == 'train' else args.test_duration
        writer = None
        for seed, style in worlds:
            bag = bag_path(seed, style, duration)
            lb = label_bag(bag, params, read_ground_truth=False)
            if writer is None:
                writer = DatasetWriter(out, distances_m=params.proximity.distances_m,
                                       sensors=params.sensors, terrain_grid=params.terrain.grid,
                                       image_hw=lb.rows['frames'].shape[1:3],
                                       params=params.as_dict(), overwrite=True)
            writer.add_bag(bag, lb.rows, params=params.as_dict())
        writer.commit()
        print(f'{out.name}: labelled', flush=True)


def train(args: argparse.Namespace) -> None:
    """The pseudo-label model and the truth-label upper bound (cached runs)."""
    from ssl_robot.robot import build_task
    from ssl_robot.train import TrainConfig, Trainer
    for name, extra in RUNS.items():
        if args.runs and name not in args.runs:
            continue
        out = CACHE / f'run_{name}{tag(args)}'
        if (out / 'best.pt').exists():
            continue
        task = build_task('obstacle', {'dataset': str(CACHE / f'data_train{tag(args)}'),
                                       **extra})
        config = TrainConfig(out_dir=str(out), task='obstacle', task_params=task.params,
                             epochs=args.epochs, progress=False, seed=0)
        t0 = time.monotonic()
        Trainer(task, config).fit()
        print(f'run_{name}: trained in {time.monotonic() - t0:.0f} s', flush=True)


def experiment(args: argparse.Namespace) -> dict[str, Any]:
    """Train the chosen variants per seed (cached) and compare each with the baseline."""
    from ssl_robot.dataset import LabelledDataset
    from ssl_robot.labelling.sim_truth import dataset_proximity_truth
    from ssl_robot.metrics import bootstrap_ci, roc_auc, time_blocks
    from ssl_robot.robot import build_task
    from ssl_robot.robot.tasks import model_from_checkpoint
    from ssl_robot.robot.truth_eval import thirds_auc
    from ssl_robot.train import TrainConfig, Trainer
    names = ['baseline'] + [v for v in args.variants if v != 'baseline']
    if args.reference not in names:
        names.append(args.reference)
    runs: dict[tuple[str, int], Path] = {}
    for name in names:
        extra = dict(VARIANTS[name])
        epochs = int(extra.pop('epochs', args.epochs))
        # Trainer settings of a variant (the rest are the obstacle task's parameters).
        trainer = {k: extra.pop(k) for k in TRAINER_KEYS if k in extra}
        if extra.get('init_from') == 'tcn' and not args.cached_only:
            extra['init_from'] = str(train_tcn(args))
        for seed in args.seeds:
            out = CACHE / f'exp_{name}_e{epochs}_s{seed}{tag(args)}'
            if (out / 'best.pt').exists():
                runs[name, seed] = out / 'best.pt'
                continue
            if args.cached_only:
                continue
            runs[name, seed] = out / 'best.pt'
            task = build_task('obstacle', {
                'dataset': str(CACHE / f'data_train{tag(args)}'), **extra})
            config = TrainConfig(out_dir=str(out), task='obstacle', task_params=task.params,
                                 epochs=epochs, progress=False, seed=seed, **trainer)
            t0 = time.monotonic()
            Trainer(task, config).fit()
            print(f'{out.name}: trained in {time.monotonic() - t0:.0f} s', flush=True)
    if args.train_only:
        return {}

    def masked_auc(s: np.ndarray, y: np.ndarray, m: np.ndarray) -> float:
        return roc_auc(s[m], y[m])

    def difference(a: np.ndarray, b: np.ndarray, y: np.ndarray, m: np.ndarray) -> float:
        return roc_auc(a[m], y[m]) - roc_auc(b[m], y[m])

    # Each variant on the seeds where it and the baseline both have a run.
    ref = args.reference
    seeds_of = {n: [s for s in args.seeds if (n, s) in runs and (ref, s) in runs]
                for n in names}
    names = [n for n in names if seeds_of[n]]
    result: dict[str, Any] = {'reference': ref, 'variants': {n: VARIANTS[n] for n in names},
                              'seeds': {n: seeds_of[n] for n in names}}
    for set_name in ('test', 'shift'):
        path = CACHE / f'data_{set_name}{tag(args)}'
        data = LabelledDataset.open(path)
        truth, known = dataset_proximity_truth(data)
        truth = truth.astype(np.float32)
        groups = time_blocks(np.asarray(data.bag_ids), np.asarray(data.stamps_ns))
        scores = {}
        for key, ckpt in runs.items():
            model, meta = model_from_checkpoint(ckpt)
            scores[key] = predict_all(model, path, meta['config']['task_params'])
        entries: dict[str, Any] = {}
        for name in names:
            per_seed = []
            for seed in seeds_of[name]:
                s, base = scores[name, seed], scores[ref, seed]
                auc = masked_auc(s, truth, known)
                low, high = bootstrap_ci(masked_auc, s, truth, known, n_boot=args.bootstrap,
                                         groups=groups)
                d_low, d_high = bootstrap_ci(difference, s, base, truth, known,
                                             n_boot=args.bootstrap, groups=groups)
                per_seed.append({'seed': seed, 'auc': auc, 'ci_low': low, 'ci_high': high,
                                 **thirds_auc(s, truth, known),
                                 'minus_reference': auc - masked_auc(base, truth, known),
                                 'minus_reference_ci': [d_low, d_high]})
            # The mean over seeds of the difference, resampling the same blocks for all.
            pairs = [a for seed in seeds_of[name] for a in (scores[name, seed],
                                                           scores[ref, seed])]

            def mean_difference(*arrays: np.ndarray) -> float:
                y, m = arrays[-2], arrays[-1]
                return float(np.mean([difference(arrays[i], arrays[i + 1], y, m)
                                      for i in range(0, len(arrays) - 2, 2)]))

            mean_ci = bootstrap_ci(mean_difference, *pairs, truth, known,
                                   n_boot=args.bootstrap, groups=groups)
            entries[name] = {'per_seed': per_seed,
                             'mean_auc': float(np.mean([e['auc'] for e in per_seed])),
                             'mean_minus_reference': float(np.mean(
                                 [e['minus_reference'] for e in per_seed])),
                             'mean_minus_reference_ci': list(mean_ci),
                             'mean_nearest_third_auc': float(np.mean(
                                 [e['nearest_third_auc'] for e in per_seed])),
                             'mean_farthest_third_auc': float(np.mean(
                                 [e['farthest_third_auc'] for e in per_seed]))}
        result[set_name] = entries
    return result


def train_tcn(args: argparse.Namespace) -> Path:
    """A time-contrastive run on the training frames (cached); its best checkpoint."""
    from ssl_robot.robot import build_task
    from ssl_robot.train import TrainConfig, Trainer
    out = CACHE / f'run_tcn{tag(args)}'
    if not (out / 'best.pt').exists():
        task = build_task('tcn', {'dataset': str(CACHE / f'data_train{tag(args)}'),
                                  'loss': 'npairs'})
        config = TrainConfig(out_dir=str(out), task='tcn', task_params=task.params, epochs=10,
                             progress=False, seed=0)
        t0 = time.monotonic()
        Trainer(task, config).fit()
        print(f'{out.name}: trained in {time.monotonic() - t0:.0f} s', flush=True)
    return out / 'best.pt'


def print_experiments(result: dict[str, Any]) -> None:
    print(f'\nAUC vs truth overall per seed; difference from {result["reference"]} of the '
          'same seed [95 % paired block-bootstrap CI]; nearest/farthest third')
    for set_name in ('test', 'shift'):
        print(f'== {set_name}')
        for name, e in result[set_name].items():
            cells = '  '.join(
                f's{r["seed"]} {r["auc"]:.3f} ({r["minus_reference"]:+.3f} '
                f'[{r["minus_reference_ci"][0]:+.3f},{r["minus_reference_ci"][1]:+.3f}]) '
                f'{r["nearest_third_auc"]:.3f}/{r["farthest_third_auc"]:.3f}'
                for r in e['per_seed'])
            print(f'  {name:24s} {cells}')
            print(f'  {"":24s} mean {e["mean_auc"]:.3f} ({e["mean_minus_reference"]:+.3f} '
                  f'[{e["mean_minus_reference_ci"][0]:+.3f},'
                  f'{e["mean_minus_reference_ci"][1]:+.3f}]) '
                  f'{e["mean_nearest_third_auc"]:.3f}/{e["mean_farthest_third_auc"]:.3f}')


def predict_all(model: Any, dataset: Path, params: dict[str, Any]) -> np.ndarray:
    """A model's obstacle probabilities for every frame of a dataset."""
    from torch.utils.data import DataLoader

    from ssl_robot.robot import build_task
    from ssl_robot.robot.tasks import FrameItems
    task = build_task('obstacle', {**params, 'dataset': str(dataset), 'labels': 'pseudo'})
    items = FrameItems(task.data, np.arange(len(task.data)), ('proximity', 'proximity_mask'))
    return task.predict(model, DataLoader(items, batch_size=128, collate_fn=task.collate))[0]


def evaluate(args: argparse.Namespace) -> dict[str, Any]:
    """Truth tables of every scorer on the test and shift sets."""
    import torch

    from ssl_robot.dataset import LabelledDataset
    from ssl_robot.labelling.sim_truth import dataset_proximity_truth
    from ssl_robot.metrics import auc_table, time_blocks
    from ssl_robot.robot.consistency import complete_labels_beyond_obstacles
    from ssl_robot.robot.nets import build_robot_model
    from ssl_robot.robot.tasks import model_from_checkpoint
    from ssl_robot.robot.truth_eval import hand_detector_scores, label_noise, thirds, truth_report
    runs = {name: model_from_checkpoint(CACHE / f'run_{name}{tag(args)}' / 'best.pt')
            for name in RUNS if (CACHE / f'run_{name}{tag(args)}' / 'best.pt').exists()}
    params = runs['pseudo'][1]['config']['task_params']
    torch.manual_seed(0)
    random_init = build_robot_model(runs['pseudo'][0].spec).eval()
    result: dict[str, Any] = {
        'sets': {k: [{'seed': s, 'style': st} for s, st in v] for k, v in SETS.items()},
        'train_duration_s': args.duration, 'test_duration_s': args.test_duration,
        'epochs': args.epochs, 'camera': '128x96 at 10 Hz, labelled at 5 Hz',
        'bootstrap': {'resamples': args.bootstrap, 'unit': '5 s time blocks per bag'}}
    for name in ('test', 'shift'):
        path = CACHE / f'data_{name}{tag(args)}'
        data = LabelledDataset.open(path)
        truth, known = dataset_proximity_truth(data)
        distances, sensors = data.distances_m, data.sensors
        scores = {'trained': predict_all(runs['pseudo'][0], path, params),
                  'random_init': predict_all(random_init, path, params),
                  'hand_detector': hand_detector_scores(
                      np.asarray(data.frames), distances_m=distances, sensors=sensors,
                      obstacle_range_m=0.12)}
        if 'truth' in runs:
            scores['truth_trained'] = predict_all(runs['truth'][0], path, params)
        for run, scorer, _ in REFINEMENTS.values():
            if run in runs:
                scores[scorer] = predict_all(runs[run][0], path, params)
        groups = time_blocks(np.asarray(data.bag_ids), np.asarray(data.stamps_ns))
        labels, mask = np.asarray(data.proximity), np.asarray(data.proximity_mask)
        report = truth_report(scores, truth, known, pseudo_labels=labels, pseudo_mask=mask,
                              distances_m=distances, sensors=sensors, groups=groups,
                              n_boot=args.bootstrap)
        report['thirds'] = {k: thirds(t['per_distance']) for k, t in report['models'].items()}
        # The same frames' labels after label completion (what `label_completion` trains on).
        done, done_mask = complete_labels_beyond_obstacles(
            labels, mask, distances_m=list(distances),
            sensor_index=list(sensors).index('center'), margin_m=0.13)
        report['label_noise_completed'] = label_noise(done, done_mask, truth, known,
                                                      distances_m=distances)
        report['vs_pseudo_labels'] = auc_table(
            scores['trained'], labels, mask, distances=distances, sensors=sensors,
            n_boot=args.bootstrap, groups=groups)['overall']
        report['heatmap'] = heatmap(scores, truth, known)
        result[name] = report
    result['acceptance'] = acceptance(result)
    result['refinements'] = {}
    for refinement, (_, scorer, default_on) in REFINEMENTS.items():
        entry = {}
        for name in ('test', 'shift'):
            models = result[name]['models']
            trained, other = models['trained']['overall'], models.get(scorer, {}).get('overall')
            entry[name] = ({'off': other, 'on': trained} if default_on
                           else {'off': trained, 'on': other})
        result['refinements'][refinement] = {'default': 'on' if default_on else 'off',
                                             **entry}
    return result


def heatmap(scores: dict[str, np.ndarray], truth: np.ndarray, known: np.ndarray
            ) -> dict[str, list[list[float]]]:
    """AUC vs truth per distance x sensor of every scorer (Nava et al.'s figure)."""
    from ssl_robot.metrics import roc_auc
    return {name: [[roc_auc(s[:, j, k][known[:, j, k]], truth[:, j, k][known[:, j, k]])
                    for k in range(truth.shape[2])] for j in range(truth.shape[1])]
            for name, s in scores.items()}


#: Scorers drawn in the heat-map figure (those present in the result).
HEATMAP_SCORERS = ('trained', 'truth_trained', 'hand_detector')


def plot_heatmap(result: dict[str, Any], out: Path) -> None:
    """Nava et al.'s figure: AUC vs truth per distance (rows) x sensor (columns).

    One panel per scorer (`HEATMAP_SCORERS`) and test set (held out, domain shift).
    """
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    sets = [('test', 'held out'), ('shift', 'domain shift')]
    scorers = [n for n in HEATMAP_SCORERS if n in result['test']['heatmap']]
    distances = [e['distance_m'] for e in result['test']['models']['trained']['per_distance']]
    sensors = [e['sensor'] for e in result['test']['models']['trained']['per_sensor']]
    fig, axes = plt.subplots(len(sets), len(scorers), squeeze=False, layout='constrained',
                             figsize=(2.2 * len(scorers) + 1.2,
                                      1.0 + (1.2 + 0.1 * len(distances)) * len(sets)))
    image = None
    for r, (set_name, set_title) in enumerate(sets):
        for c, scorer in enumerate(scorers):
            ax = axes[r][c]
            grid = np.asarray(result[set_name]['heatmap'][scorer], float)
            image = ax.imshow(grid, vmin=0.5, vmax=1.0, cmap='viridis', aspect='auto',
                              origin='lower')
            ax.set_xticks(range(len(sensors)), sensors, fontsize=7)
            step = max(1, len(distances) // 8)
            ax.set_yticks(range(0, len(distances), step),
                          [f'{d:.2f}' for d in distances[::step]], fontsize=7)
            overall = result[set_name]['models'][scorer]['overall']['auc']
            ax.set_title(f'{scorer}, {set_title}\nAUC {overall:.3f}', fontsize=8)
            if c == 0:
                ax.set_ylabel('distance ahead (m)', fontsize=8)
    fig.colorbar(image, ax=axes, shrink=0.8, label='AUC vs truth')
    protocol = result.get('protocol', {}).get('name', 'package')
    fig.suptitle(f"obstacle AUC vs the simulator's truth, {protocol} labelling", fontsize=9)
    fig.savefig(out, dpi=110)
    plt.close(fig)


def acceptance(result: dict[str, Any]) -> dict[str, Any]:
    """The issue's acceptance figures, each with its measured value and whether it holds."""
    test, shift = result['test'], result['shift']
    t = test['thirds']['trained']
    trained = [e['auc'] for e in test['models']['trained']['per_distance']]
    hand = [e['auc'] for e in test['models']['hand_detector']['per_distance']]
    upper = test['models'].get('truth_trained', {}).get('overall', {}).get('auc', np.nan)
    overall = test['models']['trained']['overall']['auc']
    margin = min(a - b for a, b in zip(trained, hand))
    return {
        'nearest_third_auc>=0.97': {'value': t['nearest_third_auc'],
                                    'met': t['nearest_third_auc'] >= 0.97},
        'farthest_third_auc>=0.90': {'value': t['farthest_third_auc'],
                                     'met': t['farthest_third_auc'] >= 0.90},
        'beats_hand_detector_by>=0.10_every_distance': {'value': margin, 'met': margin >= 0.10},
        'within_0.05_of_truth_trained': {'value': upper - overall,
                                         'met': upper - overall <= 0.05},
        'domain_shift_overall>=0.90': {
            'value': shift['models']['trained']['overall']['auc'],
            'met': shift['models']['trained']['overall']['auc'] >= 0.90},
    }


def print_tables(result: dict[str, Any]) -> None:
    from ssl_robot.robot.evaluate import format_truth
    for name, title in (('test', 'held-out worlds of the trained families (new seeds)'),
                        ('shift', 'domain shift: worlds of a family never trained on')):
        r = result[name]
        print(f'\n== {title}: '
              + ', '.join(f'{w["seed"]} {w["style"]}' for w in result['sets'][name]))
        print(format_truth(r))
        print('nearest / farthest third of distances: ' + ', '.join(
            f'{k} {v["nearest_third_auc"]:.3f}/{v["farthest_third_auc"]:.3f}'
            for k, v in r['thirds'].items()))
        v = r['vs_pseudo_labels']
        print(f'trained model vs the test worlds\' pseudo-labels: AUC {v["auc"]:.3f} '
              f'[{v["ci_low"]:.3f},{v["ci_high"]:.3f}]')
    print('\nrefinements, AUC vs truth overall (off -> on, 95% CI)')
    for refinement, sets in result['refinements'].items():
        for name, v in sets.items():
            if name != 'default' and v['on'] and v['off']:
                print(f'  {refinement:18s} {name:6s} {v["off"]["auc"]:.3f} '
                      f'[{v["off"]["ci_low"]:.3f},{v["off"]["ci_high"]:.3f}] -> '
                      f'{v["on"]["auc"]:.3f} [{v["on"]["ci_low"]:.3f},{v["on"]["ci_high"]:.3f}]')
    print('\nacceptance:')
    for k, v in result['acceptance'].items():
        print(f'  {k:48s} {v["value"]:.3f}  {"met" if v["met"] else "MISSED"}')


def recorded_arguments(args: argparse.Namespace) -> dict[str, Any]:
    """The command's arguments as the result JSON records them (paths as text)."""
    return {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--stage', choices=('sim', 'label', 'train', 'eval', 'all', 'experiment',
                                        'figure'), default='all',
                    help='experiment: train and compare --variants (only); figure: the '
                    'heat-map png of the committed JSON')
    ap.add_argument('--duration', type=float, default=240.0, help='seconds per train world')
    ap.add_argument('--test-duration', type=float, default=120.0,
                    help='seconds per test world')
    ap.add_argument('--epochs', type=int, default=10)
    ap.add_argument('--bootstrap', type=int, default=300)
    ap.add_argument('--protocol', choices=list(PROTOCOLS), default='package',
                    help="labelling settings: the package's or Nava et al.'s (1 cm steps)")
    ap.add_argument('--runs', nargs='*', choices=list(RUNS), default=None,
                    help='training runs of the train stage (default: every missing one)')
    ap.add_argument('--variants', nargs='*', choices=list(VARIANTS), default=['completion'],
                    help='variants of the experiment stage (the baseline always runs)')
    ap.add_argument('--seeds', nargs='*', type=int, default=[0],
                    help='training seeds of the experiment stage')
    ap.add_argument('--reference', choices=list(VARIANTS), default='baseline',
                    help='experiment stage: the variant each one is compared with')
    ap.add_argument('--train-only', action='store_true',
                    help='experiment stage: train the missing runs, compare nothing')
    ap.add_argument('--cached-only', action='store_true',
                    help='experiment stage: train nothing, compare the runs already made')
    ap.add_argument('--out', type=Path, default=None,
                    help='experiment stage: the JSON to write (default: '
                         'results/truth_eval_experiments[_vs_REFERENCE].json)')
    ap.add_argument('--cache', type=Path, default=None,
                    help='where the stages keep bags, datasets and runs (default '
                         'benchmarks/.cache/truth); one per data budget, since the datasets '
                         'and runs are not named by it')
    args = ap.parse_args(argv)
    if args.cache is not None:
        global CACHE
        CACHE = args.cache.resolve()
    if args.stage == 'experiment':
        result = experiment(args)
        if args.train_only:
            return 0
        ref = '' if args.reference == 'baseline' else f'_vs_{args.reference}'
        out = args.out or RESULTS.with_name(f'truth_eval_experiments{ref}{tag(args)}.json')
        out.write_text(json.dumps({'arguments': recorded_arguments(args), **result}, indent=1,
                                  default=float))
        print_experiments(result)
        print(f'wrote {out}')
        return 0
    stages = ['sim', 'label', 'train', 'eval'] if args.stage == 'all' else [args.stage]
    if 'sim' in stages:
        simulate(args)
    if 'label' in stages:
        label(args)
    if 'train' in stages:
        train(args)
    if 'eval' in stages:
        result = evaluate(args)
        result['protocol'] = {'name': args.protocol, **PROTOCOLS[args.protocol]}
        out = RESULTS.with_name(f'truth_eval{tag(args)}.json')
        out.parent.mkdir(exist_ok=True)
        out.write_text(json.dumps({'arguments': recorded_arguments(args), **result}, indent=1,
                                  default=float))
        plot_heatmap(result, out.with_suffix('.png'))
        print_tables(result)
        print(f'wrote {out} and {out.with_suffix(".png").name}')
    if args.stage == 'figure':
        out = RESULTS.with_name(f'truth_eval{tag(args)}.json')
        plot_heatmap(json.loads(out.read_text()), out.with_suffix('.png'))
        print(f'wrote {out.with_suffix(".png")}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
