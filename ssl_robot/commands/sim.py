"""`ssl-robot sim`: simulate a seeded world straight into a bag (no DDS, faster than real time)."""
from __future__ import annotations

import argparse
from pathlib import Path


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Register `ssl-robot sim`."""
    parser = subparsers.add_parser(
        'sim', help='simulate the robot in a seeded world and write a bag',
        description='Simulate the robot in the world generated from --seed for --duration '
                    'simulated seconds and write every sensor stream, /clock, '
                    '/ground_truth/odom and /sim/world to a rosbag2 bag.')
    parser.add_argument('--seed', type=int, default=0, help='world seed')
    parser.add_argument('--duration', type=float, default=60.0, help='simulated seconds')
    parser.add_argument('--out', type=Path, required=True, help='output bag (must not exist)')
    parser.add_argument('--width', type=int, default=128, help='camera width (px, <= 640)')
    parser.add_argument('--height', type=int, default=96, help='camera height (px, <= 480)')
    parser.add_argument('--camera-rate', type=float, default=30.0, help='camera rate (Hz)')
    parser.add_argument('--range-rate', type=float, default=30.0, help='proximity rate (Hz)')
    parser.add_argument('--odom-rate', type=float, default=50.0, help='odometry rate (Hz)')
    parser.add_argument('--imu-rate', type=float, default=100.0, help='IMU rate (Hz)')
    parser.add_argument('--storage', choices=('mcap', 'sqlite3'), default='mcap',
                        help='bag storage format')
    parser.add_argument('--obstacles', type=int, default=10, help='obstacles in the world')
    parser.add_argument('--patches', type=int, default=6, help='terrain patches in the world')
    parser.add_argument('--style', default='random',
                        choices=('random', 'plain', 'indoor', 'workshop', 'outdoor'),
                        help="appearance family of the world: 'random' (one family per "
                             "seed), 'plain' (the original flat-coloured worlds) or a family")
    parser.add_argument('--extra-cameras', type=int, default=0,
                        help='extra cameras at other poses on the robot (0-2; 1 adds '
                             '/camera2/image_raw and /camera2/camera_info)')
    parser.add_argument('--scan', action='store_true',
                        help='also write /scan, a planar sensor_msgs/LaserScan (121 beams, '
                             '240 degrees, 10 Hz)')
    parser.add_argument('--contacts', action='store_true',
                        help='also write /bumper, the obstacle contact force on the robot '
                             '(geometry_msgs/WrenchStamped; on with --crash-rate)')
    parser.add_argument('--crash-rate', type=float, default=0.0,
                        help='chance (0-1) that the driver does not stop for an obstacle '
                             'and drives into it (crash data for collision labels; default 0)')
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Write the bag; prints a one-line summary."""
    from ssl_robot.sim import write_sim_bag
    summary = write_sim_bag(
        args.seed, args.duration, args.out, width=args.width, height=args.height,
        camera_rate_hz=args.camera_rate, range_rate_hz=args.range_rate,
        odom_rate_hz=args.odom_rate, imu_rate_hz=args.imu_rate, storage=args.storage,
        world_params={'n_obstacles': args.obstacles, 'n_patches': args.patches,
                      'style': args.style},
        extra_cameras=args.extra_cameras, scan=args.scan,
        contacts=args.contacts or args.crash_rate > 0, crash_rate=args.crash_rate)
    print(f'{summary.path}: {sum(summary.message_counts.values())} messages, '
          f'{summary.sim_seconds:.1f} s simulated in {summary.wall_seconds:.1f} s '
          f'({summary.speed:.1f}x real time)')
    return 0
