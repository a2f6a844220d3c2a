"""Choosing a fine-tuning recipe per encoder on validation, never on test."""
from __future__ import annotations

import random

import pytest
import torch

from ssl_robot.text.finetune import (
    choose_on_validation,
    finetune_one,
    finetune_selected,
    recipe_name,
    TextClassifier,
)
from ssl_robot.text.model import TextModelConfig, TextTransformer


def test_choose_on_validation_ranks_by_validation_accuracy_then_loss():
    candidates = [{'val_acc': 0.60, 'val_loss': 0.9, 'test_acc': 0.99},
                  {'val_acc': 0.70, 'val_loss': 1.2, 'test_acc': 0.10},
                  {'val_acc': 0.70, 'val_loss': 1.1, 'test_acc': 0.20},
                  {'val_acc': 0.70, 'val_loss': 1.1, 'test_acc': 0.30}]
    assert choose_on_validation(candidates) == 2  # best val_acc, lower val_loss, first
    assert choose_on_validation(candidates[:2]) == 1  # not the best test_acc
    assert choose_on_validation([{'val_acc': 0.5, 'val_loss': 2.0}]) == 0
    with pytest.raises(ValueError, match='no candidates'):
        choose_on_validation([])


def test_recipe_names_tell_recipes_apart():
    assert recipe_name({'pooling': 'cls', 'lr': 3e-4, 'schedule': 'warmup'}) == (
        'lr0.0003_cls_warmup')
    assert recipe_name({'lr': 1e-3, 'pooling': 'mean', 'min_steps': 180}) == (
        'lr0.001_mean_min_steps180')


def _task(seed: int, n: int) -> tuple[list[list[int]], list[int]]:
    """Label = which of two marker ids (5 or 6) the text holds among filler ids 7..19."""
    rng = random.Random(seed)
    seqs, ys = [], []
    for i in range(n):
        y = i % 2
        body = rng.sample(range(7, 20), 4)
        body.insert(rng.randrange(5), 5 + y)
        seqs.append([2, *body, 3])
        ys.append(y)
    return seqs, ys


def test_selection_uses_validation_and_tests_only_the_chosen_recipe():
    cfg = TextModelConfig(vocab_size=24, max_len=8, dim=16, depth=1, heads=2)
    torch.manual_seed(0)
    encoder = TextTransformer(cfg)
    data = {'train': _task(0, 48), 'val': _task(1, 24), 'test': _task(2, 24)}
    grid = [{'lr': 1e-6, 'pooling': 'mean'}, {'lr': 1e-2, 'pooling': 'mean'}]
    kwargs = {'pad_id': 0, 'grid': grid, 'epochs': 3, 'min_steps': 48, 'batch_size': 16}
    out = finetune_selected(encoder, False, data, 2, **kwargs)
    assert [c['lr'] for c in out['candidates']] == [1e-6, 1e-2]
    assert out['recipe'] == grid[1] and out['val_acc'] > 0.9 > out['candidates'][0]['val_acc']
    assert 'test_acc' not in out['candidates'][0]
    # The test accuracy is the chosen recipe's, as fine-tuning it alone gives.
    alone = finetune_one(encoder, False, data, 2, pad_id=0, epochs=3, min_steps=48,
                         batch_size=16, lr=1e-2)
    assert out['test_acc'] == pytest.approx(alone['test_acc'])
    # Flipped test labels change the test accuracy and nothing of the choice.
    flipped = {**data, 'test': (data['test'][0], [1 - y for y in data['test'][1]])}
    again = finetune_selected(encoder, False, flipped, 2, **kwargs)
    assert again['recipe'] == out['recipe']
    assert [c['val_acc'] for c in again['candidates']] == [
        c['val_acc'] for c in out['candidates']]
    assert again['test_acc'] == pytest.approx(1 - out['test_acc'])


@pytest.mark.parametrize('causal', [False, True])
def test_cls_pooling_reads_cls_or_the_last_real_token(causal):
    cfg = TextModelConfig(vocab_size=24, max_len=8, dim=16, depth=1, heads=2)
    torch.manual_seed(0)
    model = TextClassifier(TextTransformer(cfg), 3, causal=causal, pooling='cls').eval()
    ids = torch.tensor([[2, 9, 10, 11, 3, 0], [2, 12, 3, 0, 0, 0]])
    mask = (ids != 0).long()
    with torch.no_grad():
        hidden = model.encoder(ids, mask, causal=causal)
        picked = hidden[[0, 1], [4, 2]] if causal else hidden[:, 0]
        assert torch.allclose(model(ids, mask), model.head(picked), atol=1e-6)
    with pytest.raises(ValueError, match='pooling'):
        TextClassifier(TextTransformer(cfg), 3, causal=False, pooling='max')
