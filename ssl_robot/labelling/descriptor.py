"""The proprioceptive terrain descriptor: what the robot feels while it drives over ground.

Per window of `window_s` (every `hop_s`) a vector of D floats, each with a mask:

* IMU spectra: the Welch PSD (Hann segments of `segment_fraction` of the window, 50 %
  overlap, each segment's mean removed, so gravity and slow attitude changes drop out) of
  the linear acceleration x, y, z and the angular rate x, y, z, summed into `n_bands`
  bands and stored as log10 band power (log10 of (m/s^2)^2 or (rad/s)^2). The band edges
  follow the IMU's actual rate: geometric from the first non-DC Welch bin to the Nyquist
  frequency fs / 2, never above it; a band that holds no bin is merged into the one below, so
  a 30 Hz IMU gets fewer bands than a 200 Hz one. The layout (rate, edges, entry names)
  is a `DescriptorLayout`, stored with every dataset.
* Wheels (`sensor_msgs/JointState` velocity and effort of the wheel joints, or the
  BorealTC `pro_*.csv`), each side averaged over its wheels: mean wheel speed (m/s),
  its standard deviation, the yaw rate the wheels command, (v_r - v_l) / `wheel_track_m`
  (rad/s), the yaw slip |mean wheel yaw rate| - |mean gyro z| (rad/s; a skid-steer robot
  turns less than its wheels say, the more so the less the ground grips), mean |effort|,
  its standard deviation and the right-left effort difference (the effort's unit: N m
  from JointState, A of motor current in BorealTC).
* Slip against odometry: mean |commanded - odometry forward speed| while told to move
  (`cmd_slip`, m/s) and mean |wheel speed - odometry speed| (`wheel_slip`, m/s).

Inputs that are absent (no wheel topic, no effort, no commands) or have no sample in a
window leave their entries masked (False) and NaN, never zero-filled; an IMU gap of
more than 3 samples masks the window's IMU entries.

The scalar cost (documented, monotone in every term; m/s^2, higher = rougher) that
costmaps get:

    cost = vibration + gyro_weight * attitude_rate + slip_weight * slip

with vibration = sqrt(sum of the vertical-acceleration band powers of the bands whose
centre lies in `band_hz`, clipped to the Nyquist frequency), attitude_rate =
sqrt(mean over roll and pitch of their summed band powers) and slip the larger known of
cmd_slip and wheel_slip (0 where neither is known).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

IMU_AXES = ('accel_x', 'accel_y', 'accel_z', 'gyro_x', 'gyro_y', 'gyro_z')
WHEEL_NAMES = ('wheel_speed', 'wheel_speed_std', 'wheel_yaw_rate', 'yaw_slip')
EFFORT_NAMES = ('effort_mean', 'effort_std', 'effort_diff')
SLIP_NAMES = ('cmd_slip', 'wheel_slip')
#: Smallest band power (log10 of it is the floor of a silent band).
POWER_FLOOR = 1e-12


@dataclass(frozen=True)
class DescriptorParams:
    """How descriptors are computed (stored with every dataset).

    `wheel_track_m` defaults to the Husky A200's (BorealTC); the labeller sets its robot's.
    """

    window_s: float = 0.5
    hop_s: float = 0.1
    n_bands: int = 8
    segment_fraction: float = 0.5
    wheel_track_m: float = 0.555
    min_command_mps: float = 0.02
    band_hz: tuple[float, float] = (5.0, 30.0)
    gyro_weight: float = 1.0
    slip_weight: float = 1.0


@dataclass(frozen=True)
class DescriptorLayout:
    """What each of the D descriptor entries is.

    Attributes:
        sample_rate_hz: IMU rate the bands were made for.
        bands_hz: [B] (low, high) edges of each band in Hz (high <= Nyquist).
        names: [D] entry names: '<axis>_b<k>' for 6 axes x B bands, then the wheel,
            effort and slip entries.
        window_s, hop_s: The windows.
    """

    sample_rate_hz: float
    bands_hz: tuple[tuple[float, float], ...]
    names: tuple[str, ...]
    window_s: float
    hop_s: float

    @property
    def n_bands(self) -> int:
        return len(self.bands_hz)

    def index(self, name: str) -> int:
        return self.names.index(name)

    def as_dict(self) -> dict[str, Any]:
        return {'sample_rate_hz': self.sample_rate_hz,
                'bands_hz': [list(b) for b in self.bands_hz], 'names': list(self.names),
                'window_s': self.window_s, 'hop_s': self.hop_s}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> DescriptorLayout:
        return cls(float(d['sample_rate_hz']), tuple(tuple(float(v) for v in b)
                                                     for b in d['bands_hz']),
                   tuple(str(n) for n in d['names']), float(d['window_s']), float(d['hop_s']))


@dataclass
class WheelData:
    """Wheel joint readings, each side averaged over its wheels.

    Attributes:
        stamps_ns: int64 [J].
        velocity: [J, 2] left, right rim speed (m/s; JointState rad/s x wheel radius).
        effort: [J, 2] left, right effort, or None where not published.
    """

    stamps_ns: np.ndarray
    velocity: np.ndarray
    effort: np.ndarray | None = None


def wheels_from_joint_states(stamps_ns: np.ndarray, names: list[tuple[str, ...]],
                             velocity: list[np.ndarray], effort: list[np.ndarray], *,
                             left: tuple[str, ...], right: tuple[str, ...],
                             radius_m: float) -> WheelData | None:
    """Wheel data from `sensor_msgs/JointState` messages (each side's joints averaged).

    Args:
        stamps_ns: [J] header stamps.
        names, velocity, effort: Per message, its joint names, velocities (rad/s) and
            efforts (empty where not published).
        left, right: Joint names of the left and right wheels.
        radius_m: Wheel radius (rim speed = rad/s x radius).

    Returns:
        None when no message names a left and a right wheel with a velocity; effort None
        unless every used message has the efforts of both sides.
    """
    keep, vel, eff = [], [], []
    for k, (joints, v, e) in enumerate(zip(names, velocity, effort)):
        index = {n: i for i, n in enumerate(joints)}
        sides = [[index[j] for j in side if j in index and index[j] < len(v)]
                 for side in (left, right)]
        if not all(sides):
            continue
        keep.append(k)
        vel.append([float(np.mean(np.asarray(v)[s])) * radius_m for s in sides])
        full = all(max(s) < len(e) for s in sides)
        eff.append([float(np.mean(np.asarray(e)[s])) for s in sides] if full
                   else [np.nan, np.nan])
    if not keep:
        return None
    effort_arr = np.asarray(eff, np.float64)
    return WheelData(np.asarray(stamps_ns, np.int64)[keep], np.asarray(vel, np.float64),
                     None if np.isnan(effort_arr).any() else effort_arr)


@dataclass
class DescriptorSeries:
    """Descriptors along the trajectory.

    Attributes:
        stamps_ns: int64 [W] window centres.
        values: float64 [W, D] (NaN where masked).
        mask: bool [W, D] True where the entry is known.
        cost: float64 [W] the scalar cost (NaN where the IMU entries are unknown).
        layout: What the D entries are.
        counts: What was dropped on the way.
    """

    stamps_ns: np.ndarray
    values: np.ndarray
    mask: np.ndarray
    cost: np.ndarray
    layout: DescriptorLayout
    counts: dict[str, int] = field(default_factory=dict)


def welch_bins(fs: float, window_n: int, segment_fraction: float) -> tuple[int, np.ndarray]:
    """Welch segment length and the frequencies (Hz) of its one-sided bins."""
    nperseg = max(4, min(window_n, int(round(window_n * segment_fraction))))
    return nperseg, np.fft.rfftfreq(nperseg, 1.0 / fs)


def band_layout(fs: float, window_n: int, params: DescriptorParams
                ) -> tuple[tuple[tuple[float, float], ...], np.ndarray]:
    """Bands of a rate: edges and the band of every Welch bin (-1: DC, in no band).

    Edges are geometric from the first non-DC bin to fs / 2; empty bands are merged into
    the next one.

    Returns:
        (bands_hz, bin_band): [B] (low, high) and int [F] band index of each bin.
    """
    _, freqs = welch_bins(fs, window_n, params.segment_fraction)
    nyquist = fs / 2.0
    first = freqs[1]
    edges = np.geomspace(first, nyquist, max(1, params.n_bands) + 1)
    raw = np.clip(np.searchsorted(edges, freqs, side='right') - 1, 0, len(edges) - 2)
    raw[0] = -1
    used = np.unique(raw[raw >= 0])
    bin_band = np.full(len(freqs), -1)
    bands = []
    for k, b in enumerate(used):
        bin_band[raw == b] = k
        lo = float(edges[b]) if k else float(first)
        bands.append(lo)
    his = [*bands[1:], float(nyquist)]
    return tuple((lo, hi) for lo, hi in zip(bands, his)), bin_band


def descriptor_names(n_bands: int) -> tuple[str, ...]:
    return (*(f'{a}_b{k}' for a in IMU_AXES for k in range(n_bands)), *WHEEL_NAMES,
            *EFFORT_NAMES, *SLIP_NAMES)


def clean_imu(stamps_ns: np.ndarray, accel: np.ndarray, gyro: np.ndarray
              ) -> tuple[np.ndarray, np.ndarray, np.ndarray, dict[str, int]]:
    """IMU samples sorted by stamp, repeated stamps and non-finite samples dropped, counted.

    Returns:
        (stamps_ns [M], accel [M, 3], gyro [M, 3], {'duplicate': n, 'invalid': n}).
    """
    stamps = np.asarray(stamps_ns, dtype=np.int64).reshape(-1)
    order = np.argsort(stamps, kind='stable')
    stamps = stamps[order]
    keep = np.ones(len(stamps), bool)
    keep[1:] = stamps[1:] != stamps[:-1]
    accel = np.asarray(accel, np.float64).reshape(-1, 3)[order][keep]
    gyro = np.asarray(gyro, np.float64).reshape(-1, 3)[order][keep]
    stamps = stamps[keep]
    finite = np.isfinite(accel).all(axis=1) & np.isfinite(gyro).all(axis=1)
    counts = {'duplicate': int((~keep).sum()), 'invalid': int((~finite).sum())}
    stamps, accel, gyro = stamps[finite], accel[finite], gyro[finite]
    return stamps, accel, gyro, counts


def uniform_imu(stamps_ns: np.ndarray, accel: np.ndarray, gyro: np.ndarray
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray, float, dict[str, int]]:
    """IMU samples sorted, deduplicated, invalid ones dropped, on a uniform grid.

    Returns:
        (grid_ns [G], imu [6, G] accel xyz then gyro xyz, stamps_ns [M] of the samples
        kept, fs Hz from the median interval (to 0.01 Hz), counts); fs 0 and an empty
        grid for fewer than 8 samples.
    """
    stamps, accel, gyro, counts = clean_imu(stamps_ns, accel, gyro)
    if len(stamps) < 8:
        return np.zeros(0, np.int64), np.zeros((6, 0)), stamps, 0.0, counts
    # Rounded to 0.01 Hz: bags of one IMU give one band layout despite stamp jitter.
    fs = round(1e9 / float(np.median(np.diff(stamps))), 2)
    grid = np.arange(stamps[0], stamps[-1], int(round(1e9 / fs)), dtype=np.int64)
    t = (grid - stamps[0]).astype(np.float64)
    ts = (stamps - stamps[0]).astype(np.float64)
    imu = np.stack([np.interp(t, ts, v) for v in (*accel.T, *gyro.T)])
    return grid, imu, stamps, fs, counts


def gap_windows(starts_ns: np.ndarray, window_ns: int, stamps_ns: np.ndarray,
                fs: float) -> np.ndarray:
    """Which windows [W] span an IMU gap (> 3 samples missing), interpolated over."""
    bad = np.zeros(len(starts_ns), bool)
    gap_at = np.flatnonzero(np.diff(stamps_ns) > 3 * 1e9 / fs)
    for g in gap_at:
        bad |= (starts_ns < stamps_ns[g + 1]) & (starts_ns + window_ns > stamps_ns[g])
    return bad


def _window_stats(t_ns: np.ndarray, x: np.ndarray, starts: np.ndarray, window_ns: int
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(mean, std, count) of samples x [J] stamped t_ns (sorted) in [start, start + w)."""
    a = np.searchsorted(t_ns, starts, 'left')
    b = np.searchsorted(t_ns, starts + window_ns, 'left')
    s1 = np.concatenate([[0.0], np.cumsum(x)])
    s2 = np.concatenate([[0.0], np.cumsum(x * x)])
    n = (b - a).astype(np.float64)
    with np.errstate(invalid='ignore', divide='ignore'):
        mean = (s1[b] - s1[a]) / n
        var = np.maximum((s2[b] - s2[a]) / n - mean ** 2, 0.0)
    return mean, np.sqrt(var), b - a


def terrain_descriptors(stamps_ns: np.ndarray, accel: np.ndarray, gyro: np.ndarray,
                        params: DescriptorParams, *, wheels: WheelData | None = None,
                        cmd_stamps_ns: np.ndarray | None = None,
                        cmd_speed: np.ndarray | None = None,
                        odom_stamps_ns: np.ndarray | None = None,
                        odom_speed: np.ndarray | None = None) -> DescriptorSeries:
    """Descriptors over sliding windows of IMU data, with the optional wheel and slip parts.

    Args:
        stamps_ns: int64 [M] IMU stamps (any order; sorted, duplicates dropped here).
        accel: [M, 3] linear acceleration (m/s^2).
        gyro: [M, 3] angular velocity (rad/s).
        params: Windows, bands, wheel track, cost weights.
        wheels: Wheel velocity (and effort) per side, or None.
        cmd_stamps_ns, cmd_speed: Commanded forward speed (m/s), or None.
        odom_stamps_ns, odom_speed: Odometry forward speed (m/s), or None.

    Returns:
        The series; empty (with a layout for the rate found, or 0 Hz) when there are too
        few IMU samples for one window.
    """
    grid, imu, stamps, fs, counts = uniform_imu(stamps_ns, accel, gyro)
    n = max(4, int(round(params.window_s * fs))) if fs else 4
    bands, bin_band = band_layout(fs or 1.0, n, params)
    layout = DescriptorLayout(float(fs), bands, descriptor_names(len(bands)),
                              float(params.window_s), float(params.hop_s))
    d = len(layout.names)
    if len(grid) < n:
        return DescriptorSeries(np.zeros(0, np.int64), np.zeros((0, d)), np.zeros((0, d), bool),
                                np.zeros(0), layout, counts)
    from scipy.signal import welch  # noqa: PLC0415 - scipy only where descriptors are made
    dt_ns = int(round(1e9 / fs))
    hop = max(1, int(round(params.hop_s * fs)))
    windows = np.lib.stride_tricks.sliding_window_view(imu, n, axis=1)[:, ::hop]  # [6, W, n]
    nperseg, _ = welch_bins(fs, n, params.segment_fraction)
    _, psd = welch(windows, fs=fs, window='hann', nperseg=nperseg, noverlap=nperseg // 2,
                   detrend='constant', axis=-1)                                # [6, W, F]
    df = fs / nperseg
    b = len(bands)
    onehot = (bin_band[:, None] == np.arange(b)[None, :]).astype(np.float64)   # [F, B]
    power = (psd @ onehot) * df                                                # [6, W, B]
    w = power.shape[1]
    starts = grid[::hop][:w]
    window_ns = n * dt_ns
    centres = starts + window_ns // 2
    bad = gap_windows(starts, window_ns, stamps, fs)
    counts['gap_windows'] = int(bad.sum())
    values = np.full((w, d), np.nan)
    mask = np.zeros((w, d), bool)
    values[:, :6 * b] = np.log10(np.maximum(power, POWER_FLOOR)).transpose(1, 0, 2).reshape(w, -1)
    mask[:, :6 * b] = ~bad[:, None]
    col = 6 * b
    wheel_speed = None
    if wheels is not None and len(wheels.stamps_ns):
        wt = np.asarray(wheels.stamps_ns, np.int64)
        order = np.argsort(wt, kind='stable')
        wt = wt[order]
        vel = np.asarray(wheels.velocity, np.float64).reshape(-1, 2)[order]
        speed_mean, speed_std, cnt = _window_stats(wt, vel.mean(axis=1), starts, window_ns)
        yaw_mean, _, _ = _window_stats(wt, (vel[:, 1] - vel[:, 0]) / params.wheel_track_m,
                                       starts, window_ns)
        gyro_z_mean = windows[5].mean(axis=-1)
        yaw_slip = np.abs(yaw_mean) - np.abs(gyro_z_mean)
        has = cnt > 0
        for k, v in enumerate((speed_mean, speed_std, yaw_mean, yaw_slip)):
            ok = has & ~(bad if k == 3 else np.zeros(w, bool))
            values[ok, col + k] = v[ok]
            mask[ok, col + k] = True
        wheel_speed = np.where(has, speed_mean, np.nan)
        if wheels.effort is not None:
            eff = np.asarray(wheels.effort, np.float64).reshape(-1, 2)[order]
            e_mean, e_std, ecnt = _window_stats(wt, np.abs(eff).mean(axis=1), starts, window_ns)
            e_diff, _, _ = _window_stats(wt, eff[:, 1] - eff[:, 0], starts, window_ns)
            ok = ecnt > 0
            for k, v in enumerate((e_mean, e_std, e_diff)):
                values[ok, col + 4 + k] = v[ok]
                mask[ok, col + 4 + k] = True
        else:
            counts['no_effort'] = 1
    else:
        counts['no_wheels'] = 1
    col += len(WHEEL_NAMES) + len(EFFORT_NAMES)
    have_odom = odom_stamps_ns is not None and odom_speed is not None and len(odom_stamps_ns)
    if have_odom and cmd_stamps_ns is not None and cmd_speed is not None and len(cmd_stamps_ns):
        slip, known = command_slip(centres, np.asarray(cmd_stamps_ns), np.asarray(cmd_speed),
                                   np.asarray(odom_stamps_ns), np.asarray(odom_speed),
                                   window_s=params.window_s,
                                   min_command_mps=params.min_command_mps)
        values[known, col] = slip[known]
        mask[known, col] = True
    if have_odom and wheel_speed is not None:
        ot = np.asarray(odom_stamps_ns, np.int64)
        order = np.argsort(ot, kind='stable')
        od_mean, _, ocnt = _window_stats(ot[order], np.asarray(odom_speed, np.float64)[order],
                                         starts, window_ns)
        ok = (ocnt > 0) & np.isfinite(wheel_speed)
        values[ok, col + 1] = np.abs(wheel_speed[ok] - od_mean[ok])
        mask[ok, col + 1] = True
    cost = descriptor_cost(values, mask, layout, params)
    return DescriptorSeries(centres, values, mask, cost, layout, counts)


def command_slip(query_ns: np.ndarray, cmd_stamps_ns: np.ndarray, cmd_speed: np.ndarray,
                 odom_stamps_ns: np.ndarray, odom_speed: np.ndarray, *, window_s: float,
                 min_command_mps: float) -> tuple[np.ndarray, np.ndarray]:
    """Mean |commanded - odometry| forward speed in a window around each query stamp.

    The command in force at an odometry stamp is the latest one before it (a command
    holds until the next).

    Returns:
        (slip [Q] m/s, known [Q]): known where the robot was told to move at some
        odometry stamp of the window.
    """
    co = np.argsort(cmd_stamps_ns, kind='stable')
    cmd_t, cmd_v = cmd_stamps_ns[co], cmd_speed[co]
    oo = np.argsort(odom_stamps_ns, kind='stable')
    od_t, od_v = odom_stamps_ns[oo], odom_speed[oo]
    idx = np.searchsorted(cmd_t, od_t, side='right') - 1
    has = idx >= 0
    commanded = np.where(has, cmd_v[np.maximum(idx, 0)], 0.0)
    moving = has & (np.abs(commanded) >= min_command_mps)
    err = np.where(moving, np.abs(commanded - od_v), 0.0)
    csum = np.concatenate([[0.0], np.cumsum(err)])
    cnt = np.concatenate([[0], np.cumsum(moving)])
    half = int(window_s * 1e9 / 2)
    a = np.searchsorted(od_t, query_ns - half, 'left')
    b = np.searchsorted(od_t, query_ns + half, 'right')
    k = cnt[b] - cnt[a]
    return np.where(k > 0, (csum[b] - csum[a]) / np.maximum(k, 1), 0.0), k > 0


def descriptor_cost(values: np.ndarray, mask: np.ndarray, layout: DescriptorLayout,
                    params: DescriptorParams) -> np.ndarray:
    """The scalar cost of descriptors (see the module docstring); NaN where IMU unknown."""
    b = layout.n_bands
    if not len(values):
        return np.zeros(0)
    power = 10.0 ** values[:, :6 * b].reshape(-1, 6, b)
    centres = np.array([np.sqrt(lo * hi) for lo, hi in layout.bands_hz])
    lo, hi = params.band_hz[0], min(params.band_hz[1], layout.sample_rate_hz / 2.0)
    in_band = (centres >= lo) & (centres <= hi)
    vibration = np.sqrt(power[:, 2, in_band].sum(axis=-1))
    attitude = np.sqrt(power[:, 3:5].sum(axis=-1).mean(axis=-1))
    slip_cols = [layout.index(n) for n in SLIP_NAMES]
    slips = np.where(mask[:, slip_cols], values[:, slip_cols], 0.0)
    cost = vibration + params.gyro_weight * attitude + params.slip_weight * slips.max(axis=1)
    return np.where(mask[:, :6 * b].all(axis=1), cost, np.nan)
