"""Execute one Jupytext notebook with papermill, the way `make notebooks` does.

    python -m ncbook.run_notebook notebooks/00_overview.py --profile smoke [-p steps 300] [--device cuda]

Parameters come from ``params/<profile>.yml`` (a mapping of notebook stem -> parameters, with an
optional ``_all`` section for every notebook), then ``--device`` and ``-p`` overrides; ``profile`` is
always injected. The executed notebook goes to ``_executed/<profile>/<stem>.ipynb``. A failure prints
one line naming the error, then the failing cell's source, and exits with status 1.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml

from ncbook._io import write_json
from ncbook._runtime import PROFILES, repo_root, results_dir
from ncbook.pipeline import provenance


def load_parameters(profile: str, stem: str, root: Path) -> dict[str, Any]:
    """The parameters ``params/<profile>.yml`` gives notebook ``stem`` (``_all`` first)."""
    path = root / "params" / f"{profile}.yml"
    table = yaml.safe_load(path.read_text(encoding="utf-8")) if path.is_file() else None
    table = table or {}
    if not isinstance(table, dict):
        raise ValueError(f"{path} must hold a mapping of notebook stem -> parameters")
    return {**(table.get("_all") or {}), **(table.get(stem) or {}), "profile": profile}


def _parse_value(text: str) -> Any:
    """``-p`` values are YAML scalars or lists, as papermill's own ``-p`` reads them."""
    return yaml.safe_load(text)


def execute(
    notebook: Path,
    profile: str,
    overrides: dict[str, Any] | None = None,
    output_dir: Path | None = None,
) -> Path:
    """Run ``notebook`` (a Jupytext ``.py``) through papermill; return the executed ``.ipynb``.

    Raises ``papermill.PapermillExecutionError`` when a cell fails; the partial notebook (with the
    error in the failing cell) is kept as ``<stem>.failed.ipynb`` next to where the output would be.
    """
    import jupytext
    import papermill

    root = repo_root()
    stem = notebook.stem
    parameters = {**load_parameters(profile, stem, root), **(overrides or {})}
    output_dir = output_dir or root / "_executed" / profile
    output_dir.mkdir(parents=True, exist_ok=True)
    output = output_dir / f"{stem}.ipynb"
    node = jupytext.read(notebook)
    node.metadata["kernelspec"] = {"display_name": "Python 3", "language": "python", "name": "python3"}
    # Progress bars write to a notebook's stderr stream; in executed notebooks they are noise.
    os.environ.setdefault("NCBOOK_PROGRESS", "0")
    device_file = output_dir / f".{stem}.device.json"
    device_file.unlink(missing_ok=True)
    os.environ[provenance.ENV_FILE] = str(device_file)
    # The notebook session reads these (ncbook.pipeline.session).
    os.environ["NCBOOK_NOTEBOOK"] = stem
    os.environ["NCBOOK_RUN_DIR"] = str(results_dir(parameters["profile"], stem))
    os.environ["NCBOOK_STRICT"] = "1"
    started = time.perf_counter()
    try:
        papermill.execute_notebook(
            node,
            str(output),
            parameters=parameters,
            cwd=str(root),
            kernel_name="python3",
            progress_bar=False,
            log_output=False,
        )
    except BaseException:
        # Keep the partial notebook for inspection, under a name `make` will not take as done.
        if output.exists():
            output.replace(output.with_suffix(".failed.ipynb"))
        raise
    wall_time = time.perf_counter() - started
    output.with_suffix(".failed.ipynb").unlink(missing_ok=True)
    _add_provenance(output, device_file, parameters, wall_time, root, stem)
    print(f"{notebook}: ok in {wall_time:.1f} s -> {output}")
    return output


def _add_provenance(
    output: Path, device_file: Path, parameters: dict[str, Any], wall_time: float, root: Path, stem: str
) -> None:
    """Put the provenance banner under the notebook's title and save it next to its results."""
    import nbformat

    reported = json.loads(device_file.read_text()) if device_file.is_file() else {}
    device_file.unlink(missing_ok=True)
    record = {
        "notebook": stem,
        "profile": parameters["profile"],
        "seed": reported.get("seed", "not reported"),
        "parameters": parameters,
        "device": reported.get("device", "not reported"),
        "device_name": reported.get("device_name", "unknown"),
        "commit": provenance.git_commit(root),
        "wall_time_s": wall_time,
        "executed_at": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "versions": provenance.package_versions(),
    }
    node = nbformat.read(output, as_version=4)
    node.metadata["ncbook"] = record
    banner = nbformat.v4.new_markdown_cell(provenance.banner_markdown(record))
    node.cells.insert(1, banner)
    nbformat.write(node, output)
    write_json(results_dir(parameters["profile"], stem) / "provenance.json", record)
    if parameters["profile"] == "full":
        # The book renders this stored copy (committed with results/full) instead of a smoke run.
        shutil.copy2(output, results_dir("full", stem) / f"{stem}.ipynb")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("notebooks", nargs="+", type=Path, help="notebooks/<stem>.py files")
    parser.add_argument("--profile", default="smoke", choices=PROFILES)
    parser.add_argument("--device", default=None, help="override the `device` parameter")
    parser.add_argument(
        "-p", "--parameter", nargs=2, action="append", default=[], metavar=("NAME", "VALUE")
    )
    parser.add_argument("--output-dir", type=Path, default=None)
    args = parser.parse_args(argv)

    import papermill

    overrides = {name: _parse_value(value) for name, value in args.parameter}
    if args.device is not None:
        overrides["device"] = args.device
    status = 0
    for notebook in args.notebooks:
        if not notebook.is_file():
            print(f"{notebook}: no such notebook", file=sys.stderr)
            status = 1
            continue
        try:
            execute(notebook, args.profile, overrides, args.output_dir)
        except papermill.PapermillExecutionError as error:
            print(f"{notebook}: FAILED in cell {error.exec_count}: {error.ename}: {error.evalue}",
                  file=sys.stderr)
            print("---- failing cell ----", file=sys.stderr)
            print(error.source, file=sys.stderr)
            print("----------------------", file=sys.stderr)
            status = 1
    return status


if __name__ == "__main__":
    sys.exit(main())
