"""The layout keeps its promises: no import circles, rclpy only in the shell, light imports.

Imports anywhere in a module count, lazy ones inside functions too: two modules that import
each other lazily are still one tangle to a reader. Found with an AST walk over the source.
"""
from __future__ import annotations

import ast
from pathlib import Path
import subprocess
import sys

import pytest

REPO = Path(__file__).resolve().parent.parent
PACKAGE = REPO / 'ssl_robot'
#: The ROS shell: the only places that may import rclpy or ROS message packages.
SHELL = ('ssl_robot.nodes', 'ssl_robot.bringup', 'ssl_robot.commands')
ROS_MODULES = ('rclpy', 'launch', 'launch_ros', 'sensor_msgs', 'nav_msgs', 'std_msgs',
               'geometry_msgs', 'lifecycle_msgs', 'rosgraph_msgs', 'diagnostic_msgs',
               'visualization_msgs', 'rcl_interfaces', 'builtin_interfaces')


def _module_name(path: Path) -> str:
    parts = path.relative_to(REPO).with_suffix('').parts
    return '.'.join(parts[:-1] if parts[-1] == '__init__' else parts)


def _imports(path: Path) -> set[str]:
    """Every module a file imports, lazily inside functions too (TYPE_CHECKING excluded)."""
    tree = ast.parse(path.read_text())
    skipped = {id(n) for node in ast.walk(tree) if isinstance(node, ast.If)
               and 'TYPE_CHECKING' in ast.unparse(node.test)
               for child in node.body for n in ast.walk(child)}
    found: set[str] = set()
    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            found.add(node.module)
            found.update(f'{node.module}.{a.name}' for a in node.names)
    return found


def _graph() -> dict[str, set[str]]:
    modules = {_module_name(p): p for p in PACKAGE.rglob('*.py')}
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        deps = set()
        for imported in _imports(path):
            # `from pkg import mod` names a module too; importing a module imports its parents.
            while imported and imported not in modules:
                imported = imported.rpartition('.')[0]
            if imported and imported != name and not name.startswith(imported + '.'):
                deps.add(imported)
        graph[name] = deps
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[list[str]] = []
    sys.setrecursionlimit(10_000)

    def strong(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                strong(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                out.append(sorted(component))

    for v in graph:
        if v not in index:
            strong(v)
    return out


def test_the_cycle_finder_finds_a_cycle():
    assert _cycles({'a': {'b'}, 'b': {'c'}, 'c': {'a'}, 'd': {'a'}}) == [['a', 'b', 'c']]
    assert _cycles({'a': {'b'}, 'b': set()}) == []


def test_no_import_circles_inside_the_package():
    assert _cycles(_graph()) == []


def test_rclpy_and_ros_messages_only_in_the_shell():
    offenders = []
    for path in PACKAGE.rglob('*.py'):
        name = _module_name(path)
        if name.startswith(SHELL):
            continue
        for imported in _imports(path):
            if imported.split('.')[0] in ROS_MODULES:
                offenders.append(f'{name} imports {imported}')
    assert offenders == []


def _loaded_after(code: str) -> set[str]:
    probe = code + '\nimport sys\nprint(" ".join(sys.modules))'
    out = subprocess.run([sys.executable, '-c', probe], capture_output=True, text=True,
                         cwd=REPO, check=True, timeout=120)
    return set(out.stdout.split())


@pytest.mark.parametrize('code', [
    'import ssl_robot.bringup.graph',                  # what every launch file loads
    'import ssl_robot.bringup.lifecycle',
    'import ssl_robot.inference',                      # the inference core
    'from ssl_robot.cli import build_parser; build_parser()',   # `ssl-robot --help`
    'from ssl_robot.bags.typestore import BagError',  # an error class is light
    'import ssl_robot.errors, ssl_robot.labelling.errors, ssl_robot.train.errors',
])
def test_light_imports_load_neither_torch_nor_onnx(code):
    loaded = _loaded_after(code)
    assert not {'torch', 'onnx', 'onnxscript'} & loaded, code
