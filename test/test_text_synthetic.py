"""MLM, NSP and RTD on synthetic languages whose answers follow from the context.

Each language has a rule a correct model learns within a few hundred CPU steps, so a
bug in masking, loss positions, attention masks, segment ids or the model's access to
its neighbours shows as a failed accuracy here instead of as a plateau in
`ssl-robot text-eval`:

- chain: every token is a fixed permutation of the one before it (a masked token is
  determined by either neighbour; without them it is one of the ~6 symbols missing from
  its block, the bag-of-words plateau at ~25 %).
- groups: every document writes with the 2 symbols of its group (of 10); a sentence
  from another document is from another group 9 times in 10.

A word-level tokenizer with one token per symbol keeps the vocabulary to the language's
20 symbols, so random replacements (MLM's 10 %, RTD's uniform ablation) are symbols of
the language too and only the context betrays them.
"""
from __future__ import annotations

import random

import pytest
from tokenizers import models, pre_tokenizers, Tokenizer
import torch

from ssl_robot.text import TextError
from ssl_robot.text.model import TextModelConfig
from ssl_robot.text.tasks import MLMTask, NSPTask, RTDTask, TextCorpus
from ssl_robot.text.tokenizer import SPECIAL_TOKENS, TextTokenizer
from ssl_robot.train import TrainConfig, Trainer

SYMBOLS = [f's{i}' for i in range(20)]


def _tokenizer() -> TextTokenizer:
    vocab = {t: i for i, t in enumerate([*SPECIAL_TOKENS, *SYMBOLS])}
    tok = Tokenizer(models.WordLevel(vocab, unk_token=SPECIAL_TOKENS[1]))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    return TextTokenizer(tok)


def chain_docs(n_docs: int, *, seed: int, length: int = 40,
               sentence: int = 8) -> list[list[str]]:
    """Documents of one permutation chain each, cut into sentences."""
    perm = list(range(len(SYMBOLS)))
    random.Random(99).shuffle(perm)  # the language: the same for every split
    rng = random.Random(seed)
    docs = []
    for _ in range(n_docs):
        x, tokens = rng.randrange(len(SYMBOLS)), []
        for _ in range(length):
            tokens.append(SYMBOLS[x])
            x = perm[x]
        docs.append([' '.join(tokens[i:i + sentence]) for i in range(0, length, sentence)])
    return docs


def group_docs(n_docs: int, *, seed: int, n_sentences: int = 8,
               sentence: int = 6) -> list[list[str]]:
    """Documents written with the 2 symbols of one group each."""
    rng = random.Random(seed)
    docs = []
    for _ in range(n_docs):
        group = SYMBOLS[2 * rng.randrange(10):][:2]
        docs.append([' '.join(rng.choice(group) for _ in range(sentence))
                     for _ in range(n_sentences)])
    return docs


def _corpus(make, n_train: int, n_val: int) -> TextCorpus:
    tok = _tokenizer()
    docs = make(n_train, seed=0) + make(n_val, seed=1)
    return TextCorpus.from_sentences(docs, tok, train_idx=range(n_train),
                                     val_idx=range(n_train, n_train + n_val))


def _cfg(corpus: TextCorpus, max_len: int = 16) -> TextModelConfig:
    return TextModelConfig(vocab_size=corpus.tokenizer.vocab_size, max_len=max_len, dim=32,
                           depth=2, heads=4, dropout=0.0)


def _train(task, tmp_path, steps: int, lr: float = 3e-3) -> dict[str, float]:
    torch.manual_seed(0)
    config = TrainConfig(out_dir=str(tmp_path), epochs=1000, max_steps=steps, batch_size=32,
                         lr=lr, warmup_steps=steps // 10, progress=False, device='cpu')
    return Trainer(task, config).fit().metrics


@pytest.fixture(autouse=True)
def one_thread():
    """Train on one thread.

    These models are tiny: two threads on two busy cores were ~20x slower per step than
    one (measured), the spin-waits outweighing the work.
    """
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def test_tokenizer_is_one_token_per_symbol():
    tok = _tokenizer()
    assert tok.vocab_size == 25 and tok.encode('s0 s19') == [5, 24]


@pytest.fixture(scope='module')
def chain() -> TextCorpus:
    return _corpus(chain_docs, 400, 40)


def test_mlm_predicts_masked_tokens_from_their_neighbours(tmp_path, chain):
    m = _train(MLMTask(chain, _cfg(chain)), tmp_path, steps=200)
    # Bag-of-words plateau ~0.25; unigram 0.05.
    assert m['mlm_masked_accuracy'] > 0.9, m
    assert m['mlm_random_accuracy'] > 0.8, m  # a random symbol is corrected from context


def test_rtd_spots_replacements_that_break_the_chain(tmp_path, chain):
    """Uniform replacements are symbols of the language: only the neighbours tell."""
    m = _train(RTDTask(chain, _cfg(chain), replacement='uniform'), tmp_path, steps=200)
    assert m['rtd_auc'] > 0.95, m
    assert m['disc_loss'] < 0.5 * m['prior_disc_loss'], m


def test_nsp_tells_pairs_of_one_group_from_pairs_of_two(tmp_path):
    corpus = _corpus(group_docs, 300, 40)
    m = _train(NSPTask(corpus, _cfg(corpus)), tmp_path, steps=300)
    # At most 0.95: a random other document is of the same group 1 time in 10.
    assert m['nsp_accuracy'] > 0.85, m


def test_nsp_on_one_sentence_texts_says_why_it_cannot_be_built():
    tok = _tokenizer()
    docs = [['s1 s2 s3'], ['s4 s5'], ['s6 s7 s8'], ['s9 s1']]  # reviews, one sentence each
    corpus = TextCorpus.from_sentences(docs, tok, train_idx=[0, 1, 2], val_idx=[3])
    with pytest.raises(TextError, match='NSP cannot be built.*consecutive sentences'):
        NSPTask(corpus, _cfg(corpus)).datasets()
