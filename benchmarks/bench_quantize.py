"""int8 vs float32 obstacle/terrain models: held-out metric and time per frame, one run.

Quantises a trained run (default: the demo's obstacle model, `make demo` first) with
`ssl-robot export --quantize int8`'s code, calibrated on its training frames, and prints the
float and int8 figures measured side by side; also onnxruntime vs torch eager per frame on
one core (model only, preprocessed input), the issue's second speed goal.

    python benchmarks/bench_quantize.py [--run runs/demo/models/obstacle] [--repeats 300]
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path
import statistics
import sys
import tempfile
import time

HERE = Path(__file__).resolve().parent
RESULTS = HERE / 'results'


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


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--run', type=Path, default=Path('runs/demo/models/obstacle'))
    parser.add_argument('--repeats', type=int, default=300)
    parser.add_argument('--calibration-frames', type=int, default=256)
    args = parser.parse_args()
    if not (args.run / 'best.pt').exists():
        print(f'{args.run}: no trained run (run `make demo` first, or give --run)',
              file=sys.stderr)
        return 2
    from ssl_robot.robot.quantize import quantize_run
    with tempfile.TemporaryDirectory() as tmp:
        report = quantize_run(args.run, Path(tmp) / 'int8.onnx', max_drop=1.0,
                              calibration_frames=args.calibration_frames, repeats=args.repeats)
    torch_ms = _torch_ms(args.run, args.repeats)
    rows = [('torch eager (float32)', torch_ms, None),
            ('onnxruntime float32', report.float_ms, report.float_metric),
            ('onnxruntime int8', report.int8_ms, report.int8_metric)]
    print(f'{"model, 1 thread, batch 1":<26} {"ms/frame":>9} {report.metric:>10}')
    for name, ms, metric in rows:
        print(f'{name:<26} {ms:>9.3f} {"" if metric is None else f"{metric:.4f}":>10}')
    print(f'int8 vs float32: {report.speedup:.2f}x faster, {report.metric} drop '
          f'{report.drop:+.4f}; onnxruntime float32 vs torch eager: '
          f'{torch_ms / report.float_ms:.2f}x')
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / 'bench_quantize.json'
    out.write_text(json.dumps({'arguments': {k: str(v) for k, v in vars(args).items()},
                               'quantization': report.as_dict(), 'torch_eager_ms': torch_ms,
                               'onnxruntime_vs_torch': torch_ms / report.float_ms},
                              indent=2) + '\n')
    print(f'wrote {out}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
