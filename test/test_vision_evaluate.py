"""The evaluation protocol's pure parts: label subsets, k-NN, linear probe, table."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from ssl_robot.vision.encoders import VisionEncoder
from ssl_robot.vision.evaluate import (
    format_table,
    knn_predict,
    L2_GRID,
    linear_probe,
    readout_features,
    stratified_subset,
)


def test_stratified_subset_takes_each_class_and_is_fixed() -> None:
    labels = np.repeat(np.arange(4), 50)
    idx = stratified_subset(labels, 10, seed=3)
    assert np.bincount(labels[idx]).tolist() == [5, 5, 5, 5]
    assert np.array_equal(idx, stratified_subset(labels, 10, seed=3))
    assert np.bincount(labels[stratified_subset(labels, 0.1)]).tolist() == [1, 1, 1, 1]
    assert len(stratified_subset(labels, 100)) == 200


def test_knn_by_hand() -> None:
    train = torch.tensor([[1., 0.], [0.9, 0.1], [0., 1.]])
    labels = torch.tensor([0, 0, 1])
    query = torch.tensor([[1., 0.05], [0.1, 1.]])
    assert knn_predict(train, labels, query, k=1, n_classes=2).tolist() == [0, 1]
    # k=3: for the second query the single close class-1 neighbour outweighs two far ones.
    assert knn_predict(train, labels, query, k=3, n_classes=2).tolist() == [0, 1]


def test_linear_probe_separates_separable_features() -> None:
    g = torch.Generator().manual_seed(0)
    centres = torch.tensor([[3., 0.], [-3., 0.], [0., 3.]])

    def draw(n: int) -> tuple[torch.Tensor, torch.Tensor]:
        y = torch.arange(n) % 3
        return centres[y] + 0.5 * torch.randn(n, 2, generator=g), y

    result = linear_probe(draw(60), draw(60), draw(300), n_classes=3)
    assert result['test_acc'] > 0.97 and result['l2'] in L2_GRID


def test_table_marks_wins_over_random_init() -> None:
    def res(acc: float) -> dict:
        return {kind: {p: {'test_acc': acc} for p in ('1', '10', '100')}
                for kind in ('linear', 'knn')}
    results = {'fractions': [1, 10, 100], 'budget': 'small', 'seed': 0,
               'sizes': {'test': 10, 'labels': {'1': 1, '10': 10, '100': 100}},
               'methods': {'random-init': res(0.5), 'rotation': res(0.6), 'jigsaw': res(0.4)}}
    table = format_table(results)
    assert 'rotation' in table and '6/6 better' in table and '0/6 better' in table
    assert '60.0' in table


def test_pyramid_readout_is_the_2x2_pooled_last_two_stages() -> None:
    torch.manual_seed(0)
    encoder = VisionEncoder(1, (4, 6, 8)).eval()
    x = torch.randn(3, 1, 28, 28)
    with torch.no_grad():
        mean = readout_features(encoder, x, 'mean')
        pyramid = readout_features(encoder, x, 'pyramid')
        stage2 = encoder.features[:5](x)                    # stem + two stages: [3, 6, 7, 7]
        stage3 = encoder.features[5:](stage2)               # [3, 8, 4, 4]
    assert torch.allclose(mean, encoder.embed(x))
    assert pyramid.shape == (3, 4 * 8 + 4 * 6)
    # Top-left quadrant of the last map (4x4 -> 2x2: rows/cols 0-1), channel 0.
    assert torch.allclose(pyramid[:, 0], stage3[:, 0, :2, :2].mean(dim=(1, 2)), atol=1e-6)
    # The 7x7 map's 2x2 adaptive pooling: the top-left cell covers rows/cols 0-3.
    assert torch.allclose(pyramid[:, 32], stage2[:, 0, :4, :4].mean(dim=(1, 2)), atol=1e-6)


def test_seed_results_are_reused_only_with_the_current_pretext_settings() -> None:
    import json
    from pathlib import Path
    import sys
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / 'benchmarks'))
    from eval_pretext_seeds import same_settings

    from ssl_robot.vision.evaluate import BUDGETS
    from ssl_robot.vision.pretext import PRETEXTS
    epochs = BUDGETS['small']['epochs']
    current = {name: {'params': json.loads(json.dumps({'widths': [8], **cls.defaults})),
                      'epochs': epochs[name]} for name, cls in PRETEXTS.items()}
    assert same_settings({'seed': 0, 'budget': 'small', 'methods': current},
                         ['simclr', 'rotation'])
    changed = json.loads(json.dumps(current))
    changed['simclr']['params']['temperature'] = 0.5
    assert not same_settings({'seed': 0, 'methods': changed}, ['simclr'])
    assert same_settings({'seed': 0, 'methods': changed}, ['rotation'])
    changed['jigsaw']['epochs'] = epochs['jigsaw'] + 1  # the budget's epochs changed
    assert not same_settings({'seed': 0, 'methods': changed}, ['jigsaw'])
    del changed['moco']['epochs']  # made before the epochs were recorded
    assert not same_settings({'seed': 0, 'methods': changed}, ['moco'])
    del changed['rotation']['params']
    assert not same_settings({'seed': 0, 'methods': changed}, ['rotation'])


def test_seed_results_of_a_variant_are_reused_only_with_its_own_settings() -> None:
    import json
    from pathlib import Path
    import sys
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / 'benchmarks'))
    from eval_pretext_seeds import parse_overrides, same_settings

    from ssl_robot.vision.evaluate import BUDGETS
    from ssl_robot.vision.pretext import PRETEXTS
    params, epochs = parse_overrides(['simclr.temperature=0.5', 'simclr.crop_scale=[0.2, 1]',
                                      'moco.note=plain'], ['simclr=9'])
    assert params == {'simclr': {'temperature': 0.5, 'crop_scale': [0.2, 1]},
                      'moco': {'note': 'plain'}}
    assert epochs == {'simclr': 9}
    for bad in (['simclr.temperature'], ['temperature=0.5'], ['.x=1']):
        with pytest.raises(ValueError):
            parse_overrides(bad, [])
    with pytest.raises(ValueError):
        parse_overrides([], ['simclr=many'])

    variant = {'params': json.loads(json.dumps({**PRETEXTS['simclr'].defaults,
                                                'temperature': 0.5})), 'epochs': 9}
    made = {'seed': 0, 'budget': 'small', 'methods': {'simclr': variant}}
    overrides = {'task_params': {'simclr': {'temperature': 0.5}}, 'epochs': {'simclr': 9}}
    assert same_settings(made, ['simclr'], **overrides)
    assert not same_settings(made, ['simclr'])  # not the defaults
    assert not same_settings(made, ['simclr'], task_params=overrides['task_params'])
    default = {'seed': 0, 'budget': 'small', 'methods': {'simclr': {
        'params': json.loads(json.dumps(PRETEXTS['simclr'].defaults)),
        'epochs': BUDGETS['small']['epochs']['simclr']}}}
    assert not same_settings(default, ['simclr'], **overrides)
