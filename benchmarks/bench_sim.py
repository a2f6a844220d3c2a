"""Simulator speed: simulated seconds per wall second, physics alone vs with the camera.

    python benchmarks/bench_sim.py [--seconds 20] [--seed 1]

Cases (same seed, same driver): physics and non-camera sensors only (the baseline),
plus camera rgb+depth at 30 Hz rendered at 128x96 and at 640x480 in the randomised world
(the default: procedural textures, clutter, markings, camera effects) and in the plain
world of the same seed (flat colours), and the whole `write_sim_bag` path at 128x96
(rendering + building messages + CDR + mcap writing). Each camera case also without
multisampling (`SimOptions(antialias=False)`), with how much its images differ from the
antialiased ones (the same poses: mean abs difference, PSNR, pixels off by more than 8
levels, and the same on the 64x48 area-averaged image a model sees).
Also reports wheel-odometry drift against ground truth at the end of each run. Prints a
table and writes benchmarks/results/bench_sim.json.
"""
from __future__ import annotations

import argparse
import json
import math
import os
from pathlib import Path
import platform
import shutil
import tempfile
import time

os.environ.setdefault('MUJOCO_GL', 'egl')

from ssl_robot.sim import generate_world, SimOptions, SimSession, write_sim_bag  # noqa: E402

RESULTS = Path(__file__).resolve().parent / 'results' / 'bench_sim.json'


def run_session(seed: int, seconds: float, options: SimOptions,
                style: str = 'random') -> dict[str, float]:
    """Advance a session for `seconds` of simulated time; speed, messages and drift."""
    session = SimSession(generate_world(seed, style=style), options)
    try:
        start = time.perf_counter()
        messages = 0
        path, prev = 0.0, None
        for k in range(int(seconds * 10)):
            messages += len(session.advance((k + 1) * 100_000_000))
            truth = session.sim.ground_truth()
            if prev is not None:
                path += math.hypot(truth.position[0] - prev[0], truth.position[1] - prev[1])
            prev = truth.position[:2].copy()
        wall = time.perf_counter() - start
        odom = session.sim.odometry()
        drift = math.hypot(odom.x - truth.position[0], odom.y - truth.position[1])
    finally:
        session.close()
    return {'sim_s': seconds, 'wall_s': wall, 'speed': seconds / wall, 'messages': messages,
            'path_m': path, 'odom_drift_m': drift}


def msaa_difference(seed: int, width: int, height: int, frames: int = 6,
                    model_hw: tuple[int, int] = (48, 64)) -> dict[str, float]:
    """How much images rendered without MSAA differ from 4x MSAA ones, same poses.

    Two sessions of one world and driver, stepped alike; the raw renders (before the
    sensor effects, which add noise of up to 6 levels) are compared: mean abs
    difference (0-255 levels), PSNR, the share of pixels off by more than 8 levels, and
    the mean abs difference after the area resize to the model's input size.
    """
    import cv2
    import numpy as np
    sessions = [SimSession(generate_world(seed), SimOptions(width=width, height=height,
                                                            antialias=a))
                for a in (True, False)]
    diffs, small, off, mse = [], [], [], []
    try:
        for k in range(frames):
            images = []
            for session in sessions:
                session.advance((k + 1) * 500_000_000)
                cam = session.sim._camera
                rgb, _ = cam.render(session.sim.data, session.sim.model.camera('camera').id)
                images.append(rgb.astype(np.float32))
            d = np.abs(images[0] - images[1])
            diffs.append(float(d.mean()))
            mse.append(float(np.square(d).mean()))
            off.append(float((d.max(axis=2) > 8).mean()))
            s0, s1 = (cv2.resize(im, model_hw[::-1], interpolation=cv2.INTER_AREA)
                      for im in images)
            small.append(float(np.abs(s0 - s1).mean()))
    finally:
        for session in sessions:
            session.close()
    return {'mean_abs_levels': float(np.mean(diffs)),
            'psnr_db': 10 * math.log10(255.0 ** 2 / max(float(np.mean(mse)), 1e-12)),
            'pixels_off_by_more_than_8': float(np.mean(off)),
            'model_input_mean_abs_levels': float(np.mean(small))}


def stage_times(seed: int, width: int, height: int, frames: int = 20, *,
                antialias: bool = True) -> dict[str, float]:
    """Median ms per camera frame of each stage of a 30 Hz camera in the randomised world.

    physics (the steps of 1/30 s), the GL pass (scene update, raster, colour + depth read
    back in one pass), buffer conversion (row flip, metric depth), the camera's sensor
    effects (blur, gain, noise) and building the image, depth and camera_info messages.
    `sim_s_per_wall_s_bound` is what these stages alone allow (1 / (30 x their sum)).
    """
    import mujoco
    import numpy as np

    from ssl_robot.sim import messages as m
    from ssl_robot.sim import ROBOT
    from ssl_robot.sim.appearance import apply_camera_effects
    session = SimSession(generate_world(seed), SimOptions(width=width, height=height,
                                                          antialias=antialias))
    sim, kit = session.sim, session.kit
    cam = sim._camera  # the offscreen renderer's own buffers, stage by stage
    cam_id = sim.model.camera('camera').id
    steps = max(1, round(1 / 30 / sim.timestep_s))
    look = sim.world.appearance
    fx = ROBOT.camera_intrinsics(width, height)[0]

    from OpenGL import GL

    def update() -> None:
        cam._gl.make_current()
        cam._camera.fixedcamid = cam_id
        mujoco.mjv_updateScene(sim.model, sim.data, cam._option, None, cam._camera,
                               mujoco.mjtCatBit.mjCAT_ALL, cam._scene)

    def raster() -> None:  # glFinish: llvmpipe rasterises when the frame is flushed
        mujoco.mjr_render(cam._rect, cam._scene, cam._context)
        GL.glFinish()

    def read_back() -> None:  # with MSAA: resolve (blit) to single samples, then read
        mujoco.mjr_readPixels(cam._rgb, cam._depth, cam._rect, cam._context)

    times: dict[str, list[float]] = {}

    def timed(name: str, fn):  # noqa: ANN202
        start = time.perf_counter()
        out = fn()
        times.setdefault(name, []).append((time.perf_counter() - start) * 1e3)
        return out

    try:
        sim.set_cmd_vel(0.15, 0.5)  # turning: motion blur is on
        for k in range(frames + 3):
            timed('physics', lambda: sim.step(steps))
            timed('GL scene update', update)
            timed('GL raster', raster)
            timed('GL read back (resolve, colour + depth)', read_back)
            total = timed('render total', lambda: cam.render(sim.data, cam_id))
            rgb, depth = total
            timed('sensor effects', lambda rgb=rgb: apply_camera_effects(
                rgb, look, np.random.default_rng(k), turn_rate_rps=0.5, fx_px=fx))
            timed('(sensor effects before: float passes)', lambda rgb=rgb: camera_effects_before(
                rgb, look, np.random.default_rng(k), turn_rate_rps=0.5, fx_px=fx))
            timed('messages', lambda rgb=rgb, depth=depth: (
                m.image_msg(kit, 0, 'camera', rgb), m.depth_msg(kit, 0, 'camera', depth),
                m.camera_info_msg(kit, 0, 'camera', width, height, ROBOT)))
    finally:
        session.close()
    med = {name: float(np.median(v[3:])) for name, v in times.items()}
    gl_pass = sum(v for k, v in med.items() if k.startswith('GL '))
    med['buffer conversion'] = max(0.0, med.pop('render total') - gl_pass)
    med['sim_s_per_wall_s_bound'] = 1000.0 / (30 * sum(
        v for k, v in med.items() if not k.startswith('(')))
    return med


def camera_effects_before(rgb, look, rng, *, turn_rate_rps: float, fx_px: float):  # noqa: ANN001, ANN201
    """`apply_camera_effects` as it was before (float copy, blur, gain, noise, rint, clip).

    Timed next to the current one in the same run; the same operations in separate
    numpy/OpenCV passes over full-size float images.
    """
    import cv2
    import numpy as np
    img = rgb.astype(np.float32)
    k = int(round(abs(turn_rate_rps) * look.exposure_s * fx_px))
    if k >= 1:
        img = cv2.blur(img, (k + 1, 1), anchor=(k // 2, 0), borderType=cv2.BORDER_REPLICATE)
    img *= look.exposure
    if look.noise_sigma > 0:
        noise = np.empty_like(img)
        cv2.setRNGSeed(int(rng.integers(2**31)))
        cv2.randn(noise, 0.0, (look.noise_sigma,) * img.shape[2])
        img += noise
    np.rint(img, out=img)
    np.clip(img, 0, 255, out=img)
    return img.astype(np.uint8)


def gl_backend() -> dict[str, object]:
    """What renders: GL renderer and version, and llvmpipe's rasteriser threads.

    The threads are counted by name in /proc/self/task (Mesa names them llvmpipe-N;
    their number is LP_NUM_THREADS, by default the CPU count).
    """
    from OpenGL import GL
    session = SimSession(generate_world(0), SimOptions(width=64, height=48))
    try:
        session.sim._camera._gl.make_current()
        info = {'renderer': GL.glGetString(GL.GL_RENDERER).decode(),
                'version': GL.glGetString(GL.GL_VERSION).decode()}
        names = []
        for task in Path('/proc/self/task').iterdir():
            try:
                names.append((task / 'comm').read_text().strip())
            except OSError:
                continue
        info['llvmpipe_threads'] = sum(n.startswith('llvmpipe') for n in names)
        info['LP_NUM_THREADS'] = os.environ.get('LP_NUM_THREADS', '')
        info['MUJOCO_GL'] = os.environ.get('MUJOCO_GL', '')
    finally:
        session.close()
    return info


def print_stages(stages: dict[str, dict[str, float]]) -> None:
    """The per-stage table of `stage_times` per camera size."""
    print('\nper camera frame at 30 Hz, randomised world (median ms; 4x MSAA unless noted)')
    print(f'{"stage":30s}' + ''.join(f'{cam:>16s}' for cam in stages))
    for name in next(iter(stages.values())):
        print(f'{name:30s}' + ''.join(f'{row[name]:16.2f}' for row in stages.values()))


SIZES = ((128, 96), (640, 480))


def camera_stages(seed: int) -> dict[str, dict[str, float]]:
    """`stage_times` per camera size, with 4x MSAA and without."""
    return {f'{w}x{h}{suffix}': stage_times(seed, w, h, antialias=not suffix)
            for suffix in ('', ' no MSAA') for w, h in SIZES}


def print_msaa(diffs: dict[str, dict[str, float]]) -> None:
    print('\nno MSAA vs 4x MSAA, same poses, raw renders (before sensor noise)')
    print(f'{"camera":10s} {"mean |diff|":>12s} {"PSNR dB":>8s} {"px off >8":>10s} '
          f'{"|diff| at 64x48":>16s}')
    for cam, d in diffs.items():
        print(f'{cam:10s} {d["mean_abs_levels"]:12.2f} {d["psnr_db"]:8.1f} '
              f'{100 * d["pixels_off_by_more_than_8"]:9.2f}% '
              f'{d["model_input_mean_abs_levels"]:16.3f}')


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--seconds', type=float, default=20.0, help='simulated seconds per case')
    parser.add_argument('--seed', type=int, default=1, help='world seed')
    parser.add_argument('--stages-only', action='store_true',
                        help='only the per-stage table (a few seconds), to '
                        'benchmarks/results/bench_sim_stages.json')
    parser.add_argument('--lp-threads', type=int, help="llvmpipe's rasteriser threads "
                        '(LP_NUM_THREADS; default: the CPU count)')
    parser.add_argument('--out', type=Path, help='the JSON file (default: bench_sim.json, '
                        'with --stages-only bench_sim_stages.json)')
    args = parser.parse_args()
    if args.lp_threads is not None:  # before any GL context exists
        os.environ['LP_NUM_THREADS'] = str(args.lp_threads)
    backend = gl_backend()
    print(f'GL: {backend["renderer"]}, {backend["version"]} (MUJOCO_GL={backend["MUJOCO_GL"]}), '
          f'{backend["llvmpipe_threads"]} llvmpipe rasteriser threads on {os.cpu_count()} CPUs')
    if args.stages_only:
        stages = camera_stages(args.seed)
        print_stages(stages)
        diffs = {f'{w}x{h}': msaa_difference(args.seed, w, h) for w, h in SIZES}
        print_msaa(diffs)
        # And the whole session (randomised world) against physics alone, same run.
        speed = {name: run_session(args.seed, args.seconds, opts)['speed'] for name, opts in (
            ('physics only (baseline)', SimOptions(render=False)),
            ('camera 128x96 @30Hz', SimOptions(width=128, height=96)),
            ('camera 640x480 @30Hz', SimOptions(width=640, height=480)),
            ('camera 128x96 @30Hz, no MSAA', SimOptions(width=128, height=96,
                                                         antialias=False)),
            ('camera 640x480 @30Hz, no MSAA', SimOptions(width=640, height=480,
                                                          antialias=False)))}
        print('')
        for name, value in speed.items():
            print(f'{name:34s} {value:6.2f} sim s / wall s')
        out = args.out or RESULTS.with_name('bench_sim_stages.json')
        out.write_text(json.dumps({'arguments': vars(args),
                                   'seed': args.seed, 'seconds': args.seconds,
                                   'cpus': os.cpu_count(), 'load_avg': list(os.getloadavg()),
                                   'gl_backend': backend, 'stages_ms_per_frame': stages,
                                   'no_msaa_image_difference': diffs,
                                   'sim_s_per_wall_s': speed}, indent=2, default=str))
        print(f'wrote {out}')
        return 0
    cases = {
        'physics only (baseline)': (SimOptions(render=False), 'random'),
        'camera 128x96 @30Hz': (SimOptions(width=128, height=96), 'random'),
        'camera 640x480 @30Hz': (SimOptions(width=640, height=480), 'random'),
        'camera 128x96 @30Hz, no MSAA': (SimOptions(width=128, height=96, antialias=False),
                                         'random'),
        'camera 640x480 @30Hz, no MSAA': (SimOptions(width=640, height=480, antialias=False),
                                          'random'),
        'plain world, camera 128x96 @30Hz': (SimOptions(width=128, height=96), 'plain'),
        'plain world, camera 640x480 @30Hz': (SimOptions(width=640, height=480), 'plain'),
    }
    results = {name: run_session(args.seed, args.seconds, opts, style)
               for name, (opts, style) in cases.items()}
    tmp = Path(tempfile.mkdtemp(prefix='bench_sim_'))
    try:
        summary = write_sim_bag(args.seed, args.seconds, tmp / 'bag', progress_every_s=1e9)
        size = sum(f.stat().st_size for f in (tmp / 'bag').rglob('*') if f.is_file())
        results['write_sim_bag 128x96 @30Hz'] = {
            'sim_s': summary.sim_seconds, 'wall_s': summary.wall_seconds,
            'speed': summary.speed, 'messages': sum(summary.message_counts.values()),
            'bag_bytes': size}
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    stages = camera_stages(args.seed)
    diffs = {f'{w}x{h}': msaa_difference(args.seed, w, h) for w, h in SIZES}
    base = results['physics only (baseline)']['speed']
    print(f'\nsimulator speed, world seed {args.seed}, {args.seconds:.0f} simulated s per case '
          f'({platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, '
          f'MUJOCO_GL={os.environ["MUJOCO_GL"]})')
    print(f'{"case":34s} {"sim s / wall s":>15s} {"vs baseline":>12s} {"messages":>9s}')
    for name, r in results.items():
        r['ratio_to_baseline'] = r['speed'] / base
        print(f'{name:34s} {r["speed"]:15.1f} {r["ratio_to_baseline"]:11.2f}x '
              f'{r["messages"]:9d}')
    print_stages(stages)
    print_msaa(diffs)
    drift = results['physics only (baseline)']
    print(f'\nwheel odometry after {args.seconds:.0f} s: {drift["odom_drift_m"]:.3f} m from '
          f'ground truth over a {drift["path_m"]:.2f} m path '
          f'({100 * drift["odom_drift_m"] / max(drift["path_m"], 1e-9):.1f} %)')
    out = args.out or RESULTS
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({'arguments': vars(args),
                                   'seed': args.seed, 'seconds': args.seconds,
                                   'style': generate_world(args.seed).style,
                                   'cpus': os.cpu_count(), 'gl_backend': backend,
                                   'results': results,
                                   'stages_ms_per_frame': stages,
                                   'no_msaa_image_difference': diffs}, indent=2, default=str))
    print(f'wrote {out}')
    return 0


if __name__ == '__main__':
    raise SystemExit(main())
