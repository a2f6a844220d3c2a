"""A bag replayed with /clock into the recorder, labeller and inference nodes.

    ros2 launch ssl_robot replay.launch.py bag:=bags/world_99 model_path:=runs/obstacle.onnx

Arguments as robot.launch.py plus bag, with use_sim_time true by default. The node list
lives in ssl_robot/bringup/graph.py, which `ssl-robot up replay --bag B` starts too.
"""
from ssl_robot.bringup.launch_actions import graph_launch_description


def generate_launch_description():
    return graph_launch_description('replay')
