"""Evaluation of robot models on a held-out split, next to baselines from the same run.

The metrics themselves are shared by every family (`ssl_robot.metrics`).
`evaluate_run` loads a run's best checkpoint and compares it with chance, with the same
model at random init, and (for a model initialised from a self-supervised encoder) with
the same model trained from random init on the same labels; it prints a table and
writes JSON and a PNG figure.
"""
from __future__ import annotations

import copy
import json
import logging
from pathlib import Path
from typing import Any

import numpy as np

from ssl_robot.metrics import (
    auc_table,
    bootstrap_ci,
    cross_view_retrieval_accuracy,
    ridge_probe,
    roc_auc,
    spearman,
    temporal_retrieval_accuracy,
    time_blocks,
)

log = logging.getLogger('ssl_robot.robot.evaluate')


# ---------------------------------------------------------------------------- runs
def evaluate_run(run_dir: Path | str, *, dataset: str | None = None,
                 out_dir: Path | str | None = None, n_boot: int = 500, seed: int = 0,
                 train_baseline: bool | None = None,
                 truth_upper_bound: bool = True) -> dict[str, Any]:
    """Evaluate a run's best model on the held-out split, next to same-run baselines.

    Args:
        run_dir: Training run directory (best.pt inside).
        dataset: Dataset to evaluate on (default: the one the run trained on).
        out_dir: Where to write eval.json and eval.png (default: run_dir/eval).
        n_boot: Bootstrap resamples for the CIs.
        seed: Seed of the random-init baseline and the bootstrap.
        train_baseline: Also train the model from random init on the same labels
            (default: only for a model initialised from a pretrained encoder).
        truth_upper_bound: On a dataset of simulator bags (obstacle task), also train
            the same model on the simulator's truth (the upper bound). The report's
            'truth' section (AUC vs the geometric truth of every frame with a true
            pose, the hand-made detector, the label noise) is there either way.

    Returns:
        The report (also written as JSON).

    Raises:
        TrainError: When the run or the dataset cannot be read.
    """
    import torch

    from ssl_robot.robot import build_task
    from ssl_robot.robot.nets import build_robot_model
    from ssl_robot.train import load_checkpoint, TrainError

    run_dir = Path(run_dir)
    ckpt = run_dir / 'best.pt'
    if not ckpt.exists():
        ckpt = run_dir / 'last.pt'
    state = load_checkpoint(ckpt)
    config = state['config']
    params = dict(config['task_params'])
    if dataset:
        params['dataset'] = str(dataset)
    task = build_task(config['task'], params)
    _, val = task.split()
    if len(val) == 0:
        raise TrainError(f'{params["dataset"]}: the held-out split is empty')
    out_dir = Path(out_dir) if out_dir else run_dir / 'eval'
    out_dir.mkdir(parents=True, exist_ok=True)

    spec = task.model_spec()
    trained = build_robot_model(spec)
    trained.load_state_dict(state['model'])
    torch.manual_seed(seed)
    random_init = build_robot_model(spec)
    random_init.load_state_dict({k: v for k, v in state['model'].items()
                                 if k in ('target_mean', 'target_std')}, strict=False)
    models = {'trained': trained, 'random_init': random_init}
    if train_baseline is None:
        train_baseline = bool(params.get('init_from'))
    if train_baseline:
        models['scratch'] = _train_scratch(config, params, out_dir / 'scratch_run')
    for m in models.values():
        m.eval()

    report: dict[str, Any] = {'run': str(run_dir), 'checkpoint': str(ckpt),
                              'task': config['task'], 'dataset': params['dataset'],
                              'n_val_frames': int(len(val)),
                              'n_train_frames': int(len(task.split()[0])),
                              'split_by': params.get('split_by'), 'chance_auc': 0.5}
    data = task.data
    # Block bootstrap over 5 s blocks of each bag: neighbouring frames are not independent.
    groups = time_blocks(np.asarray(data.bag_ids)[val], np.asarray(data.stamps_ns)[val])
    report['bootstrap'] = {'resamples': n_boot, 'unit': '5 s time blocks per bag',
                           'blocks': int(len(np.unique(groups)))}
    if config['task'] == 'obstacle':
        report['models'] = {}
        scores = {}
        for name, model in models.items():
            probs, labels, masks = task.predict(model, _val_loader(task))
            scores[name] = probs
            report['models'][name] = auc_table(
                probs, labels, masks, distances=list(spec['distances_m']),
                sensors=list(spec['sensors']), n_boot=n_boot, seed=seed, groups=groups)
        truth = _obstacle_truth(task, config, params, val, scores, labels, masks,
                                groups=groups, n_boot=n_boot, seed=seed,
                                upper_bound=truth_upper_bound, out_dir=out_dir)
        if truth is not None:
            report['truth'] = truth
    elif config['task'] == 'terrain':
        report['models'] = {}
        from ssl_robot.robot.tasks import patch_metrics
        for name, model in models.items():
            out = task.predict_patches(model, _val_loader(task))
            pred, target, mask = out['cost'], out['cost_target'], out['cost_mask']

            def masked_rho(p: np.ndarray, y: np.ndarray, m: np.ndarray) -> float:
                return spearman(p[m], y[m])

            low, high = bootstrap_ci(masked_rho, pred, target, mask, n_boot=min(n_boot, 200),
                                     seed=seed, groups=groups)
            report['models'][name] = {'spearman': masked_rho(pred, target, mask),
                                      'ci_low': low, 'ci_high': high,
                                      'n_known': int(mask.sum()),
                                      **{k[len('val_'):]: v for k, v in
                                         patch_metrics(out).items()}}
    elif config['task'] == 'collision':
        report['models'] = {}
        for name, model in models.items():
            probs, labels, masks = task.predict(model, _val_loader(task))
            known = masks.astype(bool)
            low, high = bootstrap_ci(roc_auc, probs[known], labels[known], n_boot=n_boot,
                                     seed=seed, groups=groups[known])
            report['models'][name] = {'auc': roc_auc(probs[known], labels[known]),
                                      'ci_low': low, 'ci_high': high,
                                      'n_known': int(known.sum()),
                                      'n_pos': int(labels[known].sum())}
    elif config['task'] == 'tcn':
        report['models'] = _evaluate_tcn(task, models, n_boot=n_boot, seed=seed,
                                         groups=groups)
    (out_dir / 'eval.json').write_text(json.dumps(report, indent=2, default=float))
    print(format_report(report))
    try:
        plot_report(report, out_dir / 'eval.png')
    except Exception as exc:  # a missing figure must not lose the numbers
        log.warning('figure not written: %s', exc)
    return report


def _val_loader(task: Any) -> Any:
    from torch.utils.data import DataLoader
    _, val = task.datasets()
    return DataLoader(val, batch_size=128, shuffle=False, collate_fn=task.collate)


def _train_scratch(config: dict[str, Any], params: dict[str, Any], out: Path) -> Any:
    """The same model and labels, trained from random init through the shared trainer."""
    from ssl_robot.robot import build_task
    from ssl_robot.train import TrainConfig, Trainer
    cfg = copy.deepcopy(config)
    cfg['out_dir'] = str(out)
    cfg['task_params'] = {**params, 'init_from': ''}
    cfg['progress'] = False
    log.info('training the random-init baseline in %s', out)
    task = build_task(cfg['task'], cfg['task_params'])
    return Trainer(task, TrainConfig.from_dict(cfg)).fit().model


def _obstacle_truth(task: Any, config: dict[str, Any], params: dict[str, Any],
                    val: np.ndarray, scores: dict[str, np.ndarray], labels: np.ndarray,
                    masks: np.ndarray, *, groups: np.ndarray, n_boot: int, seed: int,
                    upper_bound: bool, out_dir: Path) -> dict[str, Any] | None:
    """The 'truth' section on simulator datasets (None when no frame has a true pose)."""
    from ssl_robot.labelling.sim_truth import dataset_proximity_truth
    from ssl_robot.robot.truth_eval import hand_detector_scores, thirds, truth_report
    data = task.data
    truth, known = dataset_proximity_truth(data, val)
    if not known.any():
        return None
    distances, sensors = list(task.params['distances_m']), list(task.params['sensors'])
    threshold = float(data.meta['bags'][0].get('params', {}).get('proximity', {}).get(
        'obstacle_range_m', 0.12))
    scores = dict(scores)
    scores['hand_detector'] = hand_detector_scores(
        np.asarray(data.frames[val]), distances_m=distances, sensors=sensors,
        obstacle_range_m=threshold)
    if upper_bound:
        model = _train_scratch(config, {**params, 'labels': 'truth'}, out_dir / 'truth_run')
        model.eval()
        scores['truth_trained'] = task.predict(model, _val_loader(task))[0]
    out = truth_report(scores, truth, known, pseudo_labels=labels, pseudo_mask=masks,
                       distances_m=distances, sensors=sensors, groups=groups, n_boot=n_boot,
                       seed=seed)
    out['thirds'] = {name: thirds(t['per_distance']) for name, t in out['models'].items()}
    return out


def _evaluate_tcn(task: Any, models: dict[str, Any], *, n_boot: int, seed: int,
                  groups: np.ndarray) -> dict[str, Any]:
    from ssl_robot.robot.tasks import embed_frames, embed_views
    train, val = task.split()
    data = task.data
    rng = np.random.default_rng(seed)
    # A probe needs a few thousand frames at most; more only costs time.
    probe_train = np.sort(rng.choice(train, min(len(train), 4000), replace=False))
    out: dict[str, Any] = {}
    for name, model in models.items():
        emb = embed_frames(model, task, val)
        acc = temporal_retrieval_accuracy(
            emb, np.asarray(data.bag_ids)[val], np.asarray(data.stamps_ns)[val],
            radius_s=float(task.params['pos_radius_s']))
        ftr = embed_frames(model, task, probe_train, pooled=True)
        fva = embed_frames(model, task, val, pooled=True)
        d, s = np.asarray(data.proximity).shape[1:]
        ytr = np.asarray(data.proximity[probe_train]).reshape(len(probe_train), -1)
        mtr = np.asarray(data.proximity_mask[probe_train]).reshape(len(probe_train), -1)
        scores = ridge_probe(ftr, ytr, mtr, fva).reshape(len(val), d, s)
        probe = auc_table(scores, np.asarray(data.proximity[val]),
                          np.asarray(data.proximity_mask[val]),
                          distances=task.params['distances_m'], sensors=task.params['sensors'],
                          n_boot=n_boot, seed=seed, groups=groups)
        out[name] = {'retrieval_accuracy': acc, 'probe': probe}
        if data.view_names:
            out[name]['cross_view_retrieval'] = cross_view_retrieval_accuracy(
                emb, embed_views(model, task, val), np.asarray(data.views_mask)[val],
                np.asarray(data.bag_ids)[val], np.asarray(data.stamps_ns)[val],
                radius_s=float(task.params['pos_radius_s']))
    return out


def _fmt_auc(e: dict[str, float]) -> str:
    if not np.isfinite(e.get('auc', np.nan)):
        return '   n/a            '
    return f'{e["auc"]:.3f} [{e["ci_low"]:.3f},{e["ci_high"]:.3f}]'


def format_report(report: dict[str, Any]) -> str:
    """The report as a plain-text table (models side by side)."""
    names = list(report['models'])
    lines = [f'{report["task"]} on {report["dataset"]}: {report["n_val_frames"]} held-out '
             f'frames (split by {report["split_by"]}), {report["n_train_frames"]} train; '
             f'95% CI: block bootstrap over {report["bootstrap"]["blocks"]} '
             f'{report["bootstrap"]["unit"]}']
    if report['task'] in ('obstacle', 'tcn'):
        tables = {n: (report['models'][n] if report['task'] == 'obstacle'
                      else report['models'][n]['probe']) for n in names}
        if report['task'] == 'tcn':
            lines.append('temporal-neighbour retrieval: ' + ', '.join(
                f'{n} {report["models"][n]["retrieval_accuracy"]:.3f}' for n in names))
            if 'cross_view_retrieval' in report['models'][names[0]]:
                lines.append('cross-view retrieval (main camera -> other cameras): ' + ', '.join(
                    f'{n} {report["models"][n]["cross_view_retrieval"]:.3f}' for n in names))
            lines.append('linear probe (ridge) of obstacle labels on frozen features, AUC:')
        header = f'{"":>14} ' + ' '.join(f'{n:>22}' for n in names) + '   chance'
        lines.append(header)
        first = tables[names[0]]
        rows = [('overall', 'overall', None)]
        rows += [(f'd={e["distance_m"]:.2f}m', 'per_distance', i)
                 for i, e in enumerate(first['per_distance'])]
        rows += [(f's={e["sensor"]}', 'per_sensor', i) for i, e in enumerate(first['per_sensor'])]
        for label, key, i in rows:
            cells = [tables[n][key] if i is None else tables[n][key][i] for n in names]
            known = cells[0]['n_known']
            lines.append(f'{label:>14} ' + ' '.join(f'{_fmt_auc(c):>22}' for c in cells)
                         + f'   0.500  (n={known}, pos={cells[0]["n_pos"]})')
    elif report['task'] == 'collision':
        lines.append('collision-ahead AUC vs the held-out crash labels:')
        for n in names:
            e = report['models'][n]
            lines.append(f'{n:>14} AUC {e["auc"]:.3f} [{e["ci_low"]:.3f},{e["ci_high"]:.3f}] '
                         f'(n={e["n_known"]}, pos={e["n_pos"]}; chance 0.500)')
    else:
        for n in names:
            e = report['models'][n]
            types = '' if 'type_accuracy' not in e else (
                f'; type accuracy {e["type_accuracy"]:.3f}, balanced '
                f'{e["type_balanced_accuracy"]:.3f} (chance {e["type_chance"]:.3f}, '
                f'n={e["type_patches"]:.0f})')
            desc = '' if 'descriptor_r2' not in e else (
                f'; descriptor R2 {e["descriptor_r2"]:.3f}')
            lines.append(f'{n:>14} Spearman {e["spearman"]:.3f} '
                         f'[{e["ci_low"]:.3f},{e["ci_high"]:.3f}] (n={e["n_known"]}){types}'
                         f'{desc}')
    if 'truth' in report:
        lines.append(format_truth(report['truth']))
    return '\n'.join(lines)


def format_truth(truth: dict[str, Any]) -> str:
    """The 'truth' section as a table: AUC vs the simulator's truth, and the label noise."""
    names = list(truth['models'])
    noise = truth['label_noise']['overall']
    lines = [f'obstacle AUC vs the simulator\'s geometric truth: {truth["frames_with_truth"]} '
             f'frames with a true pose, {truth["labels_with_truth"]} labels with truth '
             f'({truth["labels_with_pseudo_label"]} of them also with a pseudo-label); '
             f'pseudo-labels vs truth: precision {noise["precision"]:.3f}, recall '
             f'{noise["recall"]:.3f}',
             f'{"":>14} ' + ' '.join(f'{n:>22}' for n in names)]
    first = truth['models'][names[0]]
    rows = [('overall', 'overall', None)]
    rows += [(f'd={e["distance_m"]:.2f}m', 'per_distance', i)
             for i, e in enumerate(first['per_distance'])]
    rows += [(f's={e["sensor"]}', 'per_sensor', i) for i, e in enumerate(first['per_sensor'])]
    for label, key, i in rows:
        cells = [truth['models'][n][key] if i is None else truth['models'][n][key][i]
                 for n in names]
        lines.append(f'{label:>14} ' + ' '.join(f'{_fmt_auc(c):>22}' for c in cells)
                     + f'   (n={cells[0]["n_known"]}, pos={cells[0]["n_pos"]})')
    return '\n'.join(lines)


def plot_report(report: dict[str, Any], path: Path) -> None:
    """AUC per distance with CI and baseline lines (obstacle, TCN probe); bars for terrain."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(7, 4))
    names = list(report['models'])
    if report['task'] in ('obstacle', 'tcn'):
        for n in names:
            t = report['models'][n] if report['task'] == 'obstacle' else \
                report['models'][n]['probe']
            xs = [e['distance_m'] for e in t['per_distance']]
            ys = np.array([e['auc'] for e in t['per_distance']], float)
            lo = np.array([e['ci_low'] for e in t['per_distance']], float)
            hi = np.array([e['ci_high'] for e in t['per_distance']], float)
            ax.errorbar(xs, ys, yerr=[np.nan_to_num(ys - lo), np.nan_to_num(hi - ys)],
                        marker='o', capsize=3, label=n)
        ax.axhline(0.5, color='grey', linestyle='--', label='chance')
        ax.set_xlabel('distance ahead (m)')
        ax.set_ylabel('ROC-AUC (95% bootstrap CI)')
        title = 'obstacle' if report['task'] == 'obstacle' else 'TCN linear probe'
        ax.set_title(f'{title}: held-out AUC per distance')
        ax.set_ylim(0.0, 1.0)
        ax.legend()
    else:
        ys = [report['models'][n]['spearman'] for n in names]
        ax.bar(names, ys)
        ax.axhline(0.0, color='grey', linestyle='--')
        ax.set_ylabel('Spearman rank correlation')
        ax.set_title('terrain: held-out rank correlation')
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
