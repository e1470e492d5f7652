"""Provenance of an executed notebook: package versions, the device actually used, seed, profile,
git commit and wall time, shown on every page of the book.

The kernel reports its profile, seed and resolved device (``record_setup``, called by
``profiles.setup``) through
the file named by ``$NCBOOK_PROVENANCE_FILE``, which the runner sets; the runner adds the rest
after execution and writes the banner cell (``banner_markdown``) into the executed notebook.
"""

from __future__ import annotations

import importlib.metadata
import json
import os
import platform
import subprocess
from pathlib import Path
from typing import Any

import torch

PACKAGES = ("ncbook", "torch", "torchvision", "numpy", "scipy", "pandas", "seaborn", "papermill")
ENV_FILE = "NCBOOK_PROVENANCE_FILE"


def record_setup(profile: str, device: torch.device, seed: int) -> None:
    """Tell the runner the notebook's profile, seed and device (no-op outside the runner)."""
    path = os.environ.get(ENV_FILE)
    if not path:
        return
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor()
    Path(path).write_text(json.dumps(
        {"profile": profile, "seed": seed, "device": str(device), "device_name": name or "cpu"}
    ))


def package_versions() -> dict[str, str]:
    versions = {"python": platform.python_version()}
    for package in PACKAGES:
        try:
            versions[package] = importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            versions[package] = "not installed"
    return versions


def git_commit(root: Path) -> str:
    """``HEAD``'s short hash, with ``+dirty`` when tracked files differ from it; 'unknown' outside git."""
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=root, check=True,
                                capture_output=True, text=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=root,
                               check=True, capture_output=True, text=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return f"{commit}+dirty" if dirty else commit


def banner_markdown(record: dict[str, Any]) -> str:
    """The admonition shown at the top of each executed notebook: which profile, and provenance."""
    if record["profile"] == "full":
        kind, headline = "note", "Rendered from the **full** (paper-scale) profile."
    else:
        kind, headline = "warning", (
            "Rendered from the **smoke** profile: reduced sizes that run on a CPU in seconds. "
            "`make full DEVICE=cuda` reruns the paper-scale settings."
        )
    versions = ", ".join(f"{name} {version}" for name, version in record["versions"].items())
    return "\n".join([
        "```{admonition} Provenance",
        f":class: {kind}",
        headline,
        "",
        f"- device: `{record['device']}` ({record['device_name']}); seed {record['seed']}",
        f"- git commit `{record['commit']}`, wall time {record['wall_time_s']:.1f} s, "
        f"executed {record['executed_at']}",
        f"- {versions}",
        "```",
    ])
