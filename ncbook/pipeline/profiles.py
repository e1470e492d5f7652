"""Notebook parameters: the common ones (profile, device, seed), validation with one-line errors,
device choice, and where each notebook writes its results."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from ncbook._checks import check_choice, check_float, check_int
from ncbook._io import write_csv, write_json
from ncbook._runtime import (
    DEVICES,
    PROFILES,
    progress_disabled,
    repo_root,
    resolve_device,
    results_dir,
)

__all__ = [
    "PROFILES", "DEVICES", "check_choice", "check_float", "check_int", "progress_disabled",
    "repo_root", "resolve_device", "results_dir", "save_result", "setup",
]


def setup(profile: str, device: str, seed: int) -> torch.device:
    """Validate the three common parameters, seed every generator, return the torch device."""
    check_choice("profile", profile, PROFILES)
    seed = check_int("seed", seed, low=0, high=2**32 - 1)
    resolved = resolve_device(device)
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    from ncbook.pipeline.provenance import record_setup

    record_setup(profile, resolved, seed)
    return resolved


def save_result(profile: str, notebook: str, name: str, result: Any) -> Path:
    """Write ``result`` to ``results/<profile>/<notebook>/<name>`` atomically and return the path:
    a DataFrame as CSV (``name`` ending in .csv), anything JSON-serialisable as JSON (.json)."""
    path = results_dir(profile, notebook) / name
    if name.endswith(".csv") and isinstance(result, pd.DataFrame):
        return write_csv(path, result)
    if name.endswith(".json"):
        return write_json(path, result)
    raise ValueError(f"`name` must end in .csv (for a DataFrame) or .json, got {name!r}")
