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
(``params/<profile>.yml`` overlaid with the grid's) and the ncbook version. The folder holds the
notebook source it ran, the executed notebook, the run's results (``NCBOOK_RESULTS`` points there, so
they land in ``<profile>/<stem>/``), a log and ``run.json`` (status, parameters, error line, wall
time; written atomically). Runs whose ``run.json`` says done or failed are skipped, so an interrupted
sweep resumes where it stopped; ``retry_failed=True`` runs the failed ones again.
"""

from __future__ import annotations

import ast
import contextlib
import datetime
import hashlib
import itertools
import json
import multiprocessing
import os
import shutil
import socket
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from ncbook import __version__
from ncbook._checks import check_choice, check_float, check_int
from ncbook._io import write_json
from ncbook._runtime import PROFILES, progress_disabled, repo_root
from ncbook.pipeline.parameters import load_parameters

__all__ = [
    "EXECUTORS", "Grid", "Resources", "Run", "SweepReport", "collect", "expand_axes", "grid_from_mapping",
    "load_grid", "notebook_parameters", "read_record", "run_key", "run_sweep", "write_table",
]

EXECUTORS = ("local", "ray")
RUN_FILE = "run.json"
_GRID_KEYS = ("name", "profile", "notebook", "notebooks", "parameters", "grid", "runs", "resources", "out")
_BLOCK_KEYS = ("notebook", "notebooks", "parameters")
_RESOURCE_KEYS = ("num_gpus", "num_cpus")


@dataclass(frozen=True)
class Resources:
    num_gpus: float = 0.0  # GPUs per run on Ray (fractions share a GPU); the local pool pins one per job
    num_cpus: float = 1.0  # CPUs per run on Ray


@dataclass(frozen=True)
class Run:
    notebook: str  # path relative to the checkout, e.g. notebooks/00_overview.py
    source: str  # the notebook's text when the grid was loaded: the run executes exactly this
    profile: str  # smoke or full
    parameters: dict[str, Any]  # what papermill injects: params/<profile>.yml overlaid with the grid's
    key: str  # folder name: <stem>-<hash of source, parameters and ncbook version>

    @property
    def stem(self) -> str:
        return Path(self.notebook).stem


@dataclass(frozen=True)
class Grid:
    name: str  # the grid file's stem unless the file sets `name`
    profile: str  # smoke or full, for every run
    runs: tuple[Run, ...]  # expanded, validated, without duplicates
    resources: Resources  # per run
    root: Path  # the checkout the notebooks come from; runs execute there
    out: Path  # run folders go to <out>/<run key>/


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


def expand_axes(parameters: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Every combination of the list-valued entries (the axes), each with the scalar ones.

    >>> expand_axes({"steps": [200, 400], "seed": [0, 1], "lr": 0.1})  # doctest: +NORMALIZE_WHITESPACE
    [{'steps': 200, 'seed': 0, 'lr': 0.1}, {'steps': 200, 'seed': 1, 'lr': 0.1},
     {'steps': 400, 'seed': 0, 'lr': 0.1}, {'steps': 400, 'seed': 1, 'lr': 0.1}]
    """
    axes = {name: value if isinstance(value, list) else [value] for name, value in parameters.items()}
    for name, values in axes.items():
        if not values:
            raise ValueError(f"parameter `{name}` has an empty list of values")
    return [dict(zip(axes, combination)) for combination in itertools.product(*axes.values())]


def notebook_parameters(path: Path) -> tuple[str, ...]:
    """The names assigned in the notebook's one code cell tagged ``parameters`` (read by jupytext)."""
    import jupytext

    cells = [
        cell for cell in jupytext.read(path).cells
        if cell.cell_type == "code" and "parameters" in cell.metadata.get("tags", [])
    ]
    if len(cells) != 1:
        raise ValueError(f"{path} must have exactly one code cell tagged `parameters`, found {len(cells)}")
    names: list[str] = []
    for statement in ast.parse(cells[0].source).body:
        if isinstance(statement, ast.Assign):
            names += [target.id for target in statement.targets if isinstance(target, ast.Name)]
        elif isinstance(statement, ast.AnnAssign) and isinstance(statement.target, ast.Name):
            names.append(statement.target.id)
    return tuple(dict.fromkeys(names))


def run_key(stem: str, source: str, parameters: Mapping[str, Any]) -> str:
    """``<stem>-<12 hex digits>``: SHA-256 of the source, the parameters and the ncbook version."""
    blob = json.dumps(
        {"source": source, "parameters": dict(parameters), "version": __version__},
        sort_keys=True, default=repr,
    )
    return f"{stem}-{hashlib.sha256(blob.encode('utf-8')).hexdigest()[:12]}"


def load_grid(path: str | os.PathLike, out: str | os.PathLike | None = None) -> Grid:
    """Read, expand and validate the grid file ``path``; ``out`` overrides the file's ``out``."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"grid file {path} does not exist")
    spec = yaml.safe_load(path.read_text(encoding="utf-8"))
    root = repo_root(path.resolve().parent)  # the checkout holding the grid file, else the current one
    root = root if (root / "pyproject.toml").is_file() else repo_root()
    return grid_from_mapping(spec, name=path.stem, root=root, out=out)


def grid_from_mapping(
    spec: Any, name: str, root: Path, out: str | os.PathLike | None = None
) -> Grid:
    """Expand and validate a grid given as a mapping (the content of a grid file)."""
    if not isinstance(spec, dict):
        raise ValueError(f"grid {name!r} must be a mapping with keys {', '.join(_GRID_KEYS)}")
    _check_keys(f"grid {name!r}", spec, _GRID_KEYS)
    name = str(spec.get("name", name))
    profile = check_choice("profile", spec.get("profile", "smoke"), PROFILES)
    blocks = _as_list(spec.get("grid"), "grid")
    if any(key in spec for key in _BLOCK_KEYS):
        blocks = [{key: spec[key] for key in _BLOCK_KEYS if key in spec}, *blocks]
    entries: list[tuple[str, dict[str, Any]]] = []  # (notebook as written, the grid's parameters)
    for block in blocks:
        if not isinstance(block, dict):
            raise ValueError(f"each `grid` entry must be a mapping, got {block!r}")
        _check_keys("a grid block", block, _BLOCK_KEYS)
        notebooks = _as_list(block.get("notebooks", block.get("notebook")), "notebooks")
        if not notebooks:
            raise ValueError(f"a grid block needs `notebook` or `notebooks`, got {block!r}")
        parameters = block.get("parameters") or {}
        if not isinstance(parameters, dict):
            raise ValueError(f"`parameters` must be a mapping of name -> value(s), got {parameters!r}")
        entries += [(nb, combination) for nb in notebooks for combination in expand_axes(parameters)]
    for run in _as_list(spec.get("runs"), "runs"):
        if not isinstance(run, dict) or "notebook" not in run:
            raise ValueError(f"each entry of `runs` must be a mapping with a `notebook`, got {run!r}")
        entries.append((run["notebook"], {k: v for k, v in run.items() if k != "notebook"}))
    if not entries:
        raise ValueError(f"grid {name!r} has no runs: give `notebook` and `parameters`, `grid` or `runs`")
    # Validate every entry before building any run: a typo anywhere stops the grid before it starts.
    paths = {nb: _resolve_notebook(nb, root) for nb, _ in entries}
    allowed = {path: notebook_parameters(path) for path in set(paths.values())}
    for nb, parameters in entries:
        _check_parameters(paths[nb], parameters, allowed[paths[nb]])
    runs: dict[str, Run] = {}
    for nb, parameters in entries:
        path = paths[nb]
        source = path.read_text(encoding="utf-8")
        merged = {**load_parameters(profile, path.stem, root), **parameters}
        key = run_key(path.stem, source, merged)
        relative = path.relative_to(root).as_posix() if path.is_relative_to(root) else str(path)
        runs.setdefault(key, Run(relative, source, profile, merged, key))
    folder = Path(out or spec.get("out") or Path("_sweeps") / name)
    return Grid(name, profile, tuple(runs.values()), _resources(spec.get("resources")), root,
                folder if folder.is_absolute() else root / folder)


def _check_keys(what: str, mapping: Mapping[str, Any], allowed: tuple[str, ...]) -> None:
    unknown = sorted(set(mapping) - set(allowed))
    if unknown:
        raise ValueError(f"unknown key(s) {', '.join(map(str, unknown))} in {what}; "
                         f"allowed: {', '.join(allowed)}")


def _as_list(value: Any, name: str) -> list[Any]:
    if value is None:
        return []
    if isinstance(value, list):
        return value
    if isinstance(value, str) and name == "notebooks":
        return [value]
    raise ValueError(f"`{name}` must be a list, got {value!r}")


def _resolve_notebook(notebook: Any, root: Path) -> Path:
    """A notebook given as a path (relative to the checkout) or as a stem of notebooks/."""
    text = str(notebook)
    path = Path(text) if text.endswith(".py") else Path("notebooks") / f"{text}.py"
    path = path if path.is_absolute() else root / path
    if not path.is_file():
        known = ", ".join(sorted(p.stem for p in (root / "notebooks").glob("*.py"))) or "none"
        raise ValueError(f"unknown notebook {text!r}: no file {path}; notebooks here: {known}")
    return path.resolve()


def _check_parameters(path: Path, parameters: Mapping[str, Any], allowed: tuple[str, ...]) -> None:
    for name in parameters:
        if name == "profile":
            raise ValueError("set `profile` at the top of the grid, not as a parameter of a run")
        if name not in allowed:
            raise ValueError(f"unknown parameter `{name}` for notebook {path.stem}; its parameters "
                             f"cell assigns: {', '.join(p for p in allowed if p != 'profile')}")


def _resources(spec: Any) -> Resources:
    spec = spec or {}
    if not isinstance(spec, dict):
        raise ValueError(f"`resources` must be a mapping with keys {', '.join(_RESOURCE_KEYS)}")
    _check_keys("resources", spec, _RESOURCE_KEYS)
    return Resources(
        num_gpus=check_float("num_gpus", spec.get("num_gpus", 0.0), low=0.0),
        num_cpus=check_float("num_cpus", spec.get("num_cpus", 1.0), low=0.0, low_open=True),
    )


# ------------------------------------------------------------------ one run (inside a worker)


def read_record(folder: Path) -> dict[str, Any] | None:
    """The run's ``run.json``, or None when the run never started."""
    path = Path(folder) / RUN_FILE
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None


def _status(folder: Path) -> str:
    record = read_record(folder)
    # A run that was killed mid-way stays "running" on disk: it is pending.
    return record["status"] if record and record["status"] in ("done", "failed") else "pending"


def execute_run(run: Run, folder: Path, root: Path) -> dict[str, Any]:
    """Execute ``run`` into ``folder`` (emptied first); write and return its ``run.json`` record.

    A notebook that fails gives a record with status "failed" and the error line; it never raises.
    """
    import papermill

    from ncbook.pipeline.run_notebook import execute

    shutil.rmtree(folder, ignore_errors=True)  # the remains of an interrupted attempt
    folder.mkdir(parents=True, exist_ok=True)
    notebook = folder / f"{run.stem}.py"
    notebook.write_text(run.source, encoding="utf-8")
    record: dict[str, Any] = {
        "key": run.key, "notebook": run.notebook, "profile": run.profile, "parameters": run.parameters,
        "status": "running", "error": None, "wall_s": None, "ncbook_version": __version__,
        "host": socket.gethostname(), "gpu": os.environ.get("CUDA_VISIBLE_DEVICES"),
        "started": _now(), "finished": None,
    }
    write_json(folder / RUN_FILE, record)
    started = time.perf_counter()
    try:
        with _inside(root), _environment(NCBOOK_RESULTS=str(folder)), _output_to(folder / "run.log"):
            execute(notebook, run.profile, run.parameters, folder)
        status, error = "done", None
    except papermill.PapermillExecutionError as exc:
        status, error = "failed", f"cell {exc.exec_count}: {exc.ename}: {_first_line(exc.evalue)}"
    except Exception as exc:  # a dead kernel, a missing package: recorded, the sweep goes on
        status, error = "failed", f"{type(exc).__name__}: {_first_line(str(exc))}"
    record |= {"status": status, "error": error, "wall_s": round(time.perf_counter() - started, 3),
               "finished": _now()}
    write_json(folder / RUN_FILE, record)
    return record


def _now() -> str:
    return datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")


def _first_line(text: str) -> str:
    lines = str(text).strip().splitlines()
    return lines[0] if lines else ""


@contextlib.contextmanager
def _inside(root: Path) -> Iterator[None]:
    """Work in the checkout when this machine has it (a Ray node may not)."""
    previous = Path.cwd()
    if root.is_dir():
        os.chdir(root)
    try:
        yield
    finally:
        os.chdir(previous)


@contextlib.contextmanager
def _environment(**values: str) -> Iterator[None]:
    saved = {name: os.environ.get(name) for name in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


@contextlib.contextmanager
def _output_to(path: Path) -> Iterator[None]:
    """Send this process's stdout and stderr (file descriptors, so the kernel's too) to ``path``;
    the sweep's progress bar stays readable."""
    sys.stdout.flush()
    sys.stderr.flush()
    saved = os.dup(1), os.dup(2)
    with open(path, "ab") as log:
        os.dup2(log.fileno(), 1)
        os.dup2(log.fileno(), 2)
        try:
            yield
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            os.close(saved[0])
            os.close(saved[1])


# ------------------------------------------------------------------ executors

OnResult = Callable[[Run, "dict[str, Any] | None"], None]


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
                # A worker that died (out of memory, killed) loses its run: it stays pending.
                on_result(futures[future], None if future.exception() else future.result())
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
                except ray.exceptions.RayError:  # the worker or its node died: the run stays pending
                    on_result(run, None)
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
    status = {run.key: _status(grid.out / run.key) for run in grid.runs}
    todo = [run for run in grid.runs
            if status[run.key] == "pending" or (retry_failed and status[run.key] == "failed")]
    errors = {key: (read_record(grid.out / key) or {}).get("error", "") for key, value in status.items()
              if value == "failed"}
    executed: list[str] = []

    from tqdm.auto import tqdm

    bar = tqdm(total=len(grid.runs), initial=len(grid.runs) - len(todo), desc=grid.name, unit="run",
               disable=progress_disabled())

    def on_result(run: Run, record: dict[str, Any] | None) -> None:
        if record is not None:
            status[run.key] = record["status"]
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
    return SweepReport(grid.name, grid.out, status, errors, tuple(executed),
                       time.perf_counter() - started)


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
    results = folder / record["profile"] / stem
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
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, scratch = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        if path.suffix == ".csv":
            frame.to_csv(scratch, index=False)
        else:
            frame.to_parquet(scratch, index=False)
        os.replace(scratch, path)
    except BaseException:
        Path(scratch).unlink(missing_ok=True)
        raise
    return path
