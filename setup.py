"""ament_python package setup: colcon builds it, and `pip install -e .` installs it too."""
from glob import glob
import os

from setuptools import find_packages, setup

package_name = 'ssl_robot'

# One console_scripts entry per node, so that `ros2 run ssl_robot <node>` finds each.
NODES = ('sim_robot', 'recorder', 'bag_player', 'labeller', 'trainer', 'inference')

setup(
    name=package_name,
    version='0.1.0',
    packages=find_packages(exclude=['test', 'test.*', 'benchmarks']),
    data_files=[
        ('share/ament_index/resource_index/packages', ['resource/' + package_name]),
        ('share/' + package_name, ['package.xml']),
        (os.path.join('share', package_name, 'launch'), glob('launch/*launch.py')),
        # Parameters, the rviz2 / Foxglove views of what the model sees, the DDS profile.
        (os.path.join('share', package_name, 'config'),
         glob('config/*.yaml') + glob('config/*.rviz') + glob('config/*.json')
         + glob('config/*.xml')),
    ],
    install_requires=['setuptools'],
    # `ssl-robot label --engine ray`: labelling jobs on a Ray cluster (never installed by default).
    extras_require={'ray': ['ray>=2.40']},
    zip_safe=True,
    maintainer='ssl_robot developers',
    maintainer_email='dev@ssl-robot.local',
    description='Self-supervised robot learning from proximity and terrain self-labels.',
    license='Apache-2.0',
    tests_require=['pytest'],
    entry_points={
        'console_scripts': [
            f'{node} = {package_name}.nodes.{node}:main' for node in NODES
        ] + ['inference_group = ssl_robot.nodes.inference:main_group',
             'ssl-robot = ssl_robot.cli:main'],
    },
)
