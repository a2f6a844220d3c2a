"""Text pretext tasks: masking statistics, causal mask, RTD labels, training, export."""
from __future__ import annotations

import dataclasses

import numpy as np
import onnxruntime as ort
import pytest
import torch
import torch.nn.functional as F

from ssl_robot.export import read_metadata
from ssl_robot.text.data import split_documents
from ssl_robot.text.masking import corrupt_with_samples, mask_tokens
from ssl_robot.text.model import (
    CausalLMModel,
    export_text_encoder,
    ReplacedTokenModel,
    TextModelConfig,
    TextTransformer,
)
from ssl_robot.text.tasks import (
    ARTask,
    build_pair_input,
    MLMTask,
    NSPTask,
    pack_blocks,
    RTDTask,
    TextCorpus,
)
from ssl_robot.text.tokenizer import train_tokenizer
from ssl_robot.train import TrainConfig, Trainer

from text_fixtures import synthetic_docs  # noqa: I100


def _within(count: int, n: int, p: float, sds: float = 5.0) -> bool:
    return abs(count - n * p) < sds * (n * p * (1 - p)) ** 0.5


def test_masking_statistics_on_a_large_sample():
    gen = torch.Generator().manual_seed(0)
    vocab, mask_id, low = 1000, 4, 5
    ids = torch.randint(low, vocab, (400, 512), generator=gen)
    ids[:, 0] = 2  # [CLS]: never selected
    maskable = ids >= low
    inputs, labels, selected = mask_tokens(ids, maskable=maskable, mask_id=mask_id,
                                           random_low=low, random_high=vocab, prob=0.15,
                                           generator=gen)
    n_maskable, n_sel = int(maskable.sum()), int(selected.sum())
    assert _within(n_sel, n_maskable, 0.15)
    assert not selected[:, 0].any()
    assert torch.equal(labels[selected], ids[selected]) and (labels[~selected] == -100).all()
    assert torch.equal(inputs[~selected], ids[~selected])  # only selected tokens change
    sel_in, sel_orig = inputs[selected], ids[selected]
    n_mask = int((sel_in == mask_id).sum())
    n_same = int((sel_in == sel_orig).sum())
    n_random = n_sel - n_mask - n_same
    # A random replacement equals the original with probability 1/995.
    p_same = 0.1 + 0.1 / (vocab - low)
    assert _within(n_mask, n_sel, 0.8)
    assert _within(n_same, n_sel, p_same)
    assert _within(n_random, n_sel, 0.1 - 0.1 / (vocab - low))
    assert ((sel_in >= low) | (sel_in == mask_id)).all()  # random ids are regular tokens


def test_rtd_labels_are_exactly_the_replaced_positions():
    original = torch.tensor([[2, 10, 11, 12, 13, 3], [2, 20, 21, 22, 23, 3]])
    selected = torch.tensor([[0, 1, 0, 1, 1, 0], [0, 0, 1, 0, 0, 0]], dtype=torch.bool)
    # Samples: 99 replaces 10, 12 equals the original (not replaced), 50 replaces 13.
    samples = torch.tensor([99, 12, 50, 21])
    corrupted, replaced = corrupt_with_samples(original, selected, samples)
    assert corrupted.tolist() == [[2, 99, 11, 12, 50, 3], [2, 20, 21, 22, 23, 3]]
    assert replaced.tolist() == [[False, True, False, False, True, False],
                                 [False] * 6]


def test_causal_mask_prevents_looking_ahead():
    torch.manual_seed(0)
    model = CausalLMModel(TextModelConfig(vocab_size=50, max_len=16, dim=32, depth=2,
                                          heads=4)).eval()
    ids = torch.randint(5, 50, (2, 12))
    changed = ids.clone()
    changed[:, 7] = (changed[:, 7] + 1 - 5) % 45 + 5
    with torch.no_grad():
        a, b = model(ids), model(changed)
    assert torch.allclose(a[:, :7], b[:, :7], atol=1e-6)
    assert not torch.allclose(a[:, 7:], b[:, 7:], atol=1e-3)


def test_padding_does_not_change_real_tokens():
    torch.manual_seed(0)
    enc = TextTransformer(TextModelConfig(vocab_size=50, max_len=16, dim=32, depth=2,
                                          heads=4)).eval()
    ids = torch.randint(5, 50, (1, 6))
    padded = torch.cat([ids, torch.zeros(1, 4, dtype=torch.long)], 1)
    mask = torch.cat([torch.ones(1, 6), torch.zeros(1, 4)], 1).long()
    with torch.no_grad():
        assert torch.allclose(enc(ids), enc(padded, mask)[:, :6], atol=1e-5)


def test_pack_blocks_and_pair_input():
    blocks = pack_blocks([[[5, 6], [7]], [[8, 9, 10]]], 3, sep_id=3)
    assert blocks.tolist() == [[5, 6, 7], [3, 8, 9]]  # the trailing '10 [SEP]' is dropped
    ids, types = build_pair_input([5, 6, 7, 8, 9], [10, 11], max_len=8, cls_id=2, sep_id=3)
    assert ids == [2, 5, 6, 7, 3, 10, 11, 3] and types == [0] * 5 + [1] * 3


@pytest.fixture(scope='module')
def corpus() -> TextCorpus:
    docs = synthetic_docs()
    tok = train_tokenizer([' '.join(d) for d in docs], vocab_size=400)
    train_idx, val_idx = split_documents(len(docs), val_fraction=0.25, seed=0)
    return TextCorpus.from_sentences(docs, tok, train_idx=train_idx, val_idx=val_idx)


def _cfg(corpus: TextCorpus) -> TextModelConfig:
    return TextModelConfig(vocab_size=corpus.tokenizer.vocab_size, max_len=32, dim=32,
                           depth=1, heads=2, dropout=0.0)


@pytest.mark.parametrize('task_cls, metric', [
    (MLMTask, 'val_loss'), (NSPTask, 'val_loss'), (ARTask, 'perplexity'),
    (RTDTask, 'disc_loss')])
def test_short_run_decreases_the_loss(tmp_path, corpus, task_cls, metric):
    task = task_cls(corpus, _cfg(corpus))
    torch.manual_seed(0)
    _, val = task.datasets()
    loader = [task.collate([val[i] for i in range(j, min(j + 16, len(val)))])
              for j in range(0, len(val), 16)]
    before = task.evaluate(task.build_model().eval(), loader)[metric]
    config = TrainConfig(out_dir=str(tmp_path), epochs=60, max_steps=120, batch_size=16,
                         lr=3e-3, warmup_steps=5, progress=False, device='cpu')
    result = Trainer(task, config).fit()
    after = result.metrics[metric]
    assert after < 0.8 * before, (before, after)


def test_rtd_detector_beats_the_prior_on_learnable_text(tmp_path, corpus):
    """The threshold-free RTD metrics: ROC-AUC over chance, BCE under the prior's."""
    task = RTDTask(corpus, _cfg(corpus))
    torch.manual_seed(0)
    result = Trainer(task, TrainConfig(out_dir=str(tmp_path), epochs=60, max_steps=120,
                                       batch_size=16, lr=3e-3, warmup_steps=5,
                                       progress=False, device='cpu')).fit()
    m = result.metrics
    p = m['replaced_fraction']
    assert m['prior_disc_loss'] == pytest.approx(-(p * np.log(p) + (1 - p) * np.log(1 - p)))
    assert m['disc_loss'] < m['prior_disc_loss']
    assert m['rtd_auc'] > 0.6


def test_rtd_uniform_ablation_replaces_with_non_special_tokens():
    """The ablation draws replacements uniformly from [uniform_from, vocab).

    Labels stay exactly the changed positions, and the untouched ones are the original ids.
    """
    cfg = TextModelConfig(vocab_size=40, max_len=16, dim=16, depth=1, heads=2)
    model = ReplacedTokenModel(cfg, cfg, uniform_from=5)
    torch.manual_seed(0)
    original = torch.randint(5, 40, (64, 16))
    selected = torch.rand(64, 16) < 0.3
    masked = torch.where(selected, torch.full_like(original, 4), original)
    out = model(masked, torch.ones_like(original), original, selected,
                sample_generator=torch.Generator().manual_seed(1))
    corrupted, replaced = out['corrupted'], out['replaced']
    assert torch.equal(corrupted[~selected], original[~selected])
    assert int(corrupted[selected].min()) >= 5 and int(corrupted[selected].max()) < 40
    assert torch.equal(replaced, corrupted != original)
    # Uniform over 35 ids: about 1/35 of the draws equal the original.
    assert 0.9 < float(replaced[selected].float().mean()) < 1.0
    # Every non-special id is drawn.
    assert set(corrupted[selected].tolist()) == set(range(5, 40))


def test_ar_generate_and_mlm_accuracy_metrics(tmp_path, corpus):
    task = ARTask(corpus, _cfg(corpus))
    Trainer(task, TrainConfig(out_dir=str(tmp_path), epochs=30, max_steps=60, batch_size=16,
                              lr=3e-3, progress=False, device='cpu')).fit()
    text = task.generate('The robot', 12, temperature=0.8, top_k=10, seed=0)
    assert text.startswith('The robot') and len(text) > len('The robot')
    assert task.generate('The robot', 12, temperature=0.8, top_k=10, seed=0) == text
    greedy = task.generate('The', 8, temperature=0.0)
    assert greedy == task.generate('The', 8, temperature=0.0)


class _CopyModel(torch.nn.Module):
    """Predicts, at each selected position, the token it is shown."""

    def __init__(self, vocab_size: int) -> None:
        super().__init__()
        self.vocab_size = vocab_size

    def forward(self, ids, attention_mask, selected):
        return F.one_hot(ids[selected], self.vocab_size).float()


def test_mlm_accuracy_per_kind_of_position_catches_a_copying_model(corpus):
    """A copying model is right on every kept token and wrong at every [MASK].

    The [MASK]-only accuracy is 0, BERT's all-selected accuracy the kept share (~10 %).
    """
    task = MLMTask(corpus, _cfg(corpus))
    _, val = task.datasets()
    loader = [task.collate([val[i] for i in range(j, min(j + 16, len(val)))])
              for j in range(0, len(val), 16)]
    m = task.evaluate(_CopyModel(corpus.tokenizer.vocab_size), loader)
    assert m['mlm_masked_accuracy'] == 0.0
    assert m['mlm_kept_accuracy'] == 1.0
    assert m['mlm_random_accuracy'] == 0.0
    assert 0.0 < m['mlm_accuracy'] < 0.25  # the kept share of a small sample


def test_encoder_onnx_export_parity(tmp_path):
    torch.manual_seed(0)
    enc = TextTransformer(TextModelConfig(vocab_size=60, max_len=12, dim=32, depth=2,
                                          heads=4))
    report = export_text_encoder(enc, tmp_path / 'enc.onnx', task='mlm')
    assert report.max_abs_diff < 1e-4
    meta = read_metadata(report.path)
    assert meta['kind'] == 'text_encoder' and meta['vocab_size'] == '60'
    assert meta['max_len'] == '12'
    session = ort.InferenceSession(str(report.path), providers=['CPUExecutionProvider'])
    ids = np.random.default_rng(0).integers(5, 60, (4, 12)).astype(np.int64)
    mask = np.ones((4, 12), dtype=np.int64)
    mask[2, 6:] = 0
    hidden, pooled = session.run(None, {'input_ids': ids, 'attention_mask': mask})
    with torch.no_grad():
        ref = enc.eval()(torch.from_numpy(ids), torch.from_numpy(mask))
    assert hidden.shape == (4, 12, 32) and pooled.shape == (4, 32)
    np.testing.assert_allclose(hidden, ref.numpy(), atol=1e-4)
    np.testing.assert_allclose(pooled[2], ref[2, :6].mean(0).numpy(), atol=1e-4)


def test_text_pretrain_command_trains_samples_and_exports(tmp_path, capsys):
    from ssl_robot.cli import main

    from text_fixtures import synthetic_docs
    corpus = tmp_path / 'corpus'
    corpus.mkdir()
    for i, doc in enumerate(synthetic_docs(n_docs=6, n_sentences=12)):
        (corpus / f'doc{i}.txt').write_text(' '.join(doc) + '\n')
    out = tmp_path / 'run'
    assert main(['text-pretrain', '--task', 'ar', '--corpus', str(corpus), '--out', str(out),
                 '--vocab-size', '300', '--max-len', '16', '--dim', '16', '--depth', '1',
                 '--heads', '2', '--steps', '3', '--batch-size', '4', '--device', 'cpu',
                 '--onnx', '--prompt', 'The']) == 0
    printed = capsys.readouterr().out
    assert 'perplexity' in printed and "sample: 'The" in printed
    assert read_metadata(out / 'encoder.onnx')['causal'] == 'true'
    assert (out / 'tokenizer.json').exists() and (out / 'best.pt').exists()


def test_text_commands_report_missing_data_clearly(tmp_path, capsys):
    from ssl_robot.cli import main
    assert main(['text-pretrain', '--task', 'mlm', '--corpus', str(tmp_path / 'none'),
                 '--out', str(tmp_path / 'run')]) == 2
    assert 'corpus folder not found' in capsys.readouterr().err
    assert main(['text-eval', '--wordnet', str(tmp_path), '--out', str(tmp_path / 'e')]) == 2
    assert 'wordnet-base' in capsys.readouterr().err


def test_text_eval_resume_keeps_a_finished_task_and_refuses_other_settings(tmp_path, corpus):
    from ssl_robot.text import TextError
    from ssl_robot.text.evaluate import BUDGETS, train_task
    budget = dataclasses.replace(BUDGETS['small'], steps=6, batch_size=8)
    task = MLMTask(corpus, _cfg(corpus))
    _, first, seconds = train_task(task, budget, tmp_path, progress=False)
    _, again, seconds_again = train_task(MLMTask(corpus, _cfg(corpus)), budget, tmp_path,
                                         progress=False, resume=True)
    assert again == first and seconds_again == seconds > 0  # evaluated, not retrained
    with pytest.raises(TextError, match='cannot resume.*max_steps'):
        train_task(MLMTask(corpus, _cfg(corpus)), dataclasses.replace(budget, steps=7),
                   tmp_path, progress=False, resume=True)


def test_nsp_with_a_masked_lm_loss_learns_both(tmp_path, corpus):
    """BERT's joint recipe: the MLM loss falls and held-out NSP (unmasked pairs) learns."""
    task = NSPTask(corpus, _cfg(corpus), mlm_weight=1.0, segments=False, dynamic=False,
                   pooling='cls')  # BERT's sentence pairs, fixed, [CLS] only
    config = TrainConfig(out_dir=str(tmp_path), epochs=50, max_steps=60, batch_size=16,
                         lr=3e-3, warmup_steps=5, progress=False, device='cpu')
    result = Trainer(task, config).fit()
    assert result.metrics['nsp_accuracy'] > 0.8, result.metrics
    first, last = result.history[0], result.history[-1]
    assert 'mlm_loss' in task.loss(result.model.train(), task.collate(
        [task.datasets()[0][i] for i in range(8)]))[1]
    assert last['train_loss'] < first['train_loss']
    with pytest.raises(ValueError, match='lm_head=True'):
        plain = NSPTask(corpus, _cfg(corpus)).build_model()
        batch = task.collate([task.datasets()[0][i] for i in range(2)])
        plain(batch['ids'], batch['attention_mask'], batch['token_type_ids'],
              batch['attention_mask'].bool())


def test_nsp_segment_pairs_end_and_start_at_the_pair_sentences():
    """Segments: A ends with A's sentence, B starts with B's, each within half max_len."""
    from ssl_robot.text.tokenizer import SPECIAL_TOKENS
    docs = [[[100 + 10 * d + i] * 3 for i in range(6)] for d in range(4)]  # 3-token sentences
    tok = train_tokenizer(['a b c'], vocab_size=300)
    corpus = TextCorpus(tokenizer=tok, train=docs[:3], val=docs[3:])
    cfg = TextModelConfig(vocab_size=tok.vocab_size, max_len=17, dim=16, depth=1, heads=2)
    plain = NSPTask(corpus, cfg, segments=False).examples(corpus.train, 0)
    seg = NSPTask(corpus, cfg, segments=True).examples(corpus.train, 0)
    assert [e[2] for e in plain] == [e[2] for e in seg]
    sep = SPECIAL_TOKENS.index('[SEP]')
    for (ids, types, _), (pids, _, _) in zip(seg, plain):
        cut = ids.index(sep)
        a, b = ids[1:cut], ids[cut + 1:-1]
        pcut = pids.index(sep)
        assert a[-3:] == pids[1:pcut] and b[:3] == pids[pcut + 1:-1]
        assert len(a) <= 7 and len(b) <= 7 and len(ids) == len(types)
    assert max(len(e[0]) for e in seg) > max(len(e[0]) for e in plain)


def test_fresh_nsp_pairs_follow_or_come_from_another_document_and_change_per_epoch():
    """Pairs drawn on every read: positives consecutive, negatives from other documents."""
    from ssl_robot.text.tokenizer import SPECIAL_TOKENS
    docs = [[[100 + 10 * d + i] for i in range(6)] for d in range(5)]  # 1-token sentences
    tok = train_tokenizer(['a b c'], vocab_size=300)
    corpus = TextCorpus(tokenizer=tok, train=docs[:4], val=docs[4:] + docs[:1])
    cfg = TextModelConfig(vocab_size=tok.vocab_size, max_len=16, dim=16, depth=1, heads=2)
    task = NSPTask(corpus, cfg, dynamic=True, pooling='segments')
    train, val = task.datasets()
    sep = SPECIAL_TOKENS.index('[SEP]')

    def draw(seed: int) -> list[tuple]:
        torch.manual_seed(seed)  # what the trainer does at the start of every epoch
        return [train[i] for i in range(len(train))]

    first, again, other = draw(1), draw(1), draw(2)
    assert len(first) == 4 * 5 and first == again and first != other
    labels = [e[2] for e in first + other]
    assert 0.3 < sum(labels) / len(labels) < 0.7
    for ids, types, is_next in first + other:
        a, b = ids[ids.index(sep) - 1], ids[ids.index(sep) + 1]  # A's last, B's first
        same_doc = (a - 100) // 10 == (b - 100) // 10
        assert (is_next and same_doc and b == a + 1) or (not is_next and not same_doc)
    assert val.rows == task.examples(corpus.val, 1)  # held-out pairs stay fixed
    batch = task.collate(first[:8])
    logits = task.build_model()(batch['ids'], batch['attention_mask'], batch['token_type_ids'])
    assert logits.shape == (8, 2)
