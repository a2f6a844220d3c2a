"""Offline NLP pretext tasks on the shared trainer: MLM, NSP, autoregressive LM and RTD.

Modules by role: `tokenizer` (subword tokenizer trained with Hugging Face `tokenizers`),
`data` (corpus and WordNet readers, sentence splitting, pair building), `model` (a small
transformer with per-task heads), `tasks` (the `Task` subclasses and their pure masking
helpers), `evaluate` (`ssl-robot text-eval`).
"""
from __future__ import annotations

from ssl_robot.text.errors import TextError  # noqa: F401
