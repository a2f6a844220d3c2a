"""The text wing's downstream probe runs on the one logistic probe of every wing."""
from __future__ import annotations

import random

from ssl_robot.text.data import Gloss, LEXNAMES
from ssl_robot.text.evaluate import BUDGETS, probe_encoders
from ssl_robot.text.model import TextModelConfig, TextTransformer
from ssl_robot.text.tokenizer import train_tokenizer

#: Three classes, each gloss naming a word of its class: learnable from bag-of-words
#: features of even a random encoder (the probe is what is tested here, not pretraining).
WORDS = {3: ['cat', 'dog', 'horse', 'fish'], 13: ['bread', 'apple', 'soup', 'rice'],
         22: ['grow', 'melt', 'burn', 'fade']}


def _glosses(n: int) -> list[Gloss]:
    rng = random.Random(0)
    out = []
    for i in range(n):
        label = [3, 13, 22][i % 3]
        text = f'a kind of {rng.choice(WORDS[label])} seen {rng.choice(["here", "there"])}'
        out.append(Gloss(pos='n', offset=1000 + i, label=label, text=text))
    return out


def test_probe_encoders_reports_accuracy_per_fraction_above_majority():
    glosses = _glosses(300)
    tok = train_tokenizer([g.text for g in glosses], vocab_size=200, min_frequency=1)
    encoder = TextTransformer(TextModelConfig(vocab_size=tok.vocab_size, max_len=16, dim=32,
                                              depth=1, heads=4, dropout=0.0))
    budget = BUDGETS['small']
    budget = type(budget)(**{**budget.__dict__, 'probe_train': 0, 'probe_test': 0,
                             'probe_steps': 100})
    out = probe_encoders({'random': (encoder, False)}, glosses, tok, budget)
    accs = out['accuracy']['random']
    assert len(accs) == len(out['fractions']) and len(out['l2']['random']) == len(accs)
    assert out['classes'] == len(LEXNAMES)
    # Majority is a third; the full-label probe must find the class words.
    assert accs[-1] > out['majority_accuracy'] + 0.3, (accs, out['majority_accuracy'])
