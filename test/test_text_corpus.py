"""A user's own corpus (`--corpus DIR`) of short texts: reviews, log lines, short docs.

Each case either builds the task or fails with a message that says why and what to do.
"""
from __future__ import annotations

import pytest

from ssl_robot.text import TextError
from ssl_robot.text.data import clean_plain, load_corpus
from ssl_robot.text.model import TextModelConfig
from ssl_robot.text.tasks import ARTask, MLMTask, NSPTask, TextCorpus
from ssl_robot.text.tokenizer import train_tokenizer

REVIEWS = ['Great little robot, the wheels are quiet.', 'It broke after two days.',
           'The battery lasts all afternoon!', 'Too loud for a flat.',
           'Finds its dock every time.', 'The app keeps crashing on my phone.']
LOG = ['2026-12-01 10:00:01 INFO motor 3 started', '2026-12-01 10:00:02 WARN imu 0 late 12ms',
       '2026-12-01 10:00:02 INFO dock found at 1.2 m', '2026-12-01 10:00:05 ERROR bump 2']


def _write(folder, texts: list[str], suffix: str = '.txt') -> None:
    folder.mkdir(exist_ok=True)
    for i, text in enumerate(texts):
        (folder / f'text{i:03d}{suffix}').write_text(text + '\n')


def _corpus(docs: list[list[str]], max_len: int = 16) -> tuple[TextCorpus, TextModelConfig]:
    tok = train_tokenizer((' '.join(d) for d in docs), vocab_size=300)
    n_val = max(1, len(docs) // 4)
    corpus = TextCorpus.from_sentences(docs, tok, train_idx=range(n_val, len(docs)),
                                       val_idx=range(n_val))
    return corpus, TextModelConfig(vocab_size=tok.vocab_size, max_len=max_len, dim=16,
                                   depth=1, heads=2)


def test_plain_text_lines_or_blank_line_paragraphs():
    assert clean_plain('one line\nsecond   line\n\n') == ['one line', 'second line']
    wrapped = 'A paragraph wrapped\nover two lines.\n\nAnother one.\n'
    assert clean_plain(wrapped) == ['A paragraph wrapped over two lines.', 'Another one.']
    assert clean_plain('12:00 42\n---\nok 1\n') == ['ok 1']  # a paragraph needs a letter


def test_one_review_per_file_trains_mlm_and_nsp_says_why_not(tmp_path):
    _write(tmp_path / 'reviews', REVIEWS * 4)  # 24 files, one sentence each
    docs = load_corpus(tmp_path / 'reviews')
    assert len(docs) == 24 and all(len(d) == 1 for d in docs)  # kept, not dropped
    corpus, cfg = _corpus(docs)
    train, val = MLMTask(corpus, cfg).datasets()
    assert len(train) > 0 and len(val) > 0
    with pytest.raises(TextError, match='NSP cannot be built.*one text per file, several '
                                        'sentences'):
        NSPTask(corpus, cfg).datasets()


def test_log_lines_are_sentences_and_give_nsp_pairs(tmp_path):
    _write(tmp_path / 'logs', ['\n'.join(LOG)] * 8)  # 8 log files of 4 lines
    docs = load_corpus(tmp_path / 'logs')
    assert docs[0] == LOG  # one sentence per line, digits and all
    corpus, cfg = _corpus(docs, max_len=32)
    train, val = NSPTask(corpus, cfg).datasets()
    assert len(train) == 6 * 3 and len(val) == 2 * 3  # one pair per line with a successor


def test_one_file_of_short_texts_says_to_split_it(tmp_path, capsys):
    from ssl_robot.cli import main
    _write(tmp_path / 'one', ['\n'.join(REVIEWS * 20)])
    assert main(['text-pretrain', '--task', 'mlm', '--corpus', str(tmp_path / 'one'),
                 '--out', str(tmp_path / 'run')]) == 2
    err = capsys.readouterr().err
    assert 'got 1' in err and 'a document is one file' in err


def test_no_prose_and_too_little_text_are_explained(tmp_path):
    _write(tmp_path / 'code', ['.. code-block:: python\n\n    x = 1\n'] * 3, suffix='.rst')
    with pytest.raises(TextError, match=r'no prose sentences found in 3 file\(s\)'):
        load_corpus(tmp_path / 'code')
    corpus, cfg = _corpus([[r] for r in REVIEWS], max_len=64)
    with pytest.raises(TextError, match='the held-out split too small.*lower --max-len'):
        ARTask(corpus, cfg).datasets()
