"""Trainer benchmark: overhead against a plain torch loop, and time spent waiting for data.

1. Overhead: the same obstacle model, the same preprocessed batches (an in-memory
   tensor dataset, so data loading costs the same), the same AdamW and gradient
   clipping, one thread; the ratio is the trainer's overhead (schedule, logging,
   progress, checkpoint at epoch end).
2. Data loading (`--data`): the obstacle and terrain tasks trained by the shared trainer
   from a labelled dataset of simulated bags (written, labelled and stored as
   `ssl-robot label` does it, frames memory-mapped), at 128x96 and 640x480 frames, in
   the settings of `LOADING_SETTINGS` (workers 0, 1, 2; kept between epochs or started
   anew; frames memory-mapped or in memory; resized once for the run, now, or in the
   data loading at each fetch, or whole frames resized in the step).
   Reported: ms per step and the fraction of the epoch the step waited for its batch
   (the trainer's own `data_wait_fraction`, epochs after the first), and the time to
   fetch one batch in the main process the way `FrameItems` did it before and does now.

3. The demo's stages (`--demo-stages --old-tree DIR`): the commands `make demo` runs
   (`ssl-robot sim` of one world, `ssl-robot label` of it, `ssl-robot train` of the
   obstacle, terrain and TCN tasks on the demo's dataset), each run by an older source
   tree (e.g. `git archive 32d0aaa | tar -x -C DIR`) and by this checkout, interleaved,
   in the same venv and on the same data; wall seconds per command, epoch seconds and
   data-wait fraction of each training; with `--demo-data-640` the data-wait fraction of
   this checkout at 640x480 (the `--data` dataset, in --data-dir) with 0 and 2 workers. Writes
   benchmarks/results/bench_trainer_demo_stages.json (the other modes are not run).

4. A busy computer (`--busy`): the obstacle task trained on the 128x96 `--data` dataset
   with 1 and 2 torch threads (`TrainConfig.threads`), on idle cores and with other
   processes spinning on N of them (`--busy-spinners`), as on a robot whose other nodes
   keep cores busy; ms per step (min over repeats) and the cores the trainer's own start-up
   check (`ssl_robot.train.cpu.busy_cores_of_others`) saw busy. Writes
   benchmarks/results/bench_trainer_busy.json (the other modes are not run).

Usage: python benchmarks/bench_trainer.py [--steps 60] [--batch-size 64] [--data]
    [--data-dir DIR] [--demo-stages --old-tree DIR [--demo-dataset runs/demo/data/worlds]]
Writes benchmarks/results/bench_trainer.json.
"""
from __future__ import annotations

import argparse
import json
import os
from pathlib import Path
import shutil
import subprocess
import sys
import tempfile
import time
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from ssl_robot.robot.losses import masked_bce_with_logits
from ssl_robot.robot.nets import build_robot_model, default_spec
from ssl_robot.train import Task, TrainConfig, Trainer

REPO = Path(__file__).resolve().parent.parent
SPEC = default_spec('obstacle', distances_m=[round(0.05 * i, 2) for i in range(11)])


def make_data(n: int) -> TensorDataset:
    g = torch.Generator().manual_seed(0)
    h, w = SPEC['input_hw']
    x = torch.randn(n, 3, h, w, generator=g)
    y = (torch.rand(n, 11, 3, generator=g) < 0.2).float()
    m = torch.rand(n, 11, 3, generator=g) < 0.7
    return TensorDataset(x, y, m)


class BenchTask(Task):
    name = 'bench_obstacle'

    def __init__(self, data: TensorDataset) -> None:
        self.data = data

    def build_model(self) -> nn.Module:
        return build_robot_model(SPEC)

    def datasets(self) -> tuple[TensorDataset, None]:
        return self.data, None

    def loss(self, model: nn.Module, batch: list[torch.Tensor]) -> tuple[torch.Tensor, dict]:
        x, y, m = batch
        return masked_bce_with_logits(model(x), y, m), {}


def plain_loop(data: TensorDataset, batch_size: int, lr: float) -> tuple[float, int]:
    torch.manual_seed(0)
    model = build_robot_model(SPEC).train()
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=1e-4)
    loader = DataLoader(data, batch_size=batch_size, shuffle=True,
                        generator=torch.Generator().manual_seed(0))
    steps = 0
    start = time.perf_counter()
    for x, y, m in loader:
        loss = masked_bce_with_logits(model(x), y, m)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        steps += 1
    return time.perf_counter() - start, steps


def trainer_loop(data: TensorDataset, batch_size: int, lr: float) -> tuple[float, int]:
    out = tempfile.mkdtemp(prefix='bench_trainer_')
    config = TrainConfig(out_dir=out, epochs=1, batch_size=batch_size, lr=lr, progress=True,
                         device='cpu')
    start = time.perf_counter()
    result = Trainer(BenchTask(data), config).fit()
    return time.perf_counter() - start, int(result.history[-1]['step'])


def build_dataset(out: Path, *, worlds: int, seconds: float, width: int, height: int,
                  camera_rate_hz: float) -> float:
    """Simulated bags labelled into one dataset at `out` (as `ssl-robot label` writes it).

    Returns:
        Wall seconds it took.
    """
    from ssl_robot.config import load_node_parameters
    from ssl_robot.dataset import DatasetWriter
    from ssl_robot.labelling import labelling_params
    from ssl_robot.labelling.bag import label_bag
    from ssl_robot.labelling.jobs import dataset_layout
    from ssl_robot.sim import write_sim_bag
    start = time.perf_counter()
    params = labelling_params(load_node_parameters('labeller'))
    with tempfile.TemporaryDirectory(prefix='bench_trainer_bags_') as tmp:
        writer = None
        for k in range(worlds):
            bag = Path(tmp) / f'world{k}'
            write_sim_bag(100 + k, seconds, bag, width=width, height=height,
                          camera_rate_hz=camera_rate_hz)
            labelled = label_bag(bag, params)
            if writer is None:
                writer = DatasetWriter(out, image_hw=(height, width),
                                       **dataset_layout(params, labelled))
            writer.add_bag(str(bag), labelled.rows, params=params.as_dict())
            shutil.rmtree(bag)  # the dataset holds the frames; the bag is not needed again
        writer.commit()
    return time.perf_counter() - start


def bench_dataset(root: Path, size: str, args: argparse.Namespace) -> tuple[Path, float]:
    """The `--data` dataset of camera `size` ('WxH') in `root`, built when missing.

    Returns:
        Its path and the seconds building it took (0 when it was there).
    """
    width, height = (int(v) for v in size.split('x'))
    dataset = root / f'ds_{size}_{args.data_worlds}x{args.data_seconds:g}s_{args.data_rate:g}hz'
    if (dataset / 'meta.json').exists():
        return dataset, 0.0
    return dataset, build_dataset(dataset, worlds=args.data_worlds, seconds=args.data_seconds,
                                  width=width, height=height, camera_rate_hz=args.data_rate)


#: (frames, workers, persistent workers, where frames are resized) measured per camera
#: size and task: frames memory-mapped (the dataset's default) or read into memory first;
#: workers started anew each epoch (torch's default, and this trainer's before) or kept;
#: frames resized to the model's input once for the run (`RobotTask.resized_frames`,
#: now: 'once'), at each fetch in the data loading (`FrameItems(input_hw=)` without kept
#: frames, before: 'loading') or whole frames carried to the step that resizes them
#: (earlier: 'step').
LOADING_SETTINGS = (('mmap', 0, False, 'step'), ('mmap', 0, False, 'loading'),
                    ('mmap', 0, False, 'once'), ('memory', 0, False, 'once'),
                    ('mmap', 1, True, 'loading'), ('mmap', 1, True, 'once'),
                    ('mmap', 2, True, 'loading'), ('mmap', 2, True, 'once'))


def _step_resizes(task: Any) -> None:
    """Make `task`'s datasets carry whole frames to the step (as before `input_hw`)."""
    datasets = task.datasets

    def whole_frames() -> tuple[Any, Any]:
        train, val = datasets()
        train.input_hw = val.input_hw = None
        return train, val
    task.datasets = whole_frames


def data_loading_run(dataset: Path, *, task_name: str, workers: int, persistent: bool,
                     in_memory: bool, resize_in: str, epochs: int,
                     batch_size: int, threads: int = 0) -> dict[str, float]:
    """Train `task_name` on `dataset`; ms per step and data-wait fraction after epoch 0."""
    from ssl_robot.dataset import LabelledDataset
    from ssl_robot.robot import build_task
    # resize_cache_mib 0: nothing kept, each fetch resizes
    task = build_task(task_name, {'dataset': str(dataset),
                                  **({} if resize_in == 'once' else {'resize_cache_mib': 0})})
    if in_memory:  # the same rows, read into memory instead of memory-mapped
        task.use_data(LabelledDataset.open(dataset, mmap=False))
    if resize_in == 'step':
        _step_resizes(task)
    start = time.perf_counter()
    task.resized_frames()  # made by the trainer's datasets(); timed here on its own
    resize_once_s = time.perf_counter() - start
    out = tempfile.mkdtemp(prefix='bench_trainer_data_')
    config = TrainConfig(out_dir=out, epochs=epochs, batch_size=batch_size, lr=1e-3,
                         num_workers=workers, persistent_workers=persistent, progress=False,
                         device='cpu', threads=threads)
    try:
        history = Trainer(task, config).fit().history
    finally:
        shutil.rmtree(out, ignore_errors=True)
    later = history[1:] or history  # epoch 0 also pays the first page faults of the mmap
    steps = history[-1]['step'] - (history[0]['step'] if len(history) > 1 else 0)
    seconds = sum(r['seconds'] for r in later)
    wait = sum(r['data_wait_fraction'] * r['seconds'] for r in later)
    first = sum(r['data_wait_first_s'] for r in later)
    return {'ms_per_step': 1e3 * seconds / max(steps, 1), 'steps': steps,
            'steps_per_epoch': history[0]['step'],
            'data_wait_fraction': wait / max(seconds, 1e-9),
            # the waits for each epoch's first batch (fetched only once the epoch starts)
            'first_batch_wait_fraction': first / max(seconds, 1e-9),
            'first_epoch_data_wait_fraction': history[0]['data_wait_fraction'],
            'first_epoch_ms_per_step': 1e3 * history[0]['seconds'] / max(history[0]['step'], 1),
            'resize_once_s': resize_once_s}


def memmap_row_items(items: Any, indices: list[int]) -> list[dict[str, torch.Tensor]]:
    """A batch as `FrameItems` fetched it before: each row indexed in the np.memmap."""
    out = []
    for i in indices:
        j = int(items.indices[i])
        item = {'frames': torch.from_numpy(np.array(items.data.frames[j]))}
        for name in items.fields:
            source = items.arrays[name] if name in items.arrays else getattr(items.data, name)
            item[name] = torch.from_numpy(np.array(source[j]))
        out.append(item)
    return out


def batch_fetch_ms(dataset: Path, task_name: str, batch_size: int,
                   batches: int = 20) -> dict[str, float]:
    """Median ms to fetch + collate one batch in the main process, before and now."""
    from ssl_robot.robot import build_task
    task = build_task(task_name, {'dataset': str(dataset)})
    train, _ = task.datasets()
    rng = np.random.default_rng(0)
    times: dict[str, list[float]] = {'memmap rows, whole frames (earlier)': [],
                                     'plain views, whole frames': [],
                                     'plain views, resized at the fetch (before)': [],
                                     'resized once, gathered (now)': []}
    hw, kept = train.input_hw, train.resized
    for _ in range(batches):  # interleaved
        idx = [int(i) for i in rng.permutation(len(train))[:batch_size]]
        for name in times:
            start = time.perf_counter()
            if name.startswith('memmap'):
                task.collate(memmap_row_items(train, idx))
            else:
                train.input_hw = None if 'whole' in name else hw
                train.resized = kept if name.endswith('(now)') else None
                task.collate(train.__getitems__(idx))
            times[name].append(1e3 * (time.perf_counter() - start))
    train.input_hw, train.resized = hw, kept
    return {name: float(np.median(v)) for name, v in times.items()}


def data_loading(args: argparse.Namespace) -> dict[str, object]:
    """The data-loading table: camera sizes x tasks x settings (`LOADING_SETTINGS`)."""
    from ssl_robot.dataset import LabelledDataset
    report: dict[str, object] = {}
    rows = []
    with tempfile.TemporaryDirectory(prefix='bench_trainer_ds_') as tmp:
        root = Path(args.data_dir) if args.data_dir else Path(tmp)
        for size in args.data_sizes:
            width, height = (int(v) for v in size.split('x'))
            dataset, build_s = bench_dataset(root, size, args)
            n = len(LabelledDataset.open(dataset))
            report[size] = {'frames': n, 'build_seconds': build_s,
                            'frame_bytes': width * height * 3, 'batch_fetch_ms': {}}
            print(f'\n{size}: {n} frames ({n * width * height * 3 / 2**20:.0f} MiB) from '
                  f'{args.data_worlds} simulated worlds of {args.data_seconds:g} s, camera '
                  f'{args.data_rate:g} Hz' + (f' (built in {build_s:.0f} s)' if build_s else ''),
                  flush=True)
            for task_name in ('obstacle', 'terrain'):
                fetch = batch_fetch_ms(dataset, task_name, args.batch_size)
                report[size]['batch_fetch_ms'][task_name] = fetch
                print(f'  {task_name} batch of {args.batch_size} fetched + collated in the main '
                      'process: ' + ', '.join(f'{k} {v:.1f} ms' for k, v in fetch.items()))
                print(f'  {"task":<9}{"frames":<7}{"workers":<14}{"resized in":<11}'
                      f'{"ms/step":>8}{"data wait":>10}{"1st batch":>10}{"epoch 0":>9}')
                for frames, workers, persistent, resize_in in LOADING_SETTINGS:
                    if workers and workers not in args.data_workers:
                        continue
                    row = data_loading_run(dataset, task_name=task_name, workers=workers,
                                           persistent=persistent, in_memory=frames == 'memory',
                                           resize_in=resize_in, epochs=args.data_epochs,
                                           batch_size=args.batch_size)
                    row.update(camera=size, task=task_name, workers=workers, frames=frames,
                               persistent_workers=persistent, resized_in=resize_in)
                    rows.append(row)
                    kept = (' kept' if persistent else ' fresh') if workers else ''
                    print(f'  {task_name:<9}{frames:<7}{f"{workers}{kept}":<14}{resize_in:<11}'
                          f'{row["ms_per_step"]:8.1f}{100 * row["data_wait_fraction"]:9.1f}%'
                          f'{100 * row["first_batch_wait_fraction"]:9.1f}%'
                          f'{100 * row["first_epoch_data_wait_fraction"]:8.1f}%', flush=True)
    report['rows'] = rows
    return report


def busy_machine(args: argparse.Namespace) -> dict[str, Any]:
    """Training with 1 and 2 threads on idle cores and with spinning processes (`--busy`)."""
    from ssl_robot.train.cpu import busy_cores_of_others, usable_cores
    root = Path(args.data_dir) if args.data_dir else Path(tempfile.mkdtemp(prefix='bench_busy_'))
    dataset, _ = bench_dataset(root, '128x96', args)
    rows = []
    print(f'obstacle task, 128x96 dataset {dataset.name}, {args.data_epochs} epochs, '
          f'{usable_cores()} cores')
    print(f'{"spinners":<10}{"threads":<9}{"busy seen":>10}{"ms/step":>9}')
    for repeat in range(args.repeats):
        for spinners in (0, *args.busy_spinners):
            procs = [subprocess.Popen([sys.executable, '-c', 'while True: pass'])
                     for _ in range(spinners)]
            try:
                for threads in (1, 2):
                    busy = busy_cores_of_others(0.5)
                    row = data_loading_run(dataset, task_name='obstacle', workers=0,
                                           persistent=False, in_memory=False,
                                           resize_in='loading', epochs=args.data_epochs,
                                           batch_size=args.batch_size, threads=threads)
                    row.update(spinners=spinners, threads=threads, busy_cores_seen=busy,
                               repeat=repeat)
                    rows.append(row)
                    print(f'{spinners:<10}{threads:<9}{busy:>10.2f}{row["ms_per_step"]:>9.1f}',
                          flush=True)
            finally:
                for proc in procs:
                    proc.kill()
                    proc.wait()
    best = {}
    for row in rows:
        key = f'{row["spinners"]} spinners, {row["threads"]} threads'
        best[key] = min(best.get(key, float('inf')), row['ms_per_step'])
    print('min ms/step: ' + ', '.join(f'{k} {v:.1f}' for k, v in best.items()))
    return {'arguments': vars(args), 'cores': usable_cores(), 'dataset': str(dataset),
            'rows': rows, 'min_ms_per_step': best}


def _timed(tree: Path, *command: object) -> float:
    """Wall seconds of `ssl-robot COMMAND` run from the source tree `tree`."""
    env = {**os.environ, 'PYTHONPATH': str(tree)}
    start = time.perf_counter()
    done = subprocess.run([sys.executable, '-m', 'ssl_robot.cli', *map(str, command)], env=env,
                          cwd=tempfile.gettempdir(), capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if done.returncode:
        raise RuntimeError(f'{command[0]} from {tree} failed:\n{done.stderr[-2000:]}')
    return seconds


def _epochs(run: Path) -> list[dict[str, float]]:
    """Seconds and data-wait fraction of each epoch of a training run (its metrics.csv)."""
    lines = (run / 'metrics.csv').read_text().split()
    head = lines[0].split(',')
    return [{'seconds': float(row[head.index('seconds')]),
             'data_wait_fraction': float(row[head.index('data_wait_fraction')])}
            for row in (line.split(',') for line in lines[1:])]


def demo_stages(args: argparse.Namespace) -> dict[str, Any]:
    """The demo's commands from an older tree and from this checkout (see the docstring)."""
    trees = {'old': Path(args.old_tree).resolve(), 'new': REPO}
    rows: list[dict[str, Any]] = []
    load = {'start': os.getloadavg()[0]}
    with tempfile.TemporaryDirectory(prefix='bench_demo_stages_') as tmp:
        for repeat in range(args.demo_repeats):
            for name, tree in trees.items():  # interleaved: machine load hits both alike
                bag, data = Path(tmp) / f'{name}_bag', Path(tmp) / f'{name}_data'
                shutil.rmtree(bag, ignore_errors=True)
                shutil.rmtree(data, ignore_errors=True)
                stage = {'tree': name, 'repeat': repeat}
                stage['simulate'] = _timed(tree, 'sim', '--seed', 2, '--duration',
                                           args.demo_sim_seconds, '--out', bag,
                                           '--camera-rate', 10)
                stage['label'] = _timed(tree, 'label', bag, '--out', data)
                for task in args.demo_tasks:
                    run = Path(tmp) / f'{name}_{task}'
                    shutil.rmtree(run, ignore_errors=True)
                    stage[f'train {task}'] = _timed(
                        tree, 'train', '--task', task, '--dataset', args.demo_dataset,
                        '--out', run, '--epochs', args.demo_epochs)
                    stage[f'train {task} epochs'] = _epochs(run)
                rows.append(stage)
                print(f'{name} (repeat {repeat}): ' + ', '.join(
                    f'{k} {v:.1f} s' for k, v in stage.items() if isinstance(v, float)),
                    flush=True)
        wait_640 = []
        if args.demo_data_640:
            dataset = Path(args.data_dir or tmp) / 'ds_640x480_4x30s_10hz'
            if not (dataset / 'meta.json').exists():
                build_dataset(dataset, worlds=4, seconds=30.0, width=640, height=480,
                              camera_rate_hz=10.0)
            for task in args.demo_640_tasks:
                for workers in (0, 2):
                    run = Path(tmp) / f'640_{task}_{workers}'
                    _timed(REPO, 'train', '--task', task, '--dataset', dataset, '--out', run,
                           '--epochs', args.demo_epochs, '--num-workers', workers)
                    later = _epochs(run)[1:]
                    wait = sum(e['seconds'] * e['data_wait_fraction'] for e in later)
                    seconds = sum(e['seconds'] for e in later)
                    wait_640.append({'task': task, 'workers': workers,
                                     'epoch_seconds': seconds / len(later),
                                     'data_wait_fraction': wait / seconds})
    load['end'] = os.getloadavg()[0]
    stages = [k for k, v in rows[0].items() if isinstance(v, float)]
    summary = {}
    print(f'\n{"stage":<20}{"old s":>8}{"new s":>8}{"new/old":>9}   (min over repeats)')
    for stage in stages:
        old = min(r[stage] for r in rows if r['tree'] == 'old')
        new = min(r[stage] for r in rows if r['tree'] == 'new')
        summary[stage] = {'old_s': old, 'new_s': new, 'ratio': new / old}
        print(f'{stage:<20}{old:8.1f}{new:8.1f}{new / old:9.2f}')
    waits = {}
    print(f'\n{"training (128x96)":<20}{"tree":>5}{"epoch s":>9}{"data wait":>11}'
          '   (epochs after the first, mean over repeats)')
    for task in args.demo_tasks:
        for name in trees:
            later = [e for r in rows if r['tree'] == name for e in r[f'train {task} epochs'][1:]]
            if not later:
                continue
            seconds = sum(e['seconds'] for e in later)
            wait = sum(e['seconds'] * e['data_wait_fraction'] for e in later) / seconds
            waits[f'{task} {name}'] = {'epoch_seconds': seconds / len(later),
                                       'data_wait_fraction': wait}
            print(f'{task:<20}{name:>5}{seconds / len(later):9.2f}{100 * wait:10.1f}%')
    for row in wait_640:
        print(f'640x480 {row["task"]:<12}  new, {row["workers"]} workers: epoch '
              f'{row["epoch_seconds"]:.2f} s, data wait {100 * row["data_wait_fraction"]:.1f}%')
    print(f'load average (1 min): {load["start"]:.2f} at the start, {load["end"]:.2f} at the end')
    return {'arguments': vars(args), 'old_tree': str(trees['old']), 'summary': summary,
            'training_128x96': waits, 'data_wait_640x480': wait_640, 'runs': rows,
            'load_average': load, 'torch_threads': torch.get_num_threads(),
            'OMP_NUM_THREADS': os.environ.get('OMP_NUM_THREADS', '')}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--steps', type=int, default=60)
    parser.add_argument('--batch-size', type=int, default=64)
    parser.add_argument('--repeats', type=int, default=5)
    parser.add_argument('--data', action='store_true',
                        help='also measure data loading on labelled simulated datasets')
    parser.add_argument('--data-sizes', nargs='+', default=['128x96', '640x480'])
    parser.add_argument('--data-worlds', type=int, default=4)
    parser.add_argument('--data-seconds', type=float, default=20.0)
    parser.add_argument('--data-epochs', type=int, default=3)
    parser.add_argument('--data-workers', type=int, nargs='+', default=[1, 2],
                        help='worker counts besides 0 (the main process)')
    parser.add_argument('--data-rate', type=float, default=10.0,
                        help='camera rate of the simulated bags (Hz)')
    parser.add_argument('--data-dir', help='keep the datasets here (built when missing), so '
                        'a timed run does not include building them')
    parser.add_argument('--busy', action='store_true',
                        help='training with 1 and 2 threads on idle and on busy cores')
    parser.add_argument('--busy-spinners', type=int, nargs='+', default=[1],
                        help='spinning processes of the busy runs')
    parser.add_argument('--demo-stages', action='store_true',
                        help="time the demo's commands from --old-tree and from this checkout")
    parser.add_argument('--old-tree', help='an older source tree (git archive COMMIT | tar -x)')
    parser.add_argument('--demo-dataset', default=str(REPO / 'runs' / 'demo' / 'data' / 'worlds'),
                        help="the labelled dataset the trainings use (the demo's)")
    parser.add_argument('--demo-tasks', nargs='+', default=['obstacle', 'terrain', 'tcn'])
    parser.add_argument('--demo-epochs', type=int, default=2)
    parser.add_argument('--demo-sim-seconds', type=float, default=30.0)
    parser.add_argument('--demo-repeats', type=int, default=1)
    parser.add_argument('--demo-data-640', action='store_true',
                        help='also the data-wait fraction at 640x480 (this checkout)')
    parser.add_argument('--demo-640-tasks', nargs='+', default=['obstacle'])
    parser.add_argument('--demo-out', default=str(
        REPO / 'benchmarks' / 'results' / 'bench_trainer_demo_stages.json'))
    args = parser.parse_args()
    if args.busy:
        result = busy_machine(args)
        out = REPO / 'benchmarks' / 'results' / 'bench_trainer_busy.json'
        out.write_text(json.dumps(result, indent=2))
        print(f'wrote {out}')
        return 0
    if args.demo_stages:
        if not args.old_tree:
            parser.error('--demo-stages needs --old-tree')
        result = demo_stages(args)
        out = Path(args.demo_out)
        out.write_text(json.dumps(result, indent=2))
        print(f'wrote {out}')
        return 0
    torch.set_num_threads(1)
    data = make_data(args.steps * args.batch_size)
    rows = {'plain_torch': [], 'shared_trainer': []}
    plain_loop(make_data(4 * args.batch_size), args.batch_size, 1e-3)  # warm-up
    for _ in range(args.repeats):  # interleaved, so machine load hits both alike
        t, n = plain_loop(data, args.batch_size, 1e-3)
        rows['plain_torch'].append(t / n)
        t, n = trainer_loop(data, args.batch_size, 1e-3)
        rows['shared_trainer'].append(t / n)
    # The minimum over repeats: on a shared machine other load only ever adds time.
    result = {name: {'ms_per_step_min': 1e3 * min(v),
                     'ms_per_step_median': 1e3 * sorted(v)[len(v) // 2],
                     'ms_per_step_all': [1e3 * x for x in v]} for name, v in rows.items()}
    ratio = (result['shared_trainer']['ms_per_step_min']
             / result['plain_torch']['ms_per_step_min'])
    result.update(arguments=vars(args), steps=args.steps, batch_size=args.batch_size, threads=1,
                  input_hw=SPEC['input_hw'], overhead_ratio=ratio)
    print(f'obstacle model, batch {args.batch_size}, {args.steps} steps, 1 thread '
          f'({args.repeats} interleaved repeats)')
    print(f'{"loop":<16}{"min ms/step":>12}{"median":>10}')
    for name in rows:
        print(f'{name:<16}{result[name]["ms_per_step_min"]:>12.1f}'
              f'{result[name]["ms_per_step_median"]:>10.1f}')
    print(f'overhead ratio (trainer / plain, min): {ratio:.3f} (includes one checkpoint write)')
    if args.data:
        result['data_loading'] = data_loading(args)
    out = REPO / 'benchmarks' / 'results' / 'bench_trainer.json'
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2))
    print(f'wrote {out}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
