"""Where runs write and how they behave, shared by the library and the pipeline: the checkout's
root, the results folder of a notebook, the device choice and whether progress bars show."""

from __future__ import annotations

import os
from pathlib import Path

import torch

from ncbook._checks import check_choice

PROFILES = ("smoke", "full")
DEVICES = ("auto", "cpu", "cuda")


def resolve_device(device: str) -> torch.device:
    """Map ``device`` ('auto', 'cpu', 'cuda' or 'cuda:N') to a ``torch.device``.

    'auto' picks CUDA when present. Asking for CUDA on a machine without it is an error, not a
    silent fallback, so a GPU run never quietly becomes a CPU run.
    """
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


def results_dir(profile: str, notebook: str) -> Path:
    """``results/<profile>/<notebook>/`` under ``$NCBOOK_RESULTS`` or the checkout root; created."""
    check_choice("profile", profile, PROFILES)
    base = Path(os.environ.get("NCBOOK_RESULTS", repo_root() / "results"))
    path = base / profile / notebook
    path.mkdir(parents=True, exist_ok=True)
    return path


def progress_disabled() -> bool:
    """True when progress bars should be hidden: ``NCBOOK_PROGRESS=0`` (set by CI and the runner)."""
    return os.environ.get("NCBOOK_PROGRESS", "1") == "0"
