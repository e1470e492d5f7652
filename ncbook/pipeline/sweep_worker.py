"""One run of a sweep, inside a worker: its folder, its ``run.json`` record and its log."""

from __future__ import annotations

import contextlib
import datetime
import json
import os
import shutil
import socket
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ncbook import __version__
from ncbook._io import write_json
from ncbook.pipeline.grid import Run
from ncbook.pipeline.run_notebook import environment

RUN_FILE = "run.json"


STATUSES = ("running", "done", "failed")


def read_record(folder: Path) -> dict[str, Any] | None:
    """The run's ``run.json``, or None when the run never started; ``ValueError`` naming the file
    when it cannot be read."""
    path = Path(folder) / RUN_FILE
    if not path.is_file():
        return None
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ValueError(f"{path} is damaged ({error}); delete {folder} to run it again") from error
    if not isinstance(record, dict) or record.get("status") not in STATUSES:
        raise ValueError(f"{path} is damaged (no valid `status`); delete {folder} to run it again")
    return record


def run_status(folder: Path) -> str:
    """"done", "failed" or "pending" (never started, killed mid-way, or a damaged run.json, which
    is reported on stderr and rerun: the run folder is emptied before a run starts)."""
    try:
        record = read_record(folder)
    except ValueError as error:
        print(f"warning: {error}; it will run again", file=sys.stderr)
        return "pending"
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
        with _inside(root), environment(NCBOOK_RESULTS=str(folder)), _output_to(folder / "run.log"):
            overrides = {k: v for k, v in run.parameters.items() if k != "profile"}
            execute(notebook, run.profile, overrides, folder, run_dir=folder / run.profile / run.stem)
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
