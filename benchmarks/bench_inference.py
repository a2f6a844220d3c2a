"""Inference benchmark: onnxruntime vs torch eager on one core, and DDS end-to-end latency.

Part 1 runs the same obstacle model on the same frames in both runtimes, one thread each
(torch.set_num_threads(1), ort intra_op_num_threads=1), preprocessing included (uint8
camera frame -> resized, normalised input -> probabilities): median and p99 per frame,
frames/s, and the ratio. Part 2 starts the inference node as a real process, publishes
frames at 30 Hz over DDS on loopback, and measures publish -> prediction latency (stamp
to arrival), the share of frames answered, and whether latency grows over the run
(backlog).

Usage: python benchmarks/bench_inference.py [--onnx MODEL] [--frames 300] [--seconds 10]
Writes benchmarks/results/bench_inference.json.
"""
from __future__ import annotations

import argparse
import json
import os
from pathlib import Path
import sys
import tempfile
import time

import numpy as np
import torch

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / 'test'))

from ssl_robot.inference import OnnxRobotModel  # noqa: E402
from ssl_robot.robot.nets import (  # noqa: E402
    build_robot_model,  # noqa: E402
    default_spec,
    export_robot_onnx,
)
from ssl_robot.robot.transforms import frames_to_input  # noqa: E402

DOMAIN = 43


def stats_ms(samples_s: list[float]) -> dict[str, float]:
    a = np.asarray(samples_s) * 1e3
    return {'median_ms': float(np.median(a)), 'p99_ms': float(np.percentile(a, 99)),
            'mean_ms': float(a.mean()), 'fps': float(1e3 / a.mean()), 'n': int(a.size)}


def bench_runtimes(model: torch.nn.Module, onnx_path: Path, frames: np.ndarray) -> dict:
    torch.set_num_threads(1)
    deployed = model.for_export().eval()
    spec = model.spec
    core = OnnxRobotModel(onnx_path, intra_op_threads=1)
    results = {}
    for name in ('torch_eager', 'onnxruntime'):
        times = []
        for i, frame in enumerate(frames):
            start = time.perf_counter()
            if name == 'torch_eager':
                with torch.inference_mode():
                    x = frames_to_input(torch.from_numpy(frame[None]), spec['input_hw'],
                                        spec['mean'], spec['std'])
                    deployed(x).numpy()
            else:
                core.predict(frame)
            if i >= 10:  # warm-up excluded
                times.append(time.perf_counter() - start)
        results[name] = stats_ms(times)
    # Model only (the same preprocessed input to both): isolates the runtimes.
    x = core.preprocess(frames[0])
    for name in ('torch_eager_model_only', 'onnxruntime_model_only'):
        times = []
        xt = torch.from_numpy(x)
        for i in range(len(frames)):
            start = time.perf_counter()
            if name.startswith('torch'):
                with torch.inference_mode():
                    deployed(xt)
            else:
                core.run(x)
            if i >= 10:
                times.append(time.perf_counter() - start)
        results[name] = stats_ms(times)
    results['speedup_ort_vs_torch'] = (results['torch_eager']['median_ms']
                                       / results['onnxruntime']['median_ms'])
    results['speedup_ort_vs_torch_model_only'] = (
        results['torch_eager_model_only']['median_ms']
        / results['onnxruntime_model_only']['median_ms'])
    results['providers'] = core.providers
    return results


def bench_dds(onnx_path: Path, seconds: float, rate_hz: float = 30.0) -> dict:
    from sensor_msgs.msg import Image

    from ros_procs import copy_config, Probe, start_node
    tmp = Path(tempfile.mkdtemp(prefix='bench_inference_'))
    config = copy_config(tmp, inference={'model_path': str(onnx_path)})
    node = start_node('inference', domain_id=DOMAIN, log_dir=tmp, params_file=config)
    try:
        with Probe(DOMAIN) as probe:
            assert probe.wait_for_node('inference', 30), node.output()
            assert probe.change_state('inference', 'configure'), node.output()
            assert probe.change_state('inference', 'activate'), node.output()
            arrivals: dict[int, float] = {}

            def on_probs(msg: Image) -> None:
                key = msg.header.stamp.sec * 10**9 + msg.header.stamp.nanosec
                arrivals.setdefault(key, time.time())

            from rclpy.qos import qos_profile_sensor_data
            probe.node.create_subscription(Image, '/obstacle/probabilities', on_probs,
                                           qos_profile_sensor_data)
            pub = probe.publisher('/image_raw', Image)
            assert probe.wait_for_subscribers('/image_raw', 10)
            rng = np.random.default_rng(0)
            payloads = [rng.integers(0, 255, 96 * 128 * 3, dtype=np.uint8).tobytes()
                        for _ in range(8)]
            sent: list[int] = []
            sent_at: dict[int, float] = {}
            period = 1.0 / rate_hz
            start = time.monotonic()
            k = 0
            while time.monotonic() - start < seconds:
                msg = Image()
                now = time.time()
                stamp = int(now * 1e9)
                msg.header.stamp.sec, msg.header.stamp.nanosec = divmod(stamp, 10**9)
                msg.header.frame_id = 'camera_optical_frame'
                msg.height, msg.width, msg.encoding, msg.step = 96, 128, 'rgb8', 128 * 3
                msg.data = payloads[k % len(payloads)]
                pub.publish(msg)
                sent.append(stamp)
                sent_at[stamp] = now
                k += 1
                # Spin (receive predictions) until the next frame is due.
                probe.spin(max(0.0, start + k * period - time.monotonic()))
            probe.spin(1.0)
    finally:
        node.stop()
    lat = [arrivals[s] - sent_at[s] for s in sent if s in arrivals]
    third = max(1, len(lat) // 3)
    first, last = np.median(lat[:third]), np.median(lat[-third:])
    return {'rate_hz': rate_hz, 'seconds': seconds, 'sent': len(sent),
            'answered': len(lat), 'answered_share': len(lat) / max(1, len(sent)),
            **stats_ms(lat), 'median_first_third_ms': float(first * 1e3),
            'median_last_third_ms': float(last * 1e3),
            'growing_backlog': bool(last > 2 * first + 0.010)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--onnx', help='an exported obstacle model (default: random init)')
    parser.add_argument('--frames', type=int, default=300)
    parser.add_argument('--seconds', type=float, default=10.0)
    parser.add_argument('--no-dds', action='store_true')
    args = parser.parse_args()
    os.environ.setdefault('OMP_NUM_THREADS', '1')
    tmp = Path(tempfile.mkdtemp(prefix='bench_inference_model_'))
    if args.onnx:
        from ssl_robot.robot.tasks import model_from_checkpoint
        # The torch side is the checkpoint the ONNX file was exported from.
        model, _ = model_from_checkpoint(OnnxRobotModel(args.onnx).meta['checkpoint'])
        onnx_path = Path(args.onnx)
    else:
        torch.manual_seed(0)
        model = build_robot_model(default_spec(
            'obstacle', distances_m=[round(0.05 * i, 2) for i in range(11)]))
        onnx_path = tmp / 'obstacle.onnx'
        export_robot_onnx(model, onnx_path)
    frames = np.random.default_rng(0).integers(0, 255, (args.frames, 96, 128, 3), np.uint8)
    result = {'model': {'kind': 'obstacle', 'input_hw': model.spec['input_hw'],
                        'width': model.spec.get('width'),
                        'params': sum(p.numel() for p in model.parameters())},
              'camera_hw': [96, 128], 'threads': 1,
              'runtimes': bench_runtimes(model, onnx_path, frames)}
    if not args.no_dds:
        result['dds'] = bench_dds(onnx_path, args.seconds)
    r = result['runtimes']
    print(f'obstacle model {result["model"]["params"]} params, input '
          f'{result["model"]["input_hw"]}, camera 96x128, 1 thread')
    print(f'{"runtime":<24}{"median ms":>10}{"p99 ms":>10}{"frames/s":>10}')
    for name in ('torch_eager', 'onnxruntime', 'torch_eager_model_only',
                 'onnxruntime_model_only'):
        s = r[name]
        print(f'{name:<24}{s["median_ms"]:>10.2f}{s["p99_ms"]:>10.2f}{s["fps"]:>10.0f}')
    print(f'onnxruntime speed-up vs torch eager (median): {r["speedup_ort_vs_torch"]:.2f}x '
          f'end-to-end, {r["speedup_ort_vs_torch_model_only"]:.2f}x model only '
          f'(providers {r["providers"]})')
    if 'dds' in result:
        d = result['dds']
        print(f'DDS loopback at {d["rate_hz"]:.0f} Hz for {d["seconds"]:.0f} s: '
              f'{d["answered"]}/{d["sent"]} frames answered, latency median '
              f'{d["median_ms"]:.1f} ms, p99 {d["p99_ms"]:.1f} ms; first third '
              f'{d["median_first_third_ms"]:.1f} ms vs last third '
              f'{d["median_last_third_ms"]:.1f} ms -> growing backlog: '
              f'{d["growing_backlog"]}')
    out = REPO / 'benchmarks' / 'results' / 'bench_inference.json'
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2))
    print(f'wrote {out}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
