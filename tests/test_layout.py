"""The package's shape (issue 12): small modules, the library never loads the book pipeline, one
definition of each shared constant and no private helper written twice under one name."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "ncbook"
MODULES = sorted(PACKAGE.rglob("*.py"))
MAX_LINES = 400


def _relative(path: Path) -> str:
    return path.relative_to(ROOT).as_posix()


@pytest.mark.parametrize("path", MODULES, ids=_relative)
def test_no_module_exceeds_the_line_limit(path: Path) -> None:
    lines = len(path.read_text().splitlines())
    assert lines <= MAX_LINES, f"{_relative(path)} has {lines} lines (limit {MAX_LINES})"


def test_the_library_loads_nothing_from_the_pipeline() -> None:
    code = (
        "import sys, ncbook.metrics, ncbook.theory, ncbook.models, ncbook.optimize, ncbook.spec, "
        "ncbook.experiments, ncbook.geometry\n"
        "print(sorted(m for m in sys.modules if m.startswith('ncbook.pipeline')))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True)
    assert done.stdout.strip() == "[]"


def _top_level(path: Path) -> ast.Module:
    return ast.parse(path.read_text(), filename=str(path))


def _losses_definitions() -> list[str]:
    return [
        _relative(path)
        for path in MODULES
        for node in _top_level(path).body
        if isinstance(node, ast.Assign) and any(getattr(t, "id", None) == "LOSSES" for t in node.targets)
    ]


def test_losses_is_defined_once() -> None:
    assert _losses_definitions() == ["ncbook/spec.py"]


def _functions() -> dict[str, list[str]]:
    """Top-level function name -> the modules defining it (dunders excluded)."""
    where = defaultdict(list)
    for path in MODULES:
        for node in _top_level(path).body:
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and not node.name.startswith("__"):
                where[node.name].append(_relative(path))
    return where


def test_no_private_helper_is_defined_twice() -> None:
    # Two private copies under one name (e.g. `_as_list` with different argument orders) are one
    # helper written twice or two helpers that need different names.
    twice = {name: places for name, places in _functions().items()
             if name.startswith("_") and len(places) > 1}
    assert twice == {}


# Verbs read with their module: `main` (every command-line module), `load` (claims.load,
# data.load, checkpoint.load), `run`, `evaluate`, `snapshot` (models.snapshot of a model,
# provenance.snapshot of a run's inputs), `collect` (metrics.collect gathers features,
# pipeline.sweep.collect gathers runs), `notebook` (ncbook.notebook opens pipeline.session's).
MODULE_VERBS = {"main", "load", "run", "evaluate", "collect", "notebook", "snapshot"}


def test_no_public_function_is_defined_twice() -> None:
    twice = {name: places for name, places in _functions().items()
             if not name.startswith("_") and name not in MODULE_VERBS and len(places) > 1}
    assert twice == {}


# Readers of the library see neither our working notes nor their section numbers: a docstring or
# comment points at the authors' code, a book chapter, or states the derivation.
NOTES_POINTER = re.compile(r"paper-[ab]\.md|shared/theory")


@pytest.mark.parametrize("path", MODULES, ids=_relative)
def test_no_module_points_at_the_internal_notes(path: Path) -> None:
    hits = [n for n, line in enumerate(path.read_text().splitlines(), 1) if NOTES_POINTER.search(line)]
    assert hits == [], f"{_relative(path)} points at the internal notes on lines {hits}"
