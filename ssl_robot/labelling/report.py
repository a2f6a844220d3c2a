"""Summary numbers and figures of a labelling run (matplotlib, Agg backend)."""
from __future__ import annotations

from pathlib import Path
from typing import Any, TYPE_CHECKING

import numpy as np

from ssl_robot.labelling.params import absolute
from ssl_robot.labelling.poses import interpolate_poses

if TYPE_CHECKING:
    from ssl_robot.labelling.bag import LabelledBag


def yield_table(mask: np.ndarray) -> np.ndarray:
    """Share of frames with a known label per distance x sensor ([D, S])."""
    return mask.mean(axis=0) if len(mask) else np.zeros(mask.shape[1:])


def summarise(labelled: list[LabelledBag]) -> dict[str, Any]:
    """Numbers of a run: frames, known labels per distance/sensor, yield, drops, notes."""
    params = labelled[0].params
    masks = [lb.rows['proximity_mask'] for lb in labelled]
    labels = [lb.rows['proximity'] for lb in labelled]
    mask = np.concatenate(masks) if masks else np.zeros((0, 1, 1), bool)
    lab = np.concatenate(labels) if labels else np.zeros((0, 1, 1))
    tmask = np.concatenate([lb.rows['terrain_mask'] for lb in labelled])
    n = int(mask.shape[0])
    counts: dict[str, int] = {}
    for lb in labelled:
        for key, value in lb.provenance['counts'].items():
            counts[key] = counts.get(key, 0) + int(value)
    return {
        'bags': [{'paths': lb.paths, 'frames': int(len(lb.rows['stamps_ns'])),
                  'notes': lb.bag.notes, 'duration_s': lb.bag.duration_s} for lb in labelled],
        'frames': n,
        'distances_m': list(params.proximity.distances_m),
        'sensors': params.sensors,
        'known_labels': mask.sum(axis=0).astype(int).tolist(),
        'obstacle_labels': (lab * mask).sum(axis=0).astype(int).tolist(),
        'yield': yield_table(mask).round(4).tolist(),
        'proximity_yield_overall': float(mask.mean()) if n else 0.0,
        'terrain_patch_yield': float(tmask.mean()) if n else 0.0,
        'views': _view_counts(labelled),
        'counts': counts,
    }


def _view_counts(labelled: list[LabelledBag]) -> list[dict[str, Any]]:
    """Per extra camera: frames with a matched view, and frames where it is masked."""
    topics = labelled[0].params.view_topics
    out = []
    for v, topic in enumerate(topics):
        matched = sum(int(lb.provenance['counts'].get(f'views_matched_{v}', 0))
                      for lb in labelled)
        missing = sum(int(lb.provenance['counts'].get(f'views_missing_{v}', 0))
                      for lb in labelled)
        out.append({'topic': absolute(topic), 'matched': matched, 'masked': missing})
    return out


def format_summary(summary: dict[str, Any]) -> str:
    """The summary as text for the terminal."""
    lines = [f'frames labelled: {summary["frames"]}']
    for bag in summary['bags']:
        lines.append(f'  {", ".join(bag["paths"])}: {bag["frames"]} frames, '
                     f'{bag["duration_s"]:.0f} s')
        lines += [f'    note: {note}' for note in bag['notes']]
    if summary['frames']:
        sensors = summary['sensors']
        lines.append('known proximity labels (obstacle) and yield per distance:')
        lines.append('  d (m)  ' + ''.join(f'{s:>20}' for s in sensors))
        for j, d in enumerate(summary['distances_m']):
            cells = ''.join(
                f'{summary["known_labels"][j][k]:>7} ({summary["obstacle_labels"][j][k]:>4}) '
                f'{summary["yield"][j][k]:>5.0%}' for k in range(len(sensors)))
            lines.append(f'  {d:5.2f}  {cells}')
        lines.append(f'proximity yield overall: {summary["proximity_yield_overall"]:.1%}, '
                     f'terrain patch yield: {summary["terrain_patch_yield"]:.1%}')
        for view in summary.get('views', []):
            lines.append(f'view {view["topic"]}: matched in {view["matched"]} frames, masked '
                         f'(no frame within the tolerance) in {view["masked"]}')
    dropped = {k: v for k, v in summary['counts'].items() if v and any(
        w in k for w in ('bad', 'duplicate', 'out_of_order', 'jump', 'backstep', 'gap',
                         'invalid', 'nan', 'ambiguous', 'without_pose'))}
    if dropped:
        lines.append('dropped or cut (counted): ' + ', '.join(f'{k}={v}'
                                                             for k, v in dropped.items()))
    return '\n'.join(lines)


def write_figures(labelled: list[LabelledBag], out_dir: Path, *,
                  max_examples: int = 6) -> list[Path]:
    """Label-yield heat map, example frames with labels, trajectories coloured by signal."""
    import matplotlib  # noqa: PLC0415 - figures only when asked for
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt  # noqa: PLC0415
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    params = labelled[0].params
    with_frames = [lb for lb in labelled if len(lb.rows['stamps_ns'])]
    if with_frames:
        mask = np.concatenate([lb.rows['proximity_mask'] for lb in with_frames])
        fig, ax = plt.subplots(figsize=(1.5 + 1.2 * mask.shape[2], 1 + 0.35 * mask.shape[1]))
        im = ax.imshow(yield_table(mask), vmin=0, vmax=1, cmap='viridis', aspect='auto')
        ax.set_xticks(range(mask.shape[2]), params.sensors)
        ax.set_yticks(range(mask.shape[1]), [f'{d:.2f}' for d in params.proximity.distances_m])
        ax.set_ylabel('distance ahead d (m)')
        ax.set_title(f'proximity label yield ({len(mask)} frames)')
        for (j, k), v in np.ndenumerate(yield_table(mask)):
            ax.text(k, j, f'{v:.0%}', ha='center', va='center', fontsize=7,
                    color='w' if v < 0.6 else 'k')
        fig.colorbar(im, ax=ax)
        fig.tight_layout()
        written.append(_save(fig, out_dir / 'label_yield.png'))
        written.append(_example_frames(with_frames[0], out_dir / 'example_frames.png',
                                       max_examples, plt))
    written.append(_trajectories(labelled, out_dir / 'trajectory_terrain.png', plt))
    return written


def _save(fig: Any, path: Path) -> Path:
    fig.savefig(path, dpi=110)
    import matplotlib.pyplot as plt  # noqa: PLC0415
    plt.close(fig)
    return path


def _example_frames(lb: LabelledBag, path: Path, count: int, plt: Any) -> Path:
    rows = lb.rows
    pm, tm = rows['proximity_mask'], rows['terrain_mask']
    # Prefer frames with many known labels, and some with obstacles, spread over time.
    score = pm.sum(axis=(1, 2)) + tm.sum(axis=(1, 2)) + 20 * (rows['proximity'] * pm).sum(
        axis=(1, 2)).clip(0, 1)
    order = np.argsort(-score, kind='stable')
    picks: list[int] = []
    for i in order:
        if all(abs(int(i) - p) > len(score) // (2 * count) for p in picks):
            picks.append(int(i))
        if len(picks) == count:
            break
    picks.sort()
    terrain = rows['terrain'][tm]
    vmax = float(np.percentile(terrain, 95)) if terrain.size else 1.0
    dists = lb.params.proximity.distances_m
    fig, axes = plt.subplots(2, max(1, len(picks)), figsize=(2.6 * max(1, len(picks)), 4.6),
                             squeeze=False)
    cmap = plt.get_cmap('magma')
    for c, i in enumerate(picks):
        ax = axes[0, c]
        frame = rows['frames'][i]
        h, w = frame.shape[:2]
        ax.imshow(frame)
        gh, gw = tm.shape[1:]
        for (r, q), known in np.ndenumerate(tm[i]):
            if known:
                color = cmap(min(1.0, rows['terrain'][i, r, q] / max(vmax, 1e-9)))
                ax.add_patch(plt.Rectangle((q * w / gw, r * h / gh), w / gw, h / gh,
                                           color=color, alpha=0.45, lw=0))
        t_rel = (rows['stamps_ns'][i] - rows['stamps_ns'][0]) / 1e9
        ax.set_title(f't = {t_rel:.1f} s', fontsize=8)
        ax.axis('off')
        bars = axes[1, c]
        img = np.full((len(dists), pm.shape[2], 3), 0.8)
        img[pm[i] & (rows['proximity'][i] > 0.5)] = (0.85, 0.1, 0.1)
        img[pm[i] & (rows['proximity'][i] <= 0.5)] = (0.2, 0.7, 0.2)
        bars.imshow(img, origin='lower', aspect='auto')
        bars.set_xticks(range(pm.shape[2]), lb.params.sensors, fontsize=7)
        bars.set_yticks(range(len(dists)), [f'{d:.2f}' for d in dists], fontsize=6)
        if c == 0:
            bars.set_ylabel('d (m)\nred obstacle, green free, grey unknown', fontsize=7)
    fig.suptitle('frames with terrain patches (colour = roughness) and proximity labels',
                 fontsize=9)
    fig.tight_layout()
    return _save(fig, path)


def _trajectories(labelled: list[LabelledBag], path: Path, plt: Any) -> Path:
    fig, ax = plt.subplots(figsize=(6, 5))
    sc = None
    for lb in labelled:
        traj, rough = lb.result.trajectory, lb.result.roughness
        for k in range(traj.n_segments):
            p = traj.poses[traj.segment(k)]
            ax.plot(p[:, 0], p[:, 1], color='0.8', lw=0.6)
        ok = np.isfinite(rough.signal)
        at = interpolate_poses(traj, rough.stamps_ns[ok])
        if at.known.any():
            sig = rough.signal[ok][at.known]
            sc = ax.scatter(at.poses[at.known, 0], at.poses[at.known, 1], c=sig, s=3,
                            cmap='magma', vmin=np.percentile(sig, 2),
                            vmax=np.percentile(sig, 98))
    if sc is not None:
        fig.colorbar(sc, ax=ax, label='roughness signal (m/s²)')
    ax.set_aspect('equal', 'datalim')
    ax.set_xlabel('x (m, odometry)')
    ax.set_ylabel('y (m)')
    ax.set_title('trajectory coloured by terrain signal')
    fig.tight_layout()
    return _save(fig, path)
