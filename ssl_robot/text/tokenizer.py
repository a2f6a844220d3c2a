"""A byte-level BPE subword tokenizer trained on the corpus with Hugging Face `tokenizers`.

Byte-level pre-tokenisation makes every string encodable (no [UNK] in practice) and the
decode of an encode the exact original text, which the AR sampler relies on.
"""
from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path

from tokenizers import decoders, models, normalizers, pre_tokenizers, Tokenizer, trainers

from ssl_robot.text import TextError

PAD, UNK, CLS, SEP, MASK = '[PAD]', '[UNK]', '[CLS]', '[SEP]', '[MASK]'
#: Special tokens, in id order (so [PAD] is 0 and the regular vocabulary starts at 5).
SPECIAL_TOKENS = (PAD, UNK, CLS, SEP, MASK)


class TextTokenizer:
    """A trained subword tokenizer with the ids of its special tokens.

    Attributes:
        pad_id, unk_id, cls_id, sep_id, mask_id: Ids of the special tokens.
        num_special: Number of special tokens (ids below it are special).
    """

    def __init__(self, tokenizer: Tokenizer) -> None:
        self.tokenizer = tokenizer
        ids = [tokenizer.token_to_id(t) for t in SPECIAL_TOKENS]
        if ids != list(range(len(SPECIAL_TOKENS))):
            raise TextError(f'tokenizer lacks the special tokens {SPECIAL_TOKENS} as ids 0-4')
        self.pad_id, self.unk_id, self.cls_id, self.sep_id, self.mask_id = ids
        self.num_special = len(SPECIAL_TOKENS)

    @property
    def vocab_size(self) -> int:
        """Number of ids, special tokens included."""
        return self.tokenizer.get_vocab_size()

    def encode(self, text: str) -> list[int]:
        """Token ids of `text` (no special tokens added)."""
        return self.tokenizer.encode(text, add_special_tokens=False).ids

    def encode_batch(self, texts: Sequence[str]) -> list[list[int]]:
        """Token ids of many texts (parallel in Rust)."""
        return [e.ids for e in self.tokenizer.encode_batch(list(texts),
                                                           add_special_tokens=False)]

    def decode(self, ids: Iterable[int]) -> str:
        """Text of `ids`, special tokens dropped (without the prefix space encoding adds)."""
        text = self.tokenizer.decode([int(i) for i in ids], skip_special_tokens=True)
        return text[1:] if text.startswith(' ') else text

    def save(self, path: Path | str) -> Path:
        """Write the tokenizer as one JSON file."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        self.tokenizer.save(str(path))
        return path

    @classmethod
    def load(cls, path: Path | str) -> TextTokenizer:
        """Read a tokenizer JSON written by `save`.

        Raises:
            TextError: When the file is missing or not a tokenizer of this package.
        """
        path = Path(path)
        if not path.exists():
            raise TextError(f'{path}: no such tokenizer file')
        try:
            return cls(Tokenizer.from_file(str(path)))
        except TextError:
            raise
        except Exception as exc:
            raise TextError(f'{path}: not a readable tokenizer: {exc}') from exc


def train_tokenizer(texts: Iterable[str], *, vocab_size: int = 4000,
                    min_frequency: int = 2) -> TextTokenizer:
    """Train a byte-level BPE tokenizer on `texts`.

    Args:
        texts: Training text (e.g. the training documents only, so the held-out text
            is unseen by the tokenizer as well).
        vocab_size: Target vocabulary size, special tokens included.
        min_frequency: Minimum pair frequency for a merge.

    Returns:
        The trained tokenizer.

    Raises:
        TextError: When `texts` is empty.
    """
    texts = [t for t in texts if t]
    if not texts:
        raise TextError('cannot train a tokenizer on empty text')
    tok = Tokenizer(models.BPE(unk_token=UNK))
    tok.normalizer = normalizers.NFC()
    # Sentences are encoded one by one and packed back to back: a prefix space makes a
    # sentence's first word the same token as mid-text ("Ġword"), and keeps the space
    # between sentences when ids are decoded.
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=True, use_regex=True)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size, min_frequency=min_frequency, special_tokens=list(SPECIAL_TOKENS),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train_from_iterator(texts, trainer=trainer, length=len(texts))
    return TextTokenizer(tok)
