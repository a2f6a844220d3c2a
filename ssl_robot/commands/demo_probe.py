"""Replay a bag through the replay graph and measure what the inference node publishes.

Used by `ssl-robot demo`: starts `ssl-robot up replay` (bag player with /clock, recorder,
labeller, inference) with a parameter file pointing the inference node at an exported
model, and listens from this process: each camera frame's arrival and the arrival of the
obstacle prediction carrying the same header give the publish -> prediction latency.
"""
from __future__ import annotations

import os
from pathlib import Path
import signal
import subprocess
import sys
import threading
import time
from typing import Any

import numpy as np
import yaml

from ssl_robot.paths import config_path

CAMERA_TOPIC = 'image_raw'


def write_replay_params(out: Path, *, model: Path, run_dir: Path) -> Path:
    """Write a copy of config/robot.yaml that points the replay graph at the run directory.

    The inference node loads `model`; recorder and labeller write under `run_dir`, not
    into the working directory. The bag player starts playing once the camera topic has
    its four subscribers: recorder, labeller, the inference node (it subscribes when it
    goes active, after loading the model) and this probe, so that no frame is played
    before the node can answer it.
    """
    params = yaml.safe_load(config_path().read_text())
    params['bag_player']['ros__parameters']['wait_for_topics'] = [f'/{CAMERA_TOPIC}:4']
    params['inference']['ros__parameters']['model_path'] = str(model.resolve())
    params['recorder']['ros__parameters']['output'] = str((run_dir / 'replay_recording')
                                                          .resolve())
    params['labeller']['ros__parameters']['dataset'] = str((run_dir / 'replay_dataset')
                                                           .resolve())
    out.write_text(yaml.safe_dump(params, sort_keys=False))
    return out


def measure_inference_over_dds(bag: Path, model: Path, seconds: float, env: dict[str, str],
                               run_dir: Path) -> dict[str, Any]:
    """Replay `seconds` of `bag` through the replay graph and measure the predictions.

    Returns:
        frames seen, predictions received, the fraction of frames predicted, latency
        median/p99 in ms, and the median latency of the first and last thirds (equal
        when no backlog grows).
    """
    import rclpy
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.qos import qos_profile_sensor_data
    from sensor_msgs.msg import Image

    params = write_replay_params(run_dir / 'replay_params.yaml', model=model,
                                 run_dir=run_dir)
    os.environ.update({k: env[k] for k in ('ROS_DOMAIN_ID', 'ROS_AUTOMATIC_DISCOVERY_RANGE')
                       if k in env})
    frame_arrival: dict[tuple[int, int], float] = {}
    latencies: list[float] = []
    answered_sent: list[float] = []  # when each answered frame arrived here
    lock = threading.Lock()

    context = rclpy.Context()
    rclpy.init(context=context)
    node = rclpy.create_node('demo_probe', context=context)

    def on_frame(msg: Image) -> None:
        with lock:
            frame_arrival[(msg.header.stamp.sec, msg.header.stamp.nanosec)] = time.monotonic()

    def on_prediction(msg: Image) -> None:
        now = time.monotonic()
        with lock:
            sent = frame_arrival.get((msg.header.stamp.sec, msg.header.stamp.nanosec))
        if sent is not None:
            latencies.append(now - sent)
            answered_sent.append(sent)

    node.create_subscription(Image, CAMERA_TOPIC, on_frame, qos_profile_sensor_data)
    node.create_subscription(Image, 'obstacle/probabilities', on_prediction,
                             qos_profile_sensor_data)
    executor = SingleThreadedExecutor(context=context)
    executor.add_node(node)
    spin = threading.Thread(target=executor.spin, daemon=True)
    spin.start()

    cmd = [sys.executable, '-m', 'ssl_robot.cli', 'up', 'replay', '--bag', str(bag),
           '--param-file', str(params), '--duration', str(seconds + 15.0)]
    print('$ ' + ' '.join(cmd[2:]).replace('ssl_robot.cli', 'ssl-robot'), flush=True)
    graph = subprocess.Popen(cmd, env=env)
    try:
        deadline = time.monotonic() + seconds + 30.0
        while graph.poll() is None and time.monotonic() < deadline:
            time.sleep(0.5)
            if len(latencies) and time.monotonic() - min(frame_arrival.values()) > seconds:
                break
    finally:
        if graph.poll() is None:
            graph.send_signal(signal.SIGINT)
        try:
            graph.wait(timeout=40)
        except subprocess.TimeoutExpired:
            graph.kill()
            graph.wait()
        # The spin thread leaves rclpy's wait before the node and the context go: a
        # thread still inside it when they are destroyed (or at interpreter exit) can
        # abort the process ("terminate called without an active exception").
        executor.shutdown(timeout_sec=2.0)
        spin.join(timeout=10.0)
        node.destroy_node()
        rclpy.shutdown(context=context)

    lat_ms = np.array(latencies) * 1000.0
    thirds = np.array_split(lat_ms, 3) if lat_ms.size >= 3 else [lat_ms] * 3
    # Frames played before the node answered its first one went out while it was still
    # starting (loading the model, activating): counted apart from those it missed later.
    first = min(answered_sent) if answered_sent else float('inf')
    after = sum(1 for t in frame_arrival.values() if t >= first)
    return {
        'frames': len(frame_arrival),
        'frames_before_first_prediction': len(frame_arrival) - after,
        'frames_from_first_prediction': after,
        'predictions': int(lat_ms.size),
        'predicted_fraction': float(lat_ms.size / max(len(frame_arrival), 1)),
        'predicted_fraction_once_up': float(lat_ms.size / max(after, 1)),
        'latency_median_ms': float(np.median(lat_ms)) if lat_ms.size else float('nan'),
        'latency_p99_ms': float(np.percentile(lat_ms, 99)) if lat_ms.size else float('nan'),
        'latency_first_third_ms': float(np.median(thirds[0])) if lat_ms.size else float('nan'),
        'latency_last_third_ms': float(np.median(thirds[-1])) if lat_ms.size else float('nan'),
    }
