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
from collections.abc import Iterable
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


def source_digests() -> dict[str, str]:
    """SHA-256 of every ``ncbook/**/*.py``, keyed by its path relative to the package."""
    package = Path(__file__).resolve().parent
    return {
        path.relative_to(package).as_posix(): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in package.rglob("*.py") if "__pycache__" not in path.parts
    }


def code_hash(files: Iterable[str] | None = None, digests: dict[str, str] | None = None) -> str:
    """SHA-256 (16 hex digits) of ncbook's source, by relative path and content: of ``files``
    (paths relative to the package, e.g. those a run imported) or of every source. ``digests``
    (from :func:`source_digests`, taken when a run started) stands for the files on disk, so a run
    is fingerprinted by the code it started with. A cache or a stored result made by other code
    carries another hash; a listed file that no longer exists hashes as absent."""
    digests = source_digests() if digests is None else digests
    digest = hashlib.sha256()
    for name in sorted(set(digests if files is None else files)):
        digest.update(f"{name}\0{digests.get(name, '<absent>')}\0".encode())
    return digest.hexdigest()[:16]


def loaded_code_files() -> list[str]:
    """The ncbook source files this process has imported, relative to the package (what a run's
    results depend on; a change elsewhere in ncbook leaves them current)."""
    package = Path(__file__).resolve().parent
    files = set()
    for module in list(sys.modules.values()):
        origin = getattr(module, "__file__", None)
        if origin and Path(origin).resolve().is_relative_to(package):
            files.add(Path(origin).resolve().relative_to(package).as_posix())
    return sorted(files)
