"""Robot models = encoder + head, rebuilt from a spec dict saved with every checkpoint.

The spec holds everything a consumer needs besides the weights: kind, input size,
normalisation, distances, sensors, terrain grid, embedding size. It becomes the ONNX
metadata at export (`export_spec`).

A terrain model predicts the scalar cost per patch; with `descriptor_names` (entries of
the proprioceptive descriptor, `ssl_robot.labelling.descriptor`) it also predicts those
entries per patch (trained on standardised targets, `descriptor_mean` / `descriptor_std`,
exported in the descriptor's units), and with `type_names` the terrain type per patch
(exported as probabilities). Its spec also carries the descriptor layout and the cost
formula, so the ONNX file says what each number means.
"""
from __future__ import annotations

from typing import Any

import torch
from torch import nn

from ssl_robot.robot.encoder import ConvEncoder
from ssl_robot.robot.heads import EmbeddingHead, ObstacleHead, READOUT_GRID, TerrainHead
from ssl_robot.robot.transforms import DEFAULT_MEAN, DEFAULT_STD

#: Model kinds and the ONNX output names of each (the export wrappers' outputs); a
#: terrain model adds `TERRAIN_EXTRA_OUTPUTS` when it has them (`output_names`).
MODEL_KINDS = {
    'obstacle': ['obstacle_prob'],
    'terrain': ['terrain'],
    'tcn': ['embedding'],
    'collision': ['collision_prob'],
}
#: Extra outputs of a terrain model: per-patch descriptor [N, GH, GW, DT] in the
#: descriptor's units, per-patch terrain-type probabilities [N, GH, GW, K].
TERRAIN_EXTRA_OUTPUTS = ('terrain_descriptor', 'terrain_type_prob')


def output_names(spec: dict[str, Any]) -> list[str]:
    """ONNX output names of the model of `spec` (the deployed module's outputs, in order)."""
    names = list(MODEL_KINDS[spec['kind']])
    if spec['kind'] == 'terrain':
        if spec.get('descriptor_names'):
            names.append(TERRAIN_EXTRA_OUTPUTS[0])
        if spec.get('type_names'):
            names.append(TERRAIN_EXTRA_OUTPUTS[1])
    return names


class RobotNet(nn.Module):
    """Encoder + one head. `forward` returns the training-time output.

    obstacle: logits [N, D, S]; collision: logit [N] of a collision within the horizon;
    terrain: standardised signal [N, GH, GW] (with `all_outputs`, a dict that adds the
    standardised descriptor [N, GH, GW, DT] and type logits [N, GH, GW, K]);
    tcn: L2-normalised embedding [N, E]. `for_export()` returns the deployed form
    (probabilities, signal and descriptor in label units, type probabilities, embedding).

    Args:
        spec: Model spec (see `default_spec`).
    """

    def __init__(self, spec: dict[str, Any]) -> None:
        super().__init__()
        self.spec = dict(spec)
        kind = spec['kind']
        if kind not in MODEL_KINDS:
            raise ValueError(f'unknown model kind {kind!r} (known: {", ".join(MODEL_KINDS)})')
        self.encoder = ConvEncoder(int(spec.get('width', 16)))
        ch = self.encoder.out_channels
        if kind == 'obstacle':
            # Specs saved before the readout existed pooled globally.
            self.head = ObstacleHead(ch, len(spec['distances_m']), len(spec['sensors']),
                                     readout=str(spec.get('readout', 'mean')),
                                     grid=tuple(spec.get('readout_grid', READOUT_GRID)))
        elif kind == 'collision':
            self.head = ObstacleHead(ch, 1, 1)  # one logit: collision within the horizon
        elif kind == 'terrain':
            self.n_descriptor = len(spec.get('descriptor_names') or [])
            self.n_types = len(spec.get('type_names') or [])
            self.head = TerrainHead(ch, tuple(spec['grid']),
                                    extra=self.n_descriptor + self.n_types)
        else:
            self.head = EmbeddingHead(ch, int(spec.get('embed_dim', 32)))
        # Label standardisation of the terrain signal; saved in the state dict.
        self.register_buffer('target_mean', torch.tensor(float(spec.get('target_mean', 0.0))))
        self.register_buffer('target_std', torch.tensor(float(spec.get('target_std', 1.0))))
        if kind == 'terrain' and self.n_descriptor:  # absent in scalar-only state dicts
            self.register_buffer('descriptor_mean', torch.tensor(
                [float(v) for v in spec['descriptor_mean']]))
            self.register_buffer('descriptor_std', torch.tensor(
                [float(v) for v in spec['descriptor_std']]))

    @property
    def kind(self) -> str:
        return self.spec['kind']

    def forward(self, x: torch.Tensor, *, all_outputs: bool = False
                ) -> torch.Tensor | dict[str, torch.Tensor]:
        """The training-time output; `all_outputs` (terrain): every head as a dict.

        The dict holds 'cost' [N, GH, GW], 'descriptor' [N, GH, GW, DT] and
        'type_logits' [N, GH, GW, K] (DT, K = 0 for a scalar-only model).
        """
        out = self.head(self.encoder(x))
        if self.kind == 'collision':
            return out.reshape(-1)
        if self.kind != 'terrain':
            return out
        if not all_outputs:
            return out[:, 0]
        dt = self.n_descriptor
        return {'cost': out[:, 0], 'descriptor': out[:, 1:1 + dt].permute(0, 2, 3, 1),
                'type_logits': out[:, 1 + dt:].permute(0, 2, 3, 1)}

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """Globally pooled encoder features [N, C] (for linear probes)."""
        return self.encoder(x).mean(dim=(2, 3))

    def for_export(self) -> nn.Module:
        """The deployed module: the model plus its output transform."""
        return _Deployed(self)


class _Deployed(nn.Module):
    def __init__(self, net: RobotNet) -> None:
        super().__init__()
        self.net = net

    def forward(self, x: torch.Tensor) -> torch.Tensor | tuple[torch.Tensor, ...]:
        net = self.net
        if net.kind in ('obstacle', 'collision'):
            return torch.sigmoid(net(x))
        if net.kind != 'terrain':
            return net(x)
        if not (net.n_descriptor or net.n_types):
            return net(x) * net.target_std + net.target_mean
        out = net(x, all_outputs=True)
        outputs = [out['cost'] * net.target_std + net.target_mean]
        if net.n_descriptor:
            outputs.append(out['descriptor'] * net.descriptor_std + net.descriptor_mean)
        if net.n_types:
            outputs.append(torch.softmax(out['type_logits'], dim=-1))
        return tuple(outputs)


#: The obstacle model's input and readout (the obstacle task's defaults too): the camera's
#: full 96x128 frame, its feature map read through a 3x4 grid (benchmarks/eval_truth.py).
OBSTACLE_INPUT_HW = (96, 128)
OBSTACLE_READOUT = 'grid'


def default_spec(kind: str, **overrides: Any) -> dict[str, Any]:
    """A complete spec for `kind` with package defaults, updated by `overrides`."""
    spec: dict[str, Any] = {
        'kind': kind, 'input_hw': [48, 64], 'channel_order': 'RGB',
        'mean': list(DEFAULT_MEAN), 'std': list(DEFAULT_STD), 'width': 16,
    }
    if kind == 'obstacle':
        spec.update(distances_m=[0.0, 0.1, 0.2], sensors=['left', 'center', 'right'],
                    input_hw=list(OBSTACLE_INPUT_HW), readout=OBSTACLE_READOUT,
                    readout_grid=list(READOUT_GRID))
    elif kind == 'terrain':
        spec.update(grid=[4, 4], target_mean=0.0, target_std=1.0, descriptor_names=[],
                    descriptor_mean=[], descriptor_std=[], descriptor_layout={},
                    type_names=[], cost_formula='')
    elif kind == 'tcn':
        spec.update(embed_dim=32)
    elif kind == 'collision':
        spec.update(horizon_s=1.0)
    spec.update(overrides)
    return spec


def build_robot_model(spec: dict[str, Any]) -> RobotNet:
    """Build a freshly initialised robot model from its spec."""
    return RobotNet(spec)


def export_spec(spec: dict[str, Any]) -> dict[str, Any]:
    """ONNX metadata for a model spec (what the inference core checks)."""
    meta = {k: v for k, v in spec.items() if k not in ('width',)}
    meta['output_names'] = output_names(spec)
    meta['input_names'] = ['image']
    meta['input_layout'] = 'NCHW float32, RGB on [0,1] then (x-mean)/std'
    return meta


def export_robot_onnx(model: RobotNet, path: Any, *, extra_metadata: dict[str, Any] | None = None,
                      atol: float = 1e-4) -> Any:
    """Export a robot model through the package's ONNX exporter, spec as metadata.

    Args:
        model: The trained model.
        path: Output .onnx path.
        extra_metadata: More metadata (run, metrics, ...).
        atol: Parity tolerance of torch vs onnxruntime.

    Returns:
        The exporter's `ExportReport` (with the measured max abs diff).
    """
    from ssl_robot.export import export_onnx
    spec = model.spec
    h, w = spec['input_hw']
    meta = {**export_spec(spec), **(extra_metadata or {})}
    return export_onnx(model.for_export(), [torch.zeros(1, 3, int(h), int(w))], path,
                       input_names=['image'], output_names=output_names(spec),
                       metadata=meta, atol=atol)
