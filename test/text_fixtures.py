"""Small synthetic corpora for the text tests (no Debian data needed)."""
from __future__ import annotations

import random

SHARED = ['the', 'a', 'with', 'and', 'of', 'under', 'near']
VERBS = ['moves', 'holds', 'sees', 'pushes', 'finds', 'keeps']


def synthetic_docs(n_docs: int = 12, n_sentences: int = 24, seed: int = 0) -> list[list[str]]:
    """Documents of templated sentences; each document has its own topic words and
    consecutive sentences share a word, so every task has something to learn."""
    rng = random.Random(seed)
    docs = []
    for d in range(n_docs):
        topic = [f'{stem}{d}' for stem in ('robot', 'wheel', 'box', 'lamp', 'door', 'path')]
        sentences = []
        for i in range(n_sentences):
            a, b = topic[i % len(topic)], topic[(i + 1) % len(topic)]
            sentences.append(f'The {a} {rng.choice(VERBS)} {rng.choice(SHARED)} {b} '
                             f'{rng.choice(SHARED)} {a}.')
        docs.append(sentences)
    return docs
