"""Benchmark: `ssl-robot label` of 8 simulator bags at --jobs 1 vs --jobs 2, in one run.

The bags (seeds 0..7, `--seconds` simulated seconds each, 128x96 camera) are built once
with `write_sim_bag` and cached under benchmarks/.cache (git-ignored). Each setting runs
the real command in a fresh process (`python -m ssl_robot.cli label ... --no-figures`),
so worker start-up is in the figure, as a user would see it. The two datasets are
checked equal (every array, and the bag list) before the times are reported.

Usage: python benchmarks/bench_label_jobs.py [--bags 8] [--seconds 30] [--jobs 1 2]
Writes benchmarks/results/bench_label_jobs.json (bench_label_jobs_<S>s.json for other
bag lengths).
"""
from __future__ import annotations

import argparse
import json
import os
from pathlib import Path
import shutil
import subprocess
import sys
import tempfile
import time

import numpy as np

ROOT = Path(__file__).resolve().parent
CACHE = ROOT / '.cache' / 'label_jobs'
RESULTS = ROOT / 'results'


def sim_bags(n: int, seconds: float) -> list[Path]:
    """The cached simulator bags (built on first use)."""
    from ssl_robot.sim.bag import write_sim_bag
    bags = []
    for seed in range(n):
        path = CACHE / f'seed{seed}_{seconds:g}s'
        if not path.exists():
            tmp = path.with_name(path.name + '.partial')
            shutil.rmtree(tmp, ignore_errors=True)
            write_sim_bag(seed, seconds, tmp, camera_rate_hz=15.0)
            tmp.rename(path)
        bags.append(path)
    return bags


def label(bags: list[Path], out: Path, jobs: int) -> float:
    """Wall seconds of one `ssl-robot label --jobs N` run in a fresh process."""
    cmd = [sys.executable, '-m', 'ssl_robot.cli', 'label', *map(str, bags), '--out', str(out),
           '--no-figures', '--jobs', str(jobs)]
    t0 = time.monotonic()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.monotonic() - t0


def same_dataset(a: Path, b: Path) -> bool:
    from ssl_robot.dataset import LabelledDataset
    da, db = LabelledDataset.open(a), LabelledDataset.open(b)
    arrays = all(np.array_equal(x, db._arrays[k], equal_nan=x.dtype.kind == 'f')
                 for k, x in da._arrays.items())
    return arrays and da.meta['bags'] == db.meta['bags']


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--bags', type=int, default=8)
    ap.add_argument('--seconds', type=float, default=30.0, help='simulated seconds per bag')
    ap.add_argument('--jobs', type=int, nargs='+', default=[1, 2])
    args = ap.parse_args()
    t0 = time.monotonic()
    bags = sim_bags(args.bags, args.seconds)
    build_s = time.monotonic() - t0
    rows = {}
    with tempfile.TemporaryDirectory() as tmp:
        outs = {}
        for jobs in args.jobs:
            outs[jobs] = Path(tmp) / f'jobs{jobs}'
            rows[jobs] = {'wall_s': label(bags, outs[jobs], jobs)}
        from ssl_robot.dataset import LabelledDataset
        frames = len(LabelledDataset.open(outs[args.jobs[0]]))
        equal = all(same_dataset(outs[args.jobs[0]], outs[j]) for j in args.jobs[1:])
    base = rows[args.jobs[0]]['wall_s']
    for jobs, row in rows.items():
        row['speedup'] = base / row['wall_s']
        row['bags_per_s'] = args.bags / row['wall_s']
    print(f'{args.bags} simulator bags x {args.seconds:g} s (128x96 camera at 15 Hz), '
          f'{frames} frames labelled; {os.cpu_count()} CPUs; datasets equal: {equal}')
    print(f'{"jobs":>5} {"wall (s)":>10} {"bags/s":>8} {"speed-up":>9}')
    for jobs, row in rows.items():
        print(f'{jobs:>5} {row["wall_s"]:>10.2f} {row["bags_per_s"]:>8.2f} '
              f'{row["speedup"]:>8.2f}x')
    RESULTS.mkdir(exist_ok=True)
    result = {'arguments': vars(args),
              'bags': args.bags, 'seconds_per_bag': args.seconds, 'frames': frames,
              'cpus': os.cpu_count(), 'datasets_equal': equal, 'bag_build_s': build_s,
              'results': {str(k): v for k, v in rows.items()}}
    name = 'bench_label_jobs' + ('' if args.seconds == 30.0 else f'_{args.seconds:g}s')
    (RESULTS / f'{name}.json').write_text(json.dumps(result, indent=1, default=str))
    print(f'wrote {RESULTS / name}.json')
    return 0 if equal else 1


if __name__ == '__main__':
    sys.exit(main())
