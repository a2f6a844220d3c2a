"""What the model sees, drawn on the frame (numpy/OpenCV, no rclpy).

The inference node publishes these when its `debug_image` parameter is on:

* `obstacle_overlay`: obstacle probabilities per sensor and distance as a grid of
  cells over the lower part of the frame, one column per sensor (left sensor on the
  left), one row per labelled distance (nearest at the bottom, as the ground ahead
  appears in a forward camera); green = free, red = obstacle, the probability in
  percent written in each cell that is large enough to hold it.
* `terrain_overlay`: the predicted terrain cost per patch blended over the frame
  (inferno colour map, dark = smooth, bright = rough), with each patch's terrain type
  id written in it when types are given.
* `obstacle_cell_centres`: where each (distance, sensor) cell of the OccupancyGrid lies
  in base_link, for the obstacle markers.

The drawings return a new uint8 RGB image of the frame's size; the input is not changed.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

import cv2
import numpy as np

if TYPE_CHECKING:
    from collections.abc import Sequence

    from ssl_robot.inference import GridLayout

#: Share of the frame's height the obstacle cells take (from the bottom).
OBSTACLE_PANEL_HEIGHT = 0.5


def probability_colour(p: np.ndarray | float) -> np.ndarray:
    """RGB uint8 colours of probabilities: green (0) through yellow (0.5) to red (1).

    NaN (unknown) is grey.
    """
    p = np.asarray(p, np.float64)
    q = np.clip(np.nan_to_num(p, nan=0.0), 0.0, 1.0)
    rgb = np.stack([np.minimum(1.0, 2.0 * q), np.minimum(1.0, 2.0 * (1.0 - q)),
                    np.zeros_like(q)], axis=-1)
    rgb = np.round(rgb * 220).astype(np.uint8)
    rgb[np.isnan(p)] = 128
    return rgb


def _text(image: np.ndarray, text: str, centre: tuple[int, int], height_px: int) -> None:
    """Write `text` centred at `centre`, white on a dark outline, `height_px` tall."""
    scale = max(0.25, height_px / 22.0)
    thickness = 1 if scale < 0.8 else 2
    (w, h), _ = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, thickness)
    org = (int(centre[0] - w / 2), int(centre[1] + h / 2))
    cv2.putText(image, text, org, cv2.FONT_HERSHEY_SIMPLEX, scale, (0, 0, 0), thickness + 2,
                cv2.LINE_AA)
    cv2.putText(image, text, org, cv2.FONT_HERSHEY_SIMPLEX, scale, (255, 255, 255), thickness,
                cv2.LINE_AA)


def _caption(image: np.ndarray, text: str) -> None:
    """A one-line caption at the top left, when the frame is wide enough to hold it."""
    if image.shape[1] >= 160:
        cv2.putText(image, text, (4, 12), cv2.FONT_HERSHEY_SIMPLEX, 0.33, (0, 0, 0), 3,
                    cv2.LINE_AA)
        cv2.putText(image, text, (4, 12), cv2.FONT_HERSHEY_SIMPLEX, 0.33, (255, 255, 255), 1,
                    cv2.LINE_AA)


def obstacle_panel_cells(image_hw: tuple[int, int], n_distances: int, n_sensors: int
                         ) -> np.ndarray:
    """Pixel boxes [D, S, 4] (x0, y0, x1, y1; end exclusive) of the obstacle cells.

    Distance 0 is the bottom row, sensor 0 (the leftmost) the left column; together the
    cells cover the lower `OBSTACLE_PANEL_HEIGHT` of the frame.
    """
    h, w = image_hw
    top = int(round(h * (1.0 - OBSTACLE_PANEL_HEIGHT)))
    xs = np.linspace(0, w, n_sensors + 1).round().astype(int)
    ys = np.linspace(h, top, n_distances + 1).round().astype(int)  # bottom up
    boxes = np.zeros((n_distances, n_sensors, 4), int)
    for d in range(n_distances):
        for s in range(n_sensors):
            boxes[d, s] = (xs[s], ys[d + 1], xs[s + 1], ys[d])
    return boxes


def obstacle_overlay(rgb: np.ndarray, probs: np.ndarray, *, alpha: float = 0.5) -> np.ndarray:
    """The frame with obstacle probabilities [D, S] drawn as cells (see the module doc).

    Args:
        rgb: uint8 [H, W, 3] frame.
        probs: [D, S] probabilities (NaN: unknown, grey).
        alpha: Opacity of the cells.
    """
    probs = np.asarray(probs, np.float64)
    out = rgb.copy()
    boxes = obstacle_panel_cells(rgb.shape[:2], *probs.shape)
    colours = probability_colour(probs)
    layer = out.copy()
    for d in range(probs.shape[0]):
        for s in range(probs.shape[1]):
            x0, y0, x1, y1 = boxes[d, s]
            layer[y0:y1, x0:x1] = colours[d, s]
    out = cv2.addWeighted(layer, alpha, out, 1.0 - alpha, 0.0)
    for d in range(probs.shape[0]):
        for s in range(probs.shape[1]):
            x0, y0, x1, y1 = boxes[d, s]
            cv2.rectangle(out, (int(x0), int(y0)), (int(x1) - 1, int(y1) - 1), (0, 0, 0), 1)
            size = min(x1 - x0, y1 - y0)
            if size >= 10 and np.isfinite(probs[d, s]):
                _text(out, f'{round(100 * probs[d, s]):d}', ((x0 + x1) // 2, (y0 + y1) // 2),
                      int(size * 0.45))
    _caption(out, 'obstacle probability (%) per sensor, distance up')
    return out


def terrain_overlay(rgb: np.ndarray, cost: np.ndarray, *, types: np.ndarray | None = None,
                    cost_range: Sequence[float] | None = None, alpha: float = 0.45
                    ) -> np.ndarray:
    """The frame with the terrain cost per patch [GH, GW] blended over it.

    Args:
        rgb: uint8 [H, W, 3] frame.
        cost: [GH, GW] predicted cost (higher = rougher).
        types: Optional int [GH, GW] terrain type id per patch, written in each patch.
        cost_range: (low, high) mapped to the ends of the colour map; None: this frame's
            own minimum and maximum.
        alpha: Opacity of the cost colours.
    """
    cost = np.asarray(cost, np.float64)
    h, w = rgb.shape[:2]
    gh, gw = cost.shape
    lo, hi = (float(np.nanmin(cost)), float(np.nanmax(cost))) if cost_range is None else (
        float(cost_range[0]), float(cost_range[1]))
    scaled = np.clip((cost - lo) / max(hi - lo, 1e-9), 0.0, 1.0)
    grey = np.round(np.nan_to_num(scaled) * 255).astype(np.uint8)
    colours = cv2.cvtColor(cv2.applyColorMap(grey, cv2.COLORMAP_INFERNO), cv2.COLOR_BGR2RGB)
    cells = cv2.resize(colours, (w, h), interpolation=cv2.INTER_NEAREST)
    out = cv2.addWeighted(cells, alpha, rgb, 1.0 - alpha, 0.0)
    xs = np.linspace(0, w, gw + 1).round().astype(int)
    ys = np.linspace(0, h, gh + 1).round().astype(int)
    for x in xs[1:-1]:
        out[:, x] = out[:, x] // 2
    for y in ys[1:-1]:
        out[y] = out[y] // 2
    if types is not None:
        types = np.asarray(types)
        size = int(min(np.diff(xs).min(), np.diff(ys).min()) * 0.5)
        if size >= 6:
            for (r, c), t in np.ndenumerate(types):
                _text(out, str(int(t)), ((xs[c] + xs[c + 1]) // 2, (ys[r] + ys[r + 1]) // 2),
                      int(size * 0.6))
    _caption(out, f'terrain cost {lo:.3g} (dark) to {hi:.3g} (bright)'
             + (', type id per patch' if types is not None else ''))
    return out


def obstacle_cell_centres(layout: GridLayout) -> np.ndarray:
    """[D, S, 2] (x, y) in the grid's frame (base_link) of each (distance, sensor) cell."""
    cells = np.asarray(layout.cells)
    rows, cols = np.divmod(cells, layout.width)
    x = layout.origin_xy[0] + (cols + 0.5) * layout.resolution
    y = layout.origin_xy[1] + (rows + 0.5) * layout.resolution
    return np.stack([x, y], axis=-1)
