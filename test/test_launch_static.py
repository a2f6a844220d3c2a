"""Launch files, `ssl-robot up` and config/robot.yaml describe the same node graphs.

`launch`/`launch_ros` are not installed here: the launch files and `ssl-robot up` share
`Graph.plan`, whose nodes are started here as real processes with the command line
launch_ros builds for them (test_launch_testing.py runs the launch files themselves
where launch_ros exists). The nodes are asked what they report: the values launch
arguments set, and which parameters they declare.
"""
from __future__ import annotations

import ast
from pathlib import Path

import pytest
import yaml

from ssl_robot.bringup.graph import GRAPHS, TOPIC_ARGUMENTS
from ssl_robot.cli import build_parser
from ssl_robot.commands.up import plan_args, resolve_args
from ssl_robot.config import load_node_parameters
from ssl_robot.errors import ConfigError
from ssl_robot.paths import config_path, launch_dir

from ros_procs import copy_config, dds_env, executable_argv, NodeProcess, Probe, REPO, start_node

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


@pytest.mark.parametrize('graph', sorted(GRAPHS))
def test_up_starts_what_the_launch_file_describes(graph, tmp_path):
    bag = tmp_path / 'bag'
    bag.mkdir()
    argv = [graph] + (['--bag', str(bag)] if graph == 'replay' else [])
    spec = GRAPHS[graph]
    # Without a model (config/robot.yaml has model_path '') inference is not started.
    plan = plan_args(build_parser().parse_args(['up', *argv]))
    always = [n for n in spec.nodes if not n.condition and n.name != 'inference']
    assert [(n.executable, n.name, n.lifecycle) for n in plan.nodes] == [
        (n.executable, n.name, n.lifecycle) for n in always]
    assert [line.split(':')[0] for line in plan.notes] == ['inference not started']
    for node in plan.nodes:
        assert node.params_files == (config_path(),)
        assert node.parameters['use_sim_time'] is (graph != 'robot')
        assert node.remappings == ()  # defaults remap every generic topic to itself
        overrides = node.write_overrides(tmp_path / 'overrides')
        args = node.ros_args(overrides)
        assert args == ['--ros-args', '-r', f'__node:={node.name}', '--params-file',
                        str(config_path()), '--params-file', str(overrides)]
        assert yaml.safe_load(overrides.read_text()) == {
            node.name: {'ros__parameters': node.parameters}}
    if graph == 'replay':
        assert plan.nodes[0].parameters['bag'] == str(bag)
    # A model starts inference (configured and activated); online training without one
    # starts it unconfigured, for the trainer to bring up.
    with_model = _up(*argv, '--arg', 'model_path:=/models/obstacle.onnx')
    inference = [n for n in with_model if n.name == 'inference']
    assert [(n.parameters['model_path'], n.activate) for n in inference] == [
        ('/models/obstacle.onnx', True)]
    with_trainer = _up(*argv, '--online-training')
    assert [n.name for n in with_trainer] == [n.name for n in spec.nodes]
    assert [n.activate for n in with_trainer if n.name == 'inference'] == [False]
    assert all(n.activate is n.lifecycle for n in with_model)


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
        args = node.ros_args(tmp_path / f'{node.name}.yaml')
        assert args[args.index('image_raw:=/camera/color/image_raw') - 1] == '-r'
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


def _tiny_bag(path: Path) -> Path:
    from ssl_robot.bags.typestore import msg_class, ns_to_stamp
    from ssl_robot.bags.writer import BagWriter
    with BagWriter(path) as writer:
        clock = msg_class('rosgraph_msgs/msg/Clock')
        for i in range(3):
            writer.write('/clock', 'rosgraph_msgs/msg/Clock',
                         clock(clock=ns_to_stamp(i * 10**8)), i * 10**8)
    return path


def _graph_nodes(tmp_path: Path, bag: Path, model: Path) -> list:
    """Every node of the graphs as they start with launch arguments that set parameters.

    The parameter file sets each of those parameters in the node's own section too (to
    other values), the way config/robot.yaml sets `bag: ''` and `model_path: ''`: the
    launch argument has to win over that.
    """
    config = copy_config(
        tmp_path, recorder={'output': str(tmp_path / 'rec'), 'use_sim_time': False},
        labeller={'dataset': str(tmp_path / 'ds'), 'use_sim_time': False},
        trainer={'dataset': str(tmp_path / 'ds'), 'run_dir': str(tmp_path / 'run'),
                 'use_sim_time': False},
        bag_player={'bag': '', 'loop': True, 'use_sim_time': False},
        inference={'model_path': '', 'use_sim_time': False},
        sim_robot={'use_sim_time': False})
    values = {'params_file': str(config), 'use_sim_time': 'true', 'online_training': 'true',
              'model_path': str(model)}
    replay = GRAPHS['replay'].resolve({**values, 'bag': str(bag)})
    sim = [n for n in GRAPHS['sim'].resolve(values) if n.name == 'sim_robot']
    return sim + replay


def _values(status) -> dict[str, str]:
    """A diagnostic_msgs/DiagnosticStatus's key-values."""
    return {kv.key: kv.value for kv in status.values}


def _start_as_launch_does(node, overrides_dir: Path, log_dir: Path):
    """Start a resolved node with the command line launch_ros builds for it.

    That is: the executable, `--ros-args`, its name, `--params-file` of each of its
    parameter files (the package's, then the node's own launch-argument file), remappings.
    """
    cmd = executable_argv(node.executable) + node.ros_args(node.write_overrides(overrides_dir))
    log_dir.mkdir(parents=True, exist_ok=True)
    return NodeProcess(cmd, env=dds_env(DOMAIN_ID), log_path=log_dir / f'{node.name}.log')


def test_a_wildcard_parameter_loses_to_the_nodes_own_section(tmp_path):
    """Why launch arguments travel in a node-specific file.

    Given as `/**` (what launch_ros writes for a dict of parameters), `bag` loses to
    config/robot.yaml's `bag_player: bag: ''` although its file comes later.
    """
    bag = _tiny_bag(tmp_path / 'bag')
    wildcard = tmp_path / 'wildcard.yaml'
    wildcard.write_text(yaml.safe_dump({'/**': {'ros__parameters': {'bag': str(bag)}}}))
    cmd = executable_argv('bag_player') + ['--ros-args', '--params-file', str(config_path()),
                                           '--params-file', str(wildcard)]
    with NodeProcess(cmd, env=dds_env(DOMAIN_ID), log_path=tmp_path / 'bag_player.log') as proc:
        assert proc.wait(30) == 2, proc.output()
        assert 'parameter bag is empty' in proc.output()


def test_launch_arguments_reach_every_node_and_config_parameters_are_declared(tmp_path):
    """Every node, started as launch_ros starts it, reports what launch arguments set.

    And it declares every parameter that config/robot.yaml gives it (a node ignores
    parameters it does not declare, silently).
    """
    from diagnostic_msgs.msg import DiagnosticArray
    bag = _tiny_bag(tmp_path / 'bag')
    model = tmp_path / 'models' / 'obstacle.onnx'
    nodes = _graph_nodes(tmp_path, bag, model)
    assert sorted(n.name for n in nodes) == sorted(_console_scripts())
    procs = [_start_as_launch_does(n, tmp_path / 'overrides', tmp_path / 'logs')
             for n in nodes]
    expected = {'bag_player': {'bag': str(bag)}, 'inference': {'model_path': str(model)}}
    try:
        with Probe(DOMAIN_ID) as probe:
            diagnostics = probe.subscribe('/diagnostics', DiagnosticArray, reliable=True)
            names = [n.name for n in nodes]
            assert probe.spin_until(lambda: set(names) <= set(probe.node_names()), 60), \
                {p.cmd[0]: p.output()[-500:] for p in procs}
            declared = {n: probe.list_parameters(n, timeout=20) for n in names}
            reported = {}
            for name in names:
                wanted = ['use_sim_time', *expected.get(name, {})]
                values = probe.get_parameters(name, wanted, timeout=20)
                assert values is not None, f'{name} did not answer get_parameters'
                reported[name] = {k: v.bool_value if k == 'use_sim_time' else v.string_value
                                  for k, v in zip(wanted, values)}
            # Every node publishes /diagnostics (about 1 Hz); the simulator's camera reaches
            # the recorder and the labeller (each reports its own rate, each at its own tick).
            def latest() -> dict:
                return {s.name: s for array in diagnostics for s in array.status}

            def publishing() -> bool:
                statuses = latest()

                def camera_hz(name: str) -> float:
                    inputs = statuses.get(f'{name}: inputs')
                    return float(inputs and _values(inputs).get('/image_raw rate_hz') or 0)
                return ({n.split(':')[0] for n in statuses} >= set(names)
                        and camera_hz('recorder') > 0 and camera_hz('labeller') > 0)
            assert probe.spin_until(publishing, 20), sorted(latest())
            statuses = latest()
    finally:
        for proc in procs:
            proc.stop()
    assert reported == {n: {'use_sim_time': True, **expected.get(n, {})} for n in names}

    def kv(name: str) -> dict[str, str]:
        return _values(statuses[name])

    assert {'bytes', 'splits', 'backlog', 'backlog_growing'} <= set(kv('recorder: bag'))
    assert {'buffer_fill', 'label_yield', 'frames_labelled'} <= set(kv('labeller: labels'))
    assert float(kv('labeller: inputs')['/image_raw rate_hz']) > 0
    assert kv('sim_robot: simulation')['real_time_factor'] == '1'
    assert kv('bag_player: playback')['published /clock'] != '0'
    assert kv('trainer: training')['round'] == '0'
    # Unconfigured (the test does not drive its lifecycle): no model, a WARN that says so.
    inference = statuses['inference: model']
    assert (inference.level, inference.message) == (b'\x01', 'no model loaded (unconfigured)')

    data = yaml.safe_load(config_path().read_text())
    for node, names in declared.items():
        assert names is not None, f'{node} did not answer list_parameters'
        undeclared = set(data[node]['ros__parameters']) - set(names)
        assert not undeclared, f'{node} does not declare {sorted(undeclared)} (config/robot.yaml)'
        assert 'use_sim_time' in names
    shared = set(data['/**']['ros__parameters'])
    used = set().union(*(set(v) for v in declared.values()))
    assert not shared - used, f'no node declares {sorted(shared - used)} (config "/**")'


def test_sigints_while_a_node_stops_are_no_crash(tmp_path):
    """Ctrl-C under `ros2 launch` sends SIGINT twice; a node that stops exits 0.

    The terminal's SIGINT reaches every node, then launch sends its own: the repeat must
    not kill a node that is stopping cleanly.
    """
    import signal
    import time
    config = copy_config(tmp_path, trainer={'dataset': str(tmp_path / 'ds'),
                                            'run_dir': str(tmp_path / 'run')})
    with start_node('trainer', domain_id=DOMAIN_ID, log_dir=tmp_path,
                    params_file=config) as node:
        assert node.wait_for_output('watching', timeout=30), node.output()
        deadline = time.monotonic() + 20
        while node.alive() and time.monotonic() < deadline:
            node.signal(signal.SIGINT)
            time.sleep(0.005)
        assert node.wait(10) == 0, node.output()


def test_several_models_start_one_group_process_that_launch_arguments_reach(tmp_path):
    """model_path:=A,B runs one inference_group process (nodes inference, inference_1).

    Both nodes come up by themselves (autostart), each with its model, use_sim_time from
    the launch argument, and the parameter file's `inference` section (the robot's camera
    extrinsics) reaches the second node too.
    """
    import torch

    from ssl_robot.robot.nets import build_robot_model, default_spec, export_robot_onnx
    models = []
    for kind, extra in (('obstacle', {'distances_m': [0.0, 0.1]}), ('terrain', {'grid': [3, 4]})):
        torch.manual_seed(0)
        models.append(tmp_path / f'{kind}.onnx')
        export_robot_onnx(build_robot_model(default_spec(kind, input_hw=[24, 32], width=4,
                                                         **extra)), models[-1])
    params = copy_config(tmp_path, inference={'camera_xyz': [0.2, 0.0, 0.3]})
    plan = GRAPHS['sim'].plan({'model_path': ','.join(map(str, models)),
                               'params_file': str(params)})
    (group,) = [n for n in plan.nodes if n.executable == 'inference_group']
    assert [(name, model) for name, model, _ in group.members] == [
        ('inference', str(models[0])), ('inference_1', str(models[1]))]
    assert not group.lifecycle and 'inference: 2 models in one inference_group process, ' \
        'nodes inference, inference_1' in plan.notes
    args = group.ros_args(tmp_path / 'group.yaml')
    assert args[:3] == ['--models', f'inference={models[0]}', f'inference_1={models[1]}']
    assert '__node:=inference' not in ' '.join(args)  # it would rename both nodes
    proc = _start_as_launch_does(group, tmp_path / 'overrides', tmp_path / 'logs')
    try:
        with Probe(DOMAIN_ID) as probe:
            assert probe.spin_until(
                lambda: probe.lifecycle_state('inference', 5) == 'active'
                and probe.lifecycle_state('inference_1', 5) == 'active', 60), proc.output()
            for name, model in (('inference', models[0]), ('inference_1', models[1])):
                values = probe.get_parameters(name, ['model_path', 'use_sim_time',
                                                     'camera_xyz'], timeout=20)
                assert values is not None, proc.output()
                assert values[0].string_value == str(model)
                assert values[1].bool_value is True                 # the sim graph's
                assert list(values[2].double_array_value) == [0.2, 0.0, 0.3]
    finally:
        proc.stop()
    assert 'Traceback' not in proc.log_path.read_text()


def test_an_empty_model_in_the_list_is_refused():
    with pytest.raises(ConfigError, match='an empty model in the list'):
        GRAPHS['robot'].plan({'model_path': '/m/a.onnx,'})
