"""Shared fixtures: the smoke notebooks are executed once per test session through `make notebooks`
(the same path as `make book`), and the book is built once from them."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.py"))


@dataclass(frozen=True)
class MakeRun:
    returncode: int
    output: str


def _make(target: str) -> MakeRun:
    env = {**os.environ, "NCBOOK_PROGRESS": "0"}
    env.pop("PYTHONPATH", None)
    command = ["make", "--no-print-directory", target, "PROFILE=smoke", f"PYTHON={sys.executable}"]
    done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True)
    return MakeRun(done.returncode, done.stdout + done.stderr)


@pytest.fixture(scope="session")
def executed_notebooks() -> MakeRun:
    """Run `make notebooks PROFILE=smoke` once; tests inspect its outputs notebook by notebook."""
    return _make("notebooks")


@pytest.fixture(scope="session")
def built_book(executed_notebooks: MakeRun) -> Path:
    """Run `make book` once (reusing the executed notebooks); return book/_build/html."""
    run = _make("book")
    assert run.returncode == 0, f"`make book` failed:\n{run.output[-6000:]}"
    return ROOT / "book" / "_build" / "html"
