"""Run every benchmark in this folder, one after the other (what `make bench` runs).

Each benchmark prints its own table and writes benchmarks/results/<name>.json; this
script only runs them with their default (or quick) settings and reports which failed.
"""
from __future__ import annotations

import argparse
from pathlib import Path
import subprocess
import sys
import time

HERE = Path(__file__).resolve().parent

#: Benchmarks in the order of the data flow, with arguments for a quick pass.
BENCHMARKS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ('bench_sim.py', ()),
    ('bench_recorder.py', ('--duration', '20')),
    ('bench_labeller.py', ()),
    ('bench_dataset.py', ()),
    ('bench_trainer.py', ()),
    ('bench_inference.py', ()),
    ('bench_pretext.py', ()),
    ('bench_text.py', ()),
)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('names', nargs='*', help='run only these (e.g. bench_sim)')
    args = parser.parse_args()
    failed = []
    for script, extra in BENCHMARKS:
        if args.names and Path(script).stem not in args.names:
            continue
        print(f'\n### {script} {" ".join(extra)}', flush=True)
        start = time.monotonic()
        code = subprocess.call([sys.executable, str(HERE / script), *extra])
        print(f'### {script}: exit {code} in {time.monotonic() - start:.0f}s', flush=True)
        if code:
            failed.append(script)
    if failed:
        print(f'failed: {", ".join(failed)}', file=sys.stderr)
    return 1 if failed else 0


if __name__ == '__main__':
    sys.exit(main())
