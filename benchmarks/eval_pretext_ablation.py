"""What limits the vision pretexts' features: each change measured on its own.

Each variant trains one pretext with `ssl-robot pretext-eval`'s small budget (seed 0, the
same 8000-image pool, and unless the variant says otherwise the same epochs, widths and
learning rate) and is probed with the evaluation protocol (linear probe and k-NN on
frozen features, 10 % of the labels, Fashion-MNIST test split), next to random init and
raw pixels measured in the same run. Every trained encoder is read out two ways
(`ssl_robot.vision.evaluate.READOUTS`): the globally averaged last feature map ('mean',
the default) and the 2x2-averaged maps of the last two stages ('pyramid').

Groups (`--only GROUP`, each a few minutes on one core):
  jigsaw, relative-position: the default with one switch off at a time (object crop,
    per-tile jitter against low-level shortcuts, the full-size canvas) and the original
    method (relative position: its tile jitter, off by default, turned on);
  jigsaw-tiles, relative-position-tiles: tile size (and so the gap) relative to the
    object's square, and for jigsaw a 2x2 grid of larger tiles, each against the default
    7-px tiles;
  jigsaw-head, relative-position-head: the puzzle head on the globally averaged canvas
    features (default) against per-cell features (`cell_head`);
  relative-position-epochs: twice the training;
  inpainting, denoising, moco: why they stay near random init + 9 (training length,
    holes, context loss, corruption; view jitter, momentum);
  simclr-views: SimCLR's views (colour jitter off on grey images, crop scale, stronger
    jitter) and temperature; simclr-schedule: its learning rate and epochs;
  encoder (SimCLR), encoder-rotation: a wider encoder against the default 16-32-64;
  readout: every pretext with its defaults, both readouts (a trained run in
    OUT_ROOT/<pretext>-<hash of the settings>, e.g. copied from pretext-eval's
    seed-0 run, is reused).

Writes benchmarks/results/pretext_ablation.json (rows of every group run so far, with the
arguments) and prints a table.
Usage: python benchmarks/eval_pretext_ablation.py [--only GROUP ...]
       [--out-root runs/pretext_ablation]   (trained variants are reused)
"""
from __future__ import annotations

import argparse
import hashlib
import json
from pathlib import Path
import sys
import time
from typing import Any

RESULTS = Path(__file__).resolve().parent / 'results'

#: Old jigsaw / relative-position switches, all off: the original methods.
_JIG_OFF = {'canvas': False, 'object_crop': False, 'tile_jitter': False}
_REL_OFF = {'canvas': False, 'object_crop': False, 'patch_jitter': False}

#: (group, pretext, variant name, task parameters, training options). Training options
#: override the small budget's 'epochs', 'lr' or 'widths'.
VARIANTS: tuple[tuple[str, str, str, dict[str, Any], dict[str, Any]], ...] = (
    ('jigsaw', 'jigsaw', 'default (canvas, object crop, tile jitter)', {}, {}),
    ('jigsaw', 'jigsaw', 'default without the object crop', {'object_crop': False}, {}),
    ('jigsaw', 'jigsaw', 'default without tile jitter', {'tile_jitter': False}, {}),
    ('jigsaw', 'jigsaw', 'default, tiles encoded one by one (no canvas)', {'canvas': False},
     {}),
    ('jigsaw', 'jigsaw', 'tiles (original: none of the three)', _JIG_OFF, {}),
    ('jigsaw-tiles', 'jigsaw', 'default, 7-px tiles (gap 2 of 9)', {}, {}),
    ('jigsaw-tiles', 'jigsaw', 'default, 5-px tiles (gap 4 of 9)', {'tile': 5}, {}),
    ('jigsaw-tiles', 'jigsaw', 'default, 9-px tiles (no gap)', {'tile': 9}, {}),
    ('jigsaw-tiles', 'jigsaw', 'default, 2x2 grid of 10-px tiles', {'grid': 2, 'n_perms': 24}, {}),
    ('relative-position', 'relative-position', 'default (canvas, object crop)', {}, {}),
    ('relative-position', 'relative-position', 'default without the object crop',
     {'object_crop': False}, {}),
    ('relative-position', 'relative-position', 'default + tile jitter',
     {'patch_jitter': True}, {}),
    ('relative-position', 'relative-position', 'default, patch pairs (no canvas)',
     {'canvas': False}, {}),
    ('relative-position', 'relative-position', 'patch pairs (original: no object crop)',
     _REL_OFF, {}),
    ('relative-position-tiles', 'relative-position', '7-px tiles (gap 2 of 9, old default)',
     {'patch': 7}, {}),
    ('relative-position-tiles', 'relative-position', 'default, 5-px tiles (gap 4 of 9)',
     {'patch': 5}, {}),
    ('relative-position-tiles', 'relative-position', 'default, 9-px tiles (no gap)',
     {'patch': 9}, {}),
    ('jigsaw-head', 'jigsaw', 'default (head on the global mean)', {}, {}),
    ('jigsaw-head', 'jigsaw', 'head on per-cell features', {'cell_head': True}, {}),
    ('relative-position-head', 'relative-position', 'head on the global mean (default)',
     {'cell_head': False}, {}),
    ('relative-position-head', 'relative-position', 'head on per-cell features',
     {'cell_head': True}, {}),
    ('relative-position-epochs', 'relative-position', 'head on per-cell features, 12 epochs',
     {'cell_head': True}, {}),
    ('relative-position-epochs', 'relative-position', 'head on per-cell features, 24 epochs',
     {'cell_head': True}, {'epochs': 24}),
    ('inpainting', 'inpainting', 'one 14-px hole, 4 epochs (old default)', {},
     {'epochs': 4}),
    ('inpainting', 'inpainting', '8 epochs (default)', {}, {'epochs': 8}),
    ('inpainting', 'inpainting', 'four 7-px holes, 4 epochs',
     {'holes': 4, 'hole_fraction': 0.25}, {'epochs': 4}),
    ('inpainting', 'inpainting', 'no context loss, 4 epochs', {'outside_weight': 0.0},
     {'epochs': 4}),
    ('denoising', 'denoising', 'noise 0.3, 25 % of the pixels dropped, 4 epochs (old default)',
     {}, {'epochs': 4}),
    ('denoising', 'denoising', '8 epochs (default)', {}, {'epochs': 8}),
    ('moco', 'moco', 'jitter 0.4, 5 epochs (old default)', {'jitter': 0.4}, {'epochs': 5}),
    ('moco', 'moco', 'jitter 0.8, 5 epochs', {'jitter': 0.8}, {'epochs': 5}),
    ('moco', 'moco', 'jitter 0.8, momentum 0.95, 5 epochs',
     {'jitter': 0.8, 'momentum': 0.95}, {'epochs': 5}),
    ('moco', 'moco', 'jitter 0.8, 10 epochs (default)', {'jitter': 0.8}, {'epochs': 10}),
    ('simclr-views', 'simclr', 'temperature 0.5 (old default)', {'temperature': 0.5}, {}),
    ('simclr-views', 'simclr', 'temperature 0.2', {'temperature': 0.2}, {}),
    ('simclr-views', 'simclr', 't 0.2, no colour jitter, no noise',
     {'temperature': 0.2, 'jitter': 0.0, 'noise_std': 0.0}, {}),
    ('simclr-views', 'simclr', 't 0.2, crop scale 0.2-1', {'temperature': 0.2,
                                                     'crop_scale': [0.2, 1.0]}, {}),
    ('simclr-views', 'simclr', 't 0.2, jitter 0.8', {'temperature': 0.2, 'jitter': 0.8}, {}),
    ('simclr-schedule', 'simclr', 't 0.2, lr 5e-3', {'temperature': 0.2}, {'lr': 5e-3}),
    ('simclr-schedule', 'simclr', 't 0.2, lr 5e-3, 10 epochs', {'temperature': 0.2},
     {'lr': 5e-3, 'epochs': 10}),
    ('encoder', 'rotation', 'widths 16-32-64 (default)', {}, {}),
    ('encoder-rotation', 'rotation', 'widths 32-64-128', {}, {'widths': [32, 64, 128]}),
    ('encoder', 'simclr', 'widths 32-64-128', {}, {'widths': [32, 64, 128]}),
    *(('readout', name, 'defaults', {}, {}) for name in (
        'rotation', 'jigsaw', 'inpainting', 'relative-position', 'simclr', 'moco',
        'denoising')),
)
GROUPS = tuple(dict.fromkeys(v[0] for v in VARIANTS))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--only', nargs='+', choices=GROUPS, default=None,
                    help='groups to run (default: all); rows of other groups already in '
                         '--out are kept')
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
        READOUTS,
    )
    from ssl_robot.vision.training import train_or_load_pretext

    groups = args.only or list(GROUPS)
    b, seed, pct = BUDGETS['small'], 0, 10
    splits = fashion_mnist_splits(pool=b['pool'], n_val=b['n_val'], seed=seed)
    mean, std = pixel_stats(splits.train_x)
    rows: list[dict] = []
    previous = json.loads(args.out.read_text()).get('rows', []) if args.out.exists() else []
    kept = [r for r in previous if r.get('group') not in groups and r.get('group')
            and r['group'] != 'baseline']

    def write() -> None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps({
            'arguments': {**vars(args), 'only': groups},
            'command': 'python benchmarks/eval_pretext_ablation.py ' + ' '.join(
                argv if argv is not None else sys.argv[1:]),
            'budget': 'small', 'seed': seed, 'label_fraction': pct,
            'torch_threads': torch.get_num_threads(), 'rows': kept + rows},
            indent=2, default=str))

    def record(group: str, pretext: str, variant: str, evaluations: dict[str, dict],
               seconds: float = 0.0, **extra: Any) -> None:
        for readout, evaluation in evaluations.items():
            row = {'group': group, 'pretext': pretext, 'variant': variant,
                   'readout': readout,
                   'linear_10': round(100 * evaluation['linear'][str(pct)]['test_acc'], 2),
                   'knn_10': round(100 * evaluation['knn'][str(pct)]['test_acc'], 2),
                   'train_seconds': round(seconds, 1), **extra}
            rows.append(row)
            print(f'{pretext:<18} {variant:<44} {readout:<8} lin {row["linear_10"]:5.1f}  '
                  f'kNN {row["knn_10"]:5.1f}  ({row["train_seconds"]:.0f} s)', flush=True)

    def probe(encoder: torch.nn.Module) -> dict[str, dict]:
        return {r: evaluate_encoder(encoder, splits, mean=mean, std=std, fractions=(pct,),
                                    readout=r) for r in READOUTS}

    record('baseline', 'raw pixels', '-', {
        'pixels': evaluate_pixels(splits, fractions=(pct,))['raw-pixels']})
    for widths in dict.fromkeys([tuple(b['widths'])] + [
            tuple(o['widths']) for g, _, _, _, o in VARIANTS if g in groups and 'widths' in o]):
        seed_everything(seed)
        record('baseline', 'random init', f'widths {"-".join(map(str, widths))}',
               probe(build_encoder({'in_channels': 1, 'widths': list(widths)})))
    for group, pretext, variant, params, options in VARIANTS:
        if group not in groups:
            continue
        opts = {'epochs': b['epochs'][pretext], 'lr': b['lr'], 'widths': b['widths'],
                **options}
        t0 = time.monotonic()
        # One run directory per setting: variants of the same setting share it.
        key = hashlib.sha1(json.dumps([params, opts], sort_keys=True).encode()).hexdigest()
        task, model, loaded = train_or_load_pretext(
            pretext, splits.train_x, args.out_root / f'{pretext}-{key[:10]}',
            params={'widths': opts['widths'], 'mean': mean, 'std': std, **params},
            epochs=opts['epochs'], batch_size=b['batch_size'], lr=opts['lr'], seed=seed,
            progress=False)
        train_s = time.monotonic() - t0
        record(group, pretext, variant, probe(model.encoder), train_s,
               params=params, options=opts, loaded=loaded,
               task_params={k: v for k, v in task.params.items() if k not in ('mean', 'std')})
        write()  # after every variant: a job cut short keeps what it measured
    write()
    print(f'wrote {args.out}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
