"""Benchmark: appending labelled frames to a growing dataset (what the live labeller does).

The live `labeller` node appends what it labelled every `flush_every_s` (30 s by
default) to one dataset that grows for as long as the robot drives. For datasets of
growing size this measures, in the same run:

* append: `DatasetWriter(append=True)` adding one flush worth of frames (in place:
  only the new rows are written, then meta.json is replaced);
* rewrite: writing the whole dataset (old + new rows) anew into a temporary directory
  and swapping it in, which is what an append that copies the dataset costs (and what
  this package's appends cost before they were done in place);
* open: `LabelledDataset.open` of the result (memory-mapped), for scale.

Frames are 96x128 rgb8 (the camera default) with the default 11 distances x 3 sensors
and a 6x8 terrain grid. Disk writes include fsync, as the writer does them.

Usage: python benchmarks/bench_dataset.py [--sizes 1000 5000 20000] [--flush 120]
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path
import shutil
import sys
import tempfile
import time

import numpy as np

RESULTS = Path(__file__).resolve().parent / 'results'
SHAPE = {'distances_m': [round(0.05 * k, 2) for k in range(11)],
         'sensors': ['left', 'center', 'right'], 'terrain_grid': [6, 8],
         'image_hw': [96, 128]}


def rows(n: int, seed: int) -> dict[str, np.ndarray]:
    """`n` frames of random labels (content does not matter to the writer)."""
    rng = np.random.default_rng(seed)
    d, s = len(SHAPE['distances_m']), len(SHAPE['sensors'])
    (gh, gw), (h, w) = SHAPE['terrain_grid'], SHAPE['image_hw']
    return {
        'frames': rng.integers(0, 255, (n, h, w, 3), dtype=np.uint8),
        'stamps_ns': np.arange(n, dtype=np.int64) * 100_000_000,
        'proximity': rng.integers(0, 2, (n, d, s)).astype(np.float32),
        'proximity_mask': rng.random((n, d, s)) > 0.5,
        'terrain': rng.random((n, gh, gw), dtype=np.float32),
        'terrain_mask': rng.random((n, gh, gw)) > 0.8,
        'prov_t_future_ns': np.full((n, d), -1, np.int64),
        'prov_pose_err': np.zeros((n, d, 3), np.float32),
    }


def build(path: Path, n: int) -> None:
    """A dataset of `n` frames, written in chunks of at most 2000 rows."""
    from ssl_robot.dataset import DatasetWriter
    with DatasetWriter(path, **SHAPE, overwrite=True) as writer:
        bag = writer.begin_bag('bench')
        for start in range(0, n, 2000):
            writer.add_rows(bag, rows(min(2000, n - start), seed=start))


def append(path: Path, new: dict[str, np.ndarray]) -> float:
    from ssl_robot.dataset import DatasetWriter
    start = time.perf_counter()
    with DatasetWriter(path, append=True) as writer:
        writer.add_bag('flush', new)
    return time.perf_counter() - start


def rewrite(path: Path, new: dict[str, np.ndarray]) -> float:
    """Old + new rows into a fresh dataset swapped in: a copying append's cost."""
    from ssl_robot.dataset import DatasetWriter, LabelledDataset
    start = time.perf_counter()
    old = LabelledDataset.open(path)
    with DatasetWriter(path, **SHAPE, overwrite=True) as writer:
        bag = writer.begin_bag('old')
        for lo in range(0, len(old), 2000):
            writer.add_rows(bag, {name: getattr(old, name)[lo:lo + 2000] for name in new})
        writer.add_bag('flush', new)
    return time.perf_counter() - start


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--sizes', type=int, nargs='+', default=[1000, 5000, 20000],
                        help='dataset sizes in frames before the append')
    parser.add_argument('--flush', type=int, default=120,
                        help='frames per append (30 s of a 4 Hz labeller: 120)')
    parser.add_argument('--repeats', type=int, default=3)
    parser.add_argument('--dir', type=Path, default=None, help='where to write (default: tmp)')
    args = parser.parse_args(argv)
    from ssl_robot.dataset import LabelledDataset
    new = rows(args.flush, seed=10**6)
    mb_per_frame = sum(a[:1].nbytes for a in new.values()) / 1e6
    table = []
    work = Path(tempfile.mkdtemp(prefix='bench_dataset_', dir=args.dir))
    try:
        for n in args.sizes:
            print(f'building a dataset of {n} frames ({n * mb_per_frame:.0f} MB) ...',
                  flush=True)
            times: dict[str, list[float]] = {'append': [], 'rewrite': [], 'open': []}
            for k in range(args.repeats):
                build(work / 'ds', n)
                times['append'].append(append(work / 'ds', new))
                start = time.perf_counter()
                assert len(LabelledDataset.open(work / 'ds')) == n + args.flush
                times['open'].append(time.perf_counter() - start)
                build(work / 'ds', n)
                times['rewrite'].append(rewrite(work / 'ds', new))
                print(f'  repeat {k + 1}/{args.repeats}: append {times["append"][-1]:.3f}s '
                      f'rewrite {times["rewrite"][-1]:.3f}s', flush=True)
            med = {key: float(np.median(v)) for key, v in times.items()}
            table.append({'frames_before': n, 'frames_appended': args.flush,
                          'dataset_mb': round((n + args.flush) * mb_per_frame, 1),
                          'append_s': round(med['append'], 4),
                          'rewrite_s': round(med['rewrite'], 4),
                          'open_s': round(med['open'], 4),
                          'rewrite_over_append': round(med['rewrite'] / med['append'], 1)})
    finally:
        shutil.rmtree(work, ignore_errors=True)
    header = ['frames before', 'appended', 'MB', 'append s', 'rewrite s', 'open s',
              'rewrite / append']
    print('\n' + '  '.join(f'{h:>16}' for h in header))
    for row in table:
        print('  '.join(f'{v:>16}' for v in row.values()))
    result = {'arguments': vars(args),
              'benchmark': 'dataset append in place vs rewrite', 'repeats': args.repeats,
              'mb_per_frame': round(mb_per_frame, 4), 'rows': table}
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / 'bench_dataset.json').write_text(json.dumps(result, indent=1, default=str))
    print(f'wrote {RESULTS / "bench_dataset.json"}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
