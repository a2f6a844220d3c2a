"""The four NLP pretext tasks as `Task`s of the shared trainer, and their pure helpers.

- `MLMTask`: BERT's masked LM (15 % of tokens selected; 80 % [MASK], 10 % random,
  10 % unchanged).
- `NSPTask`: next-sentence prediction (B follows A, or is a random sentence of another
  document, 50/50).
- `ARTask`: GPT-style next-token prediction with a causal mask, and a sampler.
- `RTDTask`: ELECTRA's replaced-token detection, a small generator and the discriminator
  trained jointly.

Masking and corruption are small pure functions on tensors (`ssl_robot.text.masking`),
applied in `loss` (with the trainer's seeded RNG) rather than in the dataset, so
validation can use one fixed RNG and report comparable numbers every epoch.
"""
from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
import math
import random
from typing import Any

import numpy as np
import torch
from torch import nn
import torch.nn.functional as F
from torch.utils.data import Dataset

from ssl_robot.metrics import roc_auc
from ssl_robot.text import TextError
from ssl_robot.text.data import build_nsp_pairs, NSPPair
from ssl_robot.text.masking import mask_tokens, select_positions
from ssl_robot.text.model import (
    CausalLMModel,
    MaskedLMModel,
    NextSentenceModel,
    ReplacedTokenModel,
    TextModelConfig,
)
from ssl_robot.text.tokenizer import TextTokenizer
from ssl_robot.train import Task

#: Seed of the fixed RNG that masks/corrupts validation batches.
VAL_SEED = 1234


# ----------------------------------------------------------------------------- helpers

def pack_blocks(docs: Sequence[Sequence[Sequence[int]]], block_len: int, *,
                sep_id: int, what: str = 'corpus') -> torch.Tensor:
    """Concatenate documents' sentence tokens ([SEP] after each document) into blocks.

    Args:
        docs: Documents, each a list of sentences, each a list of token ids.
        block_len: Tokens per block.
        sep_id: Separator appended after every document.
        what: What `docs` are, for the error message.

    Returns:
        Long tensor [N, block_len] (the last partial block is dropped).

    Raises:
        TextError: When there is not even one block of text.
    """
    stream: list[int] = []
    for doc in docs:
        for sentence in doc:
            stream.extend(sentence)
        stream.append(sep_id)
    n = len(stream) // block_len
    if n == 0:
        raise TextError(f'{what} too small: {len(stream)} tokens, a block is {block_len} '
                        '(add text or lower --max-len)')
    return torch.tensor(stream[:n * block_len], dtype=torch.long).view(n, block_len)


def build_pair_input(tokens_a: Sequence[int], tokens_b: Sequence[int], *, max_len: int,
                     cls_id: int, sep_id: int) -> tuple[list[int], list[int]]:
    """[CLS] A [SEP] B [SEP] with segment ids, the longer side truncated to fit `max_len`."""
    a, b = list(tokens_a), list(tokens_b)
    while len(a) + len(b) > max_len - 3:
        (a if len(a) >= len(b) else b).pop()
    ids = [cls_id, *a, sep_id, *b, sep_id]
    types = [0] * (len(a) + 2) + [1] * (len(b) + 1)
    return ids, types


def pad_sequences(seqs: Sequence[Sequence[int]], pad_id: int) -> tuple[torch.Tensor,
                                                                      torch.Tensor]:
    """Right-pad to the longest sequence; returns (ids, attention_mask) [B, T] int64."""
    length = max(len(s) for s in seqs)
    ids = torch.full((len(seqs), length), pad_id, dtype=torch.long)
    mask = torch.zeros((len(seqs), length), dtype=torch.long)
    for i, s in enumerate(seqs):
        ids[i, :len(s)] = torch.tensor(s, dtype=torch.long)
        mask[i, :len(s)] = 1
    return ids, mask


def sample_next_token(logits: torch.Tensor, *, temperature: float = 1.0, top_k: int = 0,
                      generator: torch.Generator | None = None) -> torch.Tensor:
    """Sample ids [B] from last-position logits [B, V] (temperature 0: greedy)."""
    if temperature <= 0:
        return logits.argmax(-1)
    logits = logits / temperature
    if top_k:
        kth = torch.topk(logits, min(top_k, logits.shape[-1]), dim=-1).values[:, -1:]
        logits = logits.masked_fill(logits < kth, float('-inf'))
    return torch.multinomial(torch.softmax(logits, -1), 1, generator=generator).squeeze(1)


# ----------------------------------------------------------------------------- corpus

@dataclass
class TextCorpus:
    """A tokenised corpus split by document.

    Attributes:
        tokenizer: The tokenizer (trained on the training documents).
        train: Training documents: lists of sentences of token ids.
        val: Held-out documents.
    """

    tokenizer: TextTokenizer
    train: list[list[list[int]]]
    val: list[list[list[int]]]

    @classmethod
    def from_sentences(cls, docs: Sequence[Sequence[str]], tokenizer: TextTokenizer, *,
                       train_idx: Sequence[int], val_idx: Sequence[int]) -> TextCorpus:
        """Tokenise documents (lists of sentences) and split them by index."""
        def encode(indices: Sequence[int]) -> list[list[list[int]]]:
            out = []
            for i in indices:
                sents = [s for s in tokenizer.encode_batch(list(docs[i])) if s]
                if sents:
                    out.append(sents)
            return out
        return cls(tokenizer=tokenizer, train=encode(train_idx), val=encode(val_idx))

    def n_tokens(self, split: str = 'train') -> int:
        """Tokens in a split."""
        return sum(len(s) for d in getattr(self, split) for s in d)


class _Rows(Dataset):
    """Rows of a tensor (or items of a list) as a dataset."""

    def __init__(self, rows: Any) -> None:
        self.rows = rows

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, index: int) -> Any:
        return self.rows[index]


class _FreshPairs(Dataset):
    """NSP pairs drawn afresh on every read: item i is the pair after the i-th anchor.

    Anchors are the sentences with a successor, in a seeded order. Whether B follows A,
    and which sentence of which other document B is otherwise, come from torch's global
    RNG, which the trainer seeds per epoch (so a resumed run repeats an uninterrupted
    one and every epoch sees other negatives).
    """

    def __init__(self, task: NSPTask, docs: list[list[list[int]]], seed: int) -> None:
        self.task, self.docs = task, docs
        self.anchors = [(d, s) for d, doc in enumerate(docs) for s in range(len(doc) - 1)]
        random.Random(seed).shuffle(self.anchors)  # a limited subset spans many documents
        self.others = [d for d, doc in enumerate(docs) if doc]

    def limited(self, n: int) -> _FreshPairs:
        """The same pairs from the first `n` anchors only."""
        self.anchors = self.anchors[:n]
        return self

    def __len__(self) -> int:
        return len(self.anchors)

    def __getitem__(self, index: int) -> tuple:
        doc, sent = self.anchors[index]
        if float(torch.rand(())) < 0.5:
            return self.task.pair_example(self.docs, NSPPair(doc, sent, doc, sent + 1, True))
        other = doc
        while other == doc:
            other = self.others[int(torch.randint(len(self.others), ()))]
        pair = NSPPair(doc, sent, other, int(torch.randint(len(self.docs[other]), ())), False)
        return self.task.pair_example(self.docs, pair)


# ----------------------------------------------------------------------------- tasks

class TextTask(Task):
    """Shared parts of the text tasks: corpus, model size, masking constants.

    Args:
        corpus: Tokenised corpus.
        model_cfg: Model size (its vocab_size must match the tokenizer).
        max_train_blocks: Use at most this many training sequences (0: all).
    """

    causal = False
    #: This task's peak learning rate as a fraction of the budget's.
    lr_scale = 1.0

    def __init__(self, corpus: TextCorpus, model_cfg: TextModelConfig, *,
                 max_train_blocks: int = 0) -> None:
        if model_cfg.vocab_size != corpus.tokenizer.vocab_size:
            raise TextError(f'model vocab_size {model_cfg.vocab_size} != tokenizer '
                            f'{corpus.tokenizer.vocab_size}')
        if not corpus.train or not corpus.val:
            raise TextError('the corpus needs training and held-out documents')
        self.corpus = corpus
        self.tok = corpus.tokenizer
        self.model_cfg = model_cfg
        self.max_train_blocks = max_train_blocks
        self.model: nn.Module | None = None

    def params(self) -> dict[str, Any]:
        """Task parameters saved with the run."""
        return {'model': self.model_cfg.to_dict(), 'max_train_blocks': self.max_train_blocks}

    def _limit(self, rows: Any) -> Any:
        return rows[:self.max_train_blocks] if self.max_train_blocks else rows

    def _maskable(self, ids: torch.Tensor) -> torch.Tensor:
        return ids >= self.tok.num_special

    def collate(self, items: list[Any]) -> dict[str, torch.Tensor]:
        ids = torch.stack(items)
        return {'ids': ids, 'attention_mask': torch.ones_like(ids)}


class MLMTask(TextTask):
    """Masked language modelling (BERT).

    Args:
        mask_prob: Fraction of tokens selected for prediction.
    """

    name = 'mlm'
    primary_metric = 'mlm_accuracy'
    higher_is_better = True

    def __init__(self, corpus: TextCorpus, model_cfg: TextModelConfig, *,
                 mask_prob: float = 0.15, max_train_blocks: int = 0) -> None:
        super().__init__(corpus, model_cfg, max_train_blocks=max_train_blocks)
        self.mask_prob = mask_prob

    def build_model(self) -> nn.Module:
        self.model = MaskedLMModel(self.model_cfg)
        return self.model

    def _blocks(self, docs: list[list[list[int]]], what: str = 'corpus') -> torch.Tensor:
        body = pack_blocks(docs, self.model_cfg.max_len - 2, sep_id=self.tok.sep_id,
                           what=what)
        cls = torch.full((len(body), 1), self.tok.cls_id, dtype=torch.long)
        sep = torch.full((len(body), 1), self.tok.sep_id, dtype=torch.long)
        return torch.cat([cls, body, sep], dim=1)

    def datasets(self) -> tuple[Dataset, Dataset]:
        return (_Rows(self._limit(self._blocks(self.corpus.train, 'the training split'))),
                _Rows(self._blocks(self.corpus.val, 'the held-out split')))

    def _mask(self, batch: dict[str, torch.Tensor], generator: torch.Generator | None):
        return mask_tokens(batch['ids'], maskable=self._maskable(batch['ids']),
                           mask_id=self.tok.mask_id, random_low=self.tok.num_special,
                           random_high=self.tok.vocab_size, prob=self.mask_prob,
                           generator=generator)

    def _step(self, model: nn.Module, batch: dict[str, torch.Tensor],
              generator: torch.Generator | None = None):
        """Loss and (correct, count) per kind of selected position.

        Kinds: shown as [MASK], as a random token, left as it was.
        """
        inputs, labels, selected = self._mask(batch, generator)
        logits = model(inputs, batch['attention_mask'], selected)
        target = labels[selected]
        loss = F.cross_entropy(logits, target)
        hit = logits.argmax(-1) == target
        shown = inputs[selected]
        kinds = {'masked': shown == self.tok.mask_id, 'kept': shown == target}
        kinds['random'] = ~(kinds['masked'] | kinds['kept'])
        counts = {k: (int((hit & m).sum()), int(m.sum())) for k, m in kinds.items()}
        return loss, counts

    def loss(self, model, batch):
        loss, counts = self._step(model, batch)
        correct, count = (sum(c[i] for c in counts.values()) for i in (0, 1))
        return loss, {'mlm_accuracy': correct / max(count, 1)}

    def evaluate(self, model, loader):
        """Held-out loss and accuracy, over all selected positions and per kind.

        Over all selected positions is BERT's figure; `mlm_masked_accuracy`, on the [MASK]
        positions only, is the one that a model copying its input cannot inflate (a kept
        token is in plain sight).
        """
        generator = torch.Generator().manual_seed(VAL_SEED)
        total = 0.0
        sums = {k: [0, 0] for k in ('masked', 'kept', 'random')}
        with torch.no_grad():
            for batch in loader:
                loss, counts = self._step(model, batch, generator)
                total += float(loss) * sum(n for _, n in counts.values())
                for k, (c, n) in counts.items():
                    sums[k][0] += c
                    sums[k][1] += n
        correct = sum(c for c, _ in sums.values())
        count = max(sum(n for _, n in sums.values()), 1)
        return {'val_loss': total / count, 'mlm_accuracy': correct / count,
                **{f'mlm_{k}_accuracy': c / max(n, 1) for k, (c, n) in sums.items()}}


class NSPTask(TextTask):
    """Next-sentence prediction: is sentence B the one after sentence A?

    Args:
        mlm_weight: Weight of a masked-LM loss on the same pairs (BERT trains NSP only
            jointly with MLM; 0: NSP alone). Held-out NSP accuracy is measured on
            unmasked pairs either way.
        mask_prob: Selection probability of that masking.
        segments: A and B are text segments rather than single sentences (BERT's and
            RoBERTa's segment pairs): A is the sentences up to and including A's
            sentence, B the sentences from B's on, each up to half of `max_len`; is-next
            still means that B's first sentence follows A's last.
        lr_scale: Peak learning rate as a fraction of the budget's: NSP's one bit per
            pair did not learn at the rate that suits MLM
            (`benchmarks/eval_text_plateau.py --experiment nsp`).
        dynamic: Training pairs are drawn afresh every time one is read (is-next or
            not, and the other document's sentence, from torch's RNG, which the trainer
            seeds per epoch): a pass never repeats the last one's negatives (RoBERTa's
            dynamic masking, for pairs). False: one fixed set of pairs, as in BERT's
            pre-generated data. Held-out pairs are fixed either way.
        pooling: The classifier's features (`NextSentenceModel`): 'cls' or 'segments'.
    """

    name = 'nsp'
    primary_metric = 'nsp_accuracy'
    higher_is_better = True

    def __init__(self, corpus: TextCorpus, model_cfg: TextModelConfig, *, seed: int = 0,
                 mlm_weight: float = 0.0, mask_prob: float = 0.15, segments: bool = True,
                 lr_scale: float = 0.25, dynamic: bool = True, pooling: str = 'segments',
                 max_train_blocks: int = 0) -> None:
        super().__init__(corpus, model_cfg, max_train_blocks=max_train_blocks)
        self.seed = seed
        self.mlm_weight = mlm_weight
        self.mask_prob = mask_prob
        self.segments = segments
        self.lr_scale = lr_scale
        self.dynamic = dynamic
        self.pooling = pooling

    def params(self) -> dict[str, Any]:
        return {**super().params(), 'mlm_weight': self.mlm_weight,
                'mask_prob': self.mask_prob, 'segments': self.segments,
                'lr_scale': self.lr_scale, 'dynamic': self.dynamic, 'pooling': self.pooling}

    def build_model(self) -> nn.Module:
        self.model = NextSentenceModel(self.model_cfg, lm_head=self.mlm_weight > 0,
                                       pooling=self.pooling)
        return self.model

    def pair_example(self, docs: list[list[list[int]]], pair: NSPPair) -> tuple:
        """(ids, segment ids, is_next) of one pair of `docs`."""
        a, b = docs[pair.doc_a][pair.sent_a], docs[pair.doc_b][pair.sent_b]
        if self.segments:
            half = (self.model_cfg.max_len - 3) // 2
            a, b = list(a), list(b)
            for sent in reversed(docs[pair.doc_a][:pair.sent_a]):  # earlier sentences
                if len(a) >= half:
                    break
                a = list(sent) + a
            for sent in docs[pair.doc_b][pair.sent_b + 1:]:  # later sentences
                if len(b) >= half:
                    break
                b = b + list(sent)
            a, b = a[-half:], b[:half]  # keep the tokens next to the boundary
        ids, types = build_pair_input(a, b, max_len=self.model_cfg.max_len,
                                      cls_id=self.tok.cls_id, sep_id=self.tok.sep_id)
        return ids, types, int(pair.is_next)

    def examples(self, docs: list[list[list[int]]], seed: int) -> list[tuple]:
        """(ids, segment ids, is_next) for every NSP pair of `docs` (one fixed draw)."""
        pairs = build_nsp_pairs([len(d) for d in docs], seed=seed)
        # Shuffle before limiting so a subset still spans many documents.
        random.Random(seed).shuffle(pairs)
        return [self.pair_example(docs, p) for p in pairs]

    def datasets(self) -> tuple[Dataset, Dataset]:
        """Pairs of the training and the held-out documents.

        Raises:
            TextError: When a split has no two consecutive sentences in one document
                (a corpus of one-sentence texts) or fewer than two documents.
        """
        splits = []
        for split, seed in (('train', self.seed), ('held-out', self.seed + 1)):
            docs = self.corpus.train if split == 'train' else self.corpus.val
            if not any(len(d) >= 2 for d in docs) or len(docs) < 2:
                raise TextError(
                    f'NSP cannot be built: the {split} split has {len(docs)} document(s) '
                    f'and {sum(len(d) >= 2 for d in docs)} with two or more sentences; NSP '
                    'needs consecutive sentences within documents and at least two '
                    'documents (put one text per file, several sentences each, or train '
                    'mlm, ar or rtd on short texts)')
            if split == 'train' and self.dynamic:
                splits.append(_FreshPairs(self, docs, seed))
            else:
                splits.append(_Rows(self.examples(docs, seed)))
        train = splits[0]
        if self.max_train_blocks:
            train = (_Rows(self._limit(train.rows)) if isinstance(train, _Rows)
                     else train.limited(self.max_train_blocks))
        return train, splits[1]

    def collate(self, items):
        ids, mask = pad_sequences([i[0] for i in items], self.tok.pad_id)
        types, _ = pad_sequences([i[1] for i in items], 0)
        return {'ids': ids, 'attention_mask': mask, 'token_type_ids': types,
                'label': torch.tensor([i[2] for i in items], dtype=torch.long)}

    def loss(self, model, batch):
        if not self.mlm_weight:
            logits = model(batch['ids'], batch['attention_mask'], batch['token_type_ids'])
            loss = F.cross_entropy(logits, batch['label'])
            acc = float((logits.argmax(-1) == batch['label']).float().mean())
            return loss, {'nsp_accuracy': acc}
        ids = batch['ids']
        inputs, labels, selected = mask_tokens(
            ids, maskable=self._maskable(ids) & batch['attention_mask'].bool(),
            mask_id=self.tok.mask_id, random_low=self.tok.num_special,
            random_high=self.tok.vocab_size, prob=self.mask_prob)
        logits, token_logits = model(inputs, batch['attention_mask'],
                                     batch['token_type_ids'], selected)
        nsp_loss = F.cross_entropy(logits, batch['label'])
        mlm_loss = F.cross_entropy(token_logits, labels[selected])
        acc = float((logits.argmax(-1) == batch['label']).float().mean())
        return nsp_loss + self.mlm_weight * mlm_loss, {'nsp_accuracy': acc,
                                                       'mlm_loss': mlm_loss.item()}

    def evaluate(self, model, loader):
        total, correct, count = 0.0, 0, 0
        with torch.no_grad():
            for batch in loader:
                logits = model(batch['ids'], batch['attention_mask'], batch['token_type_ids'])
                n = len(batch['label'])
                total += float(F.cross_entropy(logits, batch['label'])) * n
                correct += int((logits.argmax(-1) == batch['label']).sum())
                count += n
        return {'val_loss': total / max(count, 1), 'nsp_accuracy': correct / max(count, 1)}


class ARTask(TextTask):
    """Autoregressive next-token prediction (GPT) with a causal mask."""

    name = 'ar'
    primary_metric = 'perplexity'
    higher_is_better = False
    causal = True

    def build_model(self) -> nn.Module:
        self.model = CausalLMModel(self.model_cfg)
        return self.model

    def datasets(self) -> tuple[Dataset, Dataset]:
        # max_len + 1 tokens per block: inputs are the first max_len, targets the last.
        def blocks(docs, what):
            return pack_blocks(docs, self.model_cfg.max_len + 1, sep_id=self.tok.sep_id,
                               what=what)
        return (_Rows(self._limit(blocks(self.corpus.train, 'the training split'))),
                _Rows(blocks(self.corpus.val, 'the held-out split')))

    def collate(self, items):
        return {'ids': torch.stack(items)}

    def loss(self, model, batch):
        ids = batch['ids']
        logits = model(ids[:, :-1])
        loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), ids[:, 1:].reshape(-1))
        return loss, {}

    def evaluate(self, model, loader):
        total, count = 0.0, 0
        with torch.no_grad():
            for batch in loader:
                loss, _ = self.loss(model, batch)
                n = batch['ids'][:, 1:].numel()
                total, count = total + float(loss) * n, count + n
        nll = total / max(count, 1)
        return {'val_loss': nll, 'perplexity': math.exp(min(nll, 50.0))}

    def generate(self, prompt: str, n: int = 40, *, temperature: float = 1.0, top_k: int = 0,
                 model: nn.Module | None = None, seed: int | None = None) -> str:
        """Continue `prompt` by `n` sampled tokens.

        Args:
            prompt: Text to continue (may be empty: generation then starts after [SEP],
                the document boundary token).
            n: Tokens to generate.
            temperature: Softmax temperature (0: greedy).
            top_k: Sample among the k most likely tokens (0: all).
            model: The causal LM (default: the one this task built and trained).
            seed: Seeds the sampler (None: torch's global RNG).

        Returns:
            The prompt followed by the generated text.

        Raises:
            TextError: When there is no model.
        """
        model = model or self.model
        if model is None:
            raise TextError('ARTask.generate: no trained model (train first or pass model=)')
        generator = torch.Generator().manual_seed(seed) if seed is not None else None
        device = next(model.parameters()).device
        ids = [self.tok.sep_id] + self.tok.encode(prompt)
        was_training = model.training
        model.eval()
        with torch.no_grad():
            for _ in range(n):
                context = torch.tensor([ids[-self.model_cfg.max_len:]], device=device)
                logits = model(context)[:, -1].float().cpu()
                ids.append(int(sample_next_token(logits, temperature=temperature,
                                                 top_k=top_k, generator=generator)))
        model.train(was_training)
        return self.tok.decode(ids[1:])  # prompt and continuation, spaces kept


class RTDTask(MLMTask):
    """Replaced-token detection (ELECTRA): generator MLM loss + weighted discriminator loss.

    Args:
        disc_weight: Weight of the discriminator's loss (ELECTRA uses 50).
        generator_scale: Generator hidden size as a fraction of the discriminator's.
        replacement: 'generator' (ELECTRA) or 'uniform', an ablation: replacements drawn
            uniformly from the non-special vocabulary (easy to spot), to check that the
            detector learns at all when the generator's replacements are too hard.
    """

    name = 'rtd'
    primary_metric = 'rtd_accuracy'
    higher_is_better = True

    def __init__(self, corpus: TextCorpus, model_cfg: TextModelConfig, *,
                 mask_prob: float = 0.15, disc_weight: float = 50.0,
                 generator_scale: float = 0.5, replacement: str = 'generator',
                 max_train_blocks: int = 0) -> None:
        super().__init__(corpus, model_cfg, mask_prob=mask_prob,
                         max_train_blocks=max_train_blocks)
        if replacement not in ('generator', 'uniform'):
            raise ValueError(f"replacement {replacement!r}: use 'generator' or 'uniform'")
        self.disc_weight = disc_weight
        self.replacement = replacement
        heads = max(1, model_cfg.heads // 2) if generator_scale < 1 else model_cfg.heads
        dim = max(heads, int(model_cfg.dim * generator_scale) // heads * heads)
        self.generator_cfg = TextModelConfig(**{**model_cfg.to_dict(), 'dim': dim,
                                                'heads': heads})

    def params(self) -> dict[str, Any]:
        return {**super().params(), 'generator': self.generator_cfg.to_dict(),
                'disc_weight': self.disc_weight, 'replacement': self.replacement}

    def build_model(self) -> nn.Module:
        self.model = ReplacedTokenModel(
            self.model_cfg, self.generator_cfg,
            uniform_from=self.tok.num_special if self.replacement == 'uniform' else None)
        return self.model

    def _rtd(self, model, batch, generator: torch.Generator | None = None):
        ids = batch['ids']
        selected = select_positions(self._maskable(ids), self.mask_prob, generator=generator)
        masked = torch.where(selected, torch.full_like(ids, self.tok.mask_id), ids)
        out = model(masked, batch['attention_mask'], ids, selected, sample_generator=generator)
        gen_loss = F.cross_entropy(out['gen_logits'], ids[selected])
        # The discriminator judges every real token (specials are never replaced).
        real = batch['attention_mask'].bool()
        target = out['replaced'][real].float()
        disc_loss = F.binary_cross_entropy_with_logits(out['disc_logits'][real], target)
        pred = out['disc_logits'][real] > 0
        stats = {'correct': int((pred == target.bool()).sum()), 'tokens': int(real.sum()),
                 'scores': out['disc_logits'][real].detach(), 'targets': target.bool(),
                 'replaced': int(target.sum()),
                 'gen_correct': int((out['gen_logits'].argmax(-1)
                                     == ids[selected]).sum()),
                 'selected': int(selected.sum())}
        return gen_loss + self.disc_weight * disc_loss, gen_loss, disc_loss, stats

    def loss(self, model, batch):
        loss, gen_loss, disc_loss, stats = self._rtd(model, batch)
        return loss, {'gen_loss': gen_loss.item(), 'disc_loss': disc_loss.item(),
                      'rtd_accuracy': stats['correct'] / max(stats['tokens'], 1)}

    def evaluate(self, model, loader):
        generator = torch.Generator().manual_seed(VAL_SEED)
        sums = {'loss': 0.0, 'disc_loss': 0.0, 'batches': 0}
        counts = {'correct': 0, 'tokens': 0, 'replaced': 0, 'gen_correct': 0, 'selected': 0}
        scores, targets = [], []
        with torch.no_grad():
            for batch in loader:
                loss, _, disc_loss, stats = self._rtd(model, batch, generator)
                sums['loss'] += float(loss)
                sums['disc_loss'] += float(disc_loss)
                sums['batches'] += 1
                for key in counts:
                    counts[key] += stats[key]
                scores.append(stats['scores'].float().numpy())
                targets.append(stats['targets'].numpy())
        tokens = max(counts['tokens'], 1)
        p = counts['replaced'] / tokens
        prior_loss = (-(p * math.log(p) + (1 - p) * math.log(1 - p))
                      if 0 < p < 1 else 0.0)
        return {'val_loss': sums['loss'] / max(sums['batches'], 1),
                'disc_loss': sums['disc_loss'] / max(sums['batches'], 1),
                # The loss of always answering the replaced fraction: what a
                # discriminator that learned nothing but the prior scores.
                'prior_disc_loss': prior_loss,
                # Threshold-free: does it rank replaced tokens above original ones?
                'rtd_auc': roc_auc(np.concatenate(scores), np.concatenate(targets))
                if scores else float('nan'),
                'rtd_accuracy': counts['correct'] / tokens,
                'all_original_accuracy': 1.0 - counts['replaced'] / tokens,
                'replaced_fraction': counts['replaced'] / tokens,
                'generator_accuracy': counts['gen_correct'] / max(counts['selected'], 1)}


#: Task classes by name.
TASKS: dict[str, type[TextTask]] = {'mlm': MLMTask, 'nsp': NSPTask, 'ar': ARTask,
                                    'rtd': RTDTask}


def iter_chunks(seq: Sequence[Any], size: int) -> Iterable[Sequence[Any]]:
    """Consecutive chunks of `seq` of at most `size` items."""
    for start in range(0, len(seq), size):
        yield seq[start:start + size]
