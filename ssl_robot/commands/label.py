"""`ssl-robot label BAG... --out DATASET`: self-label recorded bags into a dataset.

Each BAG is one recording (a rosbag2 directory, an .mcap/.db3 file or a ROS 1 .bag).
With --frames-only a source may also be a camera-only bag or a video file (OpenCV):
the dataset then holds frames, stamps and provenance with every label masked, for the
time-contrastive task and the vision pretexts. --jobs N labels N recordings at a time
in worker processes (or Ray tasks with --engine ray) and merges them, in the order
given, into the same dataset as --jobs 1. The command prints a summary (frames, known
labels per distance and sensor, yield, what was dropped) and writes figures and
summary.json into DATASET/report/.
"""
from __future__ import annotations

import argparse
import functools
import json
import logging
from pathlib import Path
import shutil
import sys
import tempfile
import time
from typing import Any, TYPE_CHECKING

from ssl_robot.config import load_node_parameters
from ssl_robot.errors import ConfigError

if TYPE_CHECKING:
    from collections.abc import Iterator

_LOG = logging.getLogger(__name__)


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Register `ssl-robot label`."""
    p = subparsers.add_parser(
        'label', help='self-label bags into a dataset',
        description='Label camera frames of recorded bags with what the robot later felt '
                    '(proximity at distances ahead, terrain roughness) and write a dataset.')
    p.add_argument('bags', nargs='+', type=Path, metavar='BAG',
                   help='recordings to label (with --frames-only also video files)')
    p.add_argument('--out', type=Path, required=True, metavar='DATASET',
                   help='dataset directory to write (report in DATASET/report)')
    p.add_argument('--config', type=Path, default=None,
                   help='parameter file (default: the package config/robot.yaml)')
    p.add_argument('--append', action='store_true', help='add to an existing dataset')
    p.add_argument('--overwrite', action='store_true', help='replace an existing dataset')
    p.add_argument('--terrain-only', action='store_true',
                   help='bags without camera: compute poses and the terrain signal, report '
                        'them, write no dataset')
    p.add_argument('--remap', action='append', default=[], metavar='KEY:=TOPIC',
                   help='use TOPIC for a config topic key, e.g. odom:=/husky/odom '
                        '(keys: image, camera_info, odom, imu, cmd_vel, scan, range; range:=none '
                        'reads no Range topic; views takes '
                        "the extra cameras' image topics, e.g. views:=/camera2/image_raw)")
    p.add_argument('--frames-only', action='store_true',
                   help='read only the camera (camera-only bags, video files): frames, stamps '
                        'and provenance, every label masked (for tcn and the pretexts)')
    p.add_argument('--jobs', type=int, default=1, metavar='N',
                   help='label N recordings at a time, one per worker (default 1)')
    p.add_argument('--engine', choices=('process', 'ray'), default='process',
                   help='where the jobs run: local processes, or Ray tasks (needs '
                        'ssl_robot[ray]; bags and DATASET on a filesystem the workers see)')
    p.add_argument('--ray-address', default=None, metavar='ADDRESS',
                   help='Ray cluster to join (default: RAY_ADDRESS, else a local Ray)')
    p.add_argument('--no-figures', action='store_true', help='skip the figures')
    p.set_defaults(func=run)


_REMAP_KEYS = {'image': 'image_topic', 'camera_info': 'camera_info_topic',
               'odom': 'odom_topic', 'imu': 'imu_topic', 'cmd_vel': 'cmd_vel_topic',
               'scan': 'scan_topic'}


def apply_remaps(config: dict[str, Any], remaps: list[str]) -> dict[str, Any]:
    """Config with topic keys replaced by `KEY:=TOPIC` remaps.

    'range' and 'views' take a list a,b,c ('range:=none' reads no Range topic, for a
    lidar-only robot); 'views' sets the extra cameras of a multi-view dataset.

    Raises:
        ConfigError: For a malformed remap or an unknown key.
    """
    config = dict(config)
    for remap in remaps:
        key, sep, topic = remap.partition(':=')
        if not sep or not topic:
            raise ConfigError(f'remap {remap!r}: expected KEY:=TOPIC')
        if key == 'range':
            config['range_topics'] = [] if topic == 'none' else topic.split(',')
        elif key == 'views':
            config['extra_image_topics'] = [t for t in topic.split(',') if t]
        elif key in _REMAP_KEYS:
            config[_REMAP_KEYS[key]] = topic
        else:
            raise ConfigError(f'remap {remap!r}: unknown key {key!r} '
                              f'(use {", ".join([*_REMAP_KEYS, "range", "views"])})')
    return config


class Progress:
    """One progress line (bag seconds read, rate, ETA) on stderr, at most twice a second."""

    def __init__(self, name: str, *, tty: bool | None = None) -> None:
        self.name = name
        self.start = time.monotonic()
        self.last = self.start
        self.printed = False
        self.tty = sys.stderr.isatty() if tty is None else tty

    def __call__(self, done_s: float, total_s: float) -> None:
        now = time.monotonic()
        if now - self.last < (0.5 if self.tty else 10.0):
            return
        self.last = now
        self.printed = True
        rate = done_s / max(now - self.start, 1e-9)
        eta = (total_s - done_s) / max(rate, 1e-9)
        line = (f'label {self.name}: {done_s:.0f}/{total_s:.0f} s of bag '
                f'({done_s / max(total_s, 1e-9):.0%}), {rate:.0f}x real time, ETA {eta:.0f} s')
        print(('\r' + line) if self.tty else line, end='' if self.tty else '\n',
              file=sys.stderr, flush=True)

    def done(self) -> None:
        if self.tty and self.printed:
            print(file=sys.stderr)


def run(args: argparse.Namespace) -> int:
    """Label the bags, write the dataset and its report; returns the exit status."""
    from ssl_robot.dataset import DatasetError, DatasetWriter  # noqa: PLC0415 - fast --help
    from ssl_robot.labelling import labelling_params  # noqa: PLC0415
    from ssl_robot.labelling.jobs import dataset_layout  # noqa: PLC0415
    from ssl_robot.labelling.report import format_summary, summarise, write_figures  # noqa: PLC0415
    config = apply_remaps(load_node_parameters('labeller', args.config), args.remap)
    params = labelling_params(config)
    if args.jobs < 1:
        raise ConfigError(f'--jobs {args.jobs}: need at least 1')
    if args.out.exists() and not (args.append or args.overwrite or args.terrain_only):
        # Said before hours of labelling, not after.
        raise DatasetError(f'{args.out}: already exists (use --append or --overwrite)')
    labelled = []
    writer = None
    spool = None
    if args.jobs > 1 or args.engine == 'ray':
        args.out.parent.mkdir(parents=True, exist_ok=True)
        spool = Path(tempfile.mkdtemp(prefix=f'.{args.out.name}.spool-', dir=args.out.parent))
    try:
        for lb, rows in (_labelled_in_jobs(args, params, spool) if spool is not None
                         else _labelled_in_turn(args, params)):
            refuse_collapsed_stamps(lb)
            if len(rows['stamps_ns']):
                if writer is None:
                    writer = DatasetWriter(args.out, image_hw=rows['frames'].shape[1:3],
                                           append=args.append, overwrite=args.overwrite,
                                           **dataset_layout(params,
                                                            None if args.append else lb))
                writer.add_bag(', '.join(lb.paths), rows, params=params.as_dict(),
                               counts=lb.provenance['counts'], notes=lb.bag.notes)
                if any(len(other.rows['stamps_ns']) for other in labelled):
                    # Written: only the first bag's frames stay in memory (for figures).
                    lb.rows['frames'] = lb.rows['frames'][:0]
                    lb.rows['views'] = lb.rows['views'][:0]
            labelled.append(lb)
        if writer is not None:
            writer.commit()
    finally:
        if writer is not None:
            writer.abort()  # no-op after a commit; removes the temporary files otherwise
        if spool is not None:
            shutil.rmtree(spool, ignore_errors=True)
    if writer is not None and not args.append:
        _store_terrain_types(labelled, args.out)
    summary = summarise(labelled)
    summary['terrain_signal'] = [_signal_stats(lb) for lb in labelled]
    print(format_summary(summary))
    for lb, stats in zip(labelled, summary['terrain_signal']):
        print(f'{", ".join(lb.paths)}: terrain signal in {stats["windows"]} windows '
              f'(IMU {stats["imu_rate_hz"]:.0f} Hz, band {stats["band_hz"][0]:.0f}-'
              f'{stats["band_hz"][1]:.0f} Hz), 5/50/95% = '
              f'{", ".join(f"{v:.3f}" for v in stats["percentiles_5_50_95"]) or "-"} m/s², '
              f'odometry {stats["odometry_segments"]} segment(s), '
              f'{stats["path_length_m"]:.1f} m driven')
        d = stats.get('descriptor')
        if d:
            print(f'{", ".join(lb.paths)}: terrain descriptor in {d["windows"]} windows, '
                  f'{len(d["names"])} entries (known in {d["known_share"]:.0%} of them); IMU '
                  f'{d["sample_rate_hz"]:.1f} Hz, {len(d["bands_hz"])} bands per axis (Hz): '
                  + ', '.join(f'{lo:.1f}-{hi:.1f}' for lo, hi in d['bands_hz']))
    if writer is None:
        for lb in labelled:
            for note in lb.bag.notes:
                print(f'{", ".join(lb.paths)}: {note}', file=sys.stderr)
        if not args.terrain_only:
            print('ssl-robot label: error: no frames to label (no camera stream); use '
                  '--terrain-only to report poses and the terrain signal alone', file=sys.stderr)
            return 1
    else:
        print(f'dataset: {args.out} ({writer.n_frames} frames in all)')
    report_dir = args.out / 'report'
    report_dir.mkdir(parents=True, exist_ok=True)
    (report_dir / 'summary.json').write_text(json.dumps(summary, indent=1))
    if not args.no_figures:
        for path in write_figures(labelled, report_dir):
            print(f'figure: {path}')
    return 0


def refuse_collapsed_stamps(lb: Any) -> None:
    """Refuse a source whose camera frames all carry one header stamp (e.g. all zero).

    Such frames collapse to one at the frame rate with exit 0 otherwise.

    Raises:
        LabelError: Naming the source and the counts.
    """
    from ssl_robot.labelling.errors import LabelError  # noqa: PLC0415
    counts = lb.provenance.get('counts', {})
    read = int(counts.get('frames_read', 0))
    kept = len(lb.rows['stamps_ns'])
    if read >= 3 and kept <= 1 and int(counts.get('frames_skipped_rate', 0)) >= read - 1:
        raise LabelError(f'{", ".join(map(str, lb.paths))}: {read} camera frames collapse to '
                         f'{kept}: their header stamps are all the same (a driver that '
                         'leaves header.stamp at 0?); refusing to label them')


def _labelled_in_turn(args: argparse.Namespace, params: Any) -> Iterator[tuple[Any, Any]]:
    """(labelled source, its dataset rows), one source after another in this process."""
    from ssl_robot.labelling.sources import label_source  # noqa: PLC0415
    for bag in args.bags:
        progress = Progress(bag.name)
        t0 = time.monotonic()
        lb = label_source(bag, params, progress=progress, frames_only=args.frames_only)
        progress.done()
        _LOG.info('%s: %d frames labelled in %.1f s', bag, len(lb.rows['stamps_ns']),
                  time.monotonic() - t0)
        yield lb, lb.rows


def _labelled_in_jobs(args: argparse.Namespace, params: Any, spool: Path
                      ) -> Iterator[tuple[Any, Any]]:
    """(labelled source, its dataset rows) in source order, labelled in `args.jobs` jobs.

    One line per source as its job finishes; the first source with frames gets them back
    into memory for the figures (as when labelling in turn).
    """
    import numpy as np  # noqa: PLC0415

    from ssl_robot.labelling.jobs import run_label_jobs  # noqa: PLC0415

    def finished(result: Any, count: int) -> None:
        lb = result.labelled
        print(f'label [{count}/{len(args.bags)}] {", ".join(lb.paths)}: '
              f'{len(lb.rows["stamps_ns"])} frames in {result.seconds:.1f} s', file=sys.stderr,
              flush=True)

    with_frames = False
    for result in run_label_jobs(args.bags, params, jobs=args.jobs, spool_dir=spool,
                                 engine=args.engine, frames_only=args.frames_only,
                                 progress=functools.partial(Progress, tty=False),
                                 on_done=finished, ray_address=args.ray_address):
        rows = result.rows()
        lb = result.labelled
        if rows['frames'].shape[0] and not with_frames:
            with_frames = True
            lb.rows['frames'] = np.array(rows['frames'])
            lb.rows['views'] = np.array(rows['views'])
        yield lb, rows
        result.discard()


def _store_terrain_types(labelled: list[Any], out: Path) -> None:
    """Fit the unsupervised terrain types on the bags' descriptors; store with the dataset."""
    from ssl_robot.labelling import terrain_types  # noqa: PLC0415 - fast --help
    types = terrain_types.fit_dataset_types(
        [getattr(lb.result, 'descriptors', None) for lb in labelled])
    if types is None:
        print(f'{out}: too few terrain descriptors to fit terrain types', file=sys.stderr)
        return
    path = terrain_types.save_dataset_types(types, out)
    print(f'terrain types: {types.n_types} (lowest BIC over 2..10), {path}')


def _signal_stats(lb: Any) -> dict[str, Any]:
    import numpy as np  # noqa: PLC0415
    rough, traj = lb.result.roughness, lb.result.trajectory
    sig = rough.signal[np.isfinite(rough.signal)]
    desc = getattr(lb.result, 'descriptors', None)
    descriptor = None if desc is None else {
        **desc.layout.as_dict(), 'windows': int(len(desc.stamps_ns)),
        'known_share': float(desc.mask.mean()) if desc.mask.size else 0.0,
        'known_per_entry': dict(zip(desc.layout.names, desc.mask.mean(axis=0).tolist()
                                    if len(desc.mask) else [0.0] * len(desc.layout.names)))}
    return {'windows': int(len(rough.signal)), 'imu_rate_hz': rough.sample_rate_hz,
            'descriptor': descriptor,
            'band_hz': list(rough.band_hz),
            'percentiles_5_50_95': np.percentile(sig, [5, 50, 95]).tolist() if sig.size else [],
            'odometry_segments': traj.n_segments,
            'path_length_m': float(sum(traj.path_length[traj.segment(k)][-1]
                                       for k in range(traj.n_segments) if len(
                                           traj.path_length[traj.segment(k)])))}
