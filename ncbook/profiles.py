"""Notebook parameters: the common ones (profile, device, seed), validation with one-line errors,
device choice, and where each notebook writes its results."""

from __future__ import annotations

import os
import random
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from ncbook._checks import check_choice, check_float, check_int
from ncbook._io import write_csv, write_json

PROFILES = ("smoke", "full")
DEVICES = ("auto", "cpu", "cuda")

__all__ = [
    "PROFILES", "DEVICES", "check_choice", "check_float", "check_int", "progress_disabled",
    "repo_root", "resolve_device", "results_dir", "save_result", "setup",
]


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


def setup(profile: str, device: str, seed: int) -> torch.device:
    """Validate the three common parameters, seed every generator, return the torch device."""
    check_choice("profile", profile, PROFILES)
    seed = check_int("seed", seed, low=0, high=2**32 - 1)
    resolved = resolve_device(device)
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    from ncbook.provenance import record_setup

    record_setup(profile, resolved, seed)
    return resolved


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


def save_result(profile: str, notebook: str, name: str, result: Any) -> Path:
    """Write ``result`` to ``results/<profile>/<notebook>/<name>`` atomically and return the path:
    a DataFrame as CSV (``name`` ending in .csv), anything JSON-serialisable as JSON (.json)."""
    path = results_dir(profile, notebook) / name
    if name.endswith(".csv") and isinstance(result, pd.DataFrame):
        return write_csv(path, result)
    if name.endswith(".json"):
        return write_json(path, result)
    raise ValueError(f"`name` must end in .csv (for a DataFrame) or .json, got {name!r}")


def progress_disabled() -> bool:
    """True when progress bars should be hidden: ``NCBOOK_PROGRESS=0`` (set by CI and the runner)."""
    return os.environ.get("NCBOOK_PROGRESS", "1") == "0"
