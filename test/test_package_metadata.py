"""package.xml, setup.py and setup.cfg agree with each other and with the files present."""
from __future__ import annotations

import ast
import configparser
import importlib
from pathlib import Path
import sys
import xml.etree.ElementTree as ET

import pytest

REPO = Path(__file__).resolve().parent.parent


def _setup_call() -> ast.Call:
    tree = ast.parse((REPO / 'setup.py').read_text())
    return next(n for n in ast.walk(tree) if isinstance(n, ast.Call)
                and getattr(n.func, 'id', '') == 'setup')


def _setup_module_globals() -> dict:
    """Evaluate setup.py's module-level constants (not the setup() call)."""
    tree = ast.parse((REPO / 'setup.py').read_text())
    values: dict = {}
    for node in tree.body:
        if isinstance(node, ast.Assign) and isinstance(node.value, (ast.Constant, ast.Tuple)):
            values[node.targets[0].id] = ast.literal_eval(node.value)
    return values


def _console_scripts() -> dict[str, str]:
    """Entry points as setup.py computes them."""
    consts = _setup_module_globals()
    nodes, package = consts['NODES'], consts['package_name']
    scripts = {node: f'{package}.nodes.{node}:main' for node in nodes}
    scripts['ssl-robot'] = 'ssl_robot.cli:main'
    source = (REPO / 'setup.py').read_text()
    assert "f'{node} = {package_name}.nodes.{node}:main' for node in NODES" in source
    assert "'ssl-robot = ssl_robot.cli:main'" in source
    return scripts


def test_package_xml_is_format_3_with_required_dependencies():
    root = ET.parse(REPO / 'package.xml').getroot()
    assert root.tag == 'package' and root.get('format') == '3'
    assert root.findtext('name') == 'ssl_robot'
    exec_deps = {e.text for e in root.findall('exec_depend')}
    assert {'rclpy', 'sensor_msgs', 'nav_msgs', 'std_msgs', 'geometry_msgs',
            'lifecycle_msgs', 'rosgraph_msgs'} <= exec_deps
    assert {'python3-numpy', 'python3-yaml', 'python3-rosbags-pip'} <= exec_deps
    assert 'python3-pytest' in {e.text for e in root.findall('test_depend')}
    assert root.find('export/build_type').text == 'ament_python'


def test_versions_and_names_agree():
    root = ET.parse(REPO / 'package.xml').getroot()
    kwargs = {k.arg: k.value for k in _setup_call().keywords}
    assert ast.literal_eval(kwargs['version']) == root.findtext('version')
    assert _setup_module_globals()['package_name'] == root.findtext('name')
    assert ast.literal_eval(kwargs['license']) == root.findtext('license')


def test_setup_cfg_installs_scripts_where_ros2_run_looks():
    cfg = configparser.ConfigParser()
    cfg.read(REPO / 'setup.cfg')
    assert cfg['develop']['script_dir'] == '$base/lib/ssl_robot'
    assert cfg['install']['install_scripts'] == '$base/lib/ssl_robot'


@pytest.mark.parametrize('script', sorted(_console_scripts()))
def test_console_script_targets_exist(script):
    target = _console_scripts()[script]
    module_name, func = target.split(':')
    module = importlib.import_module(module_name)
    assert callable(getattr(module, func)), target


NODES = ('sim_robot', 'recorder', 'bag_player', 'labeller', 'trainer', 'inference')


def test_every_node_parameter_is_declared_with_a_description_read_back_over_rclpy(tmp_path):
    """Every node parameter is described, read back over rclpy.

    Each node, as a real process, lists its parameters and describes every one of them
    (a description and a type) through the standard parameter services.
    """
    from rcl_interfaces.msg import ParameterType
    from rcl_interfaces.srv import DescribeParameters, ListParameters

    from ros_procs import copy_config, Probe, start_node
    domain = 74
    bag = REPO.parent / 'shared' / 'data' / 'real' / 'bags' / 'mcap_talker'
    config = copy_config(tmp_path, bag_player={'bag': str(bag), 'loop': True},
                         recorder={'output': str(tmp_path / 'rec')},
                         labeller={'dataset': str(tmp_path / 'ds')},
                         trainer={'dataset': str(tmp_path / 'ds'),
                                  'run_dir': str(tmp_path / 'run')})
    procs = [start_node(n, domain_id=domain, log_dir=tmp_path / 'logs', params_file=config)
             for n in NODES]
    try:
        with Probe(domain) as probe:
            assert probe.spin_until(lambda: set(NODES) <= set(probe.node_names()), 90), \
                {p.executable: p.output()[-1500:] for p in procs if not p.alive()}
            for node in NODES:
                listed = probe.call(ListParameters, f'/{node}/list_parameters',
                                    ListParameters.Request())
                assert listed is not None, f'{node} does not list its parameters'
                names = [n for n in listed.result.names
                         if n != 'use_sim_time' and not n.startswith('qos_overrides.')]
                assert len(names) >= 3, (node, names)
                described = probe.call(DescribeParameters, f'/{node}/describe_parameters',
                                       DescribeParameters.Request(names=names))
                assert described is not None, f'{node} does not describe its parameters'
                for d in described.descriptors:
                    assert d.description.strip(), f'{node}: parameter {d.name} undescribed'
                    assert d.type != ParameterType.PARAMETER_NOT_SET, (node, d.name)
    finally:
        for proc in procs:
            proc.stop()


def test_data_files_globs_match_files_present():
    source = (REPO / 'setup.py').read_text()
    for pattern in ("'resource/' + package_name", "['package.xml']",
                    "glob('launch/*launch.py')", "glob('config/*.yaml')"):
        assert pattern in source, pattern
    assert (REPO / 'resource' / 'ssl_robot').is_file()
    assert (REPO / 'package.xml').is_file()
    assert sorted(p.name for p in (REPO / 'launch').glob('*launch.py'))
    assert (REPO / 'config' / 'robot.yaml') in list((REPO / 'config').glob('*.yaml'))


def test_config_has_sections_for_my_nodes():
    from ssl_robot.config import load_node_parameters
    recorder = load_node_parameters('recorder')
    assert recorder['storage'] in ('mcap', 'sqlite3') and recorder['queue_size'] > 0
    assert recorder['odom_topic'] == 'odom'  # merged over '/**'
    player = load_node_parameters('bag_player')
    assert {'bag', 'rate', 'loop', 'start_offset', 'publish_clock'} <= set(player)


def test_make_bench_runs_every_benchmark_script():
    sys.path.insert(0, str(REPO / 'benchmarks'))
    from run_all import BENCHMARKS
    listed = [script for script, _ in BENCHMARKS]
    present = sorted(p.name for p in (REPO / 'benchmarks').glob('*.py') if p.name != 'run_all.py')
    assert sorted(listed) == present
    assert len(set(listed)) == len(listed)
