"""Where runs write and how they behave, shared by the library and the pipeline: the checkout's
root, the results folder of a notebook, the device choice, whether progress bars show and a hash of
the ncbook code that runs.

The notebook runner talks to the kernel through environment variables (see PIPELINE.md):
``NCBOOK_NOTEBOOK`` and ``NCBOOK_RUN_DIR`` send a notebook's results to the folder of this run,
``NCBOOK_PROGRESS=0`` hides progress bars.
"""

from __future__ import annotations

import hashlib
import os
import sys
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING

from ncbook._checks import check_choice

if TYPE_CHECKING:
    import torch

PROFILES = ("smoke", "full")
DEVICES = ("auto", "cpu", "cuda")


def resolve_device(device: str) -> torch.device:
    """Map ``device`` ('auto', 'cpu', 'cuda' or 'cuda:N') to a ``torch.device``.

    'auto' picks CUDA when present. Asking for CUDA on a machine without it is an error, not a
    silent fallback, so a GPU run never quietly becomes a CPU run.
    """
    import torch

    if not isinstance(device, str) or not (device in DEVICES or device.startswith("cuda:")):
        raise ValueError(f"`device` must be one of 'auto', 'cpu', 'cuda', 'cuda:N'; got {device!r}")
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"`device` is {device!r} but CUDA is not available here; use 'cpu' or 'auto'")
    return torch.device(device)


def repo_root(start: Path | None = None) -> Path:
    """The checkout's root (the folder holding ncbook's pyproject.toml), else the current folder."""
    here = (start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        candidate = folder / "pyproject.toml"
        if candidate.is_file() and 'name = "ncbook"' in candidate.read_text(encoding="utf-8"):
            return folder
    return here


def results_base() -> Path:
    """``$NCBOOK_RESULTS``, else ``results/`` of the checkout: the folder holding one per profile."""
    return Path(os.environ.get("NCBOOK_RESULTS", repo_root() / "results"))


def results_dir(profile: str, notebook: str) -> Path:
    """The results folder of ``notebook``, created: ``$NCBOOK_RUN_DIR`` when the runner is running
    this notebook (it points at the folder of this run), else ``results/<profile>/<notebook>/``."""
    check_choice("profile", profile, PROFILES)
    run_dir = os.environ.get("NCBOOK_RUN_DIR")
    if run_dir and os.environ.get("NCBOOK_NOTEBOOK") == notebook:
        path = Path(run_dir)
    else:
        path = results_base() / profile / notebook
    path.mkdir(parents=True, exist_ok=True)
    return path


def progress_disabled() -> bool:
    """True when progress bars should be hidden: ``NCBOOK_PROGRESS=0`` (set by CI and the runner),
    or, without ``NCBOOK_PROGRESS``, when stderr is not a terminal and no notebook front end is
    attached (papermill, nbconvert, CI logs), where each redraw would be stored as text."""
    setting = os.environ.get("NCBOOK_PROGRESS")
    if setting is not None:
        return setting == "0"
    if os.environ.get("CI"):
        return True
    if "ipykernel" in sys.modules:
        # A kernel's stderr is never a terminal: ask who started it. JupyterLab and VS Code show
        # the bars; papermill and nbconvert would store every redraw in the notebook.
        return _started_by_batch_executor()
    return not (hasattr(sys.stderr, "isatty") and sys.stderr.isatty())


_BATCH_EXECUTORS = ("papermill", "nbconvert", "nbclient", "ncbook.run_notebook", "ncbook run", "pytest")


def _started_by_batch_executor() -> bool:
    """Whether this process's parent runs papermill, nbconvert or the like (Linux: /proc; elsewhere
    unknown, taken as interactive)."""
    try:
        command = Path(f"/proc/{os.getppid()}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return False
    return any(name in command for name in _BATCH_EXECUTORS)


@cache
def code_hash() -> str:
    """SHA-256 (16 hex digits) of every ``ncbook/**/*.py`` that runs here, by relative path and
    content: a cache or a stored result made by other code carries another hash."""
    package = Path(__file__).resolve().parent
    digest = hashlib.sha256()
    for path in sorted(package.rglob("*.py")):
        if "__pycache__" in path.parts:
            continue
        digest.update(path.relative_to(package).as_posix().encode())
        digest.update(b"\0")
        digest.update(path.read_bytes())
        digest.update(b"\0")
    return digest.hexdigest()[:16]
