"""The simulated robot's contacts with obstacles and walls, as a bumper would feel them.

`obstacle_contact` sums MuJoCo's contact forces between any geom of the robot (chassis,
wheels, caster) and any obstacle or wall (the obstacle geom group) into the force on the
robot in base_link; contacts with the floor and terrain patches are not collisions.
`contact_msg` publishes it as a standard `geometry_msgs/WrenchStamped` (frame base_link,
force on the robot, zero torque): a bumper or force sensor reads the same way, so the
collision detector's bumper path (`ssl_robot.labelling.collision`) reads it, and it is
also the simulator's contact truth for the proprioceptive detector.
"""
from __future__ import annotations

from typing import Any, TYPE_CHECKING

import numpy as np

from ssl_robot.sim.messages import header, MessageKit
from ssl_robot.sim.model import OBSTACLE_GROUP
from ssl_robot.sim.simulator import mujoco

if TYPE_CHECKING:
    from ssl_robot.sim.simulator import Simulator


class ContactSensor:
    """Contact force of obstacles on the robot of one simulator.

    Args:
        sim: The simulator.
    """

    def __init__(self, sim: Simulator) -> None:
        self.sim = sim
        m = sim.model
        root = m.body('base_link').id
        self._robot = m.body_rootid[m.geom_bodyid] == root
        self._obstacle = m.geom_group == OBSTACLE_GROUP
        self._body = root
        self._f6 = np.zeros(6)

    def force(self) -> np.ndarray:
        """float64 [3]: total force (N) of obstacle contacts on the robot, in base_link."""
        m, d = self.sim.model, self.sim.data
        total = np.zeros(3)
        for i in range(d.ncon):
            c = d.contact[i]
            g1, g2 = int(c.geom1), int(c.geom2)
            if self._robot[g1] and self._obstacle[g2]:
                sign = -1.0  # the force is geom1's on geom2: the robot feels the opposite
            elif self._robot[g2] and self._obstacle[g1]:
                sign = 1.0
            else:
                continue
            mujoco.mj_contactForce(m, d, i, self._f6)
            # The contact frame's rows are its axes in world coordinates (normal first).
            total += sign * (c.frame.reshape(3, 3).T @ self._f6[:3])
        rot = d.xmat[self._body].reshape(3, 3)
        return rot.T @ total


def contact_msg(kit: MessageKit, stamp_ns: int, frame_id: str, force: np.ndarray) -> Any:
    """geometry_msgs/WrenchStamped of the obstacle contact force on the robot."""
    vec = kit.resolve('geometry_msgs/msg/Vector3')
    return kit.resolve('geometry_msgs/msg/WrenchStamped')(
        header=header(kit, stamp_ns, frame_id),
        wrench=kit.resolve('geometry_msgs/msg/Wrench')(
            force=vec(x=float(force[0]), y=float(force[1]), z=float(force[2])),
            torque=vec(x=0.0, y=0.0, z=0.0)))
