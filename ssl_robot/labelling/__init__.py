"""Self-labelling: future proximity readings and felt roughness become labels of frames.

A pure core (numpy; no rclpy), used alike by the live `labeller` node and by
`ssl-robot label` on recorded bags:

* `poses`: odometry as SE(2) trajectory segments, interpolation at arbitrary stamps.
* `proximity`: labels at distances ahead after Nava et al. (RA-L 2019).
* `terrain`: the proprioceptive roughness signal, projected into earlier frames.
* `bag`: all of it over a bag, into dataset rows.
"""
from __future__ import annotations

from ssl_robot.labelling.errors import LabelError
from ssl_robot.labelling.params import labelling_params, LabellingParams
from ssl_robot.labelling.poses import (
    build_trajectory,
    interpolate_poses,
    relative_pose,
    se2_interpolate,
    Trajectory,
    wrap_angle,
)
from ssl_robot.labelling.proximity import (
    label_proximity_at_distances,
    label_proximity_naive,
    ProximityLabels,
    ProximityParams,
)
from ssl_robot.labelling.terrain import (
    imu_roughness,
    label_terrain,
    RoughnessSeries,
    TerrainLabels,
    TerrainParams,
)

__all__ = [
    'build_trajectory', 'imu_roughness', 'interpolate_poses', 'label_proximity_at_distances',
    'label_proximity_naive', 'label_terrain', 'LabelError', 'labelling_params',
    'LabellingParams', 'ProximityLabels', 'ProximityParams', 'relative_pose',
    'RoughnessSeries', 'se2_interpolate', 'TerrainLabels', 'TerrainParams', 'Trajectory',
    'wrap_angle',
]
