"""argparse types with ranges: a bad argument is one usage line (exit 2), not a traceback.

Every numeric option of `ssl-robot` that has a meaningful range takes one of these, so
`--epochs 0`, `--batch-size -1`, `--lr nan` or `--bootstrap 0` are refused before any
work starts.
"""
from __future__ import annotations

import argparse
from collections.abc import Callable
import math
from pathlib import Path


def int_at_least(low: int, high: int | None = None) -> Callable[[str], int]:
    """An integer type accepting `low` <= value (<= `high` when given)."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f'{text!r} is not an integer') from None
        if value < low or (high is not None and value > high):
            bound = f'between {low} and {high}' if high is not None else f'>= {low}'
            raise argparse.ArgumentTypeError(f'{value} is out of range (must be {bound})')
        return value
    parse.__name__ = 'integer'
    return parse


def finite_float(low: float | None = None, *, low_ok: bool = True,
                 high: float | None = None) -> Callable[[str], float]:
    """A finite float type, optionally bounded below (`low_ok`: inclusive) and above."""
    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f'{text!r} is not a number') from None
        if not math.isfinite(value):
            raise argparse.ArgumentTypeError(f'{text!r} is not a finite number')
        if low is not None and (value < low or (value == low and not low_ok)):
            raise argparse.ArgumentTypeError(
                f'{value:g} is out of range (must be {">=" if low_ok else ">"} {low:g})')
        if high is not None and value > high:
            raise argparse.ArgumentTypeError(f'{value:g} is out of range (must be <= {high:g})')
        return value
    parse.__name__ = 'number'
    return parse


def device(text: str) -> str:
    """'auto', 'cpu', 'cuda' or 'cuda:N' (availability is checked when training starts)."""
    kind, _, index = text.partition(':')
    if text == 'auto' or (kind in ('cpu', 'cuda') and (not index or index.isdigit())):
        return text
    raise argparse.ArgumentTypeError(f"{text!r}: use 'auto', 'cpu', 'cuda' or 'cuda:N'")


def new_file(text: str) -> Path:
    """An output file path: not an existing directory, its parent not a file."""
    path = Path(text)
    if path.is_dir():
        raise argparse.ArgumentTypeError(f'{text}: is a directory, not a file name')
    if path.parent.exists() and not path.parent.is_dir():
        raise argparse.ArgumentTypeError(f'{text}: {path.parent} is not a directory')
    return path


def out_dir(text: str) -> Path:
    """An output directory path: not an existing file, no file above it."""
    path = Path(text)
    if path.exists() and not path.is_dir():
        raise argparse.ArgumentTypeError(f'{text}: exists and is not a directory')
    for parent in path.parents:
        if parent.exists():
            if not parent.is_dir():
                raise argparse.ArgumentTypeError(f'{text}: {parent} is not a directory')
            break
    return path
