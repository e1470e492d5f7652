"""Every command in README.md and book/rerun.md runs as written.

The commands are read from the ```bash blocks. What cannot run here in test time is changed in one
stated way, never silently dropped:
- `.venv/bin/` is this interpreter's bin folder (the tests run inside that environment);
- `make X` runs as `make -n X` (the target exists and its recipe expands; `make test` would recurse);
- paper-scale and cluster commands (`--profile full`, `paper-a-full`, `--executor ray`) get `--dry-run`:
  they validate every parameter and print the plan, running nothing;
- `cuda` becomes `cpu` on a machine without CUDA.
Results go to a temporary folder (``NCBOOK_RESULTS``) so the checkout's results stay untouched.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCUMENTS = ("README.md", "book/rerun.md")
BIN = Path(sys.executable).parent
# Commands that execute notebooks take longer than 20 s; jupytext goes with the papermill command that
# reads its output.
SLOW = ("ncbook run notebooks", "jupytext ", "papermill ", "ncbook sweep sweeps/smoke", "ncbook collect")
LEFTOVERS = (ROOT / "out.ipynb", ROOT / "notebooks" / "00_overview.ipynb", ROOT / "smoke.csv")


def commands(document: str) -> list[str]:
    """The shell commands of the ```bash blocks, comments removed."""
    text = (ROOT / document).read_text(encoding="utf-8")
    found = []
    for block in re.findall(r"```bash\n(.*?)```", text, flags=re.S):
        for line in block.splitlines():
            command = line.split(" #")[0].strip()
            if command and not command.startswith("#"):
                found.append(command)
    return found


def as_run_here(command: str) -> str:
    import torch

    words = shlex.split(command)
    if words[0] == "make":
        return shlex.join(["make", "-n", "--no-print-directory", *words[1:], f"PYTHON={sys.executable}"])
    if words[0].startswith(".venv/bin/"):
        words[0] = str(BIN / words[0].removeprefix(".venv/bin/"))
    if not torch.cuda.is_available():
        words = ["cpu" if word == "cuda" else word for word in words]
    if any(marker in command for marker in ("--profile full", "paper-a-full", "--executor ray")):
        words.append("--dry-run")
    return shlex.join(words)


CASES = [pytest.param(document, command,
                      marks=[pytest.mark.slow] if any(s in command for s in SLOW) else [],
                      id=f"{document}:{command}")
         for document in DOCUMENTS for command in commands(document)]


def test_the_documents_have_commands():
    assert len(commands("README.md")) >= 8 and len(commands("book/rerun.md")) >= 8


@pytest.mark.parametrize(("document", "command"), CASES)
def test_command_runs_as_written(document, command, tmp_path):
    env = {**os.environ, "NCBOOK_RESULTS": str(tmp_path / "results"), "NCBOOK_PROGRESS": "0",
           "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    done = subprocess.run(as_run_here(command), shell=True, cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=600)
    assert done.returncode == 0, f"{command}\n{done.stdout[-2000:]}\n{done.stderr[-3000:]}"


@pytest.fixture(autouse=True, scope="module")
def _remove_leftovers():
    """The papermill and collect examples write into the checkout; those files go when the module ends."""
    yield
    for leftover in LEFTOVERS:
        leftover.unlink(missing_ok=True)
