"""`ssl-robot up` as a real process over DDS.

It brings a graph up, stops every child on SIGINT/SIGTERM (checked by PID), and exits
non-zero when a node dies.
"""
from __future__ import annotations

import signal

from ssl_robot.bringup.graph import GRAPHS

from ros_procs import (
    child_pids,
    copy_config,
    dds_env,
    NodeProcess,
    pid_alive,
    Probe,
    venv_tool,
    wait_until,
)

DOMAIN_ID = 63


def _require(graph: str) -> list[str]:
    # What the graph starts with config/robot.yaml: no model, so no inference node.
    names = [n.executable for n in GRAPHS[graph].resolve()]
    return names


def _params(tmp_path):
    return copy_config(tmp_path, recorder={'output': str(tmp_path / 'recording')},
                       labeller={'dataset': str(tmp_path / 'dataset')},
                       trainer={'dataset': str(tmp_path / 'dataset'),
                                'run_dir': str(tmp_path / 'run')})


def _up(tmp_path, *argv: str, domain_id: int = DOMAIN_ID) -> NodeProcess:
    return NodeProcess([venv_tool('ssl-robot'), 'up', *argv, '--param-file',
                        str(_params(tmp_path))], env=dds_env(domain_id),
                       log_path=tmp_path / 'up.log', cwd=tmp_path)


def _children(up: NodeProcess, count: int, timeout: float = 30.0) -> list[int]:
    assert wait_until(lambda: len(child_pids(up.pid)) >= count or not up.alive(), timeout), \
        up.output()[-3000:]
    return child_pids(up.pid)


def test_up_sim_publishes_and_sigint_stops_every_node(tmp_path):
    from nav_msgs.msg import Odometry
    from rosgraph_msgs.msg import Clock
    from sensor_msgs.msg import Image, Range

    names = _require('sim')
    up = _up(tmp_path, 'sim')
    try:
        pids = _children(up, len(names))
        assert len(pids) == len(names)
        with Probe(DOMAIN_ID) as probe:
            images = probe.subscribe('/image_raw', Image)
            ranges = probe.subscribe('/range/center', Range)
            odom = probe.subscribe('/odom', Odometry)
            clock = probe.subscribe('/clock', Clock, reliable=True)
            assert probe.spin_until(lambda: set(names) <= set(probe.node_names()), 60), \
                up.output()[-3000:]
            assert probe.spin_until(lambda: images and ranges and odom and clock, 60), \
                up.output()[-3000:]
            for name in names:
                assert probe.responsive(name), f'{name} does not answer'
                (use_sim_time,) = probe.get_parameters(name, ['use_sim_time'])
                assert use_sim_time.bool_value is True, name
            # Without a model (model_path '' in config/robot.yaml) inference is not
            # started, and `up` says so.
            assert 'inference' not in probe.node_names()
            assert 'inference not started: no model' in up.output()
        up.signal(signal.SIGINT)
        code = up.wait(60)
        assert code == 0, up.output()[-3000:]
        assert not [p for p in pids if pid_alive(p)], 'node processes outlived ssl-robot up'
        out = up.output()
        for name in names:
            assert f'[{name}]' in out or f'started {name}' in out
        assert 'stopped:' in out
    finally:
        up.stop()


def test_up_robot_stops_cleanly_on_sigterm(tmp_path):
    names = _require('robot')
    up = _up(tmp_path, 'robot', '--duration', '120')  # SIGTERM comes first
    try:
        pids = _children(up, len(names))
        with Probe(DOMAIN_ID) as probe:
            assert probe.spin_until(lambda: set(names) <= set(probe.node_names()), 60), \
                up.output()[-3000:]
        up.signal(signal.SIGTERM)
        code = up.wait(60)
        assert code == 0, up.output()[-3000:]
        assert not [p for p in pids if pid_alive(p)]
    finally:
        up.stop()


def test_up_exits_non_zero_when_a_node_dies(tmp_path):
    names = _require('robot')
    up = _up(tmp_path, 'robot')
    try:
        pids = _children(up, len(names))
        with Probe(DOMAIN_ID) as probe:
            assert probe.spin_until(lambda: set(names) <= set(probe.node_names()), 60)
        victim = pids[names.index('labeller')]
        import os
        os.kill(victim, signal.SIGKILL)
        code = up.wait(60)
        assert code == 1, up.output()[-3000:]
        assert 'labeller died unexpectedly' in up.output()
        assert not [p for p in pids if pid_alive(p)]
    finally:
        up.stop()


def test_up_with_a_missing_bag_is_one_clear_line(tmp_path):
    up = _up(tmp_path, 'replay', '--bag', str(tmp_path / 'nope'))
    try:
        assert up.wait(60) == 2
        assert f'{tmp_path / "nope"}: no such bag' in up.output()
        assert 'Traceback' not in up.output()
    finally:
        up.stop()
