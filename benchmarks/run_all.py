"""Run every benchmark in this folder, one after the other (what `make bench` runs).

Each benchmark prints its own table and writes benchmarks/results/<name>.json; this
script runs every one of them with the arguments behind the README's figures and reports
which failed.
"""
from __future__ import annotations

import argparse
from pathlib import Path
import subprocess
import sys
import time

HERE = Path(__file__).resolve().parent

#: Every script of this folder, in the order of the data flow, with the arguments that
#: made the figures the README quotes (so `make bench` re-makes exactly those). The
#: evaluations (eval_*) take from minutes to an hour on 2 cores; `--quick` skips them.
BENCHMARKS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ('bench_imports.py', ('--label', 'after_relayout')),
    ('bench_sim.py', ('--seconds', '10')),  # bench_sim_stages.json: --stages-only --seconds 3
    ('bench_recorder.py', ('--duration', '60', '--reliable', '--publisher-depth', '60')),
    ('bench_labeller.py', ()),
    ('bench_terrain_descriptor.py', ('--hours', '0.02', '--repeats', '1')),
    ('bench_label_jobs.py', ()),
    ('bench_dataset.py', ()),
    ('bench_trainer.py', ('--steps', '30', '--repeats', '3', '--data')),
    # bench_inference_large_frames.json: --seconds 8 --fastdds-profile
    # config/fastdds_large_frames.xml --out benchmarks/results/bench_inference_large_frames.json
    ('bench_inference.py', ('--seconds', '10')),
    ('bench_quantize.py', ()),
    ('bench_collision.py', ('--duration', '150', '--epochs', '10')),
    ('bench_pretext.py', ('--images', '2048')),
    ('bench_text.py', ('--steps', '15')),
    ('eval_labeller_quality.py', ()),
    # truth_eval_nava.json: the same with --protocol nava --runs pseudo truth;
    # truth_eval_experiments.json: the same with --stage experiment --seeds 0 1 2
    # --cached-only --variants completion completion_photometric photometric pos_weight
    # completion_pos_weight completion_epochs_20 completion_tcn_init (after the runs)
    ('eval_truth.py', ('--duration', '120', '--test-duration', '60', '--epochs', '10')),
    ('eval_terrain_sim.py', ('--train', '4', '--test', '2', '--duration', '60',
                             '--image-epochs', '10')),
    ('eval_tcn_multiview.py', ()),
    ('eval_pretext_seeds.py', ()),
    ('eval_pretext_ablation.py', ()),
    ('eval_text_plateau.py', ()),
)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('names', nargs='*', help='run only these (e.g. bench_sim)')
    parser.add_argument('--quick', action='store_true',
                        help='skip the evaluations (eval_*), which take the longest')
    args = parser.parse_args()
    failed = []
    for script, extra in BENCHMARKS:
        if args.names and Path(script).stem not in args.names:
            continue
        if args.quick and script.startswith('eval_'):
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
