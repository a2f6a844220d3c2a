"""A scripted driver that makes useful self-labelling data.

It knows the map (like a person with a remote control who can see the arena): it picks
goals — mostly an obstacle, otherwise the middle of a terrain patch or a free spot — and
drives fairly straight at them, so the camera sees an obstacle from far away before the
proximity sensors fire. When any proximity sensor reads closer than `stop_range_m` it
stops, backs off a little and turns away, then picks the next goal. A stuck detector
(wheels commanded forward, robot not moving) and a per-goal timeout keep it going.
Deterministic from its seed.
"""
from __future__ import annotations

from dataclasses import dataclass
import math

import numpy as np

from ssl_robot.sim.world import ROBOT, World

#: Distance from base_link to an obstacle beside the robot that makes it veer away (m):
#: the wheels reach 0.07 m to the side.
FLANK_CLEARANCE_M = 0.11


@dataclass(frozen=True)
class PolicyParams:
    """Driving parameters.

    Attributes:
        cruise_mps: Forward speed while driving to a goal.
        turn_rps: Turn rate when turning in place.
        stop_range_m: Proximity reading that makes the robot stop.
        obstacle_goal_fraction: Fraction of goals that are obstacles.
        goal_timeout_s: Give up a goal after this long.
        wander_rps: Amplitude of the slow random weave added to the steering.
        crash_rate: Chance that the driver does not stop for an obstacle its proximity
            sensors see: it drives on straight for `crash_s`, into the obstacle (crash
            data for collision labels), then backs off and turns as after a stop.
        crash_s: How long it drives on when it does not stop.
    """

    cruise_mps: float = 0.15
    turn_rps: float = 1.2
    stop_range_m: float = 0.07
    obstacle_goal_fraction: float = 0.7
    goal_timeout_s: float = 25.0
    wander_rps: float = 0.25
    crash_rate: float = 0.0
    crash_s: float = 1.5


class DrivingPolicy:
    """Goal-directed wandering with stop-back-turn on proximity (see the module docstring).

    Args:
        world: The world (for goals).
        seed: Random seed of the choices.
        params: Driving parameters.
    """

    def __init__(self, world: World, *, seed: int = 0,
                 params: PolicyParams = PolicyParams()) -> None:
        self.world, self.params = world, params
        self._rng = np.random.default_rng([seed, 0xD41])
        self._mode = 'goal'
        self._mode_until = 0.0
        self._turn_dir = 1.0
        self._goal: tuple[float, float] | None = None
        self._goal_obstacle = -1
        self._goal_since = 0.0
        self._progress = (0.0, 0.0, 0.0)  # (t, x, y) of the last progress check
        self._wander_phase = self._rng.uniform(0, 2 * math.pi)
        self.mode_counts: dict[str, int] = {}

    @property
    def mode(self) -> str:
        """Current mode: goal, stop, back, turn or crash."""
        return self._mode

    def _set_mode(self, mode: str, until: float) -> None:
        self._mode, self._mode_until = mode, until
        self.mode_counts[mode] = self.mode_counts.get(mode, 0) + 1

    def _new_goal(self, t: float) -> None:
        world = self.world
        self._goal_since = t
        self._goal_obstacle = -1
        if world.obstacles and self._rng.random() < self.params.obstacle_goal_fraction:
            k = int(self._rng.integers(len(world.obstacles)))
            self._goal_obstacle = k
            self._goal = (world.obstacles[k].x, world.obstacles[k].y)
            return
        if world.patches and self._rng.random() < 0.6:
            patch = world.patches[int(self._rng.integers(len(world.patches)))]
            self._goal = (patch.x, patch.y)
            return
        half = world.arena_half_m - 0.3
        for _ in range(50):
            gx, gy = self._rng.uniform(-half, half, 2)
            if world.clearance(gx, gy) > 0.25:
                self._goal = (float(gx), float(gy))
                return
        self._goal = (0.0, 0.0)

    def command(self, t: float, pose: tuple[float, float, float],
                ranges: dict[str, float]) -> tuple[float, float]:
        """The velocity command (v m/s, w rad/s) for time `t` (s).

        Args:
            t: Simulated time (s).
            pose: True (x, y, yaw) of the robot in the world.
            ranges: Latest proximity readings by sensor name (REP-117 values).

        Returns:
            (forward speed, turn rate).
        """
        p = self.params
        x, y, yaw = pose
        near = {k: v for k, v in ranges.items() if v < p.stop_range_m}  # -inf counts too
        if (self._mode == 'goal' and near and p.crash_rate > 0.0
                and self._rng.random() < p.crash_rate):
            self._set_mode('crash', t + p.crash_s)
        if self._mode == 'crash':
            if t < self._mode_until:
                return p.cruise_mps, 0.0
            self._set_mode('back', t + self._rng.uniform(0.6, 1.0))
            self._turn_dir = 1.0 if self._rng.random() < 0.5 else -1.0
        if self._mode == 'goal' and near:
            self._set_mode('stop', t + 0.4)
            left = min(ranges.get('left', math.inf), ranges.get('center', math.inf) + 0.01)
            right = ranges.get('right', math.inf)
            # Turn away from the side that is closer.
            self._turn_dir = -1.0 if left < right else 1.0
            if left == right:
                self._turn_dir = 1.0 if self._rng.random() < 0.5 else -1.0
        if self._mode == 'stop':
            if t < self._mode_until:
                return 0.0, 0.0
            self._set_mode('back', t + self._rng.uniform(0.4, 0.9))
        if self._mode == 'back':
            if t < self._mode_until:
                return -0.08, 0.0
            self._set_mode('turn', t + self._rng.uniform(1.3, 2.8) / p.turn_rps)
        if self._mode == 'turn':
            if t < self._mode_until:
                return 0.0, self._turn_dir * p.turn_rps
            self._set_mode('goal', t)
            self._new_goal(t)
            self._progress = (t, x, y)
        if self._goal is None:
            self._new_goal(t)
            self._progress = (t, x, y)
        gx, gy = self._goal
        dist = math.hypot(gx - x, gy - y)
        if dist < 0.12 or t - self._goal_since > p.goal_timeout_s:
            self._new_goal(t)
            gx, gy = self._goal
        # Stuck: commanded forward for 3 s without moving 3 cm (e.g. wedged on a corner).
        t0, x0, y0 = self._progress
        if t - t0 > 3.0:
            if math.hypot(x - x0, y - y0) < 0.03:
                self._set_mode('back', t + 0.8)
                self._turn_dir = 1.0 if self._rng.random() < 0.5 else -1.0
                return -0.08, 0.0
            self._progress = (t, x, y)
        error = math.atan2(math.sin(math.atan2(gy - y, gx - x) - yaw),
                           math.cos(math.atan2(gy - y, gx - x) - yaw))
        if abs(error) > 0.6:
            return 0.0, math.copysign(p.turn_rps, error)
        # Weave gently on the way to free spots; drive straight at obstacles.
        weave = 0.0 if self._goal_obstacle >= 0 else p.wander_rps * math.sin(
            0.7 * t + self._wander_phase)
        w = float(np.clip(2.0 * error + weave, -ROBOT.max_turn_rate_rps, ROBOT.max_turn_rate_rps))
        # The forward proximity sensors cannot see an obstacle beside the robot; scraping
        # along one would twist the robot under its wheels. Veer away from a close flank.
        flank = self._flank_clearance(x, y, yaw)
        if flank is not None:
            w = -math.copysign(p.turn_rps, flank)
        return p.cruise_mps, w

    def _flank_clearance(self, x: float, y: float, yaw: float) -> float | None:
        """+1/-1 when an obstacle is close on the left/right side, else None."""
        for side in (1.0, -1.0):
            for angle in (0.8, 1.2, 1.57):
                if self.world.obstacle_distance(x, y, yaw + side * angle) < FLANK_CLEARANCE_M:
                    return side
        return None
