"""The simulated robot (publishing /clock) with the recorder, labeller and inference nodes.

    ros2 launch ssl_robot sim.launch.py

    ros2 launch ssl_robot sim.launch.py online_training:=true

Arguments as robot.launch.py, with use_sim_time true by default. The node list lives in
ssl_robot/bringup/graph.py, which `ssl-robot up sim` starts too.
"""
from ssl_robot.bringup.launch_actions import graph_launch_description


def generate_launch_description():
    return graph_launch_description('sim')
