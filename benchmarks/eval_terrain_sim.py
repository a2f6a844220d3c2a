"""Terrain descriptors in the simulator: do they tell the worlds' true terrains apart?

Simulates `--train` + `--test` worlds (seeds from `--seed`; small images, the labeller's
windows), labels each bag with `label_bag` (the labeller's code), and takes the true
terrain under the robot at each window centre from the world (`World.terrain_at` at the
ground-truth pose). Then, on the held-out worlds only:

* unsupervised types (`fit_dataset_types`, fitted on the train worlds' descriptors, k
  by lowest BIC) vs the true terrain: adjusted mutual information and purity;
* a classifier trained on the train worlds' descriptors (gradient-boosted trees, as
  `ssl-robot terrain-eval`): balanced accuracy on the held-out worlds, next to the old
  scalar roughness signal through the same classifier, and chance.

Usage: python benchmarks/eval_terrain_sim.py [--train 3] [--test 2] [--duration 60]
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path
import tempfile
import time

import numpy as np

RESULTS = Path(__file__).resolve().parent / 'results'


def windows_with_truth(bag: Path, params) -> tuple[np.ndarray, np.ndarray, np.ndarray,
                                                     np.ndarray, list[str]]:
    """(descriptors, masks, old signal, true terrain names, layout names) of one bag."""
    from ssl_robot.labelling import build_trajectory, interpolate_poses
    from ssl_robot.labelling.bag import label_bag
    from ssl_robot.sim import World
    lb = label_bag(bag, params)
    world = World.from_json(lb.bag.world_json)
    desc, rough = lb.result.descriptors, lb.result.roughness
    truth = interpolate_poses(build_trajectory(*lb.bag.ground_truth, max_jump_m=10.0),
                              desc.stamps_ns)
    names = np.array([world.terrain_at(x, y) if k else '' for (x, y, _), k in
                      zip(truth.poses, truth.known)])
    same = len(rough.signal) == len(desc.stamps_ns)
    old = rough.signal if same else np.full(len(desc.stamps_ns), np.nan)
    keep = (names != '') & desc.mask[:, 0] & np.isfinite(old)
    return desc.values[keep], desc.mask[keep], old[keep], names[keep], list(desc.layout.names)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--train', type=int, default=3)
    ap.add_argument('--test', type=int, default=2)
    ap.add_argument('--duration', type=float, default=60.0)
    ap.add_argument('--seed', type=int, default=100)
    args = ap.parse_args(argv)
    from sklearn.metrics import adjusted_mutual_info_score, balanced_accuracy_score

    from ssl_robot.config import load_node_parameters
    from ssl_robot.labelling import labelling_params
    from ssl_robot.labelling.borealtc import make_classifier
    from ssl_robot.labelling.terrain_types import purity, TerrainTypes
    from ssl_robot.sim import write_sim_bag
    params = labelling_params(load_node_parameters('labeller'))
    t0 = time.perf_counter()
    parts = {'train': [], 'test': []}
    with tempfile.TemporaryDirectory() as tmp:
        for k in range(args.train + args.test):
            bag = Path(tmp) / f'world{k}'
            write_sim_bag(args.seed + k, args.duration, bag, width=32, height=24,
                          camera_rate_hz=5.0)
            parts['train' if k < args.train else 'test'].append(
                windows_with_truth(bag, params))
    cat = {s: [np.concatenate([p[i] for p in parts[s]]) for i in range(4)] for s in parts}
    names = parts['train'][0][4]
    imu = [k for k, n in enumerate(names) if '_b' in n]
    classes = sorted(set(cat['train'][3]) | set(cat['test'][3]))
    y = {s: np.array([classes.index(c) for c in cat[s][3]]) for s in cat}
    types = TerrainTypes.fit(cat['train'][0], cat['train'][1], columns=np.array(imu), seed=0)
    ids, _ = types.assign(cat['test'][0], cat['test'][1])
    report = {'args': vars(args), 'classes': classes,
              'windows': {s: {c: int((y[s] == k).sum()) for k, c in enumerate(classes)}
                          for s in y},
              'types': {'k': types.n_types, 'ami': float(adjusted_mutual_info_score(
                  y['test'], ids)), 'purity': purity(ids, y['test']),
                  'majority': float(np.bincount(y['test']).max() / len(y['test']))},
              'chance': 1.0 / len(classes)}
    for variant, x in (('descriptor', lambda s: cat[s][0][:, imu]),
                       ('old_scalar', lambda s: np.log(np.maximum(cat[s][2], 1e-6))[:, None])):
        model = make_classifier('hgb', 0).fit(x('train'), y['train'])
        report[variant] = float(balanced_accuracy_score(y['test'], model.predict(x('test'))))
    report['seconds'] = time.perf_counter() - t0
    print(f'sim worlds: train {args.train}, held out {args.test} ({args.duration:.0f} s each); '
          f'terrains {", ".join(classes)}; held-out windows {len(y["test"])}')
    print(f'held-out balanced accuracy: descriptor {report["descriptor"]:.3f}, old scalar '
          f'{report["old_scalar"]:.3f}, chance {report["chance"]:.3f}')
    t = report['types']
    print(f'unsupervised types (k = {t["k"]} by BIC, fitted on the train worlds) vs true '
          f'terrain on held-out worlds: AMI {t["ami"]:.3f}, purity {t["purity"]:.3f} '
          f'(majority {t["majority"]:.3f})')
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / 'eval_terrain_sim.json'
    out.write_text(json.dumps({'arguments': vars(args), **report}, indent=1, default=str))
    print(f'json: {out}')
    return 0


if __name__ == '__main__':
    raise SystemExit(main())
