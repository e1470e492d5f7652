"""Sweeps: grids of notebook runs, each one papermill execution, on a local process pool or on Ray.

A grid file (YAML) names a profile, notebooks and parameter axes; list values are axes and their
product is taken, scalars are fixed, and ``runs:`` adds single runs taken as written::

    profile: smoke
    notebook: notebooks/00_overview.py     # or `notebooks: [...]`, or a list of such blocks in `grid:`
    parameters: {steps: [2000, 3000], seed: [0, 1], loss_tolerance: 0.1}
    runs: [{notebook: 00_overview, seed: 7}]
    resources: {num_gpus: 0, num_cpus: 1}  # per run, for Ray
    out: _sweeps/smoke                     # where run folders go (relative to the checkout)

Everything is validated before anything runs: an unknown notebook, or a parameter its ``parameters``
cell does not assign, is a ``ValueError``. A list-valued parameter is written as a one-element axis
(``counts: [[200, 100, 50, 50]]``).

Each run lives in ``<out>/<stem>-<hash>/``, the hash taken over the notebook's source, its parameters
(``params/<profile>.yml`` overlaid with the grid's) and the ncbook code (a content hash). The folder holds the
notebook source it ran, the executed notebook, the run's results (``NCBOOK_RESULTS`` points there, so
they land in ``<profile>/<stem>/``), a log and ``run.json`` (status, parameters, error line, wall
time; written atomically). Runs whose ``run.json`` says done or failed are skipped, so an interrupted
sweep resumes where it stopped; ``retry_failed=True`` runs the failed ones again.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from ncbook._checks import check_choice, check_int
from ncbook._io import atomic_write, write_csv
from ncbook._runtime import progress_disabled
from ncbook.pipeline.executors import EXECUTORS, _run_local, _run_ray, _visible_gpus, gpu_slots
from ncbook.pipeline.grid import (
    Grid,
    Resources,
    Run,
    expand_axes,
    grid_from_mapping,
    load_grid,
    run_key,
)
from ncbook.pipeline.parameters import notebook_parameters
from ncbook.pipeline.sweep_worker import RUN_FILE, execute_run, read_record, run_status

__all__ = [
    "EXECUTORS", "Grid", "Resources", "Run", "SweepReport", "collect", "execute_run", "expand_axes",
    "gpu_slots", "grid_from_mapping", "load_grid", "notebook_parameters", "read_record", "run_key",
    "run_status", "run_sweep", "write_table",
]


@dataclass(frozen=True)
class SweepReport:
    grid: str  # the grid's name
    out: Path  # where its run folders are
    status: dict[str, str]  # run key -> "done", "failed" or "pending", for every run of the grid
    errors: dict[str, str]  # run key -> error line, for every failed run
    executed: tuple[str, ...]  # keys of the runs this call executed (in order of completion)
    wall_s: float  # wall time of this call

    def count(self, status: str) -> int:
        return sum(value == status for value in self.status.values())


# ------------------------------------------------------------------ grid files, validation, keys


def run_sweep(
    grid: Grid,
    executor: str = "local",
    jobs: int | None = None,
    address: str | None = None,
    retry_failed: bool = False,
) -> SweepReport:
    """Execute the runs of ``grid`` that have not finished; return every run's status.

    ``jobs`` (local executor): workers at once, default one per visible GPU, else 1. ``address``
    (ray executor): "auto" or a cluster address; without it a local Ray instance is started.
    """
    check_choice("executor", executor, EXECUTORS)
    if executor == "ray" and jobs is not None:
        raise ValueError("`jobs` is for the local executor; on Ray, the grid's `resources` per run and "
                         "the cluster's size decide how many runs go at once")
    if executor == "local" and address is not None:
        raise ValueError("`address` is for the ray executor; the local executor uses this machine")
    if executor == "local":
        jobs = check_int("jobs", jobs if jobs is not None else max(1, len(_visible_gpus())), low=1)
    started = time.perf_counter()
    status = {run.key: run_status(grid.out / run.key) for run in grid.runs}
    todo = [run for run in grid.runs
            if status[run.key] == "pending" or (retry_failed and status[run.key] == "failed")]
    errors = {key: (read_record(grid.out / key) or {}).get("error", "") for key, value in status.items()
              if value == "failed"}
    lock = _lock(grid.out)
    executed: list[str] = []

    from tqdm.auto import tqdm

    bar = tqdm(total=len(grid.runs), initial=len(grid.runs) - len(todo), desc=grid.name, unit="run",
               disable=progress_disabled())

    def on_result(run: Run, record: dict[str, Any] | None) -> None:
        if record is not None:
            status[run.key] = record["status"]
            if record["status"] != "pending":
                executed.append(run.key)
            if record["error"]:
                errors[run.key] = record["error"]
            else:
                errors.pop(run.key, None)
        bar.set_postfix(done=sum(v == "done" for v in status.values()),
                        failed=sum(v == "failed" for v in status.values()),
                        pending=sum(v == "pending" for v in status.values()), refresh=False)
        bar.update(1)

    try:
        if todo and executor == "local":
            _run_local(todo, grid, jobs, on_result)
        elif todo:
            _run_ray(todo, grid, address, on_result)
    finally:
        bar.close()
        lock.close()
    return SweepReport(grid.name, grid.out, status, errors, tuple(executed),
                       time.perf_counter() - started)


def _lock(out: Path) -> Any:
    """Hold an exclusive lock on ``out`` until the returned file is closed; ``ValueError`` when
    another sweep holds it or ``out`` cannot be written."""
    import fcntl

    path = out / ".sweep.lock"
    try:
        out.mkdir(parents=True, exist_ok=True)
        handle = open(path, "a+")  # noqa: SIM115 - held open for the whole sweep
    except OSError as error:
        raise ValueError(f"cannot write to the sweep folder {out}: {error.strerror or error}; "
                         "choose another --out") from error
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as error:
        handle.seek(0)
        holder = handle.read().strip() or "another process"
        handle.close()
        raise ValueError(f"another sweep ({holder}) is running on {out}; wait for it or use another "
                         "--out") from error
    handle.seek(0)
    handle.truncate()
    handle.write(f"pid {os.getpid()}\n")
    handle.flush()
    return handle


# ------------------------------------------------------------------ collect


def collect(source: Grid | str | os.PathLike) -> pd.DataFrame:
    """One tidy table of every finished run of a grid (or of every run folder under a directory).

    Each row comes from a CSV the run wrote or from one of its claims; the columns ``table`` (the
    CSV's stem, or "claims"), ``run``, ``notebook``, the run's parameters and ``wall_s`` come first.
    A claim whose values are lists keeps its deviation and verdict; its full values stay in the run's
    claims.json. A data column named like a parameter is renamed ``<table>.<column>``.
    """
    if isinstance(source, Grid):
        folders = [source.out / run.key for run in source.runs]
    else:
        folders = sorted(path.parent for path in Path(source).glob(f"*/{RUN_FILE}"))
    frames = [frame for folder in folders for frame in _run_tables(folder)]
    if not frames:
        return pd.DataFrame(columns=["table", "run", "notebook", "wall_s"])
    return pd.concat(frames, ignore_index=True, sort=False)


def _run_tables(folder: Path) -> list[pd.DataFrame]:
    record = read_record(folder)
    if record is None or record["status"] != "done":
        return []
    stem = Path(record["notebook"]).stem
    base = {"run": record["key"], "notebook": stem}
    base |= {name: json.dumps(value) if isinstance(value, (list, dict)) else value
             for name, value in record["parameters"].items()}
    base["wall_s"] = record["wall_s"]
    results = (folder / str(record.get("profile")) / stem).resolve()
    if record.get("profile") not in ("smoke", "full") or not results.is_relative_to(folder.resolve()):
        raise ValueError(f"{folder / RUN_FILE} points outside its run folder (profile "
                         f"{record.get('profile')!r}, notebook {record.get('notebook')!r}); not collected")
    tables = [(path.stem, pd.read_csv(path)) for path in sorted(results.glob("*.csv"))]
    claims = results / "claims.json"
    if claims.is_file():
        frame = pd.DataFrame(json.loads(claims.read_text(encoding="utf-8")))
        for column in ("predicted", "measured"):
            frame[column] = [value if isinstance(value, (int, float)) else float("nan")
                             for value in frame[column]]
        tables.append(("claims", frame.drop(columns=["notebook"], errors="ignore")))
    frames = []
    for table, frame in tables:
        frame = frame.rename(columns={c: f"{table}.{c}" for c in frame.columns if c in base or c == "table"})
        head = pd.DataFrame({"table": table, **base}, index=frame.index)
        frames.append(pd.concat([head, frame], axis=1))
    return frames


def write_table(frame: pd.DataFrame, path: str | os.PathLike) -> Path:
    """Write ``frame`` to ``path`` (.csv, or .parquet when pyarrow is installed) atomically."""
    path = Path(path)
    if path.suffix not in (".csv", ".parquet"):
        raise ValueError(f"the table must end in .csv or .parquet, got {path.name!r}")
    if path.suffix == ".parquet":
        import importlib.util

        if importlib.util.find_spec("pyarrow") is None:
            raise ValueError("writing Parquet needs pyarrow (pip install pyarrow); or write a .csv")
    if path.suffix == ".csv":
        return write_csv(path, frame)
    return atomic_write(path, lambda handle: frame.to_parquet(handle, index=False), binary=True)
