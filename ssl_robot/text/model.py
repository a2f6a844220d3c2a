"""A small transformer for text, with one head per pretext task, and its ONNX export.

One body (`TextTransformer`: token + position + segment embeddings, pre-LN blocks) runs
bidirectionally for MLM, NSP and RTD and with a causal mask for the autoregressive LM.
Every task model keeps its body as ``.encoder`` so the downstream evaluation and the
ONNX export treat all of them alike.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn
import torch.nn.functional as F

from ssl_robot.export import export_onnx, ExportReport
from ssl_robot.text.masking import corrupt_with_samples


@dataclass
class TextModelConfig:
    """Size of a text transformer.

    Attributes:
        vocab_size: Token ids (the tokenizer's vocabulary size).
        max_len: Longest sequence (learned position embeddings).
        dim: Hidden size.
        depth: Transformer blocks.
        heads: Attention heads (must divide `dim`).
        mlp_ratio: MLP hidden size / `dim`.
        dropout: Dropout in embeddings, attention output and MLP.
        type_vocab: Segment ids (2: sentence A / B for NSP).
        relative_positions: Add a learned bias per head and per offset j - i to the
            attention logits (T5-style, one table per block), initialised to a
            locality prior (`local_attention_prior`). Without it a head can look at
            its neighbours only once the query and key projections of the absolute
            position embeddings line up, a product of small matrices whose gradient
            starts near zero: the bidirectional models then sit on a bag-of-words
            plateau (a masked token told apart from the other tokens of its block,
            never from its neighbours).
    """

    vocab_size: int
    max_len: int = 64
    dim: int = 128
    depth: int = 2
    heads: int = 4
    mlp_ratio: int = 4
    dropout: float = 0.1
    type_vocab: int = 2
    relative_positions: bool = True

    def to_dict(self) -> dict[str, Any]:
        """The config as a plain dict (saved in task parameters and ONNX metadata)."""
        return asdict(self)


def attention_bias(attention_mask: torch.Tensor | None, length: int, *, causal: bool,
                   dtype: torch.dtype = torch.float32) -> torch.Tensor | None:
    """Additive attention bias [B or 1, 1, T, T]: 0 where a query may look, -1e9 elsewhere.

    A large finite value rather than -inf keeps fully masked rows (padding queries)
    finite instead of NaN.

    Args:
        attention_mask: [B, T], 1 for real tokens, 0 for padding (None: all real).
        length: T.
        causal: Also forbid looking at later positions.
        dtype: Bias dtype.
    """
    bias = None
    if attention_mask is not None:
        bias = (1.0 - attention_mask[:, None, None, :].to(dtype)) * -1e9
    if causal:
        future = torch.ones(length, length, dtype=torch.bool,
                            device=None if attention_mask is None else attention_mask.device)
        future = torch.triu(future, diagonal=1)
        causal_bias = torch.zeros(length, length, dtype=dtype,
                                  device=future.device).masked_fill(future, -1e9)[None, None]
        bias = causal_bias if bias is None else bias + causal_bias
    return bias


class Block(nn.Module):
    """Pre-LN transformer block: x + attn(ln(x)), then x + mlp(ln(x))."""

    def __init__(self, cfg: TextModelConfig) -> None:
        super().__init__()
        if cfg.dim % cfg.heads:
            raise ValueError(f'dim {cfg.dim} is not divisible by heads {cfg.heads}')
        self.heads = cfg.heads
        self.ln1 = nn.LayerNorm(cfg.dim)
        self.qkv = nn.Linear(cfg.dim, 3 * cfg.dim)
        self.proj = nn.Linear(cfg.dim, cfg.dim)
        self.ln2 = nn.LayerNorm(cfg.dim)
        self.mlp = nn.Sequential(nn.Linear(cfg.dim, cfg.mlp_ratio * cfg.dim), nn.GELU(),
                                 nn.Linear(cfg.mlp_ratio * cfg.dim, cfg.dim))
        self.drop = nn.Dropout(cfg.dropout)

    def forward(self, x: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
        batch, length, dim = x.shape
        q, k, v = self.qkv(self.ln1(x)).chunk(3, dim=2)
        q, k, v = (t.reshape(batch, length, self.heads, dim // self.heads).transpose(1, 2)
                   for t in (q, k, v))
        att = F.scaled_dot_product_attention(q, k, v, attn_mask=bias)
        x = x + self.drop(self.proj(att.transpose(1, 2).reshape(batch, length, dim)))
        return x + self.drop(self.mlp(self.ln2(x)))


class TextTransformer(nn.Module):
    """Embeddings + transformer blocks + final LayerNorm; returns hidden states [B, T, D]."""

    def __init__(self, cfg: TextModelConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.tok_emb = nn.Embedding(cfg.vocab_size, cfg.dim)
        self.pos_emb = nn.Embedding(cfg.max_len, cfg.dim)
        self.type_emb = nn.Embedding(cfg.type_vocab, cfg.dim)
        self.drop = nn.Dropout(cfg.dropout)
        self.blocks = nn.ModuleList(Block(cfg) for _ in range(cfg.depth))
        self.ln_f = nn.LayerNorm(cfg.dim)
        self.apply(_init_weights)
        if cfg.relative_positions:
            self.rel_bias = nn.Parameter(local_attention_prior(cfg))

    def forward(self, ids: torch.Tensor, attention_mask: torch.Tensor | None = None,
                token_type_ids: torch.Tensor | None = None, *,
                causal: bool = False) -> torch.Tensor:
        """Final hidden states of `ids` [B, T] (T <= max_len)."""
        return self.layer_states(ids, attention_mask, token_type_ids, causal=causal)[-1]

    def layer_states(self, ids: torch.Tensor, attention_mask: torch.Tensor | None = None,
                     token_type_ids: torch.Tensor | None = None, *,
                     causal: bool = False) -> list[torch.Tensor]:
        """Hidden states [B, T, D] after the embeddings and after each block.

        depth + 1 tensors; the last one goes through the final LayerNorm.
        """
        length = ids.shape[1]
        positions = torch.arange(length, device=ids.device)
        x = self.tok_emb(ids) + self.pos_emb(positions)[None]
        if token_type_ids is not None:
            x = x + self.type_emb(token_type_ids)
        x = self.drop(x)
        bias = attention_bias(attention_mask, length, causal=causal, dtype=x.dtype)
        rel = None
        if self.cfg.relative_positions:
            offsets = positions[None, :] - positions[:, None] + self.cfg.max_len - 1
            rel = self.rel_bias[:, :, offsets].to(x.dtype)  # [depth, heads, T, T]
        states = [x]
        for i, block in enumerate(self.blocks):
            x = block(x, bias if rel is None else rel[i] if bias is None else bias + rel[i])
            states.append(x)
        states[-1] = self.ln_f(x)
        return states


def local_attention_prior(cfg: TextModelConfig, *, slope: float = 2.0) -> torch.Tensor:
    """Initial relative-position bias [depth, heads, 2 * max_len - 1].

    Index max_len - 1 + j - i. In every block the first half of the heads look at the
    token on the left and on the right in turn (bias 0 at that offset, -slope per step
    away from it), the other half everywhere (bias 0).

    Neighbours are what a masked or replaced token is most predictable from; with the
    bias alone at step 0 (query-key logits start near 0) those heads already carry the
    neighbours' tokens, so the model learns from context at once instead of first
    having to discover where its neighbours are. All of it stays trainable.
    """
    offsets = torch.arange(-(cfg.max_len - 1), cfg.max_len, dtype=torch.float32)
    bias = torch.zeros(cfg.depth, cfg.heads, len(offsets))
    # The other half stays global, so a 2-head model keeps a head that sees the whole
    # sequence (NSP reads [CLS]) and a 1-head model has no local head.
    for head in range(cfg.heads // 2):
        centre = -1.0 if head % 2 == 0 else 1.0
        bias[:, head] = -slope * (offsets - centre).abs()
    return bias


def _init_weights(module: nn.Module) -> None:
    # GPT-2/BERT initialisation: small normal weights make the untrained model's
    # predictions near uniform (perplexity ~ vocabulary size at step 0).
    if isinstance(module, (nn.Linear, nn.Embedding)):
        nn.init.normal_(module.weight, std=0.02)
    if isinstance(module, nn.Linear) and module.bias is not None:
        nn.init.zeros_(module.bias)


class LMHead(nn.Module):
    """Token logits from hidden states; the output matrix is tied to the input embedding."""

    def __init__(self, embedding: nn.Embedding) -> None:
        super().__init__()
        dim = embedding.embedding_dim
        self.transform = nn.Sequential(nn.Linear(dim, dim), nn.GELU(), nn.LayerNorm(dim))
        self.embedding = embedding
        self.bias = nn.Parameter(torch.zeros(embedding.num_embeddings))
        self.transform.apply(_init_weights)

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        return F.linear(self.transform(hidden), self.embedding.weight, self.bias)


class MaskedLMModel(nn.Module):
    """Bidirectional encoder + LM head: token logits at the selected positions."""

    causal = False

    def __init__(self, cfg: TextModelConfig) -> None:
        super().__init__()
        self.encoder = TextTransformer(cfg)
        self.head = LMHead(self.encoder.tok_emb)

    def forward(self, ids: torch.Tensor, attention_mask: torch.Tensor,
                selected: torch.Tensor | None = None) -> torch.Tensor:
        """Logits [B, T, V], or [N, V] at the N `selected` positions only.

        The LM head over the whole vocabulary is the costliest layer; MLM needs 15 % of it.
        """
        hidden = self.encoder(ids, attention_mask)
        return self.head(hidden if selected is None else hidden[selected])


class CausalLMModel(nn.Module):
    """Causal (GPT-style) decoder + LM head: logits [B, T, V] of each next token."""

    causal = True

    def __init__(self, cfg: TextModelConfig) -> None:
        super().__init__()
        self.encoder = TextTransformer(cfg)
        self.head = LMHead(self.encoder.tok_emb)

    def forward(self, ids: torch.Tensor,
                attention_mask: torch.Tensor | None = None) -> torch.Tensor:
        return self.head(self.encoder(ids, attention_mask, causal=True))


class NextSentenceModel(nn.Module):
    """Bidirectional encoder + pooler on [CLS] + 2-way classifier (is B the next sentence).

    Args:
        cfg: Model size.
        lm_head: Also an LM head (tied to the input embedding) for masked tokens of the
            pair: BERT's joint MLM + NSP pre-training.
        pooling: 'cls' (BERT: the pooled [CLS] state) or 'segments': the pooled [CLS]
            state with the product and the absolute difference of the mean states of
            segment A and of segment B after the embeddings and after every block (the
            sentence-pair features of InferSent and Sentence-BERT) and token alignment
            scores, after the embeddings and after every block
            (`segment_pair_features`), so that "A and B share their words and topic" is
            in the features from the start (near-orthogonal random embeddings: the
            alignment after the embeddings counts shared words) rather than something
            [CLS] has to learn to gather first.
    """

    causal = False

    def __init__(self, cfg: TextModelConfig, *, lm_head: bool = False,
                 pooling: str = 'cls') -> None:
        super().__init__()
        if pooling not in ('cls', 'segments'):
            raise ValueError(f"pooling {pooling!r}: use 'cls' or 'segments'")
        self.pooling = pooling
        self.encoder = TextTransformer(cfg)
        self.pooler = nn.Sequential(nn.Linear(cfg.dim, cfg.dim), nn.Tanh())
        self.pair_norm = None
        if pooling == 'segments':
            # Per layer: A * B and |A - B| (dim each) and the two alignment scores.
            n_pair = (cfg.depth + 1) * (2 * cfg.dim + 2)
            # Standardised over the batch: the scores differ between pairs by ~0.1,
            # too little for a linear layer that moves by the learning rate per step.
            self.pair_norm = nn.BatchNorm1d(n_pair, affine=False)
        self.classifier = nn.Linear(cfg.dim + (n_pair if self.pair_norm else 0), 2)
        self.head = LMHead(self.encoder.tok_emb) if lm_head else None

    def forward(self, ids: torch.Tensor, attention_mask: torch.Tensor,
                token_type_ids: torch.Tensor, selected: torch.Tensor | None = None
                ) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        """Is-next logits [B, 2]; with `selected`, also token logits [N, V] there."""
        states = self.encoder.layer_states(ids, attention_mask, token_type_ids)
        hidden = states[-1]
        features = self.pooler(hidden[:, 0])
        if self.pair_norm is not None:
            pair = segment_pair_features(states, attention_mask, token_type_ids)
            norm = self.pair_norm
            if self.training and len(pair) < 2:  # a batch of one has no batch statistics
                pair = F.batch_norm(pair, norm.running_mean, norm.running_var, eps=norm.eps)
            else:
                pair = norm(pair)
            features = torch.cat([features, pair], dim=1)
        logits = self.classifier(features)
        if selected is None:
            return logits
        if self.head is None:
            raise ValueError('NextSentenceModel: token logits need lm_head=True')
        return logits, self.head(hidden[selected])


def segment_pair_features(states: list[torch.Tensor], attention_mask: torch.Tensor,
                          token_type_ids: torch.Tensor) -> torch.Tensor:
    """Features of how segment A and segment B relate, from each layer's states.

    Per layer: the product and the absolute difference of the mean states of A and of B
    (each mean normalised: below the final LayerNorm the states are of the embeddings'
    scale), and two alignment scores: the mean over B's tokens of the best cosine
    similarity to a token of A, and the same from A to B (BERTScore's greedy matching).
    After the embeddings the alignment counts the words A and B share.

    Returns:
        [batch, layers * (2 * dim + 2)].
    """
    in_a = (attention_mask * (token_type_ids == 0)).bool()
    in_b = (attention_mask * (token_type_ids == 1)).bool()
    out = []
    for state in states:
        a, b = (F.layer_norm(mean_pool(state, m.long()), state.shape[-1:])
                for m in (in_a, in_b))
        unit = F.normalize(state, dim=-1)
        cosine = unit @ unit.transpose(1, 2)  # [B, T, T]
        pair = in_b[:, :, None] & in_a[:, None, :]  # row: a token of B, column: of A
        cosine = cosine.masked_fill(~pair, -2.0)
        b_to_a = cosine.max(2).values  # [B, T]: best A match of each B token
        a_to_b = cosine.max(1).values
        scores = [(best * m).sum(1) / m.sum(1).clamp(min=1)
                  for best, m in ((b_to_a, in_b), (a_to_b, in_a))]
        out += [a * b, (a - b).abs(), torch.stack(scores, 1)]
    return torch.cat(out, dim=1)


class ReplacedTokenModel(nn.Module):
    """ELECTRA: a generator fills masked positions, a discriminator spots them.

    A small MLM generator fills the masked positions; the discriminator (``.encoder`` +
    a per-token head) says which tokens were replaced.

    The forward pass samples the generator's tokens; no gradient flows from the
    discriminator into the generator through the sampling (as in ELECTRA).

    Args:
        cfg: Discriminator size.
        generator_cfg: Generator size.
        uniform_from: None (ELECTRA) or the lowest id of an ablation that replaces with
            tokens drawn uniformly from [uniform_from, vocab) instead of the generator's
            samples (the generator still trains), to tell a detector that cannot learn
            from one given only hard replacements.
    """

    causal = False

    def __init__(self, cfg: TextModelConfig, generator_cfg: TextModelConfig, *,
                 uniform_from: int | None = None) -> None:
        super().__init__()
        self.uniform_from = uniform_from
        self.generator = MaskedLMModel(generator_cfg)
        self.encoder = TextTransformer(cfg)
        self.disc_head = nn.Sequential(nn.Linear(cfg.dim, cfg.dim), nn.GELU(),
                                       nn.Linear(cfg.dim, 1))

    def forward(self, masked_ids: torch.Tensor, attention_mask: torch.Tensor,
                original_ids: torch.Tensor, selected: torch.Tensor, *,
                sample_generator: torch.Generator | None = None) -> dict[str, torch.Tensor]:
        """Run generator, corrupt, run discriminator.

        Args:
            masked_ids: Input with [MASK] at the selected positions [B, T].
            attention_mask: [B, T].
            original_ids: The uncorrupted ids [B, T].
            selected: Bool [B, T], the positions the generator fills.
            sample_generator: RNG for sampling (validation uses a fixed one).

        Returns:
            gen_logits [N, V] at the N selected positions, disc_logits [B, T],
            corrupted [B, T] and
            replaced (bool [B, T]).
        """
        gen_logits = self.generator(masked_ids, attention_mask, selected)
        with torch.no_grad():
            if self.uniform_from is None:
                probs = torch.softmax(gen_logits.float(), dim=-1)
                samples = torch.multinomial(probs, 1, generator=sample_generator).squeeze(1)
            else:
                samples = torch.randint(self.uniform_from, gen_logits.shape[-1],
                                        (gen_logits.shape[0],), generator=sample_generator,
                                        device=gen_logits.device)
        corrupted, replaced = corrupt_with_samples(original_ids, selected, samples)
        disc_logits = self.disc_head(self.encoder(corrupted, attention_mask)).squeeze(-1)
        return {'gen_logits': gen_logits, 'disc_logits': disc_logits,
                'corrupted': corrupted, 'replaced': replaced}


class TextEncoderOnnx(nn.Module):
    """What the ONNX file holds: (input_ids, attention_mask) -> (hidden, pooled).

    `pooled` is the mean of the hidden states over real (unmasked) tokens, the feature
    the downstream probe uses.
    """

    def __init__(self, encoder: TextTransformer, *, causal: bool = False) -> None:
        super().__init__()
        self.encoder = encoder
        self.causal = causal

    def forward(self, input_ids: torch.Tensor,
                attention_mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        hidden = self.encoder(input_ids, attention_mask, causal=self.causal)
        return hidden, mean_pool(hidden, attention_mask)


def mean_pool(hidden: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """Mean of `hidden` [B, T, D] over positions where `attention_mask` is 1."""
    weights = attention_mask.to(hidden.dtype)[..., None]
    return (hidden * weights).sum(1) / weights.sum(1).clamp(min=1.0)


def export_text_encoder(encoder: TextTransformer, path: Path | str, *, causal: bool = False,
                        task: str = '', extra: dict[str, Any] | None = None,
                        seq_len: int = 0) -> ExportReport:
    """Export a text encoder through the package's ONNX exporter.

    Inputs are int64 ``input_ids`` and ``attention_mask`` [batch, seq_len] (dynamic
    batch); outputs ``last_hidden_state`` [batch, seq_len, dim] and ``pooled``
    [batch, dim].

    Args:
        encoder: The body (``model.encoder`` of any task model).
        path: Output .onnx file.
        causal: Export with the causal mask (the AR model's encoder).
        task: Pretext task name stored in the metadata.
        extra: More metadata (e.g. the tokenizer file name).
        seq_len: Fixed sequence length of the export (default: the encoder's max_len).

    Returns:
        The exporter's report (with the torch/onnxruntime max abs difference).
    """
    cfg = encoder.cfg
    seq_len = seq_len or cfg.max_len
    ids = torch.randint(cfg.type_vocab + 3, cfg.vocab_size, (2, seq_len))
    ids[:, 0] = 0  # the parity check draws ids between the example's min and max
    mask = torch.ones(2, seq_len, dtype=torch.long)
    mask[1, seq_len // 2:] = 0
    mask[0, 0] = 0  # min 0 / max 1 so the parity check draws random padding too
    metadata = {'kind': 'text_encoder', 'task': task, 'vocab_size': cfg.vocab_size,
                'max_len': cfg.max_len, 'seq_len': seq_len, 'dim': cfg.dim,
                'causal': causal, 'pooling': 'mean over attention_mask',
                'model_config': cfg.to_dict(), **(extra or {})}
    return export_onnx(TextEncoderOnnx(encoder, causal=causal).eval(), (ids, mask), path,
                       input_names=['input_ids', 'attention_mask'],
                       output_names=['last_hidden_state', 'pooled'], metadata=metadata)
