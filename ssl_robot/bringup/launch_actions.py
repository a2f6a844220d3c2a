"""Turn a node graph (`ssl_robot.bringup.graph`) into a ROS 2 launch description.

Only the launch files import this module: it needs `launch` and `launch_ros`, which a
ROS 2 install provides (they are not pip-installable). `ssl-robot up` starts the same
graphs without them.

The launch arguments are read when the launch runs (an `OpaqueFunction`) and resolved by
`Graph.plan`, the same code `ssl-robot up` uses: each node gets the parameter file, then a
file of its own section with what the arguments set (`bag`, `model_path`,
`use_sim_time`), which is the only way such a value beats the parameter file's entry for
that node (a dict given to launch_ros would be written under ``/**`` and lose).
"""
from __future__ import annotations

from pathlib import Path
import tempfile

from launch.actions import (
    DeclareLaunchArgument,
    EmitEvent,
    LogInfo,
    OpaqueFunction,
    RegisterEventHandler,
)
from launch.events import matches_action
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import LifecycleNode, Node
from launch_ros.event_handlers import OnStateTransition
from launch_ros.events.lifecycle import ChangeState
from lifecycle_msgs.msg import Transition

from launch import LaunchContext, LaunchDescription
from ssl_robot.bringup.graph import Graph, graph, ResolvedNode
from ssl_robot.paths import config_path


def graph_launch_description(graph_name: str) -> LaunchDescription:
    """Declare the graph's launch arguments; start its nodes once they are known."""
    spec = graph(graph_name)
    entities: list = [
        DeclareLaunchArgument(a.name, default_value=a.default or (
            str(config_path()) if a.name == 'params_file' else ''), description=a.description)
        for a in spec.arguments]
    entities.append(OpaqueFunction(function=_start_graph, args=[spec]))
    return LaunchDescription(entities)


def _start_graph(context: LaunchContext, spec: Graph) -> list:
    values = {a.name: LaunchConfiguration(a.name).perform(context) for a in spec.arguments}
    plan = spec.plan(values)
    overrides_dir = Path(tempfile.mkdtemp(prefix=f'ssl_robot_{spec.name}_launch_'))
    actions: list = [LogInfo(msg=f'ssl_robot: {note}') for note in plan.notes]
    for node in plan.nodes:
        actions += _node_actions(node, node.write_overrides(overrides_dir))
    return actions


def _node_actions(node: ResolvedNode, overrides_file: Path) -> list:
    """A Node (or a LifecycleNode brought to active when it has a model) for `node`.

    A group process (several models, `inference_group`) is a plain Node: its nodes bring
    themselves up (`autostart` in their overrides sections).
    """
    kwargs = dict(
        package='ssl_robot', executable=node.executable,
        parameters=[str(p) for p in node.all_params_files(overrides_file)],
        remappings=list(node.remappings), output='screen', emulate_tty=True)
    if node.members:  # a group process: --models names its nodes (a name renames them all)
        return [Node(arguments=node.arguments(), **kwargs)]
    kwargs['name'] = node.name
    if not node.lifecycle:
        return [Node(**kwargs)]
    action = LifecycleNode(namespace='', **kwargs)
    if not node.activate:
        return [action]
    return [
        action,
        RegisterEventHandler(OnStateTransition(
            target_lifecycle_node=action, goal_state='inactive',
            entities=[EmitEvent(event=ChangeState(
                lifecycle_node_matcher=matches_action(action),
                transition_id=Transition.TRANSITION_ACTIVATE))])),
        EmitEvent(event=ChangeState(
            lifecycle_node_matcher=matches_action(action),
            transition_id=Transition.TRANSITION_CONFIGURE)),
    ]
