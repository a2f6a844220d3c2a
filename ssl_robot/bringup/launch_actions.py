"""Turn a node graph (`ssl_robot.bringup.graph`) into a ROS 2 launch description.

Only the launch files import this module: it needs `launch` and `launch_ros`, which a
ROS 2 install provides (they are not pip-installable). `ssl-robot up` starts the same
graphs without them.
"""
from __future__ import annotations

import os

from ament_index_python.packages import get_package_share_directory
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, EmitEvent, RegisterEventHandler
from launch.conditions import IfCondition
from launch.events import matches_action
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import LifecycleNode, Node
from launch_ros.event_handlers import OnStateTransition
from launch_ros.events.lifecycle import ChangeState
from launch_ros.parameter_descriptions import ParameterValue
from lifecycle_msgs.msg import Transition

from ssl_robot.bringup.graph import graph, RANGE_PREFIX_ARGUMENT, RANGE_SENSORS, TOPIC_ARGUMENTS


def graph_launch_description(graph_name: str) -> LaunchDescription:
    """Declare the graph's launch arguments and start its nodes.

    Every node gets the parameter file (`params_file`, the package's config/robot.yaml
    by default), `use_sim_time`, and the topic remappings; a lifecycle node is
    configured when it starts and activated once it is inactive.
    """
    spec = graph(graph_name)
    default_params = os.path.join(get_package_share_directory('ssl_robot'), 'config',
                                  'robot.yaml')
    entities: list = [
        DeclareLaunchArgument(a.name, default_value=a.default or (
            default_params if a.name == 'params_file' else ''), description=a.description)
        for a in spec.arguments]
    remappings = [(generic, LaunchConfiguration(arg)) for arg, generic in TOPIC_ARGUMENTS]
    remappings += [(f'range/{s}', [LaunchConfiguration(RANGE_PREFIX_ARGUMENT[0]), f'/{s}'])
                   for s in RANGE_SENSORS]
    for node in spec.nodes:
        parameters: dict = {
            'use_sim_time': ParameterValue(LaunchConfiguration('use_sim_time'), value_type=bool)}
        parameters.update((p, ParameterValue(LaunchConfiguration(a), value_type=str))
                          for p, a in node.argument_parameters)
        kwargs = dict(
            package='ssl_robot', executable=node.executable, name=node.name,
            parameters=[LaunchConfiguration('params_file'), parameters],
            remappings=remappings, output='screen', emulate_tty=True,
            condition=IfCondition(LaunchConfiguration(node.condition))
            if node.condition else None)
        if not node.lifecycle:
            entities.append(Node(**kwargs))
            continue
        action = LifecycleNode(namespace='', **kwargs)
        entities.append(action)
        entities.append(RegisterEventHandler(OnStateTransition(
            target_lifecycle_node=action, goal_state='inactive',
            entities=[EmitEvent(event=ChangeState(
                lifecycle_node_matcher=matches_action(action),
                transition_id=Transition.TRANSITION_ACTIVATE))])))
        entities.append(EmitEvent(event=ChangeState(
            lifecycle_node_matcher=matches_action(action),
            transition_id=Transition.TRANSITION_CONFIGURE)))
    return LaunchDescription(entities)
