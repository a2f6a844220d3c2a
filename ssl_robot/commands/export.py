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
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Export; prints the parity check's max abs diff."""
    from ssl_robot.export import ExportError
    from ssl_robot.robot.export import export_run
    if args.out.suffix != '.onnx':
        raise ExportError(f'--out {args.out}: an ONNX file name must end in .onnx (refusing '
                          'to write over anything else, e.g. a checkpoint)')
    report = export_run(args.run, args.out, checkpoint=args.checkpoint, atol=args.atol)
    meta = report.metadata
    print(f'wrote {report.path}: kind {meta["kind"]}, input {meta["input_hw"]} '
          f'{meta["channel_order"]}, outputs {meta["output_names"]}')
    print(f'onnxruntime vs torch max abs diff: {report.max_abs_diff:.3g}')
    return 0
