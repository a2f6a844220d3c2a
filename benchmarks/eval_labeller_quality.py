"""How good are the self-labels? Sim truth and real terrain data, with baselines.

* Proximity pseudo-labels of simulator bags vs the world's geometry (`sim_truth`):
  precision/recall per distance, next to (a) the positive base rate (what always saying
  "obstacle" gets as precision) and (b) extrapolating the reading at t itself: "obstacle
  at d" when r(t) < threshold + d, known only while threshold + d is within the sensor's
  range (beyond it, +inf says nothing) - what a robot gets without waiting for t'.
* Terrain signal on simulator bags: AUC of signal(rough ground) > signal(smooth).
* Terrain signal on real BorealTC runs: Kruskal-Wallis, per-pair AUC, run-grouped
  cross-validated balanced accuracy vs chance and vs shuffled labels.

Writes benchmarks/results/labeller_quality.json and prints a table.
Usage: python benchmarks/eval_labeller_quality.py [--seeds 3 7 11] [--duration 60]
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path
import sys

import numpy as np

ROOT = Path(__file__).resolve().parent
CACHE = ROOT / '.cache'
BOREALTC = ROOT.parents[1] / 'shared' / 'data' / 'real' / 'terrain' / 'borealtc'


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--seeds', type=int, nargs='+', default=[3, 7, 11])
    ap.add_argument('--duration', type=float, default=60.0)
    args = ap.parse_args(argv)

    from ssl_robot.config import load_node_parameters
    from ssl_robot.labelling import build_trajectory, interpolate_poses, labelling_params
    from ssl_robot.labelling.bag import label_bag
    from ssl_robot.labelling.borealtc import auc, run_features, separation_report
    from ssl_robot.labelling.sim_truth import precision_recall, proximity_truth
    from ssl_robot.sim import ROBOT, World, write_sim_bag
    params = labelling_params(load_node_parameters('labeller'))
    CACHE.mkdir(exist_ok=True)
    from ssl_robot.labelling.proximity import match_readings
    labels, masks, truths, knowns, terrain_auc = [], [], [], [], []
    nows, now_masks = [], []
    dist = np.asarray(params.proximity.distances_m)
    thr = params.proximity.obstacle_range_m
    for seed in args.seeds:
        bag = CACHE / f'quality_seed{seed}_{args.duration:.0f}s'
        if not bag.exists():
            write_sim_bag(seed, args.duration, bag, width=32, height=24, camera_rate_hz=10.0,
                          world_params={'n_obstacles': 20})
        lb = label_bag(bag, params)
        world = World.from_json(lb.bag.world_json)
        truth, known = proximity_truth(
            world, *lb.bag.ground_truth, lb.rows['stamps_ns'], params.proximity.distances_m,
            [ROBOT.proximity_poses[s] for s in params.sensors], params.proximity.obstacle_range_m)
        s = lb.bag.streams
        reading = np.stack([match_readings(st, rv, lb.rows['stamps_ns'],
                                           int(params.proximity.range_tolerance_s * 1e9))
                            for st, rv in zip(s.range_stamps, s.ranges)], axis=-1)
        with np.errstate(invalid='ignore'):
            now = reading[:, None, :] < thr + dist[None, :, None]
        in_range = (thr + dist <= ROBOT.range_max_m)[None, :, None]
        nows.append(now.astype(np.float32))
        now_masks.append(~np.isnan(reading)[:, None, :] & in_range)
        labels.append(lb.rows['proximity'])
        masks.append(lb.rows['proximity_mask'])
        truths.append(truth)
        knowns.append(known)
        rough = lb.result.roughness
        ok = np.isfinite(rough.signal)
        q = interpolate_poses(build_trajectory(*lb.bag.ground_truth, max_jump_m=10.0),
                              rough.stamps_ns[ok])
        ter = np.array([world.terrain_at(x, y) if k else '' for (x, y, _), k in
                        zip(q.poses, q.known)])
        sig = rough.signal[ok]
        smooth, other = sig[ter == 'smooth'], sig[(ter != 'smooth') & (ter != '')]
        if len(smooth) and len(other):
            terrain_auc.append({'seed': seed, 'auc_rough_gt_smooth': auc(other, smooth),
                                'windows_rough': int(len(other)),
                                'windows_smooth': int(len(smooth))})
    lab, mask = np.concatenate(labels), np.concatenate(masks)
    truth, known = np.concatenate(truths), np.concatenate(knowns)
    copied, copied_mask = np.concatenate(nows), np.concatenate(now_masks)
    overall = precision_recall(lab, mask, truth, known)
    per_distance = []
    for j, d in enumerate(params.proximity.distances_m):
        sel = np.zeros(mask.shape, bool)
        sel[:, j] = True
        ours = precision_recall(lab, mask & sel, truth, known)
        base = precision_recall(copied, copied_mask & sel, truth, known)
        per_distance.append({'d': d, 'precision': ours['precision'], 'recall': ours['recall'],
                             'known': ours['known'], 'true_positives_rate':
                             ours['positives_true'] / max(ours['known'], 1),
                             'reading_at_t_precision': base['precision'],
                             'reading_at_t_recall': base['recall'],
                             'reading_at_t_known': base['known']})
    result = {'sim_seeds': args.seeds, 'sim_duration_s': args.duration,
              'frames': int(len(lab)), 'proximity_overall': overall,
              'positive_base_rate': overall['positives_true'] / max(overall['known'], 1),
              'proximity_per_distance': per_distance, 'sim_terrain_auc': terrain_auc}
    if BOREALTC.is_dir():
        result['borealtc'] = separation_report(run_features(BOREALTC))
    print(f'sim proximity ({len(lab)} frames, seeds {args.seeds}): precision '
          f'{overall["precision"]:.3f}, recall {overall["recall"]:.3f} '
          f'(positive base rate {result["positive_base_rate"]:.3f})')
    print('  d (m)  precision  recall  known   reading at t extrapolated: precision/recall/known')
    for row in per_distance:
        print(f'  {row["d"]:5.2f}  {row["precision"]:9.3f}  {row["recall"]:6.3f}  '
              f'{row["known"]:5d}   {row["reading_at_t_precision"]:.3f} / '
              f'{row["reading_at_t_recall"]:.3f} / {row["reading_at_t_known"]}')
    for row in terrain_auc:
        print(f'sim terrain seed {row["seed"]}: AUC signal(rough) > signal(smooth) = '
              f'{row["auc_rough_gt_smooth"]:.3f}')
    if 'borealtc' in result:
        b = result['borealtc']
        print(f'BorealTC ({b["runs"]} runs, {len(b["classes"])} classes): balanced accuracy '
              f'{b["balanced_accuracy"]:.3f} vs chance {b["chance"]:.3f} (shuffled labels '
              f'{b["shuffled_balanced_accuracy"]:.3f}); Kruskal-Wallis H={b["kruskal_h"]:.0f}, '
              f'p={b["kruskal_p"]:.1e}')
        for pair, value in b['pair_auc'].items():
            print(f'  AUC {pair}: {value:.3f}')
    out = ROOT / 'results' / 'labeller_quality.json'
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps({'arguments': vars(args), **result}, indent=1, default=str))
    print(f'wrote {out}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
