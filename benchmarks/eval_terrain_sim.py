"""Terrain descriptors in the simulator: do they tell the worlds' true terrains apart?

Simulates `--train` + `--test` worlds (seeds from `--seed`; small images, the labeller's
windows), labels each bag with `label_bag` (the labeller's code), and takes the true
terrain under the robot at each window centre from the world (`World.terrain_at` at the
ground-truth pose). Then, on the held-out worlds only:

* unsupervised types (`fit_dataset_types`, fitted on the train worlds' descriptors, k
  by lowest BIC) vs the true terrain: adjusted mutual information and purity;
* a classifier trained on the train worlds' descriptors (gradient-boosted trees, as
  `ssl-robot terrain-eval`): balanced accuracy on the held-out worlds, next to the old
  scalar roughness signal through the same classifier, and chance;
* the image model (`--image-epochs` > 0): the terrain task trained on the train worlds'
  frames (dataset with descriptor patches and the train worlds' types, as `ssl-robot
  label` writes it; the trainer's own validation split for the best epoch), then on
  every frame of the held-out worlds, against the felt labels of their patches: type
  accuracy (balanced too, and the share of the most common felt type), cost Spearman and
  descriptor R^2, next to the same network from random init.

Usage: python benchmarks/eval_terrain_sim.py [--train 3] [--test 2] [--duration 60]
           [--image-epochs 15] [--width 32 --height 24]
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path
import tempfile
import time

import numpy as np

RESULTS = Path(__file__).resolve().parent / 'results'


def windows_with_truth(lb) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray,
                                    list[str]]:
    """(descriptors, masks, old signal, true terrain names, layout names) of a labelled bag."""
    from ssl_robot.labelling import build_trajectory, interpolate_poses
    from ssl_robot.sim import World
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


def write_dataset(out: Path, labelled: list, params) -> Path:
    """The labelled bags as one dataset (as `ssl-robot label` writes it, types aside)."""
    from ssl_robot.dataset import DatasetWriter
    from ssl_robot.labelling.jobs import dataset_layout
    first = labelled[0]
    with DatasetWriter(out, image_hw=first.rows['frames'].shape[1:3],
                       **dataset_layout(params, first)) as writer:
        for lb in labelled:
            writer.add_bag(', '.join(lb.paths), lb.rows, params=params.as_dict())
    return out


def image_model(train_ds: Path, test_ds: Path, run: Path, *, epochs: int, seed: int
                ) -> dict:
    """Train the terrain task on `train_ds`; trained and random-init metrics on `test_ds`."""
    import torch
    from torch.utils.data import DataLoader

    from ssl_robot.dataset import LabelledDataset
    from ssl_robot.metrics import spearman
    from ssl_robot.robot import build_task
    from ssl_robot.robot.nets import build_robot_model
    from ssl_robot.robot.tasks import FrameItems, patch_metrics
    from ssl_robot.train import TrainConfig, Trainer
    torch.manual_seed(seed)
    task = build_task('terrain', {'dataset': str(train_ds), 'input_hw': [24, 32],
                                  'width': 16})
    config = TrainConfig(out_dir=str(run), epochs=epochs, batch_size=64, lr=3e-3,
                         progress=False, task='terrain', task_params=task.params, seed=seed)
    trained = Trainer(task, config).fit().model.eval()
    # The held-out worlds, every frame, with the train worlds' types (stored with them).
    test = build_task('terrain', {**task.params, 'dataset': str(test_ds)})
    fields = ('terrain', 'terrain_mask', 'terrain_descriptor', 'terrain_descriptor_mask',
              'terrain_type')
    frames = FrameItems(test.data, np.arange(len(LabelledDataset.open(test_ds))), fields,
                        {'terrain_type': test.patch_type_ids()})
    torch.manual_seed(seed)
    random_init = build_robot_model(test.model_spec()).eval()
    report = {'params': {k: task.params[k] for k in ('input_hw', 'width', 'type_names')},
              'descriptor_entries': len(task.params['descriptor_names']),
              'train_frames': int(len(task.data)), 'test_frames': int(len(frames))}
    for name, model in (('trained', trained), ('random_init', random_init)):
        out = test.predict_patches(model, DataLoader(frames, batch_size=128,
                                                     collate_fn=test.collate))
        known = out['cost_mask']
        m = {k[len('val_'):]: v for k, v in patch_metrics(out).items()}
        m['cost_spearman'] = spearman(out['cost'][known], out['cost_target'][known])
        m['cost_patches'] = int(known.sum())
        felt = out['type'][out['type'] >= 0]
        m['type_majority'] = float(np.bincount(felt).max() / max(len(felt), 1))
        report[name] = m
    return report


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--train', type=int, default=3)
    ap.add_argument('--test', type=int, default=2)
    ap.add_argument('--duration', type=float, default=60.0)
    ap.add_argument('--seed', type=int, default=100)
    ap.add_argument('--width', type=int, default=32)
    ap.add_argument('--height', type=int, default=24)
    ap.add_argument('--image-epochs', type=int, default=15,
                    help='epochs of the image model (0: no image model)')
    ap.add_argument('--out', type=Path, default=RESULTS / 'eval_terrain_sim.json')
    args = ap.parse_args(argv)
    from sklearn.metrics import adjusted_mutual_info_score, balanced_accuracy_score

    from ssl_robot.config import load_node_parameters
    from ssl_robot.labelling import labelling_params
    from ssl_robot.labelling.bag import label_bag
    from ssl_robot.labelling.borealtc import make_classifier
    from ssl_robot.labelling.terrain_types import (
        fit_dataset_types,
        purity,
        save_dataset_types,
        TerrainTypes,
    )
    from ssl_robot.sim import write_sim_bag
    params = labelling_params(load_node_parameters('labeller'))
    t0 = time.perf_counter()
    parts = {'train': [], 'test': []}
    image = None
    with tempfile.TemporaryDirectory() as tmp:
        labelled = {'train': [], 'test': []}
        for k in range(args.train + args.test):
            bag = Path(tmp) / f'world{k}'
            write_sim_bag(args.seed + k, args.duration, bag, width=args.width,
                          height=args.height, camera_rate_hz=5.0)
            lb = label_bag(bag, params)
            split = 'train' if k < args.train else 'test'
            parts[split].append(windows_with_truth(lb))
            labelled[split].append(lb)
        fitted = fit_dataset_types([lb.result.descriptors for lb in labelled['train']])
        if args.image_epochs > 0 and fitted is not None:
            datasets = {s: write_dataset(Path(tmp) / f'{s}_ds', labelled[s], params)
                        for s in labelled}
            for ds in datasets.values():  # one set of types, fitted on the train worlds
                save_dataset_types(fitted, ds)
            image = image_model(datasets['train'], datasets['test'], Path(tmp) / 'run',
                                epochs=args.image_epochs, seed=args.seed)
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
    if image is not None:
        report['image_model'] = image
    report['seconds'] = time.perf_counter() - t0
    print(f'sim worlds: train {args.train}, held out {args.test} ({args.duration:.0f} s each); '
          f'terrains {", ".join(classes)}; held-out windows {len(y["test"])}')
    print(f'held-out balanced accuracy: descriptor {report["descriptor"]:.3f}, old scalar '
          f'{report["old_scalar"]:.3f}, chance {report["chance"]:.3f}')
    t = report['types']
    print(f'unsupervised types (k = {t["k"]} by BIC, fitted on the train worlds) vs true '
          f'terrain on held-out worlds: AMI {t["ami"]:.3f}, purity {t["purity"]:.3f} '
          f'(majority {t["majority"]:.3f})')
    if image is not None:
        print(f'image model ({args.image_epochs} epochs on {image["train_frames"]} frames of '
              f'the train worlds; {image["test_frames"]} held-out frames, '
              f'{len(image["params"]["type_names"])} types) vs the felt labels of held-out '
              'patches:')
        for name in ('trained', 'random_init'):
            m = image[name]
            print(f'  {name:>11}: type accuracy {m["type_accuracy"]:.3f} (balanced '
                  f'{m["type_balanced_accuracy"]:.3f}, chance {m["type_chance"]:.3f}, '
                  f'majority {m["type_majority"]:.3f}, n={m["type_patches"]:.0f}), cost '
                  f'Spearman {m["cost_spearman"]:.3f} (n={m["cost_patches"]}), descriptor '
                  f'R2 {m["descriptor_r2"]:.3f}')
    out = args.out
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({'arguments': vars(args), **report}, indent=1, default=str))
    print(f'json: {out}')
    return 0


if __name__ == '__main__':
    raise SystemExit(main())
