"""`ssl-robot export RUN --out model.onnx`: a trained robot model to ONNX with metadata."""
from __future__ import annotations

import argparse
from typing import Any

from ssl_robot.commands.argtypes import finite_float, new_file


def add_parser(subparsers: Any) -> None:
    """Register `ssl-robot export`."""
    p = subparsers.add_parser(
        'export', help='export a trained model to ONNX',
        description='Export a run (or checkpoint) to ONNX: dynamic batch, metadata inside '
                    '(kind, input size, channel order, normalisation, outputs, distances, '
                    'sensors, grid), checked against torch on random inputs.')
    p.add_argument('run', help='run directory (best.pt inside) or a checkpoint file')
    p.add_argument('--out', required=True, type=new_file,
                   help='output .onnx file (must end in .onnx)')
    p.add_argument('--checkpoint', default='best.pt', help='checkpoint name in RUN (best.pt)')
    p.add_argument('--atol', type=finite_float(0.0, low_ok=False), default=1e-4,
                   help='max allowed |torch - onnx|')
    p.add_argument('--quantize', choices=['int8'],
                   help='write an int8 model (onnxruntime static quantisation calibrated on '
                        'training frames), measured against the float one on the held-out '
                        'split; refused when its metric drops by more than --max-drop')
    p.add_argument('--calibration-frames', type=int, default=256,
                   help='training frames the int8 activation ranges are calibrated on (256)')
    p.add_argument('--max-drop', type=finite_float(0.0), default=0.005,
                   help='largest accepted drop of AUC / Spearman / cosine for int8 (0.005)')
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Export; prints the parity check's max abs diff."""
    from ssl_robot.export import ExportError
    from ssl_robot.robot.export import export_run
    if args.out.suffix != '.onnx':
        raise ExportError(f'--out {args.out}: an ONNX file name must end in .onnx (refusing '
                          'to write over anything else, e.g. a checkpoint)')
    if args.quantize:
        from ssl_robot.robot.quantize import quantize_run
        if args.calibration_frames < 1:
            raise ExportError('--calibration-frames must be at least 1')
        quant = quantize_run(args.run, args.out, checkpoint=args.checkpoint,
                             calibration_frames=args.calibration_frames,
                             max_drop=args.max_drop)
        print(f'wrote {quant.path}')
        print(quant.line())
        return 0
    report = export_run(args.run, args.out, checkpoint=args.checkpoint, atol=args.atol)
    meta = report.metadata
    print(f'wrote {report.path}: kind {meta["kind"]}, input {meta["input_hw"]} '
          f'{meta["channel_order"]}, outputs {meta["output_names"]}')
    print(f'onnxruntime vs torch max abs diff: {report.max_abs_diff:.3g}')
    return 0
