"""Launch files, `ssl-robot up` and config/robot.yaml describe the same node graphs.

`launch`/`launch_ros` are not installed here, so the launch files are checked by parsing
them (ast); test_launch_testing.py runs them where launch_ros exists. Whether every
parameter in config/robot.yaml is one its node declares is asked of the nodes themselves,
started as real processes (a node ignores parameters it does not declare, silently).
"""
from __future__ import annotations

import ast
from pathlib import Path

import pytest
from ros_procs import copy_config, node_exists, Probe, REPO, start_node
import yaml

from ssl_robot.cli import build_parser
from ssl_robot.commands.up import resolve_args
from ssl_robot.config import load_node_parameters
from ssl_robot.errors import ConfigError
from ssl_robot.bringup.graph import GRAPHS, TOPIC_ARGUMENTS
from ssl_robot.paths import config_path, launch_dir

LAUNCH_FILES = sorted((REPO / 'launch').glob('*.launch.py'))
DOMAIN_ID = 61


def _console_scripts() -> set[str]:
    """Node executables of setup.py (its NODES tuple), read without running setup()."""
    tree = ast.parse((REPO / 'setup.py').read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign) and any(
                isinstance(t, ast.Name) and t.id == 'NODES' for t in node.targets):
            return set(ast.literal_eval(node.value))
    raise AssertionError('setup.py has no NODES tuple')


def _launch_graph_name(path: Path) -> str:
    """The graph a launch file builds: the literal passed to graph_launch_description."""
    tree = ast.parse(path.read_text(), filename=str(path))
    funcs = [n.name for n in tree.body if isinstance(n, ast.FunctionDef)]
    assert 'generate_launch_description' in funcs, f'{path.name}: no generate_launch_description'
    calls = [n for n in ast.walk(tree) if isinstance(n, ast.Call)
             and getattr(n.func, 'id', '') == 'graph_launch_description']
    assert len(calls) == 1, f'{path.name}: expected one graph_launch_description call'
    return ast.literal_eval(calls[0].args[0])


def _up(*argv: str):
    return resolve_args(build_parser().parse_args(['up', *argv]))


def test_every_graph_has_a_launch_file_and_back():
    assert launch_dir() == REPO / 'launch'
    names = {p.name.removesuffix('.launch.py'): _launch_graph_name(p) for p in LAUNCH_FILES}
    assert names == {g: g for g in GRAPHS} == {'robot': 'robot', 'sim': 'sim',
                                               'replay': 'replay'}


@pytest.mark.parametrize('graph', sorted(GRAPHS))
def test_graph_declares_use_sim_time_and_uses_known_executables(graph):
    spec = GRAPHS[graph]
    arguments = {a.name: a.default for a in spec.arguments}
    assert arguments['use_sim_time'] == ('false' if graph == 'robot' else 'true')
    assert len(arguments) <= 12, 'keep launch arguments few'
    assert {n.executable for n in spec.nodes} <= _console_scripts()
    assert [n.name for n in spec.nodes if n.lifecycle] == ['inference']
    assert {'recorder', 'labeller', 'inference', 'trainer'} <= {n.name for n in spec.nodes}
    source = {'robot': set(), 'sim': {'sim_robot'}, 'replay': {'bag_player'}}[graph]
    assert {n.name for n in spec.nodes} - {'recorder', 'labeller', 'inference',
                                           'trainer'} == source


def test_launch_actions_pass_params_file_use_sim_time_and_remaps_to_every_node():
    """The launch builder (ast): one Node/LifecycleNode per graph node, each given the
    parameter file, use_sim_time and the topic remappings; the parameter file it installs."""
    path = REPO / 'ssl_robot' / 'bringup' / 'launch_actions.py'
    tree = ast.parse(path.read_text())
    calls = {getattr(n.func, 'id', ''): n for n in ast.walk(tree) if isinstance(n, ast.Call)}
    assert {'Node', 'LifecycleNode', 'DeclareLaunchArgument', 'get_package_share_directory',
            'IfCondition', 'ChangeState', 'OnStateTransition'} <= set(calls)
    kwargs = next(n for n in ast.walk(tree) if isinstance(n, ast.Call)
                  and getattr(n.func, 'id', '') == 'dict'
                  and any(k.arg == 'executable' for k in n.keywords))
    keys = {k.arg: ast.unparse(k.value) for k in kwargs.keywords}
    assert keys['executable'] == 'node.executable' and keys['name'] == 'node.name'
    assert keys['parameters'] == "[LaunchConfiguration('params_file'), parameters]"
    assert keys['remappings'] == 'remappings'
    use_sim_time = [n for n in ast.walk(tree) if isinstance(n, ast.Dict)
                    and any(isinstance(k, ast.Constant) and k.value == 'use_sim_time'
                            for k in n.keys)]
    assert use_sim_time, 'no use_sim_time parameter'
    assert "LaunchConfiguration('use_sim_time')" in ast.unparse(use_sim_time[0])
    constants = {n.value for n in ast.walk(tree) if isinstance(n, ast.Constant)}
    assert {'ssl_robot', 'config', 'robot.yaml'} <= constants
    assert (REPO / 'config' / 'robot.yaml').is_file()
    setup = (REPO / 'setup.py').read_text()
    assert "glob('config/*.yaml')" in setup and "glob('launch/*launch.py')" in setup


@pytest.mark.parametrize('graph', sorted(GRAPHS))
def test_up_starts_what_the_launch_file_describes(graph, tmp_path):
    bag = tmp_path / 'bag'
    bag.mkdir()
    argv = [graph] + (['--bag', str(bag)] if graph == 'replay' else [])
    nodes = _up(*argv)
    spec = GRAPHS[graph]
    always = [n for n in spec.nodes if not n.condition]
    assert [(n.executable, n.name, n.lifecycle) for n in nodes] == [
        (n.executable, n.name, n.lifecycle) for n in always]
    for node in nodes:
        assert node.params_files == (config_path(),)
        assert node.parameters['use_sim_time'] is (graph != 'robot')
        assert node.remappings == ()  # defaults remap every generic topic to itself
        args = node.ros_args()
        assert args[:3] == ['--ros-args', '-r', f'__node:={node.name}']
        assert ['--params-file', str(config_path())] == args[3:5]
        assert f'{node.name}:use_sim_time:={"false" if graph == "robot" else "true"}' in args
    if graph == 'replay':
        assert nodes[0].parameters['bag'] == str(bag)
    with_trainer = _up(*argv, '--online-training')
    assert [n.name for n in with_trainer] == [n.name for n in spec.nodes]


def test_up_remaps_like_the_launch_arguments(tmp_path):
    params = tmp_path / 'p.yaml'
    params.write_text(config_path().read_text())
    by_remap = _up('robot', '--remap', 'image_raw:=/camera/color/image_raw', '--remap',
                   'odom:=/wheel/odom', '--arg', 'range_prefix:=/tof', '--param-file',
                   str(params), '--use-sim-time', '--remap', 'diagnostics:=/diag')
    by_args = GRAPHS['robot'].resolve(
        {'image_topic': '/camera/color/image_raw', 'odom_topic': '/wheel/odom',
         'range_prefix': '/tof', 'params_file': str(params), 'use_sim_time': 'true'},
        extra_remappings=[('diagnostics', '/diag')])
    assert by_remap == by_args
    expected = {('image_raw', '/camera/color/image_raw'), ('odom', '/wheel/odom'),
                ('range/left', '/tof/left'), ('range/center', '/tof/center'),
                ('range/right', '/tof/right'), ('diagnostics', '/diag')}
    for node in by_remap:
        assert set(node.remappings) == expected
        assert node.params_files == (params,)
        assert node.parameters['use_sim_time'] is True
        assert '-r' in node.ros_args() and 'image_raw:=/camera/color/image_raw' in \
            node.ros_args()
    # Every generic topic the nodes use has its launch argument.
    generic = load_node_parameters('labeller')
    topics = {generic[k] for k in ('image_topic', 'camera_info_topic', 'depth_topic',
                                   'odom_topic', 'imu_topic', 'cmd_vel_topic')}
    assert topics == {g for _, g in TOPIC_ARGUMENTS}
    assert [t.split('/')[0] for t in generic['range_topics']] == ['range'] * 3


@pytest.mark.parametrize('argv, message', [
    (['replay'], 'replay needs --bag'),
    (['replay', '--bag', '/nonexistent/bag'], '/nonexistent/bag: no such bag'),
    (['sim', '--bag', '/tmp'], '--bag is for the replay graph'),
    (['sim', '--remap', 'image_raw'], 'expected FROM:=TO'),
    (['sim', '--arg', 'no_such_arg:=1'], 'no argument no_such_arg'),
    (['sim', '--arg', 'use_sim_time:=maybe'], 'expected true or false'),
    (['sim', '--param-file', '/nonexistent.yaml'], '/nonexistent.yaml: no such parameter'),
])
def test_up_rejects_bad_arguments_clearly(argv, message):
    with pytest.raises(ConfigError, match=message):
        _up(*argv)


def test_config_sections_are_nodes_and_load():
    data = yaml.safe_load(config_path().read_text())
    nodes = _console_scripts()
    assert set(data) - {'/**'} == nodes
    graph_nodes = {n.name for g in GRAPHS.values() for n in g.nodes}
    assert graph_nodes == nodes
    for node in nodes:
        params = load_node_parameters(node)
        assert params['image_topic'] == 'image_raw'
        assert set(data[node]['ros__parameters']) <= set(params)


def _declared_parameters(tmp_path: Path) -> dict[str, list[str] | None]:
    """Start every written node once with config/robot.yaml; ask each what it declares."""
    from ssl_robot.bags.typestore import msg_class, ns_to_stamp
    from ssl_robot.bags.writer import BagWriter
    bag = tmp_path / 'tiny_bag'
    with BagWriter(bag) as writer:
        clock = msg_class('rosgraph_msgs/msg/Clock')
        for i in range(3):
            writer.write('/clock', 'rosgraph_msgs/msg/Clock',
                         clock(clock=ns_to_stamp(i * 10**8)), i * 10**8)
    config = copy_config(
        tmp_path, recorder={'output': str(tmp_path / 'rec')},
        labeller={'dataset': str(tmp_path / 'ds')},
        trainer={'dataset': str(tmp_path / 'ds'), 'run_dir': str(tmp_path / 'run')},
        bag_player={'bag': str(bag), 'loop': True})
    present = [n for n in sorted(_console_scripts()) if node_exists(n)]
    procs = [start_node(n, domain_id=DOMAIN_ID, log_dir=tmp_path / 'logs', params_file=config)
             for n in present]
    try:
        with Probe(DOMAIN_ID) as probe:
            probe.spin_until(lambda: set(present) <= set(probe.node_names()), 60)
            return {n: probe.list_parameters(n, timeout=20) for n in present}
    finally:
        for proc in procs:
            proc.stop()


def test_every_configured_parameter_is_declared_by_its_node(tmp_path):
    nodes = sorted(_console_scripts())
    missing = [n for n in nodes if not node_exists(n)]
    declared = _declared_parameters(tmp_path)
    data = yaml.safe_load(config_path().read_text())
    for node, names in declared.items():
        assert names is not None, f'{node} did not answer list_parameters'
        undeclared = set(data[node]['ros__parameters']) - set(names)
        assert not undeclared, f'{node} does not declare {sorted(undeclared)} (config/robot.yaml)'
        assert 'use_sim_time' in names
    if missing:
        pytest.skip(f'nodes not written yet: {", ".join(missing)}; '
                    f'checked {", ".join(declared) or "none"}')
    shared = set(data['/**']['ros__parameters'])
    used = set().union(*(set(v) for v in declared.values()))
    assert not shared - used, f'no node declares {sorted(shared - used)} (config "/**")'
