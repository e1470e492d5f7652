"""Execute one Jupytext notebook with papermill, the way `make notebooks` does.

    python -m ncbook.run_notebook notebooks/00_overview.py --profile smoke [-p steps 300] [--device cpu]

Parameters come from ``params/<profile>.yml`` (notebook stem -> parameters, with an optional ``_all``
section for every notebook), then ``--device`` and ``-p`` overrides; every name is checked against the
notebook's ``parameters`` cell before anything runs, and ``profile`` comes only from ``--profile``.

A run of the profile as stored is *strict* (a failed claim fails it) and replaces
``results/<profile>/<stem>/`` and ``_executed/<profile>/<stem>.ipynb`` only when it succeeds. A run
whose parameters differ from the profile is *exploratory*: not strict, and it writes to
``results/<profile>/_runs/<stem>-<hash>/`` and ``_executed/<profile>/_runs/<stem>-<hash>.ipynb``, never
touching the profile's results. A run is ok only when every cell ran and its ``claims.json`` was
written by this run. See PIPELINE.md for the environment the kernel sees.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import logging
import os
import shutil
import signal
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType
from typing import Any

from ncbook._io import write_json
from ncbook._runtime import PROFILES, repo_root, results_base
from ncbook.pipeline import provenance
from ncbook.pipeline.parameters import (
    check_names,
    load_parameters,
    notebook_parameters,
    paper_differences,
    parse_value,
)

# Parameters that say where a run goes, not what it computes: overriding them keeps a profile run.
PLACEMENT = ("device",)


class RunFailed(RuntimeError):
    """A notebook ran to its end without error but its run cannot be taken as a result."""


@dataclass(frozen=True)
class RunPlan:
    stem: str
    profile: str
    parameters: dict[str, Any]  # what papermill injects (profile included)
    overrides: dict[str, Any]  # the parameters that differ from the profile's
    exploratory: bool  # parameters differ from the profile: own folder, not strict
    strict: bool  # a failed claim fails the run
    run_dir: Path  # the results folder this run replaces when it succeeds
    output: Path  # the executed notebook's final name
    scratch: Path  # where the run writes before it is published, and a failed run's results stay


def overrides_key(stem: str, overrides: dict[str, Any]) -> str:
    """``<stem>-<8 hex digits>`` of the overrides: one folder per set of exploratory parameters.

    >>> overrides_key("00_overview", {"steps": 10})
    '00_overview-46eaf362'
    """
    blob = json.dumps(overrides, sort_keys=True, default=repr)
    return f"{stem}-{hashlib.sha256(blob.encode()).hexdigest()[:8]}"


def plan(notebook: Path, profile: str, overrides: dict[str, Any] | None = None,
         output_dir: Path | None = None, run_dir: Path | None = None, strict: bool | None = None,
         root: Path | None = None) -> RunPlan:
    """Validate every parameter name and decide where the run goes; nothing runs, nothing is written."""
    if profile not in PROFILES:
        raise ValueError(f"--profile must be one of {', '.join(PROFILES)}, got {profile!r}")
    root = root or repo_root()
    stem = notebook.stem
    allowed = notebook_parameters(notebook)
    overrides = dict(overrides or {})
    check_names("-p", overrides, allowed, stem)
    stored = load_parameters(profile, stem, root, allowed)
    effective = {**allowed, **stored}
    differing = {name: value for name, value in overrides.items()
                 if name not in PLACEMENT and value != effective.get(name)}
    exploratory = bool(differing)
    key = overrides_key(stem, differing)
    executed = output_dir or root / "_executed" / profile
    if exploratory:
        output = executed / f"{stem}.ipynb" if output_dir else executed / "_runs" / f"{key}.ipynb"
        default_dir = results_base() / profile / "_runs" / key
    else:
        output = executed / f"{stem}.ipynb"
        default_dir = results_base() / profile / stem
    run_dir = Path(run_dir or default_dir)
    scratch = run_dir.parent / "_scratch" if run_dir != default_dir else results_base() / profile / "_scratch"
    return RunPlan(stem, profile, {**stored, **overrides, "profile": profile}, differing, exploratory,
                   (not exploratory) if strict is None else strict, run_dir, output, scratch)


@contextlib.contextmanager
def environment(**values: str) -> Iterator[None]:
    """Set environment variables (the kernel inherits them) for the duration of the block."""
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


def _stage(run: RunPlan, run_id: str) -> Path:
    """A scratch copy of the run's results folder without its claims, provenance and notebook:
    caches a notebook keeps there carry over, and whatever claims appear were written by this run."""
    stage = run.scratch / f"{run.run_dir.name}-{run_id[:8]}"
    shutil.rmtree(stage, ignore_errors=True)
    if run.run_dir.is_dir():
        shutil.copytree(run.run_dir, stage, ignore=shutil.ignore_patterns(
            "claims.json", "provenance.json", "*.ipynb", ".*"))
    stage.mkdir(parents=True, exist_ok=True)
    return stage


def _publish(stage: Path, final: Path) -> None:
    """Put ``stage`` in place of ``final`` (two renames; the old folder is removed afterwards)."""
    old = stage.with_name(stage.name + "-old")
    final.parent.mkdir(parents=True, exist_ok=True)
    if final.exists():
        final.replace(old)
    stage.replace(final)
    shutil.rmtree(old, ignore_errors=True)


def _check_complete(output: Path, stage: Path, run_id: str, started: float) -> None:
    """Raise ``RunFailed`` unless every code cell ran and this run wrote the claims file."""
    import nbformat

    node = nbformat.read(str(output), as_version=4)
    skipped = [i for i, cell in enumerate(node.cells)
               if cell.cell_type == "code" and cell.source.strip() and cell.get("execution_count") is None]
    if skipped:
        raise RunFailed(f"{len(skipped)} code cell(s) never ran (the kernel stopped early, e.g. "
                        "sys.exit in a cell); the run is not a result")
    claims = stage / "claims.json"
    if not claims.is_file():
        raise RunFailed("the notebook finished without writing claims.json; the run is not a result")
    records = json.loads(claims.read_text(encoding="utf-8"))
    ids = {record.get("run_id") for record in records} if isinstance(records, list) else set()
    if (ids - {None}) and ids != {run_id}:
        raise RunFailed(f"{claims} was written by another run ({sorted(map(str, ids))}); not a result")
    if claims.stat().st_mtime < started - 1:
        raise RunFailed(f"{claims} predates this run; the run is not a result")


def execute(notebook: Path, profile: str, overrides: dict[str, Any] | None = None,
            output_dir: Path | None = None, run_dir: Path | None = None,
            strict: bool | None = None) -> Path:
    """Run ``notebook`` (a Jupytext ``.py``) through papermill; return the executed ``.ipynb``.

    Raises ``ValueError`` for a bad parameter (before anything runs), ``papermill.PapermillExecutionError``
    when a cell fails and ``RunFailed`` when the run ended early or wrote no fresh claims. On any
    failure the last good results and executed notebook stay; the partial notebook is kept as
    ``<name>.failed.ipynb`` and the partial results in ``_scratch/<name>-failed``.
    """
    import jupytext
    import papermill

    # Papermill's own guess at the parameters cell trips on `=` in comments; names are checked here.
    logging.getLogger("papermill.translators").setLevel(logging.ERROR)
    root = repo_root()
    run = plan(notebook, profile, overrides, output_dir, run_dir, strict, root)
    run.output.parent.mkdir(parents=True, exist_ok=True)
    run_id = uuid.uuid4().hex
    partial = run.output.with_name(f".{run.output.stem}.{run_id[:8]}.partial.ipynb")
    failed = run.output.with_suffix(".failed.ipynb")
    node = jupytext.read(notebook)
    node.metadata["kernelspec"] = {"display_name": "Python 3", "language": "python", "name": "python3"}
    stage = _stage(run, run_id)
    device_file = stage / ".device.json"
    start = provenance.snapshot(root, run.stem, run.profile)
    started_wall, started = time.time(), time.perf_counter()
    kernel_env = {
        "NCBOOK_NOTEBOOK": run.stem, "NCBOOK_RUN_DIR": str(stage), "NCBOOK_RUN_ID": run_id,
        "NCBOOK_STRICT": "1" if run.strict else "0", "NCBOOK_PROGRESS": "0",
        provenance.ENV_FILE: str(device_file),
    }
    try:
        with environment(**kernel_env):
            papermill.execute_notebook(node, str(partial), parameters=run.parameters, cwd=str(root),
                                       kernel_name="python3", progress_bar=False, log_output=False)
        _check_complete(partial, stage, run_id, started_wall)
        wall_time = time.perf_counter() - started
        record = _provenance(run, device_file, wall_time, root, run_id, start)
        _finish_notebook(partial, record)
        write_json(stage / "provenance.json", record)
        if run.profile == "full" and not run.exploratory:
            # The book renders this stored copy (committed with results/full) instead of a smoke run.
            shutil.copy2(partial, stage / f"{run.stem}.ipynb")
        device_file.unlink(missing_ok=True)
        _publish(stage, run.run_dir)
        os.chmod(partial, 0o644)
        partial.replace(run.output)
        failed.unlink(missing_ok=True)
    except BaseException:
        if partial.exists():
            partial.replace(failed)
        if stage.exists():
            keep = stage.with_name(f"{run.run_dir.name}-failed")
            shutil.rmtree(keep, ignore_errors=True)
            stage.replace(keep)
        raise
    kind = "exploratory run" if run.exploratory else f"{run.profile} run"
    print(f"{notebook}: ok ({kind}) in {wall_time:.1f} s -> {run.output}; results in {run.run_dir}")
    return run.output


def _provenance(run: RunPlan, device_file: Path, wall_time: float, root: Path, run_id: str,
                start: dict[str, Any]) -> dict:
    reported = json.loads(device_file.read_text()) if device_file.is_file() else {}
    return {
        "notebook": run.stem,
        "profile": run.profile,
        "run_id": run_id,
        "exploratory": run.exploratory,
        "strict": run.strict,
        "seed": reported.get("seed", run.parameters.get("seed", "not reported")),
        "parameters": run.parameters,
        "overrides": run.overrides,
        "device": reported.get("device", run.parameters.get("device", "not reported")),
        "device_name": reported.get("device_name", "unknown"),
        "commit": start["commit"],
        **provenance.fingerprint(root, run.stem, run.profile, reported.get("code_files"), start),
        "paper_differences": paper_differences(run.profile, run.stem, root),
        "wall_time_s": wall_time,
        "executed_at": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "versions": provenance.package_versions(),
    }


def _finish_notebook(path: Path, record: dict[str, Any]) -> None:
    """Drop papermill's injected-parameters cell (the values are in the provenance note) and put the
    collapsed provenance note under the title."""
    import nbformat

    node = nbformat.read(str(path), as_version=4)
    node.cells = [cell for cell in node.cells
                  if "injected-parameters" not in cell.metadata.get("tags", [])]
    node.metadata["ncbook"] = record
    note = nbformat.v4.new_markdown_cell(provenance.banner_markdown(record))
    note.metadata["tags"] = ["ncbook-provenance"]
    node.cells.insert(1, note)
    nbformat.write(node, str(path))


def interrupt_on_sigterm() -> None:
    """Make a scheduler's SIGTERM stop this process the way Ctrl-C does, so cleanup runs."""

    def interrupt(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    signal.signal(signal.SIGTERM, interrupt)


def parser(prog: str = "python -m ncbook.run_notebook") -> argparse.ArgumentParser:
    command = argparse.ArgumentParser(
        prog=prog, formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Execute notebooks with papermill at a profile's parameters, checking their claims.",
        epilog="examples:\n"
               f"  {prog} notebooks/00_overview.py                 # the smoke profile, strict\n"
               f"  {prog} notebooks/00_overview.py -p steps 300    # exploratory: own results folder\n"
               f"  {prog} notebooks/21_synthetic_balanced.py --profile full --device cuda\n")
    command.add_argument("notebooks", nargs="+", type=Path, help="notebooks/<stem>.py files to run")
    command.add_argument("--profile", default="smoke", choices=PROFILES,
                         help="parameter profile: params/<profile>.yml (default: smoke)")
    command.add_argument("--device", default=None,
                         help="set the notebook's `device` parameter: auto, cpu, cuda or cuda:N")
    command.add_argument("-p", "--parameter", nargs=2, action="append", default=[],
                         metavar=("NAME", "VALUE"),
                         help="override a parameter of the notebook's parameters cell (VALUE is YAML: "
                              "10, 0.5, [1, 2], cpu); makes the run exploratory; repeatable")
    command.add_argument("--dry-run", action="store_true",
                         help="check the parameters and print where the run would go; run nothing")
    command.add_argument("--output-dir", type=Path, default=None,
                         help="folder for the executed notebook (default: _executed/<profile>/)")
    return command


def main(argv: list[str] | None = None, prog: str = "python -m ncbook.run_notebook") -> int:
    args = parser(prog).parse_args(argv)
    overrides = {name: parse_value(value) for name, value in args.parameter}
    if args.device is not None:
        overrides["device"] = args.device
    interrupt_on_sigterm()
    status = 0
    for notebook in args.notebooks:
        if not notebook.is_file():
            print(f"{notebook}: no such notebook", file=sys.stderr)
            status = 1
            continue
        try:
            if args.dry_run:
                run = plan(notebook, args.profile, overrides, args.output_dir)
                kind = "exploratory (not strict)" if run.exploratory else f"{run.profile} (strict)"
                print(f"{notebook}: {kind} run -> {run.output}; results in {run.run_dir}; "
                      f"parameters {run.parameters}")
                continue
            execute(notebook, args.profile, overrides, args.output_dir)
        except (ValueError, RunFailed) as error:
            print(f"{notebook}: FAILED: {error}", file=sys.stderr)
            status = 1
        except KeyboardInterrupt:
            print(f"{notebook}: interrupted; the last good results are unchanged", file=sys.stderr)
            return 130
        except Exception as error:
            import papermill

            if not isinstance(error, papermill.PapermillExecutionError):
                raise
            print(f"{notebook}: FAILED in cell {error.exec_count}: {error.ename}: {error.evalue}",
                  file=sys.stderr)
            print("---- failing cell ----", file=sys.stderr)
            print(error.source, file=sys.stderr)
            print("----------------------", file=sys.stderr)
            status = 1
    return status


if __name__ == "__main__":
    sys.exit(main())
