"""`ssl-robot bag info BAG` and `ssl-robot bag reindex BAG` (like `ros2 bag info/reindex`)."""
from __future__ import annotations

import argparse
import json
from pathlib import Path
import sys

from ssl_robot.bags.reader import BagReader


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Register `bag info` and `bag reindex`."""
    parser = subparsers.add_parser('bag', help='inspect or repair bags')
    sub = parser.add_subparsers(dest='bag_command', required=True, metavar='ACTION')
    info = sub.add_parser('info', help='topics, types, message counts and duration')
    info.add_argument('bag', type=Path, help='rosbag2 directory, .mcap, .db3 or ROS 1 .bag')
    info.add_argument('--json', action='store_true', help='print JSON instead of a table')
    info.set_defaults(func=bag_info)
    reindex = sub.add_parser(
        'reindex', help='finish a bag a killed recorder left: salvage the cut split, '
                        'rebuild metadata.yaml')
    reindex.add_argument('bag', type=Path, help='rosbag2 directory')
    reindex.set_defaults(func=bag_reindex)


def bag_info(args: argparse.Namespace) -> int:
    """Print what a bag holds."""
    with BagReader(args.bag) as bag:
        counts = bag.message_counts
        summary = {
            'bag': str(args.bag),
            'format': 'rosbag2' if bag.is_ros2 else 'ros1',
            'duration_s': round(bag.duration_s, 6) if sum(counts.values()) else 0.0,
            'start_ns': bag.start_time_ns if sum(counts.values()) else None,
            'message_count': sum(counts.values()),
            'topics': [{'topic': t, 'type': m, 'count': counts.get(t, 0)}
                       for t, m in sorted(bag.topics.items())],
        }
    if args.json:
        print(json.dumps(summary, indent=2))
        return 0
    print(f'bag:       {summary["bag"]} ({summary["format"]})')
    print(f'duration:  {summary["duration_s"]:.3f} s')
    print(f'messages:  {summary["message_count"]}')
    width = max((len(t['topic']) for t in summary['topics']), default=5)
    for topic in summary['topics']:
        print(f'  {topic["topic"]:<{width}}  {topic["count"]:>8}  {topic["type"]}')
    return 0


def bag_reindex(args: argparse.Namespace) -> int:
    """Salvage and re-index a bag directory in place."""
    from ssl_robot.bags.recovery import reindex
    report = reindex(args.bag)
    for name, count in report.salvaged.items():
        print(f'salvaged {count} messages from the cut split {name}')
    print(f'{report.bag}: {len(report.files)} files, {report.message_count} messages; '
          'metadata.yaml rebuilt')
    for name, reason in report.failed.items():
        print(f'ssl-robot bag reindex: error: could not salvage {name} (kept, not deleted): '
              f'{reason}', file=sys.stderr)
    return 1 if report.failed else 0
