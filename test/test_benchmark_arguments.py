"""Every benchmark result records the arguments it was made with (`make bench` re-makes it).

Each script listed in benchmarks/run_all.py puts an `arguments` entry into the JSON it
writes, and every committed JSON under benchmarks/results has one: the arguments, or null
with an `arguments_note` saying why they are not known (results made before).
"""
from __future__ import annotations

import ast
import json
from pathlib import Path
import sys

import pytest

REPO = Path(__file__).resolve().parents[1]
BENCH = REPO / 'benchmarks'
sys.path.insert(0, str(BENCH))
from run_all import BENCHMARKS  # noqa: E402


def _writes_arguments(tree: ast.AST) -> bool:
    """Whether the script builds a dict with an 'arguments' key (literal or keyword)."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Dict) and any(
                isinstance(k, ast.Constant) and k.value == 'arguments' for k in node.keys):
            return True
        if isinstance(node, ast.Call) and any(k.arg == 'arguments' for k in node.keywords):
            return True
    return False


@pytest.mark.parametrize('script', [s for s, _ in BENCHMARKS])
def test_benchmark_script_writes_its_arguments(script):
    source = (BENCH / script).read_text()
    tree = ast.parse(source)
    assert 'json.dumps' in source, f'{script} writes no JSON result'
    assert _writes_arguments(tree), f'{script}: its JSON result has no "arguments" entry'


@pytest.mark.parametrize('result', sorted(p.name for p in (BENCH / 'results').glob('*.json')))
def test_result_json_records_its_arguments(result):
    data = json.loads((BENCH / 'results' / result).read_text())
    assert 'arguments' in data, (f'{result}: no "arguments" entry (the arguments it was '
                                 'made with, or null with an "arguments_note")')
    args = data['arguments']
    if args is None:
        assert data.get('arguments_note'), f'{result}: arguments null without a note'
    else:
        assert isinstance(args, dict) and args, f'{result}: arguments {args!r}'
