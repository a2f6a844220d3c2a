"""Small synthetic corpora for the text tests (no Debian data needed)."""
from __future__ import annotations

import random

POOL = ['robot', 'wheel', 'box', 'lamp', 'door', 'path', 'wall', 'table', 'cable', 'motor']
VERBS = ['moves', 'holds', 'sees', 'pushes', 'finds', 'keeps']
ADJS = ['red', 'old', 'small', 'quiet']
# One sentence template per document style: a random sentence of another document has
# another style 3 times in 4, which NSP can learn in a few steps.
TEMPLATES = ['The {a} {verb} the {b}.', 'A {adj} {a} is near the {b} today.',
             'Every {a} and every {b} {verb} slowly.', 'Why does the {a} {verb} a {b}?']


def synthetic_docs(n_docs: int = 16, n_sentences: int = 24, seed: int = 0) -> list[list[str]]:
    """Documents of templated sentences over a shared word pool.

    Documents of templated sentences over a shared word pool; consecutive sentences
    share a word and each document keeps one style, so every task has something to
    learn that carries over to held-out documents.
    """
    rng = random.Random(seed)
    docs = []
    for d in range(n_docs):
        topic = rng.sample(POOL, 6)
        sentences = []
        for i in range(n_sentences):
            sentences.append(TEMPLATES[d % len(TEMPLATES)].format(
                a=topic[i % 6], b=topic[(i + 1) % 6], verb=rng.choice(VERBS),
                adj=rng.choice(ADJS)))
        docs.append(sentences)
    return docs
