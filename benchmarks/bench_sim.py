"""Simulator speed: simulated seconds per wall second, physics alone vs with the camera.

    python benchmarks/bench_sim.py [--seconds 20] [--seed 1]

Cases (same seed, same driver): physics and non-camera sensors only (the baseline),
plus camera rgb+depth at 30 Hz rendered at 128x96 and at 640x480 in the randomised world
(the default: procedural textures, clutter, markings, camera effects) and in the plain
world of the same seed (flat colours), and the whole `write_sim_bag` path at 128x96
(rendering + building messages + CDR + mcap writing).
Also reports wheel-odometry drift against ground truth at the end of each run. Prints a
table and writes benchmarks/results/bench_sim.json.
"""
from __future__ import annotations

import argparse
import json
import math
import os
from pathlib import Path
import platform
import shutil
import tempfile
import time

os.environ.setdefault('MUJOCO_GL', 'egl')

from ssl_robot.sim import generate_world, SimOptions, SimSession, write_sim_bag  # noqa: E402

RESULTS = Path(__file__).resolve().parent / 'results' / 'bench_sim.json'


def run_session(seed: int, seconds: float, options: SimOptions,
                style: str = 'random') -> dict[str, float]:
    """Advance a session for `seconds` of simulated time; speed, messages and drift."""
    session = SimSession(generate_world(seed, style=style), options)
    try:
        start = time.perf_counter()
        messages = 0
        path, prev = 0.0, None
        for k in range(int(seconds * 10)):
            messages += len(session.advance((k + 1) * 100_000_000))
            truth = session.sim.ground_truth()
            if prev is not None:
                path += math.hypot(truth.position[0] - prev[0], truth.position[1] - prev[1])
            prev = truth.position[:2].copy()
        wall = time.perf_counter() - start
        odom = session.sim.odometry()
        drift = math.hypot(odom.x - truth.position[0], odom.y - truth.position[1])
    finally:
        session.close()
    return {'sim_s': seconds, 'wall_s': wall, 'speed': seconds / wall, 'messages': messages,
            'path_m': path, 'odom_drift_m': drift}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--seconds', type=float, default=20.0, help='simulated seconds per case')
    parser.add_argument('--seed', type=int, default=1, help='world seed')
    args = parser.parse_args()
    cases = {
        'physics only (baseline)': (SimOptions(render=False), 'random'),
        'camera 128x96 @30Hz': (SimOptions(width=128, height=96), 'random'),
        'camera 640x480 @30Hz': (SimOptions(width=640, height=480), 'random'),
        'plain world, camera 128x96 @30Hz': (SimOptions(width=128, height=96), 'plain'),
        'plain world, camera 640x480 @30Hz': (SimOptions(width=640, height=480), 'plain'),
    }
    results = {name: run_session(args.seed, args.seconds, opts, style)
               for name, (opts, style) in cases.items()}
    tmp = Path(tempfile.mkdtemp(prefix='bench_sim_'))
    try:
        summary = write_sim_bag(args.seed, args.seconds, tmp / 'bag', progress_every_s=1e9)
        size = sum(f.stat().st_size for f in (tmp / 'bag').rglob('*') if f.is_file())
        results['write_sim_bag 128x96 @30Hz'] = {
            'sim_s': summary.sim_seconds, 'wall_s': summary.wall_seconds,
            'speed': summary.speed, 'messages': sum(summary.message_counts.values()),
            'bag_bytes': size}
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    base = results['physics only (baseline)']['speed']
    print(f'\nsimulator speed, world seed {args.seed}, {args.seconds:.0f} simulated s per case '
          f'({platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, '
          f'MUJOCO_GL={os.environ["MUJOCO_GL"]})')
    print(f'{"case":34s} {"sim s / wall s":>15s} {"vs baseline":>12s} {"messages":>9s}')
    for name, r in results.items():
        r['ratio_to_baseline'] = r['speed'] / base
        print(f'{name:34s} {r["speed"]:15.1f} {r["ratio_to_baseline"]:11.2f}x '
              f'{r["messages"]:9d}')
    drift = results['physics only (baseline)']
    print(f'\nwheel odometry after {args.seconds:.0f} s: {drift["odom_drift_m"]:.3f} m from '
          f'ground truth over a {drift["path_m"]:.2f} m path '
          f'({100 * drift["odom_drift_m"] / max(drift["path_m"], 1e-9):.1f} %)')
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps({'seed': args.seed, 'seconds': args.seconds,
                                   'style': generate_world(args.seed).style,
                                   'cpus': os.cpu_count(), 'results': results}, indent=2))
    print(f'wrote {RESULTS}')
    return 0


if __name__ == '__main__':
    raise SystemExit(main())
