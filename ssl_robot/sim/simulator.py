"""The physics of the simulated robot (MuJoCo) and its sensors, as numpy/plain data.

`Simulator` steps MuJoCo and reads the sensors a Thymio-like robot has: a pitched-down
camera (RGB + metric depth; optionally extra cameras elsewhere on the robot), three
forward infrared proximity sensors, wheel-encoder odometry and an IMU. Nothing here
knows about ROS messages (see `ssl_robot.sim.messages`).

Odometry is what a real robot's wheel encoders give, not ground truth: every physics step
the wheels' measured angular speeds are turned into wheel ground speeds with a per-wheel
radius calibration error (fixed for the run, drawn from the seed) plus white speed noise,
and integrated with a wheel base that is also slightly miscalibrated. Wheel slip is real
physics: on low-friction sand or when pushing against an obstacle the wheels turn
without the body following, and the odometry drifts accordingly. Ground truth (the free
body's pose) is kept separately, for evaluation only.

The IMU is MuJoCo's accelerometer (specific force, gravity included, like a real one)
and gyro at the chassis, averaged over each IMU period (a digital low-pass like a real
IMU's), with a constant bias per run and white noise. The bumps of the terrain patches'
height fields shake the chassis, which shows in vertical acceleration and roll/pitch
rates.
"""
from __future__ import annotations

from dataclasses import dataclass
import math
import os

import numpy as np

from ssl_robot.sim.appearance import apply_camera_effects
from ssl_robot.sim.model import build_mjcf, fill_textures, OBSTACLE_GROUP, TIMESTEP_S
from ssl_robot.sim.world import ROBOT, RobotGeometry, SimError, World

os.environ.setdefault('MUJOCO_GL', 'egl')
import mujoco  # noqa: E402  (MUJOCO_GL must be set before the import)

#: Largest camera image the simulator renders.
MAX_IMAGE_WH = (640, 480)


@dataclass(frozen=True)
class OdometryNoise:
    """Error model of wheel-encoder odometry.

    Attributes:
        wheel_scale_sigma: Std of each wheel's radius calibration error (fraction).
        wheel_base_sigma: Std of the wheel base calibration error (fraction).
        speed_noise_mps: Std of white noise on each wheel speed sample.
    """

    wheel_scale_sigma: float = 0.002
    wheel_base_sigma: float = 0.01
    speed_noise_mps: float = 0.004


@dataclass(frozen=True)
class ImuNoise:
    """Error model of the IMU (per-run constant bias plus white noise per sample).

    Attributes:
        accel_sigma: White noise std of the accelerometer (m/s^2).
        accel_bias_sigma: Std of the accelerometer's constant bias (m/s^2).
        gyro_sigma: White noise std of the gyro (rad/s).
        gyro_bias_sigma: Std of the gyro's constant bias (rad/s).
    """

    accel_sigma: float = 0.03
    accel_bias_sigma: float = 0.03
    gyro_sigma: float = 0.003
    gyro_bias_sigma: float = 0.002


#: Std of the proximity sensors' distance noise (m).
RANGE_NOISE_M = 0.002


@dataclass(frozen=True)
class Odometry2D:
    """Planar odometry estimate in the odom frame.

    Attributes:
        x: Position x (m).
        y: Position y (m).
        yaw: Heading (rad).
        v: Forward speed in base_link (m/s).
        w: Turn rate (rad/s).
    """

    x: float
    y: float
    yaw: float
    v: float
    w: float


@dataclass(frozen=True)
class GroundTruth:
    """True pose and velocity of base_link in the world frame.

    Attributes:
        position: (x, y, z) in metres.
        quaternion: (x, y, z, w).
        linear_velocity: Velocity in base_link (m/s).
        angular_velocity: Angular velocity in base_link (rad/s).
    """

    position: np.ndarray
    quaternion: np.ndarray
    linear_velocity: np.ndarray
    angular_velocity: np.ndarray

    @property
    def yaw(self) -> float:
        """Heading of base_link."""
        x, y, z, w = self.quaternion
        return math.atan2(2.0 * (w * z + x * y), 1.0 - 2.0 * (y * y + z * z))


class Simulator:
    """One robot in one world, stepped by MuJoCo.

    Args:
        world: The world to simulate.
        width: Camera image width (pixels, up to 640).
        height: Camera image height (pixels, up to 480).
        render: Whether the camera can be rendered (False: physics and other sensors only).
        seed: Seed of the sensor noise (the world's seed when None).
        robot: Robot geometry.
        odometry_noise: Odometry error model.
        imu_noise: IMU error model.
        extra_cameras: How many of `robot.extra_cameras` can be rendered besides the
            main camera (same size and field of view, another pose).
        antialias: Render with 4x multisampling (MSAA). Off, software GL (llvmpipe)
            renders about twice as fast; edges then alias (see `benchmarks/bench_sim.py`
            for how much the images differ).

    Raises:
        SimError: For an image size or extra camera count out of range.
    """

    def __init__(self, world: World, *, width: int = 128, height: int = 96,
                 render: bool = True, seed: int | None = None, robot: RobotGeometry = ROBOT,
                 odometry_noise: OdometryNoise = OdometryNoise(),
                 imu_noise: ImuNoise = ImuNoise(), extra_cameras: int = 0,
                 antialias: bool = True) -> None:
        if not (8 <= width <= MAX_IMAGE_WH[0] and 8 <= height <= MAX_IMAGE_WH[1]):
            raise SimError(f'camera size {width}x{height} out of range (8x8 to 640x480)')
        self.world, self.robot, self.width, self.height = world, robot, width, height
        self.extra_cameras = robot.extra_camera_mounts(extra_cameras)
        self.model = mujoco.MjModel.from_xml_string(
            build_mjcf(world, robot=robot, width=width, height=height))
        fill_textures(self.model, world)
        self.data = mujoco.MjData(self.model)
        # One noise stream per sensor: reading one sensor more often (a test, the node)
        # never changes another sensor's noise.
        base = world.seed if seed is None else seed
        self._rng, self._imu_rng, self._range_rng, self._camera_rng = (
            np.random.default_rng([base, 0x0D0, k]) for k in range(4))
        self.odometry_noise, self.imu_noise = odometry_noise, imu_noise
        self._wheel_scale = 1.0 + self._rng.normal(0.0, odometry_noise.wheel_scale_sigma, 2)
        self._wheel_base_est = robot.wheel_base_m * (
            1.0 + self._rng.normal(0.0, odometry_noise.wheel_base_sigma))
        self._accel_bias = self._rng.normal(0.0, imu_noise.accel_bias_sigma, 3)
        self._gyro_bias = self._rng.normal(0.0, imu_noise.gyro_bias_sigma, 3)
        m = self.model
        self._body = m.body('base_link').id
        self._root_q = m.jnt_qposadr[m.joint('root').id]
        self._root_v = m.jnt_dofadr[m.joint('root').id]
        self._wheel_v = [m.jnt_dofadr[m.joint(n).id] for n in ('left_wheel', 'right_wheel')]
        self._acc_adr = m.sensor_adr[m.sensor('imu_acc').id]
        self._gyro_adr = m.sensor_adr[m.sensor('imu_gyro').id]
        self._range_sites = {name: m.site(f'range_{name}').id for name in robot.proximity_poses}
        self._ray_groups = np.zeros(6, np.uint8)
        self._ray_groups[OBSTACLE_GROUP] = 1
        self._geomid = np.zeros(1, np.int32)
        self._steps = 0
        self._odom = [0.0, 0.0, 0.0]
        self._odom_vw = (0.0, 0.0)
        self._imu_sum = np.zeros(6)
        self._imu_n = 0
        self._camera: _Camera | None = (_Camera(m, width, height, antialias=antialias)
                                        if render else None)
        mujoco.mj_forward(m, self.data)
        self._settle()

    # -- time and control ---------------------------------------------------------------

    @property
    def timestep_s(self) -> float:
        """Physics step (s)."""
        return TIMESTEP_S

    @property
    def time_ns(self) -> int:
        """Simulated time since the start (ns), exact multiples of the physics step."""
        return self._steps * int(round(TIMESTEP_S * 1e9))

    def set_cmd_vel(self, v: float, w: float) -> None:
        """Command a forward speed v (m/s) and turn rate w (rad/s), clipped to the limits.

        Raises:
            SimError: For a non-finite command (the previous one stays).
        """
        if not (math.isfinite(v) and math.isfinite(w)):
            raise SimError(f'non-finite velocity command v={v} w={w}')
        v = float(np.clip(v, -self.robot.max_speed_mps, self.robot.max_speed_mps))
        w = float(np.clip(w, -self.robot.max_turn_rate_rps, self.robot.max_turn_rate_rps))
        half = self.robot.wheel_base_m / 2.0
        r = self.robot.wheel_radius_m
        self.data.ctrl[0] = (v - w * half) / r
        self.data.ctrl[1] = (v + w * half) / r

    def step(self, n: int = 1) -> None:
        """Advance the physics by `n` steps, integrating odometry and the IMU each step."""
        d = self.data
        dt = TIMESTEP_S
        noise = self.odometry_noise.speed_noise_mps
        r = self.robot.wheel_radius_m
        for _ in range(int(n)):
            mujoco.mj_step(self.model, d)
            self._steps += 1
            wl, wr = d.qvel[self._wheel_v[0]], d.qvel[self._wheel_v[1]]
            vl = wl * r * self._wheel_scale[0] + self._rng.normal(0.0, noise)
            vr = wr * r * self._wheel_scale[1] + self._rng.normal(0.0, noise)
            v, w = (vl + vr) / 2.0, (vr - vl) / self._wheel_base_est
            x, y, yaw = self._odom
            mid = yaw + 0.5 * w * dt
            self._odom = [x + v * dt * math.cos(mid), y + v * dt * math.sin(mid), yaw + w * dt]
            self._odom_vw = (v, w)
            self._imu_sum[:3] += d.sensordata[self._acc_adr:self._acc_adr + 3]
            self._imu_sum[3:] += d.sensordata[self._gyro_adr:self._gyro_adr + 3]
            self._imu_n += 1

    def _settle(self) -> None:
        """Let the robot drop onto the ground, then start the odometry at the true pose.

        The odom frame thus coincides with the world frame at the start, so odometry,
        ground truth and the world's coordinates compare directly until drift sets in.
        """
        self.step(int(0.3 / TIMESTEP_S))
        self._steps = 0
        truth = self.ground_truth()
        self._odom = [float(truth.position[0]), float(truth.position[1]), truth.yaw]
        self._odom_vw = (0.0, 0.0)
        self.imu()

    def place_robot(self, x: float, y: float, yaw: float) -> None:
        """Teleport the robot (at rest) to (x, y, yaw); resets odometry, keeps the clock."""
        d = self.data
        q = self._root_q
        d.qpos[q:q + 3] = (x, y, 0.001)
        d.qpos[q + 3:q + 7] = (math.cos(yaw / 2), 0.0, 0.0, math.sin(yaw / 2))
        d.qvel[:] = 0.0
        d.ctrl[:] = 0.0
        mujoco.mj_forward(self.model, d)
        steps = self._steps
        self._settle()
        self._steps = steps

    # -- sensors -------------------------------------------------------------------------

    def ranges(self) -> dict[str, float]:
        """Proximity readings (m) by sensor name, REP-117: +inf nothing in range, -inf too close.

        Each is a ray from the sensor's site along its axis that sees obstacles and walls
        only (MuJoCo `mj_ray`, the engine's rangefinder ray, restricted to the obstacle geom
        group), with a little Gaussian noise.
        """
        out = {}
        d = self.data
        for name, site in self._range_sites.items():
            origin = d.site_xpos[site]
            axis = d.site_xmat[site].reshape(3, 3)[:, 2]
            dist = mujoco.mj_ray(self.model, d, origin, axis, self._ray_groups, 1,
                                 self._body, self._geomid)
            if dist < 0.0 or dist > self.robot.range_max_m:
                out[name] = math.inf
                continue
            dist += self._range_rng.normal(0.0, RANGE_NOISE_M)
            if dist > self.robot.range_max_m:
                out[name] = math.inf
            elif dist < self.robot.range_min_m:
                out[name] = -math.inf
            else:
                out[name] = float(dist)
        return out

    @property
    def camera_names(self) -> list[str]:
        """Cameras `render` takes: 'camera' (the main one), then the extra ones enabled."""
        return ['camera', *(mount.name for mount in self.extra_cameras)]

    def render(self, camera: str = 'camera') -> tuple[np.ndarray, np.ndarray]:
        """Render a camera: (rgb uint8 [H, W, 3], depth float32 [H, W] metres).

        Depth is the distance along the optical axis (REP-118), +inf beyond the far plane.
        In a randomised world the colour image then goes through the camera's sensor
        effects (motion blur while turning, exposure gain, noise; see
        `ssl_robot.sim.appearance.apply_camera_effects`); depth stays exact.

        Args:
            camera: One of `camera_names`.

        Raises:
            SimError: When the simulator was made with render=False, or for a camera
                not enabled.
        """
        if self._camera is None:
            raise SimError('this Simulator was created with render=False')
        if camera not in self.camera_names:
            raise SimError(f'camera {camera!r} is not enabled (cameras: '
                           f'{", ".join(self.camera_names)})')
        rgb, depth = self._camera.render(self.data, self.model.camera(camera).id)
        look = self.world.appearance
        if look is not None and look.has_camera_effects:
            turn = float(self.data.qvel[self._root_v + 5])
            rgb = apply_camera_effects(rgb, look, self._camera_rng, turn_rate_rps=turn,
                                       fx_px=self.robot.camera_intrinsics(self.width,
                                                                          self.height)[0])
        return rgb, depth

    def imu(self) -> tuple[np.ndarray, np.ndarray]:
        """IMU reading: (linear acceleration m/s^2, angular velocity rad/s) in imu_link.

        Averaged since the previous call, with bias and noise.
        """
        if self._imu_n == 0:
            mean = np.concatenate([self.data.sensordata[self._acc_adr:self._acc_adr + 3],
                                   self.data.sensordata[self._gyro_adr:self._gyro_adr + 3]])
        else:
            mean = self._imu_sum / self._imu_n
        self._imu_sum[:] = 0.0
        self._imu_n = 0
        noise = self.imu_noise
        acc = mean[:3] + self._accel_bias + self._imu_rng.normal(0.0, noise.accel_sigma, 3)
        gyro = mean[3:] + self._gyro_bias + self._imu_rng.normal(0.0, noise.gyro_sigma, 3)
        return acc, gyro

    def odometry(self) -> Odometry2D:
        """Wheel-encoder odometry (drifts; see the module docstring)."""
        x, y, yaw = self._odom
        yaw = math.atan2(math.sin(yaw), math.cos(yaw))
        return Odometry2D(x, y, yaw, *self._odom_vw)

    def ground_truth(self) -> GroundTruth:
        """True pose and velocity of base_link (for evaluation only)."""
        d = self.data
        q = self._root_q
        wxyz = d.qpos[q + 3:q + 7]
        rot = d.xmat[self._body].reshape(3, 3)
        return GroundTruth(
            position=d.qpos[q:q + 3].copy(),
            quaternion=np.array([wxyz[1], wxyz[2], wxyz[3], wxyz[0]]),
            linear_velocity=rot.T @ d.qvel[self._root_v:self._root_v + 3],
            angular_velocity=d.qvel[self._root_v + 3:self._root_v + 6].copy())

    def close(self) -> None:
        """Free the renderer (its GL context)."""
        if self._camera is not None:
            self._camera.close()
            self._camera = None

    def __enter__(self) -> Simulator:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class _Camera:
    """Offscreen renderer of the robot's cameras: RGB and depth from one render pass.

    `mujoco.Renderer` renders depth in a second, segmentation pass; reading the colour
    and depth buffers of a single pass halves the cost on software GL.
    """

    def __init__(self, model: mujoco.MjModel, width: int, height: int, *,
                 antialias: bool = True) -> None:
        self.model, self.width, self.height = model, width, height
        self._gl = mujoco.GLContext(width, height)
        self._gl.make_current()
        # The offscreen buffer's samples are fixed when the context is made (llvmpipe
        # offers 1 or 4: MuJoCo's default 4, or none).
        model.vis.quality.offsamples = 4 if antialias else 0
        self._context = mujoco.MjrContext(model, mujoco.mjtFontScale.mjFONTSCALE_100)
        mujoco.mjr_setBuffer(mujoco.mjtFramebuffer.mjFB_OFFSCREEN, self._context)
        # Reversed Z (far = 0) keeps depth precise far from the camera, as mujoco.Renderer.
        self._context.readDepthMap = mujoco.mjtDepthMap.mjDEPTH_ZEROFAR
        self._scene = mujoco.MjvScene(model, maxgeom=2000)
        for flag in (mujoco.mjtRndFlag.mjRND_SHADOW, mujoco.mjtRndFlag.mjRND_REFLECTION,
                     mujoco.mjtRndFlag.mjRND_SKYBOX):
            self._scene.flags[flag] = 0  # software GL: shadows etc. cost 30x the frame itself
        # MuJoCo hides geom groups 3-5 by default: show obstacles and walls, keep the
        # collision-only robot geoms hidden.
        self._option = mujoco.MjvOption()
        self._option.geomgroup[:] = 0
        self._option.geomgroup[:OBSTACLE_GROUP + 1] = 1
        self._camera = mujoco.MjvCamera()
        self._camera.type = mujoco.mjtCamera.mjCAMERA_FIXED
        self._rect = mujoco.MjrRect(0, 0, width, height)
        self._rgb = np.empty((height, width, 3), np.uint8)
        self._depth = np.empty((height, width), np.float32)
        self._depth64 = np.empty((height, width), np.float64)  # reused: no per-frame pages
        extent = model.stat.extent
        self._near = float(np.float32(model.vis.map.znear * extent))
        self._far = float(np.float32(model.vis.map.zfar * extent))

    def render(self, data: mujoco.MjData, camera_id: int) -> tuple[np.ndarray, np.ndarray]:
        """Render the model's camera `camera_id` (every camera shares one GL context).

        Returns:
            (rgb uint8 [H, W, 3], depth float32 [H, W] metres, +inf beyond the far plane).
        """
        self._gl.make_current()
        self._camera.fixedcamid = camera_id
        mujoco.mjv_updateScene(self.model, data, self._option, None, self._camera,
                               mujoco.mjtCatBit.mjCAT_ALL, self._scene)
        mujoco.mjr_render(self._rect, self._scene, self._context)
        mujoco.mjr_readPixels(self._rgb, self._depth, self._rect, self._context)
        # OpenGL rows run bottom-up. The depth buffer is reversed-Z NDC: metric depth is
        # d / (buffer + c), as in mujoco.Renderer.
        near, far = self._near, self._far
        c = -0.5 * (-(far + near) / (far - near)) - 0.5
        d = -0.5 * (-(2.0 * far * near) / (far - near))
        raw = self._depth64
        np.add(self._depth[::-1], np.float64(c), out=raw)  # float64 loop, as before
        depth = np.empty_like(self._depth)
        np.divide(np.float64(d), raw, out=depth)
        depth[depth >= 0.99 * far] = np.inf
        return self._rgb[::-1].copy(), depth

    def close(self) -> None:
        """Free the GL context."""
        self._context.free()
        self._gl.free()
