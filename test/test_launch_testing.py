"""launch_testing: replay.launch.py with bag:= and model_path:= under the real launch system.

The launch arguments reach the nodes (the bag player plays the bag, the inference node
reports the model and gets active), each node's command line has the package parameter
file then its own launch-argument file, and all exit cleanly. Runs where a ROS 2 install
provides `launch`, `launch_ros` and `launch_testing` (`colcon test`, or `pytest` in a
sourced workspace); skipped here, where they cannot be installed from PyPI —
test_launch_static.py starts the same command lines, and test_up.py the same graphs.
"""
from __future__ import annotations

from pathlib import Path
import runpy
import tempfile
import time
import unittest

import pytest

pytest.importorskip(
    'launch_testing', reason='launch_testing is not installed (it comes with a ROS 2 '
    'install, not with pip); test_up.py runs the same graph through ssl-robot up')
pytest.importorskip('launch_ros', reason='launch_ros is not installed (ROS 2 install only)')

from launch.actions import IncludeLaunchDescription, SetEnvironmentVariable  # noqa: E402
from launch.launch_description_sources import PythonLaunchDescriptionSource  # noqa: E402
import launch_testing.actions  # noqa: E402
import launch_testing.asserts  # noqa: E402
import yaml  # noqa: E402

import launch  # noqa: E402
from ssl_robot.bringup.graph import GRAPHS  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
LAUNCH = REPO / 'launch'
DOMAIN_ID = '62'
WORK = Path(tempfile.mkdtemp(prefix='ssl_robot_launch_test_'))
BAG = WORK / 'bag'
MODEL = WORK / 'obstacle.onnx'


def _params_file() -> str:
    """config/robot.yaml with outputs in a temporary directory, the bag played in a loop."""
    data = yaml.safe_load((REPO / 'config' / 'robot.yaml').read_text())
    data['recorder']['ros__parameters']['output'] = str(WORK / 'recording')
    data['labeller']['ros__parameters']['dataset'] = str(WORK / 'dataset')
    data['bag_player']['ros__parameters']['loop'] = True
    path = WORK / 'robot.yaml'
    path.write_text(yaml.safe_dump(data))
    return str(path)


def _bag_and_model() -> None:
    import torch

    from ssl_robot.bags.typestore import msg_class, ns_to_stamp
    from ssl_robot.bags.writer import BagWriter
    from ssl_robot.robot.nets import build_robot_model, default_spec, export_robot_onnx
    with BagWriter(BAG) as writer:
        clock = msg_class('rosgraph_msgs/msg/Clock')
        for i in range(20):
            writer.write('/clock', 'rosgraph_msgs/msg/Clock',
                         clock(clock=ns_to_stamp(i * 10**8)), i * 10**8)
    torch.manual_seed(0)
    export_robot_onnx(build_robot_model(default_spec('obstacle', input_hw=[24, 32], width=4)),
                      MODEL)


@pytest.mark.launch_test
def generate_test_description():
    _bag_and_model()
    replay = IncludeLaunchDescription(
        PythonLaunchDescriptionSource(str(LAUNCH / 'replay.launch.py')),
        launch_arguments={'params_file': _params_file(), 'bag': str(BAG),
                          'model_path': str(MODEL)}.items())
    return launch.LaunchDescription([
        SetEnvironmentVariable('ROS_DOMAIN_ID', DOMAIN_ID),
        SetEnvironmentVariable('ROS_AUTOMATIC_DISCOVERY_RANGE', 'LOCALHOST'),
        replay,
        launch_testing.actions.ReadyToTest(),
    ])


class TestGraphComesUp(unittest.TestCase):

    def test_launch_files_declare_the_graphs_arguments(self):
        for name, spec in GRAPHS.items():
            description = runpy.run_path(str(LAUNCH / f'{name}.launch.py'))[
                'generate_launch_description']()
            arguments = [e.name for e in description.entities
                         if isinstance(e, launch.actions.DeclareLaunchArgument)]
            self.assertEqual(arguments, [a.name for a in spec.arguments])

    def test_launch_arguments_reach_the_nodes_and_inference_gets_active(self):
        from lifecycle_msgs.srv import GetState
        from rcl_interfaces.srv import GetParameters
        import rclpy
        from rclpy.context import Context
        from rclpy.executors import SingleThreadedExecutor

        context = Context()
        rclpy.init(context=context, domain_id=int(DOMAIN_ID))
        node = rclpy.create_node('launch_test_probe', context=context)
        executor = SingleThreadedExecutor(context=context)
        executor.add_node(node)

        def call(srv_type, service, request):
            client = node.create_client(srv_type, service)
            self.assertTrue(client.wait_for_service(timeout_sec=30), service)
            future = client.call_async(request)
            rclpy.spin_until_future_complete(node, future, executor=executor, timeout_sec=10)
            return future.result()

        try:
            expected = {n.name for n in GRAPHS['replay'].resolve(
                {'bag': str(BAG), 'model_path': str(MODEL)})}
            self.assertIn('inference', expected)
            deadline = time.monotonic() + 60
            names: set[str] = set()
            while time.monotonic() < deadline and not expected <= names:
                executor.spin_once(timeout_sec=0.2)
                names = {n for n, _ in node.get_node_names_and_namespaces()}
            self.assertLessEqual(expected, names)
            bag = call(GetParameters, '/bag_player/get_parameters',
                       GetParameters.Request(names=['bag', 'use_sim_time'])).values
            self.assertEqual((bag[0].string_value, bag[1].bool_value), (str(BAG), True))
            model = call(GetParameters, '/inference/get_parameters',
                         GetParameters.Request(names=['model_path'])).values
            self.assertEqual(model[0].string_value, str(MODEL))
            label = ''
            while time.monotonic() < deadline and label != 'active':
                label = call(GetState, '/inference/get_state',
                             GetState.Request()).current_state.label
                time.sleep(0.2)
            self.assertEqual(label, 'active')
        finally:
            executor.shutdown()
            node.destroy_node()
            context.try_shutdown()


@launch_testing.post_shutdown_test()
class TestShutdown(unittest.TestCase):

    def test_every_node_exits_cleanly(self, proc_info):
        launch_testing.asserts.assertExitCodes(proc_info, allowable_exit_codes=[0, -2, 130])

    def test_each_node_gets_the_package_file_then_its_own(self, proc_info):
        params = str(WORK / 'robot.yaml')
        for info in proc_info:
            cmd = info.cmd
            files = [cmd[i + 1] for i, arg in enumerate(cmd) if arg == '--params-file']
            self.assertEqual(files[0], params, cmd)
            self.assertEqual(len(files), 2, cmd)
            own = yaml.safe_load(Path(files[1]).read_text())
            name = next(a.split(':=')[1] for a in cmd if a.startswith('__node:='))
            self.assertEqual(list(own), [name])
