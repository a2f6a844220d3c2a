"""Terrain self-labels: a proprioceptive roughness signal, projected into earlier frames.

The signal (documented choice; higher = rougher), over sliding windows of `window_s`:

* vibration: RMS of the vertical acceleration band-passed to `band_hz` (5-30 Hz by
  default; the band is clipped to the IMU's Nyquist frequency), computed from the FFT of a
  Hann-windowed, mean-removed window (Parseval). Bumps and gravel excite exactly this
  band; driving dynamics (accelerating, turning) live below it.
* attitude rate: RMS of the roll and pitch rates (mean removed), in rad/s, weighted by
  `gyro_weight` (m/s^2 per rad/s): a rough floor rocks the chassis.
* slip: mean |commanded forward speed - odometry forward speed| in m/s, weighted by
  `slip_weight` (m/s^2 per m/s), where commands exist and the robot was told to move.

signal = vibration + gyro_weight * attitude_rate + slip_weight * slip   (m/s^2)

Where does it land? The window's centre t' is a pose of the robot; its footprint (a grid
of points over `footprint_length_m` x `footprint_width_m`) at t' is expressed in the frame
of the robot at every earlier frame t (t' - t in (0, horizon_s], same odometry segment),
projected through the camera extrinsics (config camera_xyz, camera_pitch) and the
CameraInfo intrinsics onto the image, and binned into a GH x GW grid of patches; a patch
gets the mean signal of the footprint points that fell into it, and is masked elsewhere.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ssl_robot.labelling.descriptor import clean_imu, DescriptorParams, DescriptorSeries
from ssl_robot.labelling.poses import interpolate_poses, relative_pose, Trajectory

FEATURE_NAMES = ('vibration', 'attitude_rate', 'slip')


@dataclass(frozen=True)
class TerrainParams:
    """How terrain labels are made (stored with every dataset)."""

    window_s: float = 0.5
    hop_s: float = 0.1
    band_hz: tuple[float, float] = (5.0, 30.0)
    gyro_weight: float = 1.0
    slip_weight: float = 1.0
    min_command_mps: float = 0.02
    horizon_s: float = 5.0
    grid: tuple[int, int] = (6, 8)
    footprint_length_m: float = 0.10
    footprint_width_m: float = 0.09
    footprint_points: int = 3
    camera_xyz: tuple[float, float, float] = (0.10, 0.0, 0.12)
    camera_pitch: float = 0.35
    n_bands: int = 8
    wheel_track_m: float = 0.095

    def descriptor_params(self) -> DescriptorParams:
        """The descriptor's parameters: the same windows, band and weights as the signal."""
        return DescriptorParams(
            window_s=self.window_s, hop_s=self.hop_s, n_bands=self.n_bands,
            wheel_track_m=self.wheel_track_m, min_command_mps=self.min_command_mps,
            band_hz=tuple(self.band_hz), gyro_weight=self.gyro_weight,
            slip_weight=self.slip_weight)


@dataclass
class RoughnessSeries:
    """The roughness signal along the trajectory.

    Attributes:
        stamps_ns: int64 [W] window centres.
        signal: float64 [W] the combined signal (NaN where a window spans an IMU gap).
        features: float64 [W, 3] vibration, attitude_rate, slip (slip 0 without commands).
        sample_rate_hz: The IMU rate found (the band is clipped to its Nyquist).
        band_hz: The band actually used.
    """

    stamps_ns: np.ndarray
    signal: np.ndarray
    features: np.ndarray
    sample_rate_hz: float
    band_hz: tuple[float, float]
    counts: dict[str, int] = field(default_factory=dict)


def window_features(az: np.ndarray, roll_rate: np.ndarray, pitch_rate: np.ndarray,
                    fs: float, band_hz: tuple[float, float]) -> np.ndarray:
    """Vibration and attitude-rate features of windows.

    Args:
        az, roll_rate, pitch_rate: [W, n] windows of uniformly sampled signals.
        fs: Sample rate (Hz).
        band_hz: Vibration band (clipped to the Nyquist frequency).

    Returns:
        float64 [W, 2]: band-limited RMS of az (m/s^2), RMS roll/pitch rate (rad/s).
    """
    n = az.shape[-1]
    hann = np.hanning(n)
    spectrum = np.fft.rfft((az - az.mean(axis=-1, keepdims=True)) * hann, axis=-1)
    freqs = np.fft.rfftfreq(n, 1.0 / fs)
    lo, hi = band_hz[0], min(band_hz[1], fs / 2.0)
    band = (freqs >= lo) & (freqs <= hi)
    # Parseval, one-sided spectrum, corrected for the window's energy.
    power = 2.0 * (np.abs(spectrum[..., band]) ** 2).sum(axis=-1) / (n * (hann ** 2).sum())
    vibration = np.sqrt(power)
    rates = np.concatenate([roll_rate - roll_rate.mean(axis=-1, keepdims=True),
                            pitch_rate - pitch_rate.mean(axis=-1, keepdims=True)], axis=-1)
    attitude = np.sqrt((rates ** 2).mean(axis=-1))
    return np.column_stack([vibration, attitude])


def imu_roughness(stamps_ns: np.ndarray, accel: np.ndarray, gyro: np.ndarray,
                  params: TerrainParams, *, cmd_stamps_ns: np.ndarray | None = None,
                  cmd_speed: np.ndarray | None = None, odom_stamps_ns: np.ndarray | None = None,
                  odom_speed: np.ndarray | None = None) -> RoughnessSeries:
    """The roughness signal over sliding windows of IMU data (and slip where available).

    Args:
        stamps_ns: int64 [M] IMU stamps (any order; sorted, duplicates dropped here).
        accel: [M, 3] linear acceleration (m/s^2), z up.
        gyro: [M, 3] angular velocity (rad/s).
        params: Window, band, weights.
        cmd_stamps_ns, cmd_speed: Commanded forward speed (m/s) and its stamps.
        odom_stamps_ns, odom_speed: Odometry forward speed (m/s) and its stamps.

    Returns:
        The series; empty when there are too few IMU samples for one window.
    """
    stamps, accel, gyro, counts = clean_imu(stamps_ns, accel, gyro)
    empty = RoughnessSeries(np.zeros(0, np.int64), np.zeros(0), np.zeros((0, 3)), 0.0,
                            tuple(params.band_hz), counts)
    if len(stamps) < 8:
        return empty
    dt = np.diff(stamps)
    fs = 1e9 / float(np.median(dt))
    n = max(4, int(round(params.window_s * fs)))
    hop = max(1, int(round(params.hop_s * fs)))
    grid = np.arange(stamps[0], stamps[-1], int(round(1e9 / fs)), dtype=np.int64)
    if len(grid) < n:
        return empty
    t = (grid - stamps[0]).astype(np.float64)
    ts = (stamps - stamps[0]).astype(np.float64)
    series = [np.interp(t, ts, v) for v in (accel[:, 2], gyro[:, 0], gyro[:, 1])]
    view = [np.lib.stride_tricks.sliding_window_view(s, n)[::hop] for s in series]
    feats = window_features(*view, fs=fs, band_hz=tuple(params.band_hz))
    starts = grid[::hop][:len(feats)]
    centres = starts + (n * int(round(1e9 / fs))) // 2
    # A window that spans an IMU gap (> 3 samples missing) was interpolated over: unknown.
    gap_at = np.flatnonzero(dt > 3 * 1e9 / fs)
    bad = np.zeros(len(feats), bool)
    window_ns = n * int(round(1e9 / fs))
    for g in gap_at:
        bad |= (starts < stamps[g + 1]) & (starts + window_ns > stamps[g])
    counts['gap_windows'] = int(bad.sum())
    slip = np.zeros(len(feats))
    if (cmd_stamps_ns is not None and odom_stamps_ns is not None and len(cmd_stamps_ns)
            and len(odom_stamps_ns)):
        slip = slip_at(centres, np.asarray(cmd_stamps_ns), np.asarray(cmd_speed),
                       np.asarray(odom_stamps_ns), np.asarray(odom_speed), params)
    features = np.column_stack([feats, slip])
    signal = (features[:, 0] + params.gyro_weight * features[:, 1]
              + params.slip_weight * features[:, 2])
    signal[bad] = np.nan
    return RoughnessSeries(centres, signal, features, fs,
                           (params.band_hz[0], min(params.band_hz[1], fs / 2.0)), counts)


def slip_at(query_ns: np.ndarray, cmd_stamps_ns: np.ndarray, cmd_speed: np.ndarray,
            odom_stamps_ns: np.ndarray, odom_speed: np.ndarray,
            params: TerrainParams) -> np.ndarray:
    """Mean |commanded - odometry| forward speed over a window around each query stamp.

    The command in force at an odometry stamp is the latest one before it (a command
    holds until the next). Windows where the robot was not told to move give 0.
    """
    co = np.argsort(cmd_stamps_ns, kind='stable')
    cmd_t, cmd_v = cmd_stamps_ns[co], cmd_speed[co]
    oo = np.argsort(odom_stamps_ns, kind='stable')
    od_t, od_v = odom_stamps_ns[oo], odom_speed[oo]
    idx = np.searchsorted(cmd_t, od_t, side='right') - 1
    has = idx >= 0
    commanded = np.where(has, cmd_v[np.maximum(idx, 0)], 0.0)
    moving = has & (np.abs(commanded) >= params.min_command_mps)
    err = np.where(moving, np.abs(commanded - od_v), 0.0)
    csum = np.concatenate([[0.0], np.cumsum(err)])
    cnt = np.concatenate([[0], np.cumsum(moving)])
    half = int(params.window_s * 1e9 / 2)
    a = np.searchsorted(od_t, query_ns - half, 'left')
    b = np.searchsorted(od_t, query_ns + half, 'right')
    n = cnt[b] - cnt[a]
    return np.where(n > 0, (csum[b] - csum[a]) / np.maximum(n, 1), 0.0)


def project_ground_points(points: np.ndarray, k_matrix: np.ndarray,
                          camera_xyz: tuple[float, float, float],
                          camera_pitch: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Pinhole projection of ground points (z = 0 in base_link) into the image.

    The optical frame (x right, y down, z forward) sits at `camera_xyz` in base_link,
    pitched down by `camera_pitch`.

    Args:
        points: [..., 2] x, y on the ground in base_link (m).
        k_matrix: 3x3 intrinsics (CameraInfo k).

    Returns:
        (u, v, in_front): pixel coordinates and whether the point is ahead of the camera.
    """
    c, s = np.cos(camera_pitch), np.sin(camera_pitch)
    qx = points[..., 0] - camera_xyz[0]
    qy = points[..., 1] - camera_xyz[1]
    qz = 0.0 - camera_xyz[2]
    x_opt = -qy
    y_opt = -s * qx - c * qz
    z_opt = c * qx - s * qz
    in_front = z_opt > 1e-3
    z = np.where(in_front, z_opt, 1.0)
    k = np.asarray(k_matrix, np.float64).reshape(3, 3)
    u = k[0, 0] * x_opt / z + k[0, 1] * y_opt / z + k[0, 2]
    v = k[1, 1] * y_opt / z + k[1, 2]
    return u, v, in_front


def nearest_visible_ground_m(k_matrix: np.ndarray, height: int,
                             params: TerrainParams) -> float:
    """Distance ahead of base_link (m) where the ground enters the image's bottom row."""
    k = np.asarray(k_matrix, np.float64).reshape(3, 3)
    below_axis = np.arctan2(height - k[1, 2], k[1, 1])
    angle = params.camera_pitch + below_axis        # of the bottom row, below horizontal
    if angle >= np.pi / 2 - 1e-6:
        return float(params.camera_xyz[0])
    return float(params.camera_xyz[0] + params.camera_xyz[2] / np.tan(angle))


@dataclass
class TerrainLabels:
    """Terrain labels of N frames on a GH x GW patch grid.

    Attributes:
        values: float32 [N, GH, GW] mean signal of the footprints seen in the patch.
        mask: bool [N, GH, GW] True where some footprint landed.
        counts: 'frames_without_pose', 'points_projected', 'points_in_image'.
    """

    values: np.ndarray
    mask: np.ndarray
    counts: dict[str, int] = field(default_factory=dict)


def footprint_offsets(params: TerrainParams) -> np.ndarray:
    """[P, 2] points covering the robot's footprint, in its own base_link."""
    k = max(1, params.footprint_points)
    if k == 1:
        return np.zeros((1, 2))
    xs = np.linspace(-params.footprint_length_m / 2, params.footprint_length_m / 2, k)
    ys = np.linspace(-params.footprint_width_m / 2, params.footprint_width_m / 2, k)
    gx, gy = np.meshgrid(xs, ys, indexing='ij')
    return np.column_stack([gx.ravel(), gy.ravel()])


def footprint_cells(frame_stamps: np.ndarray, traj: Trajectory, window_stamps: np.ndarray,
                    k_matrix: np.ndarray, image_hw: tuple[int, int], params: TerrainParams
                    ) -> tuple[np.ndarray, np.ndarray, dict[str, int]]:
    """Where the footprints of later windows land in the patches of earlier frames.

    The footprint at each window centre t' is expressed in the frame of the robot at
    every frame time t (t' - t in (0, horizon_s], same odometry segment), projected
    into the image and binned into the GH x GW patch grid.

    Args:
        frame_stamps: int64 [N] frame stamps.
        traj: Odometry trajectory.
        window_stamps: int64 [W] sorted window centres t'.
        k_matrix: 3x3 camera intrinsics of images of size `image_hw`.
        image_hw: (H, W) of the images.
        params: Grid, horizon, footprint, camera extrinsics.

    Returns:
        (cell, window, counts): for every footprint point seen in a frame, its patch
        as a flat index into [N, GH, GW] and the index of its window; counts
        'frames_without_pose', 'points_projected', 'points_in_image'.
    """
    frame_stamps = np.asarray(frame_stamps, np.int64).reshape(-1)
    n = len(frame_stamps)
    gh, gw = (int(g) for g in params.grid)
    h, w = (int(v) for v in image_hw)
    at = interpolate_poses(traj, frame_stamps)
    counts = {'frames_without_pose': int((~at.known).sum()), 'points_projected': 0,
              'points_in_image': 0}
    sig_at = interpolate_poses(traj, np.asarray(window_stamps, np.int64))
    known = np.flatnonzero(sig_at.known)
    sig_t = np.asarray(window_stamps, np.int64)[known]
    sig_pose, sig_seg = sig_at.poses[known], sig_at.segment[known]
    empty = np.zeros(0, np.int64)
    if not (n and len(sig_t)):
        return empty, empty, counts
    a = np.searchsorted(sig_t, frame_stamps, side='right')       # t' > t
    b = np.searchsorted(sig_t, frame_stamps + int(params.horizon_s * 1e9), side='right')
    size = np.where(at.known, np.maximum(b - a, 0), 0)
    total = int(size.sum())
    fi = np.repeat(np.arange(n), size)
    offsets = np.cumsum(size) - size
    si = a[fi] + (np.arange(total) - np.repeat(offsets, size))
    same = sig_seg[si] == at.segment[fi]
    fi, si = fi[same], si[same]
    rel = relative_pose(at.poses[fi], sig_pose[si])
    # Footprints nearer than the bottom image row (or behind the camera) are never
    # seen: drop those pairs before projecting every footprint point.
    reach = np.hypot(params.footprint_length_m, params.footprint_width_m) / 2
    visible = rel[:, 0] + reach >= nearest_visible_ground_m(k_matrix, h, params)
    fi, si, rel = fi[visible], si[visible], rel[visible]
    foot = footprint_offsets(params)
    c, s = np.cos(rel[:, 2])[:, None], np.sin(rel[:, 2])[:, None]
    px = rel[:, 0:1] + c * foot[None, :, 0] - s * foot[None, :, 1]
    py = rel[:, 1:2] + s * foot[None, :, 0] + c * foot[None, :, 1]
    u, v, front = project_ground_points(np.stack([px, py], axis=-1), k_matrix,
                                        tuple(params.camera_xyz), params.camera_pitch)
    inside = front & (u >= 0) & (u < w) & (v >= 0) & (v < h)
    counts['points_projected'] = int(inside.size)
    counts['points_in_image'] = int(inside.sum())
    row = np.floor(v * gh / h).astype(np.int64)
    col = np.floor(u * gw / w).astype(np.int64)
    cell = (fi[:, None] * gh + row) * gw + col
    window = np.broadcast_to(known[si][:, None], cell.shape)
    return cell[inside], window[inside], counts


def label_terrain(frame_stamps: np.ndarray, traj: Trajectory, roughness: RoughnessSeries,
                  k_matrix: np.ndarray, image_hw: tuple[int, int],
                  params: TerrainParams) -> TerrainLabels:
    """Terrain patch labels of frames from the roughness felt later under the footprint.

    Args:
        frame_stamps: int64 [N] frame stamps.
        traj: Odometry trajectory.
        roughness: The signal along the trajectory (`imu_roughness`).
        k_matrix: 3x3 camera intrinsics (CameraInfo k) of images of size `image_hw`.
        image_hw: (H, W) of the images.
        params: Grid, horizon, footprint, camera extrinsics.
    """
    n = len(np.asarray(frame_stamps).reshape(-1))
    gh, gw = (int(g) for g in params.grid)
    valid = np.flatnonzero(np.isfinite(roughness.signal))
    cell, window, counts = footprint_cells(frame_stamps, traj, roughness.stamps_ns[valid],
                                           k_matrix, image_hw, params)
    sums = np.bincount(cell, weights=roughness.signal[valid][window], minlength=n * gh * gw)
    hits = np.bincount(cell, minlength=n * gh * gw)
    mask = hits > 0
    values = np.where(mask, sums / np.maximum(hits, 1), 0.0)
    return TerrainLabels(values.reshape(n, gh, gw).astype(np.float32),
                         mask.reshape(n, gh, gw), counts)


@dataclass
class DescriptorLabels:
    """Terrain descriptor labels of N frames on a GH x GW patch grid.

    Attributes:
        values: float32 [N, GH, GW, D] mean over the footprints seen in the patch of each
            entry where it was known (NaN where not).
        mask: bool [N, GH, GW, D] True where some footprint with that entry known landed.
        t_future_ns: int64 [N, GH, GW] earliest window centre t' seen in the patch, -1
            where none.
        counts: as `TerrainLabels`.
    """

    values: np.ndarray
    mask: np.ndarray
    t_future_ns: np.ndarray
    counts: dict[str, int] = field(default_factory=dict)


def label_terrain_descriptors(frame_stamps: np.ndarray, traj: Trajectory,
                              descriptors: DescriptorSeries, k_matrix: np.ndarray,
                              image_hw: tuple[int, int], params: TerrainParams
                              ) -> DescriptorLabels:
    """Descriptor patch labels of frames: the same footprint projection as `label_terrain`.

    Each entry is averaged over the footprints where it was known; an entry known in no
    footprint of a patch stays masked (NaN), never zero.
    """
    n = len(np.asarray(frame_stamps).reshape(-1))
    gh, gw = (int(g) for g in params.grid)
    d = len(descriptors.layout.names)
    cells = n * gh * gw
    used = np.flatnonzero(descriptors.mask.any(axis=1))
    cell, window, counts = footprint_cells(frame_stamps, traj, descriptors.stamps_ns[used],
                                           k_matrix, image_hw, params)
    rows = used[window]
    values = np.full((cells, d), np.nan, np.float32)
    mask = np.zeros((cells, d), bool)
    for k in range(d):   # one entry at a time: memory stays O(points), not O(points x D)
        known = descriptors.mask[rows, k]
        hits = np.bincount(cell[known], minlength=cells)
        sums = np.bincount(cell[known], weights=descriptors.values[rows[known], k],
                           minlength=cells)
        seen = hits > 0
        values[seen, k] = sums[seen] / hits[seen]
        mask[seen, k] = True
    first = np.full(cells, np.iinfo(np.int64).max, np.int64)
    np.minimum.at(first, cell, descriptors.stamps_ns[rows])
    t_future = np.where(first == np.iinfo(np.int64).max, -1, first)
    return DescriptorLabels(values.reshape(n, gh, gw, d), mask.reshape(n, gh, gw, d),
                            t_future.reshape(n, gh, gw), counts)
