"""The node graphs of the package, described once for launch files and `ssl-robot up`.

A graph (``robot``, ``sim``, ``replay``) is a list of nodes plus the few launch arguments
that configure it. `launch/*.launch.py` turn a graph into launch_ros actions
(`ssl_robot.bringup.launch_actions`); `ssl-robot up` resolves the same graph into command lines
(`Graph.resolve`). Pure Python: no launch, no rclpy.

Nodes use generic topic names (``image_raw``, ``odom``, ...); a topic launch argument
remaps the generic name to the robot's real topic in every node, e.g.
``image_topic:=/camera/color/image_raw``.

A launch argument that sets a node parameter (``bag``, ``model_path``, ``use_sim_time``)
reaches its node through a parameter file of that node's own section, written when the
graph starts (`ResolvedNode.write_overrides`) and given after the package's parameter
file: rcl lets a node's own section of a parameter file win over any ``/**`` entry,
whatever the order, so the ``/**`` file that launch_ros writes for a dict of parameters,
or a plain ``-p``, would lose to ``bag_player: bag: ''`` in config/robot.yaml.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import yaml

from ssl_robot.config import load_node_parameters
from ssl_robot.errors import ConfigError
from ssl_robot.paths import config_path


@dataclass(frozen=True)
class LaunchArgument:
    """A launch argument: its name, default value (a string, as launch has it) and help."""

    name: str
    default: str
    description: str


@dataclass(frozen=True)
class NodeSpec:
    """One node of a graph.

    Attributes:
        executable: Console script (setup.py) that runs it; also `ros2 run` name.
        name: Node name; also the section of the parameter file it reads.
        lifecycle: Whether it is a lifecycle node that is brought to 'active'.
        condition: Boolean launch argument that enables the node ('' when always on).
        argument_parameters: Node parameter -> launch argument that sets it.
        needs_model: Started only with a model (its `model_path` from the launch argument
            or the parameter file) or with online training, which provides one.
        group_executable: With several comma-separated models in `model_path`, this
            executable runs a node per model in one process (`inference_group`): the
            first named `name`, the others `name`_1, `name`_2, ...
    """

    executable: str
    name: str
    lifecycle: bool = False
    condition: str = ''
    argument_parameters: tuple[tuple[str, str], ...] = ()
    needs_model: bool = False
    group_executable: str = ''


#: Launch argument -> the generic topic name it remaps (in every node of every graph).
TOPIC_ARGUMENTS: tuple[tuple[str, str], ...] = (
    ('image_topic', 'image_raw'),
    ('camera_info_topic', 'camera_info'),
    ('depth_topic', 'depth/image'),
    ('odom_topic', 'odom'),
    ('imu_topic', 'imu'),
    ('cmd_vel_topic', 'cmd_vel'),
)

#: Proximity sensors: `range_prefix:=/tof` remaps range/left -> /tof/left and so on.
RANGE_SENSORS: tuple[str, ...] = ('left', 'center', 'right')
RANGE_PREFIX_ARGUMENT = ('range_prefix', 'range')


class _NoAliasDumper(yaml.SafeDumper):
    """YAML without anchors and aliases, which rcl's parameter-file parser refuses."""

    def ignore_aliases(self, data: object) -> bool:
        return True


@dataclass(frozen=True)
class ResolvedNode:
    """A node of a graph with every launch argument substituted (what is started).

    Attributes:
        params_files: The parameter files, in order (the package's or `params_file`).
        parameters: What launch arguments set (use_sim_time, bag, model_path), given to
            the node in a file of its own section (`write_overrides`), after
            `params_files`.
        activate: Whether a lifecycle node is configured and activated when it starts
            (False when it has no model yet: the online trainer brings it up).
        members: For a group process (`NodeSpec.group_executable`): each node's name,
            model and parameters (its own section of the overrides file; each brings
            itself up, `autostart`). `name` is then the first node's.
    """

    executable: str
    name: str
    lifecycle: bool
    params_files: tuple[Path, ...]
    parameters: dict[str, object]
    remappings: tuple[tuple[str, str], ...]
    activate: bool = False
    members: tuple[tuple[str, str, dict[str, object]], ...] = ()

    def overrides(self) -> dict[str, object]:
        """The launch-argument parameters as a parameter file of this node's own section.

        A group's: a section per node.
        """
        if self.members:
            return {name: {'ros__parameters': dict(params)} for name, _, params in self.members}
        return {self.name: {'ros__parameters': dict(self.parameters)}}

    def arguments(self) -> list[str]:
        """The command-line arguments before `--ros-args` (a group's `--models`)."""
        if not self.members:
            return []
        return ['--models', *(f'{name}={model}' for name, model, _ in self.members)]

    def write_overrides(self, directory: Path) -> Path:
        """Write `overrides()` to `directory`/<node>.yaml and return its path."""
        directory.mkdir(parents=True, exist_ok=True)
        path = directory / f'{self.name}.yaml'
        path.write_text(yaml.dump(self.overrides(), Dumper=_NoAliasDumper,
                                  default_flow_style=False))
        return path

    def all_params_files(self, overrides_file: Path) -> list[Path]:
        """Every parameter file of the node in command-line order (later ones win)."""
        return [*self.params_files, overrides_file]

    def ros_args(self, overrides_file: Path) -> list[str]:
        """The node's `--ros-args`: name, parameter files, remappings.

        The same as launch_ros builds for `parameters=all_params_files(...)`.

        Args:
            overrides_file: Where `write_overrides` wrote this node's launch parameters.
        """
        # A group's nodes are named by --models: __node:= would rename every one of them.
        args = [*self.arguments(), '--ros-args'] + (
            [] if self.members else ['-r', f'__node:={self.name}'])
        for path in self.all_params_files(overrides_file):
            args += ['--params-file', str(path)]
        for src, dst in self.remappings:
            args += ['-r', f'{src}:={dst}']
        return args


@dataclass(frozen=True)
class GraphPlan:
    """The nodes a graph starts for some argument values.

    `notes` say why a node of the graph is not among them, or starts unconfigured (lines
    for the launch output).
    """

    nodes: tuple[ResolvedNode, ...]
    notes: tuple[str, ...] = ()


@dataclass(frozen=True)
class Graph:
    """A node graph and its launch arguments."""

    name: str
    description: str
    nodes: tuple[NodeSpec, ...]
    arguments: tuple[LaunchArgument, ...] = field(default_factory=tuple)

    def argument_defaults(self) -> dict[str, str]:
        return {a.name: a.default for a in self.arguments}

    def remappings(self, values: dict[str, str]) -> list[tuple[str, str]]:
        """Generic topic -> real topic for the argument values (identities left out)."""
        pairs = [(generic, values.get(arg, generic)) for arg, generic in TOPIC_ARGUMENTS]
        prefix = values.get(RANGE_PREFIX_ARGUMENT[0], RANGE_PREFIX_ARGUMENT[1]).rstrip('/')
        pairs += [(f'range/{s}', f'{prefix}/{s}') for s in RANGE_SENSORS]
        return [(src, dst) for src, dst in pairs if src != dst]

    def resolve(self, values: dict[str, str] | None = None, *,
                extra_remappings: list[tuple[str, str]] | None = None) -> list[ResolvedNode]:
        """The nodes `plan` starts (see there)."""
        return list(self.plan(values, extra_remappings=extra_remappings).nodes)

    def plan(self, values: dict[str, str] | None = None, *,
             extra_remappings: list[tuple[str, str]] | None = None) -> GraphPlan:
        """Substitute argument values (defaults where not given) into every enabled node.

        A node that needs a model starts only when `model_path` is given (argument or
        parameter file) or online training will provide one; then it starts unconfigured
        and the trainer brings it up with its first model.

        Args:
            values: Launch argument values by name (strings, as on a launch command line).
            extra_remappings: More remapping rules applied to every node.

        Raises:
            ConfigError: For an argument the graph does not have, or a missing param file.
        """
        values = dict(values or {})
        unknown = set(values) - {a.name for a in self.arguments}
        if unknown:
            raise ConfigError(f'graph {self.name!r} has no argument {", ".join(sorted(unknown))}'
                              f' (it has {", ".join(a.name for a in self.arguments)})')
        merged = {**self.argument_defaults(), **values}
        params_file = Path(merged['params_file']) if merged.get('params_file') else config_path()
        if not params_file.is_file():
            raise ConfigError(f'{params_file}: no such parameter file')
        remaps = tuple(self.remappings(merged) + list(extra_remappings or []))
        online = parse_bool(merged.get('online_training', 'false'), 'online_training')
        resolved, notes = [], []
        for spec in self.nodes:
            if spec.condition and not parse_bool(merged[spec.condition], spec.condition):
                continue
            params: dict[str, object] = {
                'use_sim_time': parse_bool(merged['use_sim_time'], 'use_sim_time')}
            # An empty argument leaves the parameter to the parameter file.
            params.update((p, merged[a]) for p, a in spec.argument_parameters if merged[a])
            activate = spec.lifecycle
            model = ''
            if spec.needs_model:
                model = str(params.get('model_path') or load_node_parameters(
                    spec.name, params_file).get('model_path') or '')
                if not model and not online:
                    notes.append(f'{spec.name} not started: no model (give model_path:=MODEL'
                                 '.onnx, or online_training:=true to train one here)')
                    continue
                if not model:
                    activate = False
                    notes.append(f'{spec.name} starts unconfigured: the online trainer '
                                 'configures and activates it with its first model')
            models = [m.strip() for m in model.split(',')] if spec.needs_model else []
            if spec.group_executable and len(models) > 1:
                resolved.append(_group_node(spec, models, params, params_file, remaps))
                notes.append(f'{spec.name}: {len(models)} models in one {spec.group_executable}'
                             f' process, nodes {", ".join(n for n, _, _ in resolved[-1].members)}')
                continue
            resolved.append(ResolvedNode(spec.executable, spec.name, spec.lifecycle,
                                         (params_file,), params, remaps, activate))
        return GraphPlan(tuple(resolved), tuple(notes))


def _group_node(spec: NodeSpec, models: list[str], params: dict[str, object],
                params_file: Path, remaps: tuple[tuple[str, str], ...]) -> ResolvedNode:
    """One `spec.group_executable` process with a node per model (`NodeSpec`).

    Each node gets the parameter file's section of `spec.name` (camera extrinsics, sensor
    layout: the same robot), what the arguments set, and `autostart`; its model comes
    from `--models`.
    """
    if not all(models):
        raise ConfigError(f'model_path {",".join(models)!r}: an empty model in the list')
    # The node's own section only: '/**' reaches every node of the process anyway.
    section = (yaml.safe_load(params_file.read_text()) or {}).get(spec.name) or {}
    shared = {k: v for k, v in (section.get('ros__parameters') or {}).items()
              if k not in ('model_path', 'autostart')}
    own = {k: v for k, v in params.items() if k != 'model_path'}
    members = tuple(
        (spec.name if k == 0 else f'{spec.name}_{k}', model,
         {**shared, **own, 'autostart': True}) for k, model in enumerate(models))
    return ResolvedNode(spec.group_executable, spec.name, False, (params_file,),
                        {**params, 'model_path': ','.join(models)}, remaps, True, members)


def parse_bool(text: str, name: str) -> bool:
    """Parse a boolean launch argument the way launch does ('true'/'false', any case)."""
    lowered = str(text).strip().lower()
    if lowered in ('true', '1', 'yes', 'on'):
        return True
    if lowered in ('false', '0', 'no', 'off'):
        return False
    raise ConfigError(f'argument {name}: expected true or false, got {text!r}')


def _common_arguments(use_sim_time: bool) -> tuple[LaunchArgument, ...]:
    topics = tuple(LaunchArgument(arg, generic, f'real topic of the generic {generic!r}')
                   for arg, generic in TOPIC_ARGUMENTS)
    return (
        LaunchArgument('use_sim_time', 'true' if use_sim_time else 'false',
                       'use /clock instead of the system clock (every node)'),
        LaunchArgument('params_file', '',
                       'parameter file (node: ros__parameters: form); '
                       "empty = the package's config/robot.yaml"),
        LaunchArgument('online_training', 'false',
                       'also run the trainer node (retrains on the live dataset)'),
        LaunchArgument('model_path', '',
                       'ONNX model of the inference node (ssl-robot export); empty = the '
                       "parameter file's; without any, inference starts only with "
                       'online_training; several, comma-separated (obstacle.onnx,'
                       'terrain.onnx): one inference_group process, a node per model '
                       '(inference, inference_1, ...) on one camera subscription'),
        *topics,
        LaunchArgument(RANGE_PREFIX_ARGUMENT[0], RANGE_PREFIX_ARGUMENT[1],
                       'namespace of the proximity sensors (<prefix>/left|center|right)'),
    )


#: The nodes every graph runs on top of its sensor source.
LEARNING_NODES: tuple[NodeSpec, ...] = (
    NodeSpec('recorder', 'recorder'),
    NodeSpec('labeller', 'labeller'),
    NodeSpec('inference', 'inference', lifecycle=True,
             argument_parameters=(('model_path', 'model_path'),), needs_model=True,
             group_executable='inference_group'),
    NodeSpec('trainer', 'trainer', condition='online_training'),
)

GRAPHS: dict[str, Graph] = {
    'robot': Graph(
        'robot', 'recorder, labeller and inference on a physical robot',
        LEARNING_NODES, _common_arguments(use_sim_time=False)),
    'sim': Graph(
        'sim', 'the simulated robot (publishes /clock) with the same nodes',
        (NodeSpec('sim_robot', 'sim_robot'), *LEARNING_NODES),
        _common_arguments(use_sim_time=True)),
    'replay': Graph(
        'replay', 'a bag replayed with /clock into the same nodes',
        (NodeSpec('bag_player', 'bag_player', argument_parameters=(('bag', 'bag'),)),
         *LEARNING_NODES),
        (*_common_arguments(use_sim_time=True),
         LaunchArgument('bag', '', 'the bag to replay (directory or .mcap file)'))),
}


def graph(name: str) -> Graph:
    """Return a graph by name.

    Raises:
        ConfigError: For an unknown graph.
    """
    try:
        return GRAPHS[name]
    except KeyError:
        raise ConfigError(f'no graph {name!r} (choose {", ".join(GRAPHS)})') from None
