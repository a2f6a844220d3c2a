"""Jigsaw and relative position: what each change does to the features, one at a time.

Each variant trains the pretext with `ssl-robot pretext-eval`'s small budget (seed 0, the
same pool, epochs, widths and learning rate) and is probed with the evaluation protocol
(linear and k-NN on frozen features, 10 % of the labels, Fashion-MNIST test split), next
to random init and raw pixels. The variants switch on, in turn: the object crop (tiles
and patches from the object's bounding square, not background), per-tile brightness/
contrast jitter (no low-level shortcuts), patch upsampling, and the full-size canvas
(the encoder sees the puzzle at the scale it is evaluated at).

Writes benchmarks/results/pretext_ablation.json and prints a table.
Usage: python benchmarks/eval_pretext_ablation.py [--only jigsaw|relative-position]
       [--out-root runs/pretext_ablation]   (trained variants are reused)
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path
import sys
import time

RESULTS = Path(__file__).resolve().parent / 'results'

#: (pretext, variant name, parameters); the first of each pretext is the original.
VARIANTS = (
    ('jigsaw', 'tiles (original)', {'canvas': False, 'object_crop': False,
                                    'tile_jitter': False}),
    ('jigsaw', '+ object crop, tile jitter', {'canvas': False, 'object_crop': True,
                                              'tile_jitter': True}),
    ('jigsaw', 'canvas', {'canvas': True, 'object_crop': False, 'tile_jitter': False}),
    ('jigsaw', 'canvas + object crop, tile jitter', {'canvas': True, 'object_crop': True,
                                                     'tile_jitter': True}),
    ('relative-position', 'patch pairs (original)', {'canvas': False, 'object_crop': False,
                                                     'patch_jitter': False}),
    ('relative-position', '+ object crop, patch jitter', {'canvas': False,
                                                          'object_crop': True,
                                                          'patch_jitter': True}),
    ('relative-position', '+ patches upsampled 2x', {'canvas': False, 'object_crop': False,
                                                     'patch_jitter': False,
                                                     'patch_scale': 2}),
    ('relative-position', 'canvas', {'canvas': True, 'object_crop': False,
                                     'patch_jitter': False}),
    ('relative-position', 'canvas + object crop', {'canvas': True, 'object_crop': True,
                                                   'patch_jitter': False}),
)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--only', choices=('jigsaw', 'relative-position'), default=None)
    ap.add_argument('--out-root', type=Path, default=Path('runs/pretext_ablation'))
    ap.add_argument('--out', type=Path, default=RESULTS / 'pretext_ablation.json')
    args = ap.parse_args(argv)

    import torch

    from ssl_robot.train.trainer import seed_everything
    from ssl_robot.vision.encoders import build_encoder
    from ssl_robot.vision.evaluate import (
        BUDGETS,
        evaluate_encoder,
        evaluate_pixels,
        fashion_mnist_splits,
        pixel_stats,
    )
    from ssl_robot.vision.training import train_or_load_pretext

    b, seed, pct = BUDGETS['small'], 0, 10
    splits = fashion_mnist_splits(pool=b['pool'], n_val=b['n_val'], seed=seed)
    mean, std = pixel_stats(splits.train_x)
    rows: list[dict] = []

    def record(pretext: str, variant: str, evaluation: dict, seconds: float = 0.0) -> None:
        row = {'pretext': pretext, 'variant': variant,
               'linear_10': round(100 * evaluation['linear'][str(pct)]['test_acc'], 2),
               'knn_10': round(100 * evaluation['knn'][str(pct)]['test_acc'], 2),
               'train_seconds': round(seconds, 1)}
        rows.append(row)
        print(f'{pretext:<18} {variant:<36} lin {row["linear_10"]:5.1f}  '
              f'kNN {row["knn_10"]:5.1f}  ({row["train_seconds"]:.0f} s)', flush=True)

    record('baseline', 'raw pixels', evaluate_pixels(splits, fractions=(pct,))['raw-pixels'])
    seed_everything(seed)
    record('baseline', 'random init', evaluate_encoder(
        build_encoder({'in_channels': 1, 'widths': b['widths']}), splits, mean=mean, std=std,
        fractions=(pct,)))
    for i, (pretext, variant, params) in enumerate(VARIANTS):
        if args.only and pretext != args.only:
            continue
        t0 = time.monotonic()
        _, model, _ = train_or_load_pretext(
            pretext, splits.train_x, args.out_root / f'{pretext}-{i}',
            params={'widths': b['widths'], 'mean': mean, 'std': std, **params},
            epochs=b['epochs'][pretext], batch_size=b['batch_size'], lr=b['lr'], seed=seed,
            progress=False)
        record(pretext, variant, evaluate_encoder(model.encoder, splits, mean=mean, std=std,
                                                  fractions=(pct,)),
               time.monotonic() - t0)
    previous = json.loads(args.out.read_text())['rows'] if args.out.exists() else []
    kept = [r for r in previous if args.only and r['pretext'] == (
        'jigsaw' if args.only == 'relative-position' else 'relative-position')]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({
        'arguments': vars(args),
        'command': 'python benchmarks/eval_pretext_ablation.py ' + ' '.join(
            argv if argv is not None else sys.argv[1:]),
        'budget': 'small', 'seed': seed, 'label_fraction': pct,
        'torch_threads': torch.get_num_threads(), 'rows': kept + rows}, indent=2, default=str))
    print(f'wrote {args.out}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
