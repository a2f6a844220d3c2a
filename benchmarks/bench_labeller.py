"""Benchmark: label a 1-hour simulated bag vs merely reading it; vectorised vs naive search.

The 1-hour bag is built once (cached under benchmarks/.cache, git-ignored): a simulated
bag of `--tile-s` seconds from `write_sim_bag` is repeated end to end with its header
stamps shifted (the robot's odometry restarts at every repetition, which the labeller
sees as resets). /depth/image is left out (the labeller does not read it) to keep the
cache small. In the same run it measures

* read: deserialising every message of the topics the labeller uses (BagReader.messages);
* raw read: iterating the same messages' bytes without deserialising;
* label: `label_bag` (read + subsample + decode kept frames + labels), the same work as
  `ssl-robot label` without writing;
* vectorised vs naive all-pairs proximity search on a `--slice-s` slice.

Usage: python benchmarks/bench_labeller.py [--hours 1] [--tile-s 120]
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path
import struct
import sys
import time

import numpy as np

ROOT = Path(__file__).resolve().parent
CACHE = ROOT / '.cache'
RESULTS = ROOT / 'results'
NO_HEADER = ('/cmd_vel', '/sim/world')


def build_tiled_bag(out: Path, tile: Path, hours: float) -> None:
    """Repeat the bag `tile` end to end for `hours`, shifting every header stamp."""
    from ssl_robot.bags.reader import BagReader
    from ssl_robot.bags.writer import BagWriter
    with BagReader(tile) as src:
        topics = {t: m for t, m in src.topics.items() if t != '/depth/image'}
        span_ns = int(src.duration_s * 1e9) + 20_000_000
        items = list(src.raw_messages(list(topics)))
    copies = int(np.ceil(hours * 3600e9 / span_ns))
    tmp = out.with_name(out.name + '.partial')
    with BagWriter(tmp) as writer:
        for topic, msgtype in topics.items():
            writer.add_topic(topic, msgtype)
        for k in range(copies):
            shift = k * span_ns
            for conn, log_time, raw in items:
                if conn.topic == '/sim/world' and k:
                    continue
                data = bytes(raw)
                if conn.topic not in NO_HEADER:   # a header (or Clock) stamp at offset 4
                    sec, nsec = struct.unpack_from('<iI', data, 4)
                    t = sec * 1_000_000_000 + nsec + shift
                    data = data[:4] + struct.pack('<iI', *divmod(t, 1_000_000_000)) + data[12:]
                writer.write_raw(conn.topic, conn.msgtype, data, log_time + shift)
    tmp.rename(out)


def timed(func, *args, **kwargs):
    t0 = time.perf_counter()
    result = func(*args, **kwargs)
    return result, time.perf_counter() - t0


def read_all(bag: Path, topics: list[str], *, deserialise: bool) -> int:
    from ssl_robot.bags.reader import BagReader
    n = 0
    with BagReader(bag) as reader:
        if deserialise:
            for _ in reader.messages(topics):
                n += 1
        else:
            for _ in reader.raw_messages(topics):
                n += 1
    return n


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--hours', type=float, default=1.0)
    ap.add_argument('--tile-s', type=float, default=120.0)
    ap.add_argument('--width', type=int, default=64)
    ap.add_argument('--height', type=int, default=48)
    ap.add_argument('--slice-s', type=float, default=20.0)
    ap.add_argument('--seed', type=int, default=11)
    ap.add_argument('--repeats', type=int, default=2)
    args = ap.parse_args(argv)

    from ssl_robot.config import load_node_parameters
    from ssl_robot.labelling import (
        build_trajectory,
        label_proximity_at_distances,
        label_proximity_naive,
        labelling_params,
    )
    from ssl_robot.labelling.bag import label_bag
    from ssl_robot.labelling.params import absolute
    params = labelling_params(load_node_parameters('labeller'))

    CACHE.mkdir(exist_ok=True)
    tile = CACHE / f'sim_seed{args.seed}_{args.tile_s:.0f}s_{args.width}x{args.height}'
    if not tile.exists():
        from ssl_robot.sim import write_sim_bag
        print(f'simulating {args.tile_s:.0f} s into {tile} (once) ...', flush=True)
        write_sim_bag(args.seed, args.tile_s, tile.with_name(tile.name + '.partial'),
                      width=args.width, height=args.height)
        tile.with_name(tile.name + '.partial').rename(tile)
    bag = CACHE / f'{tile.name}_x{args.hours:g}h'
    if not bag.exists():
        print(f'tiling to {args.hours:g} h into {bag} (once) ...', flush=True)
        build_tiled_bag(bag, tile, args.hours)

    topics = [absolute(t) for t in (params.image_topic, params.camera_info_topic,
                                    params.odom_topic, params.imu_topic, params.cmd_vel_topic,
                                    *params.range_topics)]
    # The machine is shared: alternate the measurements and keep each one's best time.
    t_raw = t_read = t_label = float('inf')
    for _ in range(args.repeats):
        n_raw, t = timed(read_all, bag, topics, deserialise=False)
        t_raw = min(t_raw, t)
        n_read, t = timed(read_all, bag, topics, deserialise=True)
        t_read = min(t_read, t)
        labelled, t = timed(label_bag, bag, params, read_ground_truth=False)
        t_label = min(t_label, t)
    frames = len(labelled.rows['stamps_ns'])
    mask = labelled.rows['proximity_mask']

    # Vectorised vs naive on a slice of the same bag's streams.
    s = labelled.bag.streams
    t0 = s.odom_stamps.min()
    end = t0 + int(args.slice_s * 1e9)
    sel_o = s.odom_stamps < end
    traj = build_trajectory(s.odom_stamps[sel_o], s.odom_poses[sel_o],
                            **params.trajectory_kwargs())
    fr = s.frame_stamps[s.frame_stamps < end]
    rs = [st[st < end] for st in s.range_stamps]
    rv = [v[st < end] for st, v in zip(s.range_stamps, s.ranges)]
    fast, t_fast = timed(label_proximity_at_distances, fr, traj, rs, rv, params.proximity)
    slow, t_slow = timed(label_proximity_naive, fr, traj, rs, rv, params.proximity)
    same = bool(np.array_equal(fast.t_future_ns, slow.t_future_ns)
                and np.array_equal(fast.mask, slow.mask))
    full_core = label_proximity_at_distances  # core alone on the whole hour
    full_traj = build_trajectory(s.odom_stamps, s.odom_poses, **params.trajectory_kwargs())
    _, t_core = timed(full_core, s.frame_stamps, full_traj, s.range_stamps, s.ranges,
                      params.proximity)

    result = {
        'arguments': vars(args), 'bag': str(bag), 'bag_hours': labelled.bag.duration_s / 3600,
        'messages_read': n_read, 'frames_labelled': frames,
        'proximity_yield': float(mask.mean()) if frames else 0.0,
        'odometry_segments': labelled.result.trajectory.n_segments,
        'repeats': args.repeats, 'raw_read_s': t_raw, 'read_s': t_read, 'label_s': t_label,
        'label_over_read': t_label / t_read, 'label_over_raw_read': t_label / t_raw,
        'proximity_core_whole_bag_s': t_core,
        'slice_s': args.slice_s, 'slice_frames': int(len(fr)),
        'slice_odometry': int(len(traj.stamps_ns)),
        'vectorised_s': t_fast, 'naive_s': t_slow, 'naive_over_vectorised': t_slow / t_fast,
        'vectorised_equals_naive': same, 'goal_label_over_read': 1.2,
    }
    rows = [
        ('bag', f'{result["bag_hours"]:.2f} h, {n_read} messages, {frames} frames labelled'),
        ('raw read (bytes only)', f'{t_raw:.1f} s'),
        ('read (deserialise)', f'{t_read:.1f} s'),
        ('label (ssl-robot label core)', f'{t_label:.1f} s'),
        ('label / read', f'{result["label_over_read"]:.2f}x (goal <= 1.2x)'),
        ('label / raw read', f'{result["label_over_raw_read"]:.2f}x'),
        ('proximity search, whole hour', f'{t_core:.2f} s'),
        (f'naive all-pairs, {args.slice_s:.0f} s slice', f'{t_slow:.2f} s'),
        (f'vectorised, {args.slice_s:.0f} s slice', f'{t_fast * 1e3:.1f} ms'),
        ('naive / vectorised', f'{result["naive_over_vectorised"]:.0f}x, identical: {same}'),
    ]
    width = max(len(r[0]) for r in rows)
    for name, value in rows:
        print(f'{name:<{width}}  {value}')
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / 'bench_labeller.json').write_text(json.dumps(result, indent=1, default=str))
    print(f'wrote {RESULTS / "bench_labeller.json"}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
