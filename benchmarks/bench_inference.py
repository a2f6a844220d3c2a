"""Inference benchmark: real camera sizes over DDS, where the time goes, runtimes on 1 core.

Part 1 runs the same obstacle model on the same 128x96 frames in onnxruntime and torch
eager, one thread each (torch.set_num_threads(1), ort intra_op_num_threads=1),
preprocessing included and model only: median and p99 per frame, frames/s, the ratio.
Part 2 times the session run per onnxruntime graph optimisation level and thread count.
Part 3 times each stage of the node's per-frame work on one thread (CDR deserialisation,
image_to_rgb, preprocess, session run, outputs + serialisation) at 128x96 and --camera.
Part 4 starts two inference nodes (obstacle and terrain model) as real processes on one
camera topic and publishes frames at 30 Hz over DDS on loopback: 128x96 rgb8, then
--camera rgb8 and bgr8, --seconds each. Per model: frames answered, superseded (depth 1,
newest wins) or lost, publish -> prediction latency median / p99 and its median per
second (backlog), and each node's CPU (process CPU seconds / wall seconds, /proc).
Part 5, the transport floor: the same 640x480 rgb8 case with the two inference nodes
replaced by two do-nothing nodes (this script with --floor-node: a raw subscription with
the nodes' QoS that answers each frame with a 1x1 image of its stamp), so what DDS and
rclpy cost before any node code runs is measured in the same run.
Part 6 runs both models in one `inference_group` process (a node per model, one camera
subscription: each frame received once), with the default executor (events) and the
other one (single_threaded). `--parts` runs a subset (e.g. `--parts group` to repeat
the group's case alone).

With --fastdds-profile config/fastdds_large_frames.xml every process of parts 4 and 5
(this one, the nodes) uses that Fast DDS profile (a shared-memory segment that holds a
640x480 frame); the nodes always run with `keep_freed_buffers` (see
ssl_robot/nodes/_memory.py), the floor nodes only with --floor-keep-buffers.

Usage: python benchmarks/bench_inference.py [--camera 640x480] [--seconds 10] [--no-dds]
    [--fastdds-profile FILE]
Writes benchmarks/results/bench_inference.json; the last line is
`(inference_group, executor events) 640x480 at 30 Hz: answered A/B, p99 X ms, cpu Y % of
a core` (the fewer answered and the larger p99 of the two models, their CPU) for one
`inference_group` process with the default executor, what `model_path:=A.onnx,B.onnx`
starts; the line before it says the same of one process per model.
"""
from __future__ import annotations

import argparse
import array
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

from ssl_robot.inference import (  # noqa: E402
    FrameSums,
    obstacle_grid_layout,
    OnnxRobotModel,
)
from ssl_robot.robot.nets import (  # noqa: E402
    build_robot_model,  # noqa: E402
    default_spec,
    export_robot_onnx,
)
from ssl_robot.robot.transforms import frames_to_input  # noqa: E402

DOMAIN = 43
#: The inference node's default executor, and the one it does not use by default,
#: measured next to it.
DEFAULT_EXECUTOR = 'events'
OTHER_EXECUTOR = 'single_threaded'
#: What a run measures (`--parts`): runtimes (part 1), ort settings (2), stages (3), the
#: DDS cases (4), the transport floor (5), the nodes with the other executor, the group
#: (6) with the default executor and with the other one.
PARTS = ('runtimes', 'settings', 'stages', 'dds', 'floor', 'other', 'group', 'group-other')


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


def bench_ort_settings(onnx_path: Path, runs: int = 300) -> dict:
    """Session run time of the obstacle model per graph optimisation level and threads.

    Interleaved runs; wall time and process CPU per run.
    """
    import onnxruntime as ort
    levels = ort.GraphOptimizationLevel
    configs = {f'{name} threads={t}': (getattr(levels, name), t)
               for name in ('ORT_DISABLE_ALL', 'ORT_ENABLE_BASIC', 'ORT_ENABLE_EXTENDED',
                            'ORT_ENABLE_ALL') for t in (1, 2)}
    sessions = {}
    for key, (level, threads) in configs.items():
        options = ort.SessionOptions()
        options.graph_optimization_level = level
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        sessions[key] = ort.InferenceSession(str(onnx_path), options,
                                             providers=['CPUExecutionProvider'])
    x = np.random.default_rng(0).standard_normal(
        (1, 3, *sessions[key].get_inputs()[0].shape[2:])).astype(np.float32)
    wall: dict[str, list[float]] = {k: [] for k in sessions}
    cpu = dict.fromkeys(sessions, 0.0)
    for i in range(runs + 10):
        for key, session in sessions.items():
            c, start = time.process_time(), time.perf_counter()
            session.run(None, {'image': x})
            if i >= 10:
                wall[key].append(time.perf_counter() - start)
                cpu[key] += time.process_time() - c
    return {key: {'median_ms': float(np.median(wall[key]) * 1e3),
                  'p99_ms': float(np.percentile(wall[key], 99) * 1e3),
                  'cpu_ms_per_run': cpu[key] / runs * 1e3} for key in sessions}


CLK_TCK = os.sysconf('SC_CLK_TCK')


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of process `pid` so far (/proc/<pid>/stat)."""
    fields = Path(f'/proc/{pid}/stat').read_text().rsplit(')', 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def parse_hw(text: str) -> tuple[int, int]:
    """'640x480' -> (height 480, width 640)."""
    w, h = (int(v) for v in text.lower().split('x'))
    return h, w


def export_models(tmp: Path) -> dict[str, Path]:
    """Random-initialised obstacle (11 distances x 3 sensors) and terrain (6 x 8) models.

    The package's default spec; the speed does not depend on the weights.
    """
    paths = {}
    for kind, extra in (('obstacle', {'distances_m': [round(0.05 * i, 2) for i in range(11)]}),
                        ('terrain', {'grid': [6, 8]})):
        torch.manual_seed(0)
        paths[kind] = tmp / f'{kind}.onnx'
        export_robot_onnx(build_robot_model(default_spec(kind, **extra)), paths[kind])
    return paths


#: Output topic of each model kind whose arrival time is a frame's prediction time.
OUTPUT_TOPICS = {'obstacle': '/obstacle/probabilities', 'terrain': '/terrain/cost'}


def _latency_summary(sent: list[int], sent_at: dict[int, float], arrivals: dict[int, float],
                     seconds: float) -> dict:
    """Answered / superseded / lost, latency stats and the median per second (backlog)."""
    answered = [s for s in sent if s in arrivals]
    lat = [arrivals[s] - sent_at[s] for s in answered]
    # Depth 1, newest wins: an unanswered frame was superseded when the node was still
    # busy with an earlier frame (its answer came after the next frame was sent), so
    # the next frame replaced it in the queue; any other unanswered frame was lost.
    superseded, busy_until = 0, 0.0
    for k, s in enumerate(sent):
        if s in arrivals:
            busy_until = arrivals[s]
        elif k + 1 < len(sent) and busy_until >= sent_at[sent[k + 1]]:
            superseded += 1
    bins: dict[int, list[float]] = {}
    t0 = sent_at[sent[0]] if sent else 0.0
    for s in answered:
        bins.setdefault(int(sent_at[s] - t0), []).append(arrivals[s] - sent_at[s])
    per_second = [float(np.median(bins[k]) * 1e3) for k in sorted(bins)]
    third = max(1, len(lat) // 3)
    first, last = (float(np.median(lat[:third])), float(np.median(lat[-third:]))) if lat \
        else (0.0, 0.0)
    return {'sent': len(sent), 'answered': len(lat), 'superseded': superseded,
            'lost': len(sent) - len(lat) - superseded,
            **(stats_ms(lat) if lat else {'median_ms': float('nan'), 'p99_ms': float('nan')}),
            'median_ms_per_second': per_second,
            'median_first_third_ms': first * 1e3, 'median_last_third_ms': last * 1e3,
            'growing_backlog': bool(last > 2 * first + 0.010)}


def floor_node(topic: str, *, bare: bool = False) -> int:
    """A do-nothing node: each camera frame answered on `topic` with a 1x1 32FC1 image.

    Subscribes to /image_raw as the inference node does (depth 1, reliable: the
    benchmark's camera is reliable), raw (no deserialisation: only the stamp is read from
    the CDR bytes), so its CPU and latency are DDS's and rclpy's alone. With `bare`, an
    ordinary subscription (rclpy deserialises each frame into a sensor_msgs/Image, as
    for the inference node) whose callback does nothing and answers nothing: what
    receiving the images costs at all (CPU only; no latency without answers).
    """
    import rclpy
    from rclpy.qos import QoSProfile, ReliabilityPolicy
    from sensor_msgs.msg import Image

    from ssl_robot.bags.typestore import cdr_header_end
    rclpy.init()
    node = rclpy.create_node(f'floor_{topic.strip("/").replace("/", "_")}')
    pub = node.create_publisher(Image, topic, 10)

    def answer(raw: bytes) -> None:
        stamp_ns = cdr_header_end(raw)[0]
        msg = Image(height=1, width=1, encoding='32FC1', step=4, data=bytes(4))
        msg.header.stamp.sec, msg.header.stamp.nanosec = divmod(stamp_ns, 10**9)
        pub.publish(msg)

    qos = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE)
    if bare:
        node.create_subscription(Image, '/image_raw', lambda msg: None, qos)
    else:
        node.create_subscription(Image, '/image_raw', answer, qos, raw=True)
    try:
        rclpy.spin(node)
    except KeyboardInterrupt:
        pass
    return 0


def bench_dds(models: dict[str, Path], cases: list[tuple[int, int, str]], seconds: float,
              rate_hz: float = 30.0, warmup_s: float = 1.0, floor: str = '',
              node_params: dict | None = None, group: bool = False) -> dict:
    """One inference node per model (real processes) on one camera topic, case after case.

    Each case publishes frames of one size and encoding at `rate_hz` for `seconds` (after
    `warmup_s` not counted) and measures, per model, frames answered / superseded / lost,
    publish -> prediction latency (frame stamp to the output's arrival here) and its
    median per second, and each node's CPU (process CPU seconds / wall seconds).
    With `floor` ('plain', or 'keep': with `keep_freed_buffers`; 'bare': a bare
    deserialising subscriber with `keep_freed_buffers` that answers nothing), do-nothing
    nodes (`floor_node`) stand in for the inference nodes. `node_params` are extra
    parameters of the inference nodes (e.g. their executor). With `group`, one
    `inference_group` process runs a node per model on one camera subscription (its CPU
    is reported as 'group').
    """
    from sensor_msgs.msg import Image

    from ros_procs import dds_env, executable_argv, NodeProcess, Probe, start_node
    tmp = Path(tempfile.mkdtemp(prefix='bench_inference_'))
    if floor:
        keep = {'keep': ['--floor-keep-buffers'],
                'bare': ['--floor-keep-buffers', '--floor-bare']}.get(floor, [])
        nodes = {kind: NodeProcess([sys.executable, __file__, '--floor-node',
                                    OUTPUT_TOPICS[kind], *keep], env=dds_env(DOMAIN),
                                   log_path=tmp / f'floor_{kind}.log') for kind in models}
    elif group:
        params = {'autostart': True, **(node_params or {})}
        cmd = [*executable_argv('inference_group'), '--models',
               *(f'inference_{kind}={path}' for kind, path in models.items()),
               '--ros-args', *(a for k, v in params.items()
                               for a in ('-p', f'{k}:={json.dumps(v)}'))]
        nodes = {'group': NodeProcess(cmd, env=dds_env(DOMAIN), log_path=tmp / 'group.log')}
    else:
        nodes = {kind: start_node('inference', name=f'inference_{kind}', domain_id=DOMAIN,
                                  log_dir=tmp, params={'model_path': str(path),
                                                       'autostart': True,
                                                       **(node_params or {})})
                 for kind, path in models.items()}
    results = []
    try:
        with Probe(DOMAIN) as probe:
            arrivals: dict[str, dict[int, float]] = {kind: {} for kind in models}

            def on_output(kind: str):
                box = arrivals[kind]

                def callback(msg: Image) -> None:
                    key = msg.header.stamp.sec * 10**9 + msg.header.stamp.nanosec
                    box.setdefault(key, time.time())
                return callback

            from rclpy.qos import QoSProfile, ReliabilityPolicy
            # Reliable back (the node publishes reliably): a prediction lost on the way to
            # this probe would count as a frame the node did not answer.
            for kind in models:
                probe.node.create_subscription(
                    Image, OUTPUT_TOPICS[kind], on_output(kind),
                    QoSProfile(depth=50, reliability=ReliabilityPolicy.RELIABLE))
            # A reliable camera (depth 100; the node's `auto` QoS follows it, depth 1): on
            # this machine best-effort 640x480 frames are lost in DDS before any node
            # sees them, which says nothing about the node.
            pub = probe.publisher('/image_raw', Image, reliable=True)
            ok = probe.wait_for_subscribers('/image_raw', 60, count=len(nodes))
            assert ok, {k: n.output()[-2000:] for k, n in nodes.items()}
            for h, w, encoding in cases:
                rng = np.random.default_rng(0)
                payloads = [array.array('B', rng.integers(0, 255, h * w * 3, np.uint8).tobytes())
                            for _ in range(8)]
                sent: list[int] = []
                sent_at: dict[int, float] = {}
                for box in arrivals.values():
                    box.clear()
                period = 1.0 / rate_hz
                start = time.monotonic()
                k = 0
                cpu0: dict[str, float] = {}
                while True:
                    elapsed = time.monotonic() - start
                    if elapsed >= warmup_s + seconds:
                        break
                    if not cpu0 and elapsed >= warmup_s:
                        cpu0 = {kind: cpu_seconds(n.pid) for kind, n in nodes.items()}
                        wall0 = time.monotonic()
                    msg = Image()
                    now = time.time()
                    stamp = int(now * 1e9)
                    msg.header.stamp.sec, msg.header.stamp.nanosec = divmod(stamp, 10**9)
                    msg.header.frame_id = 'camera_optical_frame'
                    msg.height, msg.width, msg.encoding, msg.step = h, w, encoding, w * 3
                    msg.data = payloads[k % len(payloads)]
                    pub.publish(msg)
                    if cpu0:
                        sent.append(stamp)
                        sent_at[stamp] = now
                    k += 1
                    # Spin (receive predictions) until the next frame is due.
                    probe.spin(max(0.0, start + k * period - time.monotonic()))
                wall = time.monotonic() - wall0
                cpu = {kind: (cpu_seconds(n.pid) - cpu0[kind]) / wall
                       for kind, n in nodes.items()}
                probe.spin(0.5)  # the last frames' answers
                case = {'camera': f'{w}x{h}', 'encoding': encoding, 'rate_hz': rate_hz,
                        'seconds': seconds,
                        'cpu_share_of_core': {**cpu, 'total': sum(cpu.values())},
                        'models': {kind: _latency_summary(sent, sent_at, arrivals[kind],
                                                          seconds) for kind in models}}
                results.append(case)
                probe.spin(0.5)
    finally:
        for node in nodes.values():
            node.stop()
    return {'nodes': {kind: f'floor_{kind}' if floor else f'inference_{kind}'
                      for kind in models}, 'group': group, 'cases': results}


def bench_stages(models: dict[str, Path], cameras: list[tuple[int, int]],
                 frames: int = 200) -> dict:
    """Where a frame's time goes inside the node, stage by stage, on one thread.

    The node's own functions on one message per camera size: CDR deserialisation of the
    sensor_msgs/Image (what rclpy does before the callback), `image_to_rgb` (rgb8 and
    bgr8), `preprocess`, the onnxruntime session run, and building + serialising the
    outputs (obstacle: OccupancyGrid + probabilities image; terrain: cost image of the
    camera's size).
    """
    import cv2
    from rclpy.serialization import deserialize_message, serialize_message
    from sensor_msgs.msg import Image

    from ssl_robot.msgconv import image_to_rgb
    from ssl_robot.nodes.inference import float_image, occupancy_grid_message
    cv2.setNumThreads(1)

    def ms(fn) -> float:
        for _ in range(10):
            fn()
        times = []
        for _ in range(frames):
            start = time.perf_counter()
            fn()
            times.append(time.perf_counter() - start)
        return float(np.median(times) * 1e3)

    cores = {kind: OnnxRobotModel(path, intra_op_threads=1) for kind, path in models.items()}
    layout = obstacle_grid_layout(cores['obstacle'].meta['distances_m'],
                                  [0.035, 0.0, -0.035], yaws_rad=[0.35, 0.0, -0.35])
    out = {}
    for h, w in cameras:
        msg = Image()
        msg.height, msg.width, msg.encoding, msg.step = h, w, 'rgb8', w * 3
        msg.data = array.array(
            'B', np.random.default_rng(0).integers(0, 255, h * w * 3, np.uint8).tobytes())
        raw = serialize_message(msg)
        got = deserialize_message(raw, Image)
        bgr = deserialize_message(raw, Image)
        bgr.encoding = 'bgr8'
        rgb = image_to_rgb(got)
        row = {'deserialize': ms(lambda: deserialize_message(raw, Image)),
               'image_to_rgb rgb8': ms(lambda: image_to_rgb(got)),
               'image_to_rgb bgr8': ms(lambda: image_to_rgb(bgr))}
        for kind, core in cores.items():
            x = core.preprocess(rgb)
            values = core.run(x)[0]
            row[f'{kind} preprocess'] = ms(lambda core=core: core.preprocess(rgb))
            row[f'{kind} session run'] = ms(lambda core=core, x=x: core.run(x))
            if kind == 'obstacle':
                def publish(values=values):
                    serialize_message(occupancy_grid_message(got.header, values, layout,
                                                            'base_link'))
                    serialize_message(float_image(got.header, values))
            else:
                def publish(values=values):
                    cost = cv2.resize(values.astype(np.float32), (w, h),
                                      interpolation=cv2.INTER_LINEAR)
                    serialize_message(float_image(got.header, cost))
            row[f'{kind} outputs + serialise'] = ms(publish)
        # inference_group: every model's preprocessing of one frame, each on its own
        # (the baseline) and sharing the frame's integral image and sums (`FrameSums`).
        row['all preprocess, separate'] = ms(
            lambda: [core.preprocess(rgb) for core in cores.values()])

        def shared() -> None:
            sums = FrameSums()  # a new frame: each call builds its table once
            for core in cores.values():
                core.preprocess(rgb, sums)
        row['all preprocess, shared FrameSums'] = ms(shared)
        out[f'{w}x{h}'] = row
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--onnx', help='an exported obstacle model for part 1 (default: '
                        'random init)')
    parser.add_argument('--frames', type=int, default=300)
    parser.add_argument('--camera', default='640x480', help='camera WxH of the DDS cases '
                        '(next to 128x96 in the same run)')
    parser.add_argument('--seconds', type=float, default=10.0, help='per DDS case')
    parser.add_argument('--no-dds', action='store_true')
    parser.add_argument('--out', default=str(REPO / 'benchmarks' / 'results'
                                             / 'bench_inference.json'))
    parser.add_argument('--fastdds-profile', help='Fast DDS XML profile for the DDS parts '
                        '(FASTDDS_DEFAULT_PROFILES_FILE of this process and the nodes)')
    parser.add_argument('--floor-keep-buffers', action='store_true', help='the floor nodes '
                        'call keep_freed_buffers as the inference node does')
    parser.add_argument('--parts', nargs='+', choices=PARTS, default=list(PARTS),
                        help='what to measure (default: everything)')
    parser.add_argument('--floor-node', metavar='TOPIC', help=argparse.SUPPRESS)
    parser.add_argument('--floor-bare', action='store_true', help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.floor_node:  # a process of part 5
        if args.floor_keep_buffers:
            from ssl_robot.nodes._memory import keep_freed_buffers
            keep_freed_buffers()
        return floor_node(args.floor_node, bare=args.floor_bare)
    if args.fastdds_profile:  # before any participant exists; the nodes inherit it
        os.environ['FASTDDS_DEFAULT_PROFILES_FILE'] = str(Path(args.fastdds_profile).resolve())
    os.environ.setdefault('OMP_NUM_THREADS', '1')
    tmp = Path(tempfile.mkdtemp(prefix='bench_inference_model_'))
    models = export_models(tmp)
    if args.onnx:
        from ssl_robot.robot.tasks import model_from_checkpoint
        # The torch side is the checkpoint the ONNX file was exported from.
        model, _ = model_from_checkpoint(OnnxRobotModel(args.onnx).meta['checkpoint'])
        onnx_path = Path(args.onnx)
    else:
        torch.manual_seed(0)
        model = build_robot_model(default_spec(
            'obstacle', distances_m=[round(0.05 * i, 2) for i in range(11)]))
        onnx_path = models['obstacle']
    h, w = parse_hw(args.camera)
    frames = np.random.default_rng(0).integers(0, 255, (args.frames, 96, 128, 3), np.uint8)
    result = {'arguments': vars(args),
              'model': {'kind': 'obstacle', 'input_hw': model.spec['input_hw'],
                        'width': model.spec.get('width'),
                        'params': sum(p.numel() for p in model.parameters())},
              'camera_hw': [96, 128], 'threads': 1, 'cpus': os.cpu_count(),
              'load_avg_at_start': list(os.getloadavg()), 'default_executor': DEFAULT_EXECUTOR}
    parts = set(args.parts) - ({'dds', 'floor', 'other', 'group', 'group-other'}
                               if args.no_dds else set())
    if 'runtimes' in parts:
        result['runtimes'] = bench_runtimes(model, onnx_path, frames)
    if 'settings' in parts:
        result['ort_settings'] = bench_ort_settings(models['obstacle'])
    if 'stages' in parts:
        result['stages_ms'] = bench_stages(models, [(96, 128), (h, w)])
    if 'dds' in parts:
        result['dds'] = bench_dds(models, [(96, 128, 'rgb8'), (h, w, 'rgb8'), (h, w, 'bgr8')],
                                  args.seconds)
    if 'floor' in parts:
        result['dds_floor'] = {mode: bench_dds(models, [(h, w, 'rgb8')], args.seconds,
                                               floor=mode) for mode in ('plain', 'keep', 'bare')}
    if 'other' in parts:  # the same nodes with the other rclpy executor, in the same run
        result['dds_other_executor'] = dict(bench_dds(
            models, [(96, 128, 'rgb8'), (h, w, 'rgb8')], args.seconds,
            node_params={'executor': OTHER_EXECUTOR}), executor=OTHER_EXECUTOR)
    if 'group' in parts:  # both models in one process on one camera subscription
        result['dds_group'] = bench_dds(models, [(96, 128, 'rgb8'), (h, w, 'rgb8'),
                                                 (h, w, 'bgr8')], args.seconds, group=True)
    if 'group-other' in parts:
        result['dds_group_other_executor'] = dict(bench_dds(
            models, [(96, 128, 'rgb8'), (h, w, 'rgb8')], args.seconds, group=True,
            node_params={'executor': OTHER_EXECUTOR}), executor=OTHER_EXECUTOR)
    r = result.get('runtimes')
    if r:
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
    if 'ort_settings' in result:
        print('\nonnxruntime settings, obstacle model session run')
        print(f'{"setting":<34}{"median ms":>10}{"p99 ms":>8}{"cpu ms/run":>11}')
        for key, v in result['ort_settings'].items():
            print(f'{key:<34}{v["median_ms"]:>10.3f}{v["p99_ms"]:>8.3f}'
                  f'{v["cpu_ms_per_run"]:>11.3f}')
    stages = result.get('stages_ms')
    if stages:
        print("\nwhere a frame's time goes in the node (median ms, 1 thread)")
        print(f'{"stage":<32}' + ''.join(f'{cam:>10}' for cam in stages))
        for name in next(iter(stages.values())):
            print(f'{name:<32}' + ''.join(f'{row[name]:>10.3f}' for row in stages.values()))
    final = ''
    floor_cases = [dict(case, floor=mode) for mode, floor in result.get('dds_floor', {}).items()
                   for case in floor['cases']]
    other_cases = [dict(case, floor='other') for case in
                   result.get('dds_other_executor', {}).get('cases', [])]
    group_cases = [dict(case, floor='group') for case in
                   result.get('dds_group', {}).get('cases', [])]
    group_other = [dict(case, floor='group other') for case in
                   result.get('dds_group_other_executor', {}).get('cases', [])]
    separate = ''
    for case in (result.get('dds', {}).get('cases', []) + floor_cases + other_cases
                 + group_cases + group_other):
        cpu = case['cpu_share_of_core']
        what = {'plain': 'do-nothing nodes (transport floor)', 'keep': 'do-nothing nodes '
                '(transport floor) with keep_freed_buffers',
                'bare': 'bare subscribers (deserialise, no work, no answers: CPU only)',
                'other': f'node with executor {OTHER_EXECUTOR}',
                'group': f'inference_group (both models, one process, one subscription; '
                f'executor {DEFAULT_EXECUTOR})',
                'group other': f'inference_group with executor {OTHER_EXECUTOR}'}.get(
                    case.get('floor'), 'node')
        shares = ' + '.join(f'{kind} {100 * v:.1f} %' for kind, v in cpu.items()
                            if kind != 'total')
        print(f'\nDDS loopback, {case["camera"]} {case["encoding"]} at {case["rate_hz"]:.0f} Hz '
              f'for {case["seconds"]:.0f} s; {what} CPU {shares} = {100 * cpu["total"]:.1f} % '
              'of a core')
        print(f'  {"model":<10}{"answered":>10}{"superseded":>11}{"lost":>6}{"median ms":>10}'
              f'{"p99 ms":>8}  median ms per second')
        for kind, m in case['models'].items():
            per_s = ' '.join(f'{v:.1f}' for v in m['median_ms_per_second'])
            print(f'  {kind:<10}{m["answered"]:>6}/{m["sent"]:<4}{m["superseded"]:>10}'
                  f'{m["lost"]:>6}{m["median_ms"]:>10.1f}{m["p99_ms"]:>8.1f}  {per_s}')
        if case['camera'] == f'{w}x{h}' and case['encoding'] == 'rgb8' and case.get(
                'floor') in (None, 'group'):
            worst = max(case['models'].values(), key=lambda m: m['p99_ms'])
            least = min(case['models'].values(), key=lambda m: m['answered'])
            line = (f'{w}x{h} at {case["rate_hz"]:.0f} Hz: answered {least["answered"]}/'
                    f'{least["sent"]}, p99 {worst["p99_ms"]:.1f} ms, cpu '
                    f'{100 * cpu["total"]:.0f} % of a core')
            if case.get('floor'):
                final = line
            else:
                separate = line
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2, default=str))
    print(f'wrote {out}')
    if separate:
        print(f'one process per model: {separate}')
    if final:  # both models in one inference_group process, the way to run them together
        print(f'(inference_group, executor {DEFAULT_EXECUTOR}) {final}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
