"""int8 vs float32 obstacle/terrain models: held-out metric and time per frame, one run.

Quantises a trained run (default: the demo's obstacle model, `make demo` first) with
`ssl-robot export --quantize int8`'s code, calibrated on its training frames, and prints the
float and int8 figures measured side by side; then the same for other onnxruntime
quantisation settings (which nodes stay float, QDQ vs QOperator, per-channel vs per-tensor
weights, uint8 vs int8 activations, reduce_range, op types, calibration method,
`quant_pre_process`) and session graph optimisation levels, all timed with the float model
in one loop by `time_per_frame`, the export's own timing loop (so the default's figure in
both loops must agree within their spread); then a per-operator profile (onnxruntime's own
profiler) of the float and the default int8 model, which says where an int8 frame's time
goes; also onnxruntime vs torch eager per frame on one core (model only, preprocessed
input), the issue's second speed goal. A timing run: hold both CPU slots.

    python benchmarks/bench_quantize.py [--run runs/demo/models/obstacle] [--repeats 1000]
        [--out benchmarks/results/bench_quantize.json]
"""
from __future__ import annotations

import argparse
from collections import defaultdict
import json
import os
from pathlib import Path
import statistics
import sys
import tempfile
import time

HERE = Path(__file__).resolve().parent
RESULTS = HERE / 'results'


#: CPU instruction sets that decide int8 speed: without VNNI an int8 multiply-add takes
#: several AVX2 instructions, with it (AVX-512 VNNI, AVX-VNNI) one.
INT8_FLAGS = ('avx2', 'avx512f', 'avx512_vnni', 'avx_vnni', 'amx_int8')


def _cpu() -> dict[str, object]:
    """The CPU's model name and which of `INT8_FLAGS` it has (/proc/cpuinfo)."""
    try:
        info = Path('/proc/cpuinfo').read_text()
    except OSError:
        return {}
    fields = dict(line.split(':', 1) for line in info.split('\n\n', 1)[0].splitlines()
                  if ':' in line)
    fields = {k.strip(): v.strip() for k, v in fields.items()}
    flags = set(fields.get('flags', '').split())
    return {'model': fields.get('model name', ''),
            'int8_instructions': [f for f in INT8_FLAGS if f in flags]}


def _torch_ms(run: Path, repeats: int) -> float:
    import torch

    from ssl_robot.robot.tasks import model_from_checkpoint
    torch.set_num_threads(1)
    model, _ = model_from_checkpoint(run / 'best.pt')
    model = model.for_export().eval()
    x = torch.zeros(1, 3, *model.net.spec['input_hw'])
    with torch.no_grad():
        for _ in range(10):
            model(x)
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            model(x)
            times.append(time.perf_counter() - start)
    return 1e3 * statistics.median(times)


def variants():
    """The quantisation settings compared (the first is `QuantSettings()`, the default)."""
    from ssl_robot.robot.quantize import QuantSettings
    return [QuantSettings(),
            QuantSettings(float_first_conv=False, float_head=False),
            QuantSettings(float_head=False),
            QuantSettings(float_first_conv=False),
            QuantSettings(per_channel=False),
            QuantSettings(reduce_range=True),
            QuantSettings(activations='int8'),
            QuantSettings(weights='uint8', per_channel=False),
            QuantSettings(op_types=('Conv',)),
            QuantSettings(quant_format='QOperator'),
            QuantSettings(quant_format='QOperator', per_channel=False),
            QuantSettings(calibration='Entropy'),
            QuantSettings(calibration='Percentile'),
            QuantSettings(preprocess=True)]


def _single_run_loop(models, frame, repeats: int) -> list[float]:
    """The timing loop the export and this benchmark used before `time_per_frame`.

    One run of each model in turn, `repeats` times over (median ms per frame): with many
    models, each run finds the caches filled by the others. Kept to show the difference.
    """
    inputs = [model.preprocess(frame) for model in models]
    for _ in range(10):
        for model, x in zip(models, inputs):
            model.run(x)
    times: list[list[float]] = [[] for _ in models]
    for _ in range(repeats):
        for k, (model, x) in enumerate(zip(models, inputs)):
            start = time.perf_counter()
            model.run(x)
            times[k].append(time.perf_counter() - start)
    return [1e3 * statistics.median(t) for t in times]


def loop_check(float_model, models, frame, repeats: int, trials: int = 3) -> dict:
    """The default int8's speedup in the old and the new loop, timed with 2 models and 10.

    The old loop's figure depends on how many models share it; `time_per_frame`'s must not.
    The four loops take turns `trials` times (so a change of load falls on all of them);
    the median of each loop's trials is kept.
    """
    from ssl_robot.robot.quantize import time_per_frame
    sets = {'2': [float_model, models[0]], '10': [float_model, *models[:9]]}
    loops = {'single-run': lambda m: _single_run_loop(m, frame, repeats // 3),
             'time_per_frame': lambda m: time_per_frame(m, frame, repeats=repeats).ms}
    trial_ms: dict[str, list[list[float]]] = defaultdict(list)
    for _ in range(trials):
        for loop, timing in loops.items():
            for n, group in sets.items():
                trial_ms[f'{loop} loop, {n} models'].append(timing(group)[:2])
    out = {}
    for name, figures in trial_ms.items():
        ratios = [f / i for f, i in figures]
        out[name] = {'float_ms': statistics.median(f for f, _ in figures),
                     'int8_ms': statistics.median(i for _, i in figures),
                     'speedup': statistics.median(ratios), 'trial_speedups': ratios}
    return out


#: Session graph optimisation levels compared (the inference core uses ORT_ENABLE_ALL).
LEVELS = ('ORT_ENABLE_BASIC', 'ORT_ENABLE_EXTENDED')


def _at_level(path: Path, level: str):
    """The model at `path` in a 1-thread session at another graph optimisation level."""
    import onnxruntime as ort

    from ssl_robot.robot.quantize import _session
    model = _session(path)
    options = ort.SessionOptions()
    options.graph_optimization_level = getattr(ort.GraphOptimizationLevel, level)
    options.intra_op_num_threads = options.inter_op_num_threads = 1
    model.session = ort.InferenceSession(str(path), options, providers=['CPUExecutionProvider'])
    return model


def operator_profile(path: Path, frame, runs: int, tmp: Path) -> dict:
    """Median µs per run of each operator type (onnxruntime profiler), 1 thread, batch 1.

    Also the whole `model_run` as the profiler sees it; the difference to the operators'
    sum is the session's own overhead per run (input/output binding, scheduling).
    """
    import onnxruntime as ort
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.intra_op_num_threads = options.inter_op_num_threads = 1
    options.enable_profiling = True
    options.profile_file_prefix = str(tmp / f'profile_{path.stem}')
    session = ort.InferenceSession(str(path), options, providers=['CPUExecutionProvider'])
    name = session.get_inputs()[0].name
    for _ in range(runs):
        session.run(None, {name: frame})
    events = json.loads(Path(session.end_profiling()).read_text())
    per_node: dict[tuple[str, str], list[float]] = defaultdict(list)
    model_runs = []
    for event in events:
        if event.get('cat') == 'Node' and event['name'].endswith('_kernel_time'):
            per_node[(event['args']['op_name'], event['name'][:-len('_kernel_time')])].append(
                event['dur'])
        elif event.get('name') == 'model_run':
            model_runs.append(event['dur'])
    by_op: dict[str, float] = defaultdict(float)
    nodes = {}
    for (op, node), durations in per_node.items():
        us = float(statistics.median(durations[runs // 10:]))
        by_op[op] += us
        nodes[node] = {'op': op, 'us': us}
    total = sum(by_op.values())
    return {'model_run_us': float(statistics.median(model_runs[runs // 10:])),
            'operators_us': total, 'by_operator_us': dict(sorted(by_op.items(),
                                                                 key=lambda kv: -kv[1])),
            'by_node_us': nodes}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--run', type=Path, default=Path('runs/demo/models/obstacle'))
    parser.add_argument('--repeats', type=int, default=1000,
                        help='timed runs per model (time_per_frame)')
    parser.add_argument('--calibration-frames', type=int, default=256)
    parser.add_argument('--profile-runs', type=int, default=300)
    parser.add_argument('--out', type=Path, default=RESULTS / 'bench_quantize.json',
                        help='JSON result (benchmarks/results/bench_quantize.json)')
    args = parser.parse_args()
    if not (args.run / 'best.pt').exists():
        print(f'{args.run}: no trained run (run `make demo` first, or give --run)',
              file=sys.stderr)
        return 2
    from ssl_robot.robot.quantize import quantize_run, QuantRun, time_per_frame
    from ssl_robot.train.cpu import machine_busy_seconds
    wall, busy, own = time.perf_counter(), machine_busy_seconds(), time.process_time()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        report = quantize_run(args.run, tmp / 'int8.onnx', max_drop=1.0,
                              calibration_frames=args.calibration_frames, repeats=args.repeats)
        # Every setting against the same float export, all timed in one loop.
        with QuantRun(args.run, calibration_frames=args.calibration_frames) as prepared:
            settings = variants()
            models, metrics, names = [], [], []
            for k, s in enumerate(settings):
                model, metric = prepared.quantize(s, tmp / f'variant_{k}.onnx')
                models.append(model)
                metrics.append(metric)
                names.append(s.label())
            for level in LEVELS:
                models += [_at_level(prepared.float_path, level),
                           _at_level(tmp / 'variant_0.onnx', level)]
                metrics += [prepared.float_metric, metrics[0]]
                names += [f'float32, session {level}', f'default int8, session {level}']
            times = time_per_frame([prepared.float_model, *models], prepared.frames[0],
                                   repeats=args.repeats)
            rows = [{'settings': name, prepared.metric: m, 'drop': prepared.float_metric - m,
                     'int8_ms': times.ms[k], 'float_ms': times.ms[0],
                     'speedup': times.speedup(k), 'speedup_quartiles': times.quartiles(k)}
                    for k, (name, m) in enumerate(zip(names, metrics), start=1)]
            loops = loop_check(prepared.float_model, models, prepared.frames[0], args.repeats)
            x = prepared.float_model.preprocess(prepared.frames[0])
            profiles = {'float32': operator_profile(prepared.float_path, x, args.profile_runs,
                                                    tmp),
                        f'int8 ({settings[0].label()})': operator_profile(
                            tmp / 'variant_0.onnx', x, args.profile_runs, tmp)}
    torch_ms = _torch_ms(args.run, args.repeats)
    # How busy the rest of the machine was meanwhile (int8's gain shrinks when the other
    # core is busy): CPU used by other processes, in cores, averaged over the run.
    wall = time.perf_counter() - wall
    others = max(0.0, (machine_busy_seconds() - busy) - (time.process_time() - own)) / wall
    rows_main = [('torch eager (float32)', torch_ms, None),
                 ('onnxruntime float32', report.float_ms, report.float_metric),
                 ('onnxruntime int8', report.int8_ms, report.int8_metric)]
    print(f'{"model, 1 thread, batch 1":<26} {"ms/frame":>9} {report.metric:>10}')
    for name, ms, metric in rows_main:
        print(f'{name:<26} {ms:>9.3f} {"" if metric is None else f"{metric:.4f}":>10}')
    print(f'\nquantisation settings (float32 {times.ms[0]:.3f} ms/frame in the same loop; '
          'rounds: quartiles of the per-round speedup)')
    print(f'{"settings":<72} {"ms":>6} {"vs float":>9} {"rounds":>10} {report.metric:>7} '
          f'{"drop":>8}')
    for row in rows:
        low, high = row['speedup_quartiles']
        print(f'{row["settings"]:<72} {row["int8_ms"]:>6.3f} {row["speedup"]:>8.2f}x '
              f'{low:>5.2f}-{high:.2f} {row[prepared.metric]:>7.4f} {row["drop"]:>+8.4f}')
    print('\nthe default int8 vs float32 in the old single-run loop and in time_per_frame')
    for name, figures in loops.items():
        print(f'  {name:<32} float {figures["float_ms"]:.3f} ms, int8 {figures["int8_ms"]:.3f} '
              f'ms: {figures["speedup"]:.2f}x (trials '
              f'{" ".join(f"{r:.2f}" for r in figures["trial_speedups"])})')
    print('\nper-operator profile (onnxruntime profiler, median µs per run, 1 thread)')
    for name, prof in profiles.items():
        ops = ', '.join(f'{op} {us:.0f}' for op, us in prof['by_operator_us'].items())
        print(f'{name}: model_run {prof["model_run_us"]:.0f} µs, operators '
              f'{prof["operators_us"]:.0f} µs: {ops}')
    for name, prof in profiles.items():
        convs = [v['us'] for v in prof['by_node_us'].values()
                 if v['op'] in ('Conv', 'QLinearConv', 'FusedConv')]
        print(f'{name}: convolutions layer by layer (µs) {" ".join(f"{c:.0f}" for c in convs)}')
    low, high = report.speedup_quartiles
    print(f'\nint8 vs float32 (default settings): {report.speedup:.2f}x in the export loop '
          f'(rounds {low:.2f}-{high:.2f}x), {rows[0]["speedup"]:.2f}x in the settings loop; '
          f'{report.metric} drop {report.drop:+.4f}; onnxruntime float32 vs torch eager: '
          f'{torch_ms / report.float_ms:.2f}x; other processes used {others:.2f} cores '
          f'meanwhile; CPU: {_cpu().get("model", "?")} with '
          f'{" ".join(_cpu().get("int8_instructions", [])) or "none of " + " ".join(INT8_FLAGS)}')
    out = args.out
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({'arguments': {k: str(v) for k, v in vars(args).items()},
                               'cpus': os.cpu_count(), 'cpu': _cpu(),
                               'load_avg': list(os.getloadavg()),
                               'other_processes_cores': others, 'wall_s': wall,
                               'quantization': report.as_dict(), 'torch_eager_ms': torch_ms,
                               'onnxruntime_vs_torch': torch_ms / report.float_ms,
                               'settings_compared': rows, 'loop_check': loops,
                               'operator_profiles': profiles},
                              indent=2) + '\n')
    print(f'wrote {out}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
