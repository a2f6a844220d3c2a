"""Recorder throughput: 30 Hz 640x480 rgb8 + 32FC1 depth + 100 Hz odometry and IMU.

A publisher process publishes the streams for `--duration` seconds over loopback DDS; the
`recorder` node process records them (default sensor-data QoS, as on the robot). Reported:
messages published vs received vs in the bag, drops (queue), DDS losses, bytes/s. The
baseline, in the same run: the rosbags Writer alone writing the same messages (same
sizes and counts) as fast as it can, which bounds what any recorder on this disk does.

    python benchmarks/bench_recorder.py --duration 60
"""
from __future__ import annotations

import argparse
import json
import os
from pathlib import Path
import re
import signal
import subprocess
import sys
import tempfile
import time

REPO = Path(__file__).resolve().parent.parent
STREAMS = (  # topic, type, rate Hz
    ('/image_raw', 'sensor_msgs/msg/Image', 30.0),
    ('/depth/image', 'sensor_msgs/msg/Image', 30.0),
    ('/odom', 'nav_msgs/msg/Odometry', 100.0),
    ('/imu', 'sensor_msgs/msg/Imu', 100.0),
)
W, H = 640, 480


def run_publisher(duration: float, domain: int, reliable: bool, history: int) -> None:
    """Child process: publish the streams for `duration` s; print counts as JSON."""
    os.environ['ROS_DOMAIN_ID'] = str(domain)
    from nav_msgs.msg import Odometry
    import rclpy
    from rclpy.qos import qos_profile_sensor_data, QoSProfile, ReliabilityPolicy
    from sensor_msgs.msg import Image, Imu
    rclpy.init()
    node = rclpy.create_node('bench_publisher')
    image = Image(height=H, width=W, encoding='rgb8', step=W * 3)
    image.data = bytes(range(256)) * (W * H * 3 // 256)
    depth = Image(height=H, width=W, encoding='32FC1', step=W * 4)
    depth.data = bytes(W * H * 4)
    msgs = {'/image_raw': image, '/depth/image': depth, '/odom': Odometry(), '/imu': Imu()}
    classes = {'/image_raw': Image, '/depth/image': Image, '/odom': Odometry, '/imu': Imu}
    qos = (QoSProfile(depth=history, reliability=ReliabilityPolicy.RELIABLE) if reliable
           else qos_profile_sensor_data)
    pubs = {t: node.create_publisher(classes[t], t, qos) for t, _, _ in STREAMS}
    deadline = time.monotonic() + 30
    while any(p.get_subscription_count() < 1 for p in pubs.values()):
        rclpy.spin_once(node, timeout_sec=0.05)
        if time.monotonic() > deadline:
            raise SystemExit('no recorder subscribed')
    counts = {t: 0 for t, _, _ in STREAMS}
    start = time.monotonic()
    next_due = {t: start for t, _, _ in STREAMS}
    periods = {t: 1.0 / hz for t, _, hz in STREAMS}
    while True:
        now = time.monotonic()
        if now - start >= duration:
            break
        for topic, due in next_due.items():
            if now >= due:
                msg = msgs[topic]
                stamp = node.get_clock().now().to_msg()
                msg.header.stamp = stamp
                pubs[topic].publish(msg)
                counts[topic] += 1
                next_due[topic] = due + periods[topic]
        time.sleep(max(0.0, min(next_due.values()) - time.monotonic()))
    time.sleep(0.5)
    print(json.dumps({'counts': counts, 'seconds': time.monotonic() - start}), flush=True)
    node.destroy_node()
    rclpy.try_shutdown()


def rosbags_baseline(counts: dict[str, int], out: Path) -> dict:
    """Write the same number and size of messages with the rosbags Writer alone."""
    from rosbags.rosbag2 import StoragePlugin, Writer

    from ssl_robot.bags.reader import typestore
    sys.path.insert(0, str(REPO / 'test'))
    import numpy as np

    from bag_factory import default_msg
    ts = typestore()
    samples = {
        '/image_raw': default_msg('sensor_msgs/msg/Image', height=H, width=W, encoding='rgb8',
                                  step=W * 3, data=np.zeros(W * H * 3, np.uint8)),
        '/depth/image': default_msg('sensor_msgs/msg/Image', height=H, width=W,
                                    encoding='32FC1', step=W * 4,
                                    data=np.zeros(W * H * 4, np.uint8)),
        '/odom': default_msg('nav_msgs/msg/Odometry'),
        '/imu': default_msg('sensor_msgs/msg/Imu'),
    }
    cdr = {t: bytes(ts.serialize_cdr(samples[t], m)) for t, m, _ in STREAMS}
    order = sorted((i / hz, t) for t, _, hz in STREAMS for i in range(counts[t]))
    total = 0
    start = time.perf_counter()
    with Writer(out, version=9, storage_plugin=StoragePlugin.MCAP) as writer:
        conns = {t: writer.add_connection(t, m, typestore=ts) for t, m, _ in STREAMS}
        for t_s, topic in order:
            writer.write(conns[topic], int(t_s * 1e9), cdr[topic])
            total += len(cdr[topic])
    seconds = time.perf_counter() - start
    return {'messages': len(order), 'bytes': total, 'seconds': seconds,
            'bytes_per_s': total / seconds}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--duration', type=float, default=60.0, help='seconds to publish')
    parser.add_argument('--domain', type=int, default=29)
    parser.add_argument('--storage', default='mcap', choices=['mcap', 'sqlite3'])
    parser.add_argument('--reliable', action='store_true',
                        help='reliable QoS on both sides (qos_overrides on the recorder) '
                             'instead of the default best-effort sensor-data QoS')
    parser.add_argument('--publisher-depth', type=int, default=10,
                        help="history depth of the reliable publishers (a camera driver's "
                             "queue; deeper rides out the recorder's pauses)")
    parser.add_argument('--publisher', action='store_true', help=argparse.SUPPRESS)
    parser.add_argument('--json', type=Path,
                        default=REPO / 'benchmarks' / 'results' / 'bench_recorder.json')
    args = parser.parse_args(argv)
    if args.publisher:
        run_publisher(args.duration, args.domain, args.reliable, args.publisher_depth)
        return 0

    import yaml

    from ssl_robot.bags.reader import BagReader
    env = dict(os.environ, ROS_DOMAIN_ID=str(args.domain), PYTHONUNBUFFERED='1',
               ROS_AUTOMATIC_DISCOVERY_RANGE='LOCALHOST')
    with tempfile.TemporaryDirectory(prefix='bench_recorder_') as tmp:
        tmp = Path(tmp)
        config = yaml.safe_load((REPO / 'config' / 'robot.yaml').read_text())
        config['recorder']['ros__parameters'].update(
            output=str(tmp / 'rec'), storage=args.storage, status_period=1.0,
            topics=[f'{t}={m}' for t, m, _ in STREAMS])
        if args.reliable:
            config['recorder']['ros__parameters'].update(
                {f'qos_overrides.{t}.subscription.reliability': 'reliable'
                 for t, _, _ in STREAMS})
        (tmp / 'robot.yaml').write_text(yaml.safe_dump(config))
        recorder_bin = Path(sys.executable).parent / 'recorder'
        log = open(tmp / 'recorder.log', 'w+')  # noqa: SIM115 - closed below
        recorder = subprocess.Popen(
            [str(recorder_bin), '--ros-args', '--params-file', str(tmp / 'robot.yaml')],
            env=env, stdout=log, stderr=subprocess.STDOUT)
        try:
            publisher = subprocess.run(
                [sys.executable, __file__, '--publisher', '--duration', str(args.duration),
                 '--domain', str(args.domain), '--publisher-depth', str(args.publisher_depth)]
                + (['--reliable'] if args.reliable else []),
                env=env, capture_output=True, text=True,
                timeout=args.duration + 120, check=True)
            published = json.loads(publisher.stdout.strip().splitlines()[-1])
            time.sleep(1.0)
            recorder.send_signal(signal.SIGINT)
            recorder.wait(timeout=120)
        finally:
            if recorder.poll() is None:
                recorder.kill()
                recorder.wait()
            log.close()
        text = (tmp / 'recorder.log').read_text()
        match = re.search(r'bag finalised: (\{.*\})', text)
        final = json.loads(match.group(1)) if match else {}
        with BagReader(tmp / 'rec') as bag:
            in_bag = bag.message_counts
        bag_bytes = sum(p.stat().st_size for p in (tmp / 'rec').iterdir() if p.is_file())
        baseline = rosbags_baseline(published['counts'], tmp / 'baseline')

    seconds = published['seconds']
    rows = []
    for topic, _, hz in STREAMS:
        stats = final.get('topics', {}).get(topic, {})
        rows.append({'topic': topic, 'rate_hz': hz, 'published': published['counts'][topic],
                     'received': stats.get('received', 0), 'in_bag': in_bag.get(topic, 0),
                     'dropped': stats.get('dropped', 0),
                     'lost_in_dds': stats.get('lost_in_dds', 0)})
    recorder_bps = final.get('bytes', 0) / seconds
    result = {
        'arguments': vars(args), 'duration_s': seconds, 'storage': args.storage, 'streams': rows,
        'qos': 'reliable' if args.reliable else 'sensor_data (best effort)',
        'publisher_depth': args.publisher_depth if args.reliable else None,
        'recorder': {'bytes': final.get('bytes', 0), 'bytes_per_s': recorder_bps,
                     'bag_file_bytes': bag_bytes, 'files': final.get('files'),
                     'dropped': final.get('dropped'), 'write_errors': final.get('write_errors')},
        'rosbags_writer_alone': baseline,
        'ratio_writer_capacity_to_recorded_rate': baseline['bytes_per_s'] / max(recorder_bps, 1),
    }
    print(f'{"topic":<14}{"Hz":>6}{"published":>11}{"received":>10}{"in bag":>8}'
          f'{"dropped":>9}{"DDS lost":>10}')
    for r in rows:
        print(f'{r["topic"]:<14}{r["rate_hz"]:>6.0f}{r["published"]:>11}{r["received"]:>10}'
              f'{r["in_bag"]:>8}{r["dropped"]:>9}{r["lost_in_dds"]:>10}')
    print(f'QoS: {result["qos"]}')
    print(f'recorder: {recorder_bps / 1e6:.1f} MB/s of messages over {seconds:.1f} s, '
          f'{final.get("files")} split files')
    print(f'rosbags Writer alone, same messages: {baseline["bytes_per_s"] / 1e6:.1f} MB/s '
          f'({baseline["seconds"]:.2f} s); capacity / recorded rate = '
          f'{result["ratio_writer_capacity_to_recorded_rate"]:.2f}x')
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(result, indent=2, default=str))
    print(f'wrote {args.json}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
