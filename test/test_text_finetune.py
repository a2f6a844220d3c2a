"""Man page sections as a labelled text task, and fine-tuning an encoder on it."""
from __future__ import annotations

import gzip
import random

import pytest

from ssl_robot.text import TextError
from ssl_robot.text.data import MAN_ROOT, ManPage, parse_man_page, read_man_pages
from ssl_robot.text.finetune import finetune_encoders, split_labelled
from ssl_robot.text.model import TextModelConfig, TextTransformer
from ssl_robot.text.tokenizer import train_tokenizer

OPEN_2 = r""".\" Copyright (c) 1992 Drew Eckhardt
.TH open 2 2023-02-05 "Linux man-pages 6.03"
.SH NAME
open, openat, creat \- open and possibly create a file
.SH LIBRARY
Standard C library
.SH DESCRIPTION
The
.BR open ()
system call opens the file specified by
.IR pathname .
If the file does not exist, it may be created (\fBO_CREAT\fP).
.PP
The return value is a file descriptor.
"""


def test_parse_man_page_keeps_the_description_prose():
    assert parse_man_page(OPEN_2) == (
        'Open and possibly create a file. The open() system call opens the file '
        'specified by pathname. If the file does not exist, it may be created (O_CREAT).')
    assert parse_man_page('.SH NAME\nfoo\n.SH DESCRIPTION\nText.\n') == ''  # no ' - '


def test_read_man_pages_skips_aliases_redirections_and_other_packages(tmp_path):
    for section in ('2', '3'):
        (tmp_path / f'man{section}').mkdir()
    (tmp_path / 'man2' / 'open.2.gz').write_bytes(gzip.compress(OPEN_2.encode()))
    (tmp_path / 'man2' / 'creat.2.gz').symlink_to('open.2.gz')
    (tmp_path / 'man2' / 'openat.2').write_text('.so man2/open.2\n')
    (tmp_path / 'man3' / 'other.3').write_text(OPEN_2.replace('open and', 'a function to'))
    (tmp_path / 'man3' / 'broken.3.gz').write_bytes(b'not gzip')
    pages = read_man_pages(tmp_path, sections=('2', '3'), packages=None)
    assert [(p.name, p.label) for p in pages] == [('open.2', 0), ('other.3', 1)]
    listing = tmp_path / 'info'
    listing.mkdir()
    (listing / 'pkg.list').write_text(f'{tmp_path}/man2/open.2.gz\n')
    only = read_man_pages(tmp_path, sections=('2', '3'), packages=('pkg',),
                          dpkg_info=listing)
    assert [p.name for p in only] == ['open.2']
    with pytest.raises(TextError, match='Debian package nothere is not installed'):
        read_man_pages(tmp_path, packages=('nothere',), dpkg_info=listing)


@pytest.mark.skipif(not (MAN_ROOT / 'man2').exists(),
                    reason='man pages missing (Debian manpages, manpages-dev)')
def test_real_man_pages_of_five_sections():
    try:
        pages = read_man_pages()
    except TextError as exc:
        pytest.skip(str(exc))
    assert len(pages) > 800 and len({p.label for p in pages}) == 5
    assert all(len(p.text.split()) >= 3 for p in pages)


def test_split_labelled_puts_every_class_first():
    labels = [0] * 90 + [1] * 8 + [2] * 2
    train, val, test = split_labelled(labels, seed=0)
    assert sorted(train + val + test) == list(range(100))
    assert {labels[i] for i in train[:3]} == {0, 1, 2} or 2 not in {labels[i] for i in train}


def test_fine_tuning_learns_a_learnable_task():
    rng = random.Random(0)
    words = {0: ['wheel', 'motor', 'axle'], 1: ['lamp', 'light', 'bulb'],
             2: ['door', 'wall', 'gate']}
    filler = ['the', 'a', 'near', 'robot', 'sees', 'old', 'small']
    pages = []
    for i in range(240):
        label = i % 3
        text = ' '.join(rng.sample(filler, 4) + [rng.choice(words[label])]
                        + rng.sample(filler, 3))
        pages.append(ManPage(name=f'p{i}', label=label, text=text))
    tok = train_tokenizer([p.text for p in pages], vocab_size=400)  # a token per word
    cfg = TextModelConfig(vocab_size=tok.vocab_size, max_len=24, dim=32, depth=1, heads=2)
    out = finetune_encoders({'scratch': (TextTransformer(cfg), False)}, pages, 3, tok,
                            epochs=4, lr=3e-3, fractions=(0.1, 1.0))
    assert out['n_train'] == 168 and out['majority_accuracy'] < 0.45
    assert out['accuracy']['scratch'][1] > 0.9, out['runs']


def test_layer_wise_decay_runs_each_block_at_its_rate_on_the_trainer(tmp_path):
    """The head at the schedule's rate, each block below at `layer_decay` times more slowly."""
    from ssl_robot.text.finetune import SectionTask
    from ssl_robot.train import load_checkpoint, TrainConfig, Trainer
    cfg = TextModelConfig(vocab_size=40, max_len=8, dim=8, depth=2, heads=2)
    seqs = [[2, 5 + i % 7, 6, 3] for i in range(12)]
    data = {'train': (seqs, [i % 2 for i in range(12)]), 'val': (seqs[:4], [0, 1, 0, 1])}
    task = SectionTask(TextTransformer(cfg), False, data, 2, pad_id=0, epoch_items=32,
                       layer_decay=0.5)
    model = task.build_model()
    groups = task.optimizer_groups(model)
    assert [g['lr_scale'] for g in groups] == [1.0, 0.5, 0.25, 0.125]
    assert sum(len(g['params']) for g in groups) == len(list(model.parameters()))
    assert any(p is model.head.weight for p in groups[0]['params'])
    assert any(p is model.encoder.tok_emb.weight for p in groups[3]['params'])
    config = TrainConfig(out_dir=str(tmp_path), epochs=2, batch_size=8, lr=1e-3,
                         schedule='constant', progress=False, device='cpu')
    result = Trainer(task, config).fit()
    assert [r['step'] for r in result.history] == [4, 8]  # 32 items an epoch, 12 examples
    assert (tmp_path / 'best.pt').exists() and 'accuracy' in result.metrics
    saved = load_checkpoint(tmp_path / 'last.pt')['optimizer']['param_groups']
    assert [g['lr'] for g in saved] == pytest.approx([1e-3, 5e-4, 2.5e-4, 1.25e-4])


def test_fine_tuning_over_seeds_reports_mean_and_sd():
    rng = random.Random(1)
    pages = [ManPage(name=f'p{i}', label=i % 2,
                     text=' '.join(rng.sample(['the', 'a', 'robot', 'sees'], 3)
                                   + [('wheel' if i % 2 else 'lamp')]))
             for i in range(60)]
    tok = train_tokenizer([p.text for p in pages], vocab_size=200)
    cfg = TextModelConfig(vocab_size=tok.vocab_size, max_len=12, dim=16, depth=1, heads=2)
    out = finetune_encoders({'scratch': (TextTransformer(cfg), False)}, pages, 2, tok,
                            epochs=2, lr=3e-3, seeds=(0, 1), fractions=(1.0,))
    seeds = out['accuracy_seeds']['scratch']
    assert len(seeds) == 2 and out['seeds'] == [0, 1]
    assert out['accuracy']['scratch'][0] == pytest.approx((seeds[0][0] + seeds[1][0]) / 2)
    assert out['accuracy_sd']['scratch'][0] == pytest.approx(
        abs(seeds[0][0] - seeds[1][0]) / 2 ** 0.5)
