"""Labelling many recordings as independent jobs, one per recording, merged in order.

`ssl-robot label --jobs N` runs `label_job` for each source in N worker processes
(`concurrent.futures`, spawned); `engine='ray'` runs the very same job as Ray tasks
(optional extra ``ssl_robot[ray]``), for a fleet's bags on a cluster. Each job labels
one source, writes its rows into a one-bag dataset in a spool directory and returns the
rest of its result (labels, trajectory, counts, notes) without frames. `run_label_jobs`
yields the results in the order the sources were given, so the caller appends them to
one dataset exactly as one process labelling the sources in turn would: the dataset is
the same whatever the number of jobs.

Ray workers read the bags and write the spool by path: on a cluster both must lie on a
filesystem that every node sees (the bags already have to).
"""
from __future__ import annotations

from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
import dataclasses
from dataclasses import dataclass
import multiprocessing
from pathlib import Path
import shutil
import time
from typing import Any, Callable, TYPE_CHECKING

from ssl_robot.labelling.errors import LabelError
from ssl_robot.labelling.params import absolute

if TYPE_CHECKING:
    from collections.abc import Iterator, Sequence

    import numpy as np

    from ssl_robot.labelling.bag import LabelledBag
    from ssl_robot.labelling.params import LabellingParams

#: Engines that run the jobs.
ENGINES = ('process', 'ray')


@dataclass
class JobResult:
    """One labelled source.

    Attributes:
        index: Position of the source in the list given.
        labelled: The labelled source; its rows (and streams) hold no frames or views,
            those are in `spool`.
        spool: One-bag dataset holding the source's rows (None when it has none).
        seconds: Wall time of the job.
    """

    index: int
    labelled: LabelledBag
    spool: str | None
    seconds: float

    def rows(self) -> dict[str, np.ndarray]:
        """The source's dataset rows with frames and views, read from the spool."""
        from ssl_robot import dataset  # noqa: PLC0415
        if self.spool is None:
            return self.labelled.rows
        part = dataset.LabelledDataset.open(self.spool)
        # Every row array a dataset can hold (the optional ones read as unknown when absent).
        groups = (dataset.ARRAYS, dataset.VIEW_ARRAYS, dataset.COLLISION_ARRAYS,
                  dataset.DESCRIPTOR_ARRAYS)
        return {name: getattr(part, name) for group in groups for name in group
                if name != 'bag_ids'}

    def discard(self) -> None:
        """Remove the spooled rows."""
        if self.spool is not None:
            shutil.rmtree(self.spool, ignore_errors=True)


def dataset_layout(params: LabellingParams, labelled: Any = None) -> dict[str, Any]:
    """The DatasetWriter arguments (besides image size) that the labelling params decide.

    With `labelled` (a LabelledBag), also the terrain descriptor layout its IMU rate gave.
    """
    descriptors = getattr(getattr(labelled, 'result', None), 'descriptors', None)
    return {'distances_m': params.proximity.distances_m, 'sensors': params.sensors,
            'terrain_grid': params.terrain.grid, 'params': params.as_dict(),
            'views': [absolute(t) for t in params.view_topics], 'collision': True,
            'terrain_descriptor': None if descriptors is None else descriptors.layout.as_dict()}


def label_job(index: int, source: str, params: LabellingParams, *, spool_dir: str,
              frames_only: bool = False,
              progress: Callable[[float, float], None] | None = None) -> JobResult:
    """Label one source and spool its rows (run in a worker process or Ray task).

    Args:
        index: Position of the source (names its spool directory).
        source: A bag or (frames only) a video file.
        params: Labelling parameters.
        spool_dir: Directory the one-bag dataset is written into.
        frames_only: Read only the cameras; every label masked.
        progress: Called with (seconds read, duration).

    Raises:
        LabelError, BagError: As `label_source`.
    """
    from ssl_robot.dataset import DatasetWriter  # noqa: PLC0415
    from ssl_robot.labelling.sources import label_source  # noqa: PLC0415
    t0 = time.monotonic()
    lb = label_source(source, params, frames_only=frames_only, progress=progress)
    rows = lb.rows
    spool = None
    if len(rows['stamps_ns']):
        spool = str(Path(spool_dir) / f'{index:06d}')
        with DatasetWriter(spool, image_hw=rows['frames'].shape[1:3],
                           **dataset_layout(params, lb)) as writer:
            writer.add_bag(', '.join(lb.paths), rows)
    # The frames travel through the spool, not back through a pipe.
    rows['frames'] = rows['frames'][:0]
    rows['views'] = rows['views'][:0]
    streams = lb.bag.streams
    lb.bag = dataclasses.replace(lb.bag, streams=dataclasses.replace(
        streams, frames=streams.frames[:0], views=None, views_mask=None))
    return JobResult(index, lb, spool, time.monotonic() - t0)


def run_label_jobs(sources: Sequence[Path | str], params: LabellingParams, *, jobs: int,
                   spool_dir: Path | str, engine: str = 'process', frames_only: bool = False,
                   progress: Callable[[str], Callable[[float, float], None]] | None = None,
                   on_done: Callable[[JobResult, int], None] | None = None,
                   ray_address: str | None = None) -> Iterator[JobResult]:
    """Label `sources` in `jobs` workers at a time; yield the results in source order.

    Args:
        sources: Bags (or, frames only, video files).
        params: Labelling parameters.
        jobs: Sources labelled at the same time (worker processes, or Ray tasks in flight).
        spool_dir: Existing directory for the jobs' one-bag datasets.
        engine: 'process' (local worker processes) or 'ray' (Ray tasks; connects with
            `ray.init(address=ray_address)` unless Ray is already initialised).
        frames_only: Read only the cameras; every label masked.
        progress: Makes a job's progress callback from its source's name (picklable).
        on_done: Called in the parent as each job finishes (any order), with the number
            of jobs finished so far.

    Raises:
        LabelError: For an unknown engine, fewer than one job, or Ray not installed; and
            the first failing job's own error (the jobs not yet started are cancelled).
    """
    if engine not in ENGINES:
        raise LabelError(f'engine {engine!r}: use {" or ".join(ENGINES)}')
    if jobs < 1:
        raise LabelError(f'--jobs {jobs}: need at least 1')
    sources = [str(s) for s in sources]
    args = [(i, s, params) for i, s in enumerate(sources)]
    kwargs = [{'spool_dir': str(spool_dir), 'frames_only': frames_only,
               'progress': progress(Path(s).name) if progress else None} for s in sources]
    submit, collect, close = (_ray_engine(ray_address) if engine == 'ray'
                              else _process_engine(min(jobs, len(sources))))
    pending: dict[Any, int] = {}
    done: dict[int, JobResult] = {}
    following, finished = 0, 0
    try:
        for i in range(len(sources)):
            while len(pending) >= jobs:
                finished = _collect(collect, pending, done, on_done, finished)
            pending[submit(args[i], kwargs[i])] = i
            while following in done:
                yield done.pop(following)
                following += 1
        while following < len(sources):
            if following not in done:
                finished = _collect(collect, pending, done, on_done, finished)
                continue
            yield done.pop(following)
            following += 1
    finally:
        for result in done.values():
            result.discard()
        close(list(pending))


def _collect(collect: Callable, pending: dict[Any, int], done: dict[int, JobResult],
             on_done: Callable[[JobResult, int], None] | None, finished: int) -> int:
    """Wait for at least one pending job; move the finished ones into `done`."""
    for handle, result in collect(list(pending)):
        del pending[handle]
        done[result.index] = result
        finished += 1
        if on_done is not None:
            on_done(result, finished)
    return finished


def _process_engine(workers: int) -> tuple[Callable, Callable, Callable]:
    """submit/collect/close over a pool of spawned worker processes."""
    pool = ProcessPoolExecutor(max_workers=max(1, workers),
                               mp_context=multiprocessing.get_context('spawn'))

    def submit(args: tuple, kwargs: dict[str, Any]) -> Any:
        return pool.submit(label_job, *args, **kwargs)

    def collect(handles: list[Any]) -> list[tuple[Any, JobResult]]:
        finished, _ = wait(handles, return_when=FIRST_COMPLETED)
        return [(f, f.result()) for f in handles if f in finished]

    def close(handles: list[Any]) -> None:
        for f in handles:
            f.cancel()
        pool.shutdown(wait=True, cancel_futures=True)
        for f in handles:  # jobs that ran to the end after an error elsewhere
            if f.done() and not f.cancelled() and f.exception() is None:
                f.result().discard()

    return submit, collect, close


def _ray_engine(address: str | None) -> tuple[Callable, Callable, Callable]:
    """submit/collect/close over Ray tasks (one CPU each)."""
    try:
        import ray  # noqa: PLC0415 - optional extra ssl_robot[ray]
    except ImportError as exc:
        raise LabelError('engine ray needs Ray: pip install "ssl_robot[ray]"') from exc
    if not ray.is_initialized():
        ray.init(address=address)
    remote = ray.remote(num_cpus=1)(label_job)

    def submit(args: tuple, kwargs: dict[str, Any]) -> Any:
        return remote.remote(*args, **kwargs)

    def collect(handles: list[Any]) -> list[tuple[Any, JobResult]]:
        ready, _ = ray.wait(handles, num_returns=1)
        return [(ref, ray.get(ref)) for ref in ready]

    def close(handles: list[Any]) -> None:
        for ref in handles:
            ray.cancel(ref)

    return submit, collect, close
