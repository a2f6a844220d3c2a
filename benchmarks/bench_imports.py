"""Import time of what a launch file, the inference node and `ssl-robot --help` load.

Each row runs a fresh interpreter (median of `--repeat` runs) and reports seconds above
the baseline in the same run, a bare `python -c pass`; whether torch/onnx got loaded is
reported too. `--source DIR` measures another checkout of the package (e.g. the commit
before the re-layout, `git archive <commit> | tar -x -C DIR`) for a before/after table.

    python benchmarks/bench_imports.py [--source DIR] [--label NAME]
"""
from __future__ import annotations

import argparse
import json
import os
from pathlib import Path
import statistics
import subprocess
import sys
import time

HERE = Path(__file__).resolve().parent
RESULTS = HERE / 'results'

#: What each row imports, in the current layout and in the layout before the re-layout.
ROWS = {
    'launch file path (graph)': ('import ssl_robot.bringup.graph', 'import ssl_robot.graph'),
    'inference core': ('import ssl_robot.inference', 'import ssl_robot.inference'),
    'ssl-robot --help': ('from ssl_robot.cli import build_parser; build_parser()',
                         'from ssl_robot.cli import build_parser; build_parser()'),
}


def _time(code: str, source: Path | None, repeat: int) -> tuple[float, bool]:
    env = dict(os.environ)
    if source is not None:
        env['PYTHONPATH'] = str(source)
    probe = code + '\nimport sys\nprint(int("torch" in sys.modules or "onnx" in sys.modules))'
    runs, heavy = [], False
    for _ in range(repeat):
        start = time.perf_counter()
        # -c puts the working directory first on sys.path: run in the checkout measured.
        out = subprocess.run([sys.executable, '-c', probe], env=env, capture_output=True,
                             text=True, check=True, cwd=source or HERE.parent)
        runs.append(time.perf_counter() - start)
        heavy = out.stdout.strip().endswith('1')
    return statistics.median(runs), heavy


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--source', type=Path, help='another checkout to measure')
    parser.add_argument('--old-layout', action='store_true',
                        help='the checkout has the layout before the re-layout')
    parser.add_argument('--label', default='current')
    parser.add_argument('--repeat', type=int, default=5)
    args = parser.parse_args()
    base, _ = _time('pass', args.source, args.repeat)
    rows = []
    print(f'{"what":<28} {"seconds":>8} {"torch/onnx":>10}   (baseline python -c pass '
          f'{base:.3f} s, {args.label})')
    for name, (new, old) in ROWS.items():
        seconds, heavy = _time(old if args.old_layout else new, args.source, args.repeat)
        rows.append({'what': name, 'seconds_above_baseline': round(seconds - base, 4),
                     'loads_torch_or_onnx': heavy})
        print(f'{name:<28} {seconds - base:>8.3f} {"yes" if heavy else "no":>10}')
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / f'bench_imports_{args.label}.json'
    out.write_text(json.dumps({'arguments': vars(args) | {'source': str(args.source or '')},
                               'baseline_s': round(base, 4), 'rows': rows}, indent=2) + '\n')
    print(f'wrote {out}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
