"""Robot models = encoder + head, rebuilt from a spec dict saved with every checkpoint.

The spec holds everything a consumer needs besides the weights: kind, input size,
normalisation, distances, sensors, terrain grid, embedding size. It becomes the ONNX
metadata at export (`export_spec`).
"""
from __future__ import annotations

from typing import Any

import torch
from torch import nn

from ssl_robot.robot.encoder import ConvEncoder
from ssl_robot.robot.heads import EmbeddingHead, ObstacleHead, TerrainHead
from ssl_robot.robot.transforms import DEFAULT_MEAN, DEFAULT_STD

#: Model kinds and the ONNX output names of each (the export wrappers' outputs).
MODEL_KINDS = {
    'obstacle': ['obstacle_prob'],
    'terrain': ['terrain'],
    'tcn': ['embedding'],
    'collision': ['collision_prob'],
}


class RobotNet(nn.Module):
    """Encoder + one head. `forward` returns the training-time output.

    obstacle: logits [N, D, S]; collision: logit [N] of a collision within the horizon;
    terrain: standardised signal [N, GH, GW];
    tcn: L2-normalised embedding [N, E]. `for_export()` returns the deployed form
    (probabilities, signal in label units, embedding).

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
            self.head = ObstacleHead(ch, len(spec['distances_m']), len(spec['sensors']))
        elif kind == 'collision':
            self.head = ObstacleHead(ch, 1, 1)  # one logit: collision within the horizon
        elif kind == 'terrain':
            self.head = TerrainHead(ch, tuple(spec['grid']))
        else:
            self.head = EmbeddingHead(ch, int(spec.get('embed_dim', 32)))
        # Label standardisation of the terrain signal; saved in the state dict.
        self.register_buffer('target_mean', torch.tensor(float(spec.get('target_mean', 0.0))))
        self.register_buffer('target_std', torch.tensor(float(spec.get('target_std', 1.0))))

    @property
    def kind(self) -> str:
        return self.spec['kind']

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.head(self.encoder(x))
        return out.reshape(-1) if self.kind == 'collision' else out

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

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.net(x)
        if self.net.kind in ('obstacle', 'collision'):
            return torch.sigmoid(out)
        if self.net.kind == 'terrain':
            return out * self.net.target_std + self.net.target_mean
        return out


def default_spec(kind: str, **overrides: Any) -> dict[str, Any]:
    """A complete spec for `kind` with package defaults, updated by `overrides`."""
    spec: dict[str, Any] = {
        'kind': kind, 'input_hw': [48, 64], 'channel_order': 'RGB',
        'mean': list(DEFAULT_MEAN), 'std': list(DEFAULT_STD), 'width': 16,
    }
    if kind == 'obstacle':
        spec.update(distances_m=[0.0, 0.1, 0.2], sensors=['left', 'center', 'right'])
    elif kind == 'terrain':
        spec.update(grid=[4, 4], target_mean=0.0, target_std=1.0)
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
    meta['output_names'] = MODEL_KINDS[spec['kind']]
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
                       input_names=['image'], output_names=MODEL_KINDS[spec['kind']],
                       metadata=meta, atol=atol)
