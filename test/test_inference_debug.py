"""Seeing what the model sees: the overlay drawings, and the inference node's debug topics."""
from __future__ import annotations

from pathlib import Path

import numpy as np
from test_inference_node import _export, _image

from ssl_robot.inference import obstacle_grid_layout
from ssl_robot.overlay import (
    obstacle_cell_centres,
    obstacle_overlay,
    obstacle_panel_cells,
    OBSTACLE_PANEL_HEIGHT,
    probability_colour,
    terrain_overlay,
)

from ros_procs import copy_config, Probe, start_node

DOMAIN = 86


def frame(h: int = 96, w: int = 120) -> np.ndarray:
    """A synthetic frame: a horizontal grey ramp."""
    ramp = np.linspace(20, 200, w).astype(np.uint8)
    return np.repeat(np.repeat(ramp[None, :, None], h, 0), 3, 2).copy()


def inside(box: np.ndarray) -> tuple[slice, slice]:
    """The interior of a pixel box (off its 1-px border)."""
    x0, y0, x1, y1 = (int(v) for v in box)
    return slice(y0 + 2, y0 + 4), slice(x0 + 2, x0 + 4)


def test_probability_colours() -> None:
    c = probability_colour(np.array([0.0, 0.5, 1.0, np.nan]))
    assert c[0].tolist() == [0, 220, 0] and c[2].tolist() == [220, 0, 0]
    assert c[1].tolist() == [220, 220, 0] and c[3].tolist() == [128, 128, 128]


def test_obstacle_overlay_cells_per_sensor_and_distance() -> None:
    rgb = frame()
    before = rgb.copy()
    probs = np.zeros((4, 3))
    probs[0, 0] = 1.0     # nearest distance, left sensor
    probs[3, 2] = 1.0     # farthest distance, right sensor
    out = obstacle_overlay(rgb, probs, alpha=0.5)
    assert np.array_equal(rgb, before) and out.shape == rgb.shape and out.dtype == np.uint8
    boxes = obstacle_panel_cells(rgb.shape[:2], 4, 3)
    # Nearest row at the bottom, left sensor on the left; the cells fill the lower part.
    assert tuple(boxes[0, 0][[0, 3]]) == (0, 96) and boxes[3, 2][2] == 120
    assert boxes[3, 0][1] == round(96 * (1 - OBSTACLE_PANEL_HEIGHT))
    top = int(boxes[3, 0][1])
    assert np.array_equal(out[:top - 1], rgb[:top - 1])  # above the cells: the frame
    for (d, s), p in np.ndenumerate(probs):
        cell = out[inside(boxes[d, s])].astype(int)
        base = rgb[inside(boxes[d, s])].astype(int)
        expected = (base + probability_colour(p).astype(int)) / 2   # alpha 0.5 blend
        assert np.abs(cell - expected).max() <= 1, (d, s)
        red, green = cell[..., 0].mean(), cell[..., 1].mean()
        assert (red > green) if p > 0.5 else (green > red)


def test_terrain_overlay_cost_and_types() -> None:
    rgb = np.full((60, 80, 3), 100, np.uint8)
    cost = np.zeros((3, 4))
    cost[1, 2] = 2.0
    out = terrain_overlay(rgb, cost, cost_range=(0.0, 2.0), alpha=1.0)
    rough, smooth = out[20 + 5:40 - 5, 40 + 5:60 - 5], out[5:15, 5:15]
    assert rough.mean() > 150 > 30 > smooth.mean()      # inferno: bright rough, dark smooth
    # Cells: 20 x 20 px patches, a darker line between them.
    lum = out.astype(int).sum(axis=2)
    assert (lum[:, 20] < lum[:, 21]).all() and (lum[20] < lum[21]).all()
    typed = terrain_overlay(rgb, cost, types=np.arange(12).reshape(3, 4), cost_range=(0, 2))
    untyped = terrain_overlay(rgb, cost, cost_range=(0, 2))
    differs = np.abs(typed.astype(int) - untyped).sum(axis=2) > 0
    for r in range(3):   # a type id is written in every patch
        for c in range(4):
            assert differs[r * 20:(r + 1) * 20, c * 20:(c + 1) * 20].any(), (r, c)


def test_obstacle_cell_centres_hand_computed() -> None:
    layout = obstacle_grid_layout([0.0, 0.1, 0.2], [0.05, 0.0, -0.05], x_offset_m=0.06)
    centres = obstacle_cell_centres(layout)
    # No yaw, no beam range: cell (d, s) is at (x_offset + d, y_s).
    expected = np.array([[[0.06 + d, y] for y in (0.05, 0.0, -0.05)] for d in (0.0, 0.1, 0.2)])
    assert np.allclose(centres, expected)


def test_inference_node_publishes_debug_image_and_markers(tmp_path: Path) -> None:
    from nav_msgs.msg import OccupancyGrid
    from sensor_msgs.msg import Image
    from visualization_msgs.msg import Marker, MarkerArray

    model = _export('obstacle', tmp_path / 'obstacle.onnx', distances_m=[0.0, 0.1],
                    sensors=['left', 'center', 'right'])
    config = copy_config(tmp_path, inference={'model_path': str(model), 'debug_image': True})
    node = start_node('inference', domain_id=DOMAIN, log_dir=tmp_path, params_file=config)
    try:
        with Probe(DOMAIN) as probe:
            assert probe.wait_for_node('inference', timeout=30), node.output()
            assert probe.change_state('inference', 'configure') is True, node.output()
            assert probe.change_state('inference', 'activate') is True
            images = probe.subscribe('/debug/image', Image)
            markers = probe.subscribe('/debug/obstacle_markers', MarkerArray)
            grids = probe.subscribe('/obstacle/grid', OccupancyGrid)
            pub = probe.publisher('/image_raw', Image)
            assert probe.wait_for_subscribers('/image_raw', timeout=10)
            sent = _image(300)
            for _ in range(20):
                pub.publish(sent)
                if probe.spin_until(lambda: images and markers and grids, timeout=0.5):
                    break
            assert images and markers, node.output()
    finally:
        node.stop()
    debug = images[-1]
    assert (debug.header.stamp.sec, debug.header.stamp.nanosec) == (300, 1234)
    assert debug.header.frame_id == 'camera_optical_frame'
    assert (debug.height, debug.width, debug.encoding, debug.step) == (48, 64, 'rgb8', 192)
    drawn = np.frombuffer(bytes(debug.data), np.uint8).reshape(48, 64, 3)
    original = np.frombuffer(bytes(sent.data), np.uint8).reshape(48, 64, 3)
    assert np.array_equal(drawn[:20], original[:20])  # the frame itself above the cells
    assert not np.array_equal(drawn[30:], original[30:])   # predictions drawn below
    array = markers[-1].markers
    assert array[0].action == Marker.DELETEALL
    cubes = array[1:]
    assert len(cubes) == 6 and {m.id for m in cubes} == set(range(6))
    assert all(m.header.frame_id == 'base_link' and m.header.stamp.sec == 300 for m in cubes)
    assert all(m.type == Marker.CUBE and 0.35 <= m.color.a <= 0.95 for m in cubes)
    # Each cube stands on a known cell of the OccupancyGrid of the same frame, and every
    # known cell has a cube.
    grid = next(g for g in grids if g.header.stamp.sec == 300)
    info, data = grid.info, np.asarray(grid.data)
    cells = set()
    for m in cubes:
        col = int((m.pose.position.x - info.origin.position.x) // info.resolution)
        row = int((m.pose.position.y - info.origin.position.y) // info.resolution)
        assert 0 <= col < info.width and 0 <= row < info.height
        cells.add(row * info.width + col)
    assert cells == set(np.flatnonzero(data >= 0).tolist())
    assert 'Traceback' not in node.log_path.read_text()


def _rviz_topics(node: object) -> set[str]:
    """Every `Topic: {Value: ...}` of an rviz2 display tree."""
    out: set[str] = set()
    if isinstance(node, dict):
        topic = node.get('Topic')
        if isinstance(topic, dict) and 'Value' in topic:
            out.add(topic['Value'])
        for value in node.values():
            out |= _rviz_topics(value)
    elif isinstance(node, list):
        for value in node:
            out |= _rviz_topics(value)
    return out


def test_rviz_and_foxglove_views_show_the_published_topics() -> None:
    import json

    import yaml

    root = Path(__file__).resolve().parents[1]
    source = (root / 'ssl_robot' / 'nodes' / 'inference.py').read_text()
    published = {'/debug/image', '/debug/obstacle_markers', '/obstacle/grid',
                 '/terrain/grid', '/terrain/type'}
    for topic in published:   # what the views show is what the node advertises
        assert f"'{topic[1:]}'" in source, topic
    rviz = yaml.safe_load((root / 'config' / 'ssl_robot.rviz').read_text())
    manager = rviz['Visualization Manager']
    assert manager['Global Options']['Fixed Frame'] == 'base_link'
    assert _rviz_topics(manager['Displays']) >= published | {'/image_raw'}
    classes = {d['Class'] for d in manager['Displays']}
    assert {'rviz_default_plugins/Image', 'rviz_default_plugins/MarkerArray',
            'rviz_default_plugins/Map'} <= classes
    fox = json.loads((root / 'config' / 'foxglove_layout.json').read_text())
    panels = fox['configById']
    images = {c['imageMode']['imageTopic'] for k, c in panels.items() if k.startswith('Image!')}
    assert images == {'/image_raw', '/debug/image', '/terrain/type'}
    scene = next(c for k, c in panels.items() if k.startswith('3D!'))
    assert set(scene['topics']) == {'/obstacle/grid', '/debug/obstacle_markers',
                                    '/terrain/grid'}
    assert {c['topicToRender'] for k, c in panels.items() if k.startswith('Diagnostic')} == {
        '/diagnostics'}

    def leaves(node: object) -> set[str]:
        if isinstance(node, str):
            return {node}
        return leaves(node['first']) | leaves(node['second'])
    assert leaves(fox['layout']) == set(panels)   # every panel is placed, none dangles
