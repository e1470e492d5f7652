"""Where a sweep's runs execute: a local process pool (one GPU per worker) or a Ray cluster."""

from __future__ import annotations

import multiprocessing
import os
import shutil
import tempfile
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path
from typing import Any

from ncbook.pipeline.grid import Grid, Run
from ncbook.pipeline.sweep_worker import RUN_FILE, execute_run

EXECUTORS = ("local", "ray")

OnResult = Callable[[Run, "dict[str, Any] | None"], None]


def died(error: BaseException) -> dict[str, Any]:
    """The record of a run whose worker died: still pending, with the reason in one line."""
    lines = str(error).strip().splitlines()
    return {"status": "pending", "error": f"worker died: {type(error).__name__}: {lines[0] if lines else ''}"}


def gpu_slots(gpus: list[str], jobs: int) -> list[str | None]:
    """The GPU each of ``jobs`` workers sees (round robin; None: leave CUDA_VISIBLE_DEVICES alone).

    >>> gpu_slots(["0", "1"], 3), gpu_slots([], 2)
    (['0', '1', '0'], [None, None])
    """
    return [gpus[i % len(gpus)] if gpus else None for i in range(jobs)]


def _visible_gpus() -> list[str]:
    listed = os.environ.get("CUDA_VISIBLE_DEVICES")
    if listed is not None:
        return [gpu.strip() for gpu in listed.split(",") if gpu.strip()]
    import torch

    return [str(i) for i in range(torch.cuda.device_count())]


def _pin_gpu(slots: Any) -> None:
    gpu = slots.get()
    if gpu is not None:
        os.environ["CUDA_VISIBLE_DEVICES"] = gpu


def _run_local(runs: list[Run], grid: Grid, jobs: int, on_result: OnResult) -> None:
    """A process pool of ``jobs`` workers, one GPU each when the machine has GPUs."""
    # spawn, not fork: the parent may hold torch and CUDA state that a fork must not copy.
    context = multiprocessing.get_context("spawn")
    slots = context.Queue()
    for slot in gpu_slots(_visible_gpus(), jobs):
        slots.put(slot)
    others = set(multiprocessing.active_children())
    with ProcessPoolExecutor(jobs, mp_context=context, initializer=_pin_gpu, initargs=(slots,)) as pool:
        futures = {pool.submit(execute_run, run, grid.out / run.key, grid.root): run for run in runs}
        try:
            for future in as_completed(futures):
                # A worker that died (out of memory, killed) loses its run: it stays pending, and
                # the reason is reported.
                error = future.exception()
                on_result(futures[future], died(error) if error else future.result())
        except BaseException:
            pool.shutdown(wait=False, cancel_futures=True)
            for worker in set(multiprocessing.active_children()) - others:  # this pool's workers
                worker.terminate()  # their kernels notice and exit within a second
            raise


def _ray_task(run: Run, root: Path) -> tuple[dict[str, Any], dict[str, bytes]]:
    """Run on a Ray worker into a scratch folder and send the files back, so the cluster needs no
    shared file system for the outputs."""
    with tempfile.TemporaryDirectory(prefix="ncbook-run-") as scratch:
        record = execute_run(run, Path(scratch) / run.key, root)
        base = Path(scratch) / run.key
        files = {p.relative_to(base).as_posix(): p.read_bytes() for p in base.rglob("*") if p.is_file()}
    return record, files


def _unpack(folder: Path, files: dict[str, bytes]) -> None:
    shutil.rmtree(folder, ignore_errors=True)
    for name in sorted(files, key=lambda name: name == RUN_FILE):  # run.json last: it says "done"
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(files[name])


def _run_ray(runs: list[Run], grid: Grid, address: str | None, on_result: OnResult) -> None:
    """Each run a Ray task asking for the grid's ``num_gpus`` and ``num_cpus``."""
    import ray

    started_here = not ray.is_initialized()
    if started_here:
        ray.init(address=address)  # None starts a local instance; "auto" joins the running cluster
    try:
        gpus = ray.cluster_resources().get("GPU", 0.0)
        if grid.resources.num_gpus > gpus:
            raise ValueError(f"the grid asks for num_gpus={grid.resources.num_gpus:g} per run but the Ray "
                             f"cluster has {gpus:g} GPUs")
        task = ray.remote(_ray_task).options(num_gpus=grid.resources.num_gpus,
                                             num_cpus=grid.resources.num_cpus)
        refs = {task.remote(run, grid.root): run for run in runs}
        waiting = list(refs)
        try:
            while waiting:
                ready, waiting = ray.wait(waiting, num_returns=1)
                run = refs[ready[0]]
                try:
                    record, files = ray.get(ready[0])
                except ray.exceptions.RayError as error:  # the worker or its node died: pending
                    on_result(run, died(error))
                    continue
                _unpack(grid.out / run.key, files)
                on_result(run, record)
        except BaseException:
            for ref in waiting:
                ray.cancel(ref, force=True)
            raise
    finally:
        if started_here:
            ray.shutdown()
