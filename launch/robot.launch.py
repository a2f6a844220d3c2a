"""Recorder, labeller and inference (+ the online trainer) on a physical robot.

    ros2 launch ssl_robot robot.launch.py image_topic:=/camera/color/image_raw \
        camera_info_topic:=/camera/color/camera_info odom_topic:=/odom range_prefix:=/tof

Arguments: use_sim_time (false), params_file (the package's config/robot.yaml),
online_training (false), model_path (the inference node starts only with a model or with
online_training; several, comma-separated: one inference_group process, a node per
model), image_topic, camera_info_topic, depth_topic, odom_topic,
imu_topic, cmd_vel_topic, range_prefix. The node list lives in ssl_robot/bringup/graph.py, which
`ssl-robot up robot` starts too.
"""
from ssl_robot.bringup.launch_actions import graph_launch_description


def generate_launch_description():
    return graph_launch_description('robot')
