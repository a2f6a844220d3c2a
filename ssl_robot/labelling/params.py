"""Labelling parameters from the `labeller` node section of config/robot.yaml.

The live node and `ssl-robot label` build their parameters here from the same keys, so
a dataset made offline and one made live from the same config are made the same way.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from ssl_robot.labelling import LabelError
from ssl_robot.labelling.collision import CollisionParams
from ssl_robot.labelling.proximity import ProximityParams
from ssl_robot.labelling.scan import parse_sectors, ScanMount, ScanSector
from ssl_robot.labelling.terrain import TerrainParams

#: The one table of labelling parameters: key -> (default, unit, description). The live
#: node declares exactly these (with the description), `ssl-robot label` reads the same keys
#: from config/robot.yaml, whose `labeller` section repeats these defaults (a test checks).
PARAMETERS: dict[str, tuple[Any, str, str]] = {
    'image_topic': ('image_raw', '', 'camera topic (sensor_msgs/Image)'),
    'camera_info_topic': ('camera_info', '', 'camera intrinsics topic (sensor_msgs/CameraInfo)'),
    'range_topics': (['range/left', 'range/center', 'range/right'], '',
                     'proximity topics (sensor_msgs/Range), one per sensor'),
    'odom_topic': ('odom', '', 'odometry topic (nav_msgs/Odometry)'),
    'imu_topic': ('imu', '', 'IMU topic (sensor_msgs/Imu)'),
    'cmd_vel_topic': ('cmd_vel', '', 'commanded velocity (geometry_msgs/Twist), for wheel slip'),
    'camera_xyz': ([0.10, 0.0, 0.12], 'm', 'camera position in base_link'),
    'camera_pitch': (0.35, 'rad', 'camera pitch, positive looking down'),
    'label_distances': ([0.0, 0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 0.35, 0.4, 0.45, 0.5], 'm',
                        'distances ahead at which frames get proximity labels'),
    'obstacle_range_threshold': (0.12, 'm', 'Range below this (or -inf) means obstacle'),
    'frame_rate_hz': (5.0, 'Hz', 'frames labelled per second (others skipped)'),
    'pose_tolerance_x': (0.02, 'm', "tolerance on x of the pose at t'"),
    'pose_tolerance_y': (0.02, 'm', "tolerance on y of the pose at t'"),
    'pose_tolerance_yaw': (0.15, 'rad', "tolerance on heading of the pose at t'"),
    'max_path_slack': (0.05, 'm', 'path driven beyond d + tolerance that still counts'),
    'label_horizon_s': (10.0, 's', "longest t' - t searched; frames wait this long for labels"),
    'range_match_tolerance_s': (0.05, 's', "largest |reading stamp - t'| used"),
    'odom_max_gap_s': (0.5, 's', 'no pose interpolation across longer odometry gaps'),
    'odom_max_jump_m': (0.5, 'm', 'an odometry step larger than this is a reset'),
    'odom_max_jump_rad': (1.0, 'rad', 'an odometry turn larger than this is a reset'),
    'odom_max_backstep_s': (1.0, 's', 'stamps going back further than this are a restart'),
    'terrain_grid': ([6, 8], '', 'terrain patch grid [rows, cols] over the image'),
    'terrain_window_s': (0.5, 's', 'IMU window of the roughness signal'),
    'terrain_hop_s': (0.1, 's', 'hop between roughness windows'),
    'terrain_band_hz': ([5.0, 30.0], 'Hz', 'vibration band of vertical acceleration [low, high]'),
    'terrain_gyro_weight': (1.0, 'm/s^2 per rad/s', 'weight of RMS roll/pitch rate in the signal'),
    'terrain_slip_weight': (1.0, 'm/s^2 per m/s', 'weight of wheel slip in the signal'),
    'terrain_horizon_s': (5.0, 's', 'how far ahead footprints are projected into a frame'),
    'footprint_length_m': (0.10, 'm', 'robot footprint length'),
    'footprint_width_m': (0.09, 'm', 'robot footprint width'),
    'terrain_bands': (8, '', 'IMU bands per axis of the terrain descriptor, edges up to the '
                      'IMU Nyquist frequency (fewer on a slow IMU)'),
    'joint_states_topic': ('joint_states', '', 'wheel joint states (sensor_msgs/JointState): '
                           'wheel velocity and effort of the terrain descriptor'),
    'wheel_joints_left': (['left_wheel'], '', 'joint names of the left wheels'),
    'wheel_joints_right': (['right_wheel'], '', 'joint names of the right wheels'),
    'wheel_radius_m': (0.022, 'm', 'wheel radius (JointState rad/s to rim speed)'),
    'wheel_track_m': (0.095, 'm', 'distance between left and right wheels'),
    'view_match_tolerance_s': (0.015, 's', 'largest |extra camera stamp - frame stamp| matched; '
                               'a view farther from its frame is masked'),
    'scan_topic': ('', '', "laser scan (sensor_msgs/LaserScan) read as proximity sensors, "
                   "'' for none"),
    'scan_sectors': (['scan_left:0.2:0.6', 'scan_center:-0.2:0.2', 'scan_right:-0.6:-0.2'],
                     'rad',
                     'scan sectors name:angle_min:angle_max in the scan frame, each a '
                     'proximity sensor reading its nearest valid beam'),
    'scan_pose': ([0.0, 0.0, 0.0], 'm, m, rad', 'pose [x, y, yaw] of the scan frame in '
                  'base_link'),
    'bumper_topic': ('bumper', '', 'contact force on the robot (geometry_msgs/WrenchStamped); '
                     'without it collisions are detected from IMU, odometry and cmd_vel'),
    'collision_force_n': (0.3, 'N', 'bumper force in the ground plane that is a collision'),
    'collision_decel_mps2': (2.5, 'm/s^2', 'forward deceleration while commanded forward '
                             'that is a collision (no bumper)'),
    'collision_stall_ratio': (0.3, '', 'odometry speed below this fraction of a forward '
                              'command for collision_stall_s is a collision (no bumper)'),
    'collision_stall_s': (0.3, 's', 'how long a stall lasts to be a collision'),
    'collision_horizon_s': (1.0, 's', "frames this long before a collision are labelled "
                            "'collision ahead'"),
    'collision_free_margin_s': (1.0, 's', "extra time without collision that a 'free' "
                                'frame needs'),
}

#: Defaults of every labelling key of the config (the node declares exactly these).
DEFAULTS: dict[str, Any] = {key: entry[0] for key, entry in PARAMETERS.items()}

#: Labelling keys whose default is an empty list of strings. The node declares them as
#: typed string arrays (an empty default given as a value would be typed BYTE_ARRAY and
#: refuse strings). `extra_image_topics` lists the image topics of extra cameras
#: (multi-view datasets): in a parameter file, `-p "extra_image_topics:=[camera2/image_raw]"`
#: for the node, `--remap views:=/camera2/image_raw` for `ssl-robot label`.
STRING_ARRAY_DEFAULTS: dict[str, list[str]] = {'extra_image_topics': []}

#: Description of every labelling parameter, unit included (the node's descriptors).
DESCRIPTIONS: dict[str, str] = {
    **{key: f'{text} ({unit})' if unit else text for key, (_, unit, text) in PARAMETERS.items()},
    'extra_image_topics': 'image topics of extra cameras (sensor_msgs/Image, the main '
                          "camera's size): the views of a multi-view dataset",
}


@dataclass(frozen=True)
class LabellingParams:
    """Everything that decides the labels; `as_dict()` is the provenance stored.

    `view_topics` are the extra cameras' image topics; each kept main-camera frame gets
    the frame of each of them nearest in header stamp, if within `view_match_tolerance_s`
    (about half a frame period), else that view is masked for the frame.

    `scan_topic` ('' for none) is a `sensor_msgs/LaserScan` whose `scan_sectors` are read
    as more proximity sensors (after the range topics'), the scanner at `scan_mount` on
    the robot (see `ssl_robot.labelling.scan`). `bumper_topic` and `collision` decide
    the crash labels (see `ssl_robot.labelling.collision`).
    """

    image_topic: str
    camera_info_topic: str
    range_topics: tuple[str, ...]
    odom_topic: str
    imu_topic: str
    cmd_vel_topic: str
    frame_rate_hz: float
    odom_max_gap_s: float
    odom_max_jump_m: float
    odom_max_jump_rad: float
    odom_max_backstep_s: float
    view_topics: tuple[str, ...] = ()
    view_match_tolerance_s: float = 0.015
    scan_topic: str = ''
    scan_sectors: tuple[ScanSector, ...] = ()
    scan_mount: ScanMount = field(default_factory=ScanMount)
    bumper_topic: str = 'bumper'
    joint_states_topic: str = 'joint_states'
    wheel_joints: tuple[tuple[str, ...], tuple[str, ...]] = (('left_wheel',), ('right_wheel',))
    wheel_radius_m: float = 0.022
    collision: CollisionParams = field(default_factory=CollisionParams)
    proximity: ProximityParams = field(default_factory=ProximityParams)
    terrain: TerrainParams = field(default_factory=TerrainParams)

    @property
    def sensors(self) -> list[str]:
        """Sensor names: the last part of each range topic ('range/left' -> 'left')."""
        names = [t.rstrip('/').rsplit('/', 1)[-1] for t in self.range_topics]
        return names + [s.name for s in self.scan_sectors] if self.scan_topic else names

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def trajectory_kwargs(self) -> dict[str, float]:
        return {'max_gap_s': self.odom_max_gap_s, 'max_jump_m': self.odom_max_jump_m,
                'max_jump_rad': self.odom_max_jump_rad,
                'max_backstep_s': self.odom_max_backstep_s}


def absolute(topic: str) -> str:
    """Generic topic name as it appears in a bag recorded at the root namespace."""
    return topic if topic.startswith('/') else f'/{topic}'


def labelling_params(config: dict[str, Any] | None = None) -> LabellingParams:
    """Build LabellingParams from node parameters (missing keys take DEFAULTS).

    Raises:
        LabelError: For a negative view match tolerance, a malformed scan sector or
            scan pose, or a scan sector named like a range sensor.
    """
    c = {**DEFAULTS, **STRING_ARRAY_DEFAULTS, **(config or {})}
    tolerance = float(c['view_match_tolerance_s'])
    if not tolerance >= 0.0:
        raise LabelError(f'view_match_tolerance_s must be >= 0, got {tolerance}')
    scan_topic = str(c['scan_topic'] or '')
    sectors = parse_sectors(c['scan_sectors'] or ()) if scan_topic else ()
    pose = [float(v) for v in c['scan_pose']]
    if len(pose) != 3:
        raise LabelError(f'scan_pose must be [x, y, yaw] of the scan frame in base_link, '
                         f'got {pose}')
    params = LabellingParams(
        image_topic=str(c['image_topic']), camera_info_topic=str(c['camera_info_topic']),
        range_topics=tuple(str(t) for t in c['range_topics']), odom_topic=str(c['odom_topic']),
        imu_topic=str(c['imu_topic']), cmd_vel_topic=str(c['cmd_vel_topic']),
        frame_rate_hz=float(c['frame_rate_hz']),
        odom_max_gap_s=float(c['odom_max_gap_s']), odom_max_jump_m=float(c['odom_max_jump_m']),
        odom_max_jump_rad=float(c['odom_max_jump_rad']),
        odom_max_backstep_s=float(c['odom_max_backstep_s']),
        view_topics=tuple(str(t) for t in c['extra_image_topics'] or ()),
        view_match_tolerance_s=tolerance,
        scan_topic=scan_topic, scan_sectors=sectors, scan_mount=ScanMount(*pose),
        bumper_topic=str(c['bumper_topic'] or ''),
        joint_states_topic=str(c['joint_states_topic'] or ''),
        wheel_joints=(tuple(str(j) for j in c['wheel_joints_left']),
                      tuple(str(j) for j in c['wheel_joints_right'])),
        wheel_radius_m=float(c['wheel_radius_m']),
        collision=CollisionParams(
            bumper_force_n=float(c['collision_force_n']),
            decel_mps2=float(c['collision_decel_mps2']),
            stall_ratio=float(c['collision_stall_ratio']),
            stall_s=float(c['collision_stall_s']),
            horizon_s=float(c['collision_horizon_s']),
            free_margin_s=float(c['collision_free_margin_s'])),
        proximity=ProximityParams(
            distances_m=tuple(float(d) for d in c['label_distances']),
            obstacle_range_m=float(c['obstacle_range_threshold']),
            tol_x_m=float(c['pose_tolerance_x']), tol_y_m=float(c['pose_tolerance_y']),
            tol_yaw_rad=float(c['pose_tolerance_yaw']),
            max_path_slack_m=float(c['max_path_slack']),
            horizon_s=float(c['label_horizon_s']),
            range_tolerance_s=float(c['range_match_tolerance_s'])),
        terrain=TerrainParams(
            window_s=float(c['terrain_window_s']), hop_s=float(c['terrain_hop_s']),
            band_hz=tuple(float(v) for v in c['terrain_band_hz']),
            gyro_weight=float(c['terrain_gyro_weight']),
            slip_weight=float(c['terrain_slip_weight']),
            horizon_s=float(c['terrain_horizon_s']),
            grid=tuple(int(v) for v in c['terrain_grid']),
            footprint_length_m=float(c['footprint_length_m']),
            footprint_width_m=float(c['footprint_width_m']),
            camera_xyz=tuple(float(v) for v in c['camera_xyz']),
            camera_pitch=float(c['camera_pitch']), n_bands=int(c['terrain_bands']),
            wheel_track_m=float(c['wheel_track_m'])))
    names = params.sensors
    if len(set(names)) != len(names):
        raise LabelError(f'proximity sensor names repeat: {names} (rename the scan sectors)')
    return params
