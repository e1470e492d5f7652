"""Provenance of an executed notebook: what ran (content hashes of the notebook, its parameters
file and the ncbook code, plus the git commit), where (device, seed, profile), how long, with which
packages; and whether a stored result still matches the tree (``stale_reasons``).

The kernel reports its profile, seed and resolved device (``record_setup``, called by
``profiles.setup``) through the file named by ``$NCBOOK_PROVENANCE_FILE``, which the runner sets; the
runner adds the rest after execution and writes the note (``banner_markdown``) into the notebook.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import os
import platform
import subprocess
from pathlib import Path
from typing import Any

from ncbook._runtime import code_hash, loaded_code_files, source_digests

PACKAGES = ("ncbook", "torch", "torchvision", "numpy", "scipy", "pandas", "seaborn", "papermill")
ENV_FILE = "NCBOOK_PROVENANCE_FILE"
# What a stored result is compared on, with the words used when it differs.
HASHED = {"notebook_hash": "notebook source", "params_hash": "parameters file", "code_hash": "ncbook code"}


def record_setup(profile: str, device: Any, seed: int) -> None:
    """Tell the runner the notebook's profile, seed and device (no-op outside the runner)."""
    path = os.environ.get(ENV_FILE)
    if not path:
        return
    if device.type == "cuda":
        import torch

        name = torch.cuda.get_device_name(device)
    else:
        name = platform.processor()
    Path(path).write_text(json.dumps(
        {"profile": profile, "seed": seed, "device": str(device), "device_name": name or "cpu"}
    ))


def report_code() -> None:
    """Tell the runner which ncbook sources this run imported (no-op outside the runner); called
    by the notebook session when the chapter finishes."""
    path = os.environ.get(ENV_FILE)
    if not path:
        return
    reported = json.loads(Path(path).read_text()) if Path(path).is_file() else {}
    Path(path).write_text(json.dumps(reported | {"code_files": loaded_code_files()}))


def package_versions() -> dict[str, str]:
    versions = {"python": platform.python_version()}
    for package in PACKAGES:
        try:
            versions[package] = importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            versions[package] = "not installed"
    return versions


def git_commit(root: Path) -> str:
    """``HEAD``'s short hash, with ``+dirty`` when tracked files other than results differ from it
    (runs side by side rewrite ``results/``, which is output, not input); 'unknown' outside git."""
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=root, check=True,
                                capture_output=True, text=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no", "--", ".",
                                ":(exclude)results"], cwd=root, check=True, capture_output=True,
                               text=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return f"{commit}+dirty" if dirty else commit


def file_hash(path: Path) -> str:
    """SHA-256 (16 hex digits) of a file's bytes; 'absent' when there is no such file."""
    return hashlib.sha256(path.read_bytes()).hexdigest()[:16] if path.is_file() else "absent"


def snapshot(root: Path, stem: str, profile: str) -> dict[str, Any]:
    """What a run of ``notebooks/<stem>.py`` under ``profile`` starts from: the notebook's source,
    its parameters (``_all`` and its own section of ``params/<profile>.yml``, nothing else) and
    the digest of every ncbook source, and the commit. Taken before the run, so an edit or a commit
    made while it runs cannot pass for the code it ran."""
    from ncbook.pipeline.parameters import load_parameters

    try:
        parameters = load_parameters(profile, stem, root)
    except (OSError, ValueError):
        parameters = {"unreadable": True}
    return {
        "notebook_hash": file_hash(root / "notebooks" / f"{stem}.py"),
        "params_hash": hashlib.sha256(
            json.dumps(parameters, sort_keys=True, default=repr).encode()).hexdigest()[:16],
        "digests": source_digests(),
        "commit": git_commit(root),
    }


def fingerprint(root: Path, stem: str, profile: str, code_files: list[str] | None = None,
                start: dict[str, Any] | None = None) -> dict[str, Any]:
    """The content hashes a run depends on: notebook, its parameters, and the ncbook sources the run
    imported (``code_files``, reported by the notebook session; every source when unknown), taken
    from ``start`` (:func:`snapshot` before the run) or from the tree now."""
    start = start or snapshot(root, stem, profile)
    return {
        "notebook_hash": start["notebook_hash"],
        "params_hash": start["params_hash"],
        "code_hash": code_hash(code_files, start["digests"]),
        "code_files": code_files,
    }


def stale_reasons(record: dict[str, Any], root: Path) -> list[str]:
    """What changed in the tree since the run ``record`` describes (empty: the result is current).

    A record without hashes (written before they were recorded) is stale: nothing says it matches.
    """
    stem, profile = record.get("notebook", ""), record.get("profile", "smoke")
    now = fingerprint(root, stem, profile, record.get("code_files"))
    return [words for key, words in HASHED.items() if record.get(key) != now[key]]


def _device_words(record: dict[str, Any]) -> str:
    device = str(record.get("device", "not reported"))
    return "GPU" if device.startswith("cuda") else device.upper() if device == "cpu" else device


def summary_line(record: dict[str, Any]) -> str:
    """One line: ``smoke · CPU · seed 0 · 8de46ec · 22 s``."""
    return " · ".join([
        str(record["profile"]), _device_words(record), f"seed {record.get('seed', '?')}",
        str(record.get("commit", "unknown")), f"{record.get('wall_time_s', 0):.0f} s",
    ])


def banner_markdown(record: dict[str, Any], stale: list[str] | None = None) -> str:
    """The collapsed note under a chapter's title: one summary line; profile, device, date, commit,
    what differs from the paper, parameter overrides and package versions inside."""
    profile = record["profile"]
    if record.get("exploratory"):
        headline = "An exploratory run: parameters differ from the profile (overrides below)."
    elif profile == "full":
        headline = "Rendered from the **full** profile (the papers' settings or the stated stand-in)."
    else:
        headline = ("Rendered from the **smoke** profile: reduced sizes that run on a CPU in seconds; "
                    "`make full` reruns the paper-scale settings.")
    lines = [f"```{{admonition}} Run: {summary_line(record)}", ":class: dropdown note", headline, ""]
    if stale:
        lines += [f"**Stored at commit {record.get('commit', 'unknown')}; code changed since** "
                  f"({', '.join(stale)}): `make stale` reruns it.", ""]
    lines += [
        f"- device: `{record.get('device', 'not reported')}` ({record.get('device_name', 'unknown')}); "
        f"seed {record.get('seed', '?')}",
        f"- executed {record.get('executed_at', '?')} at commit `{record.get('commit', 'unknown')}` in "
        f"{record.get('wall_time_s', 0):.1f} s",
    ]
    if record.get("paper_differences"):
        lines.append(f"- differs from the paper: {record['paper_differences']}")
    overrides = record.get("overrides") or {}
    if overrides:
        lines.append("- overrides: " + ", ".join(f"`{k} = {v!r}`" for k, v in overrides.items()))
    versions = ", ".join(f"{name} {version}" for name, version in (record.get("versions") or {}).items())
    lines += [f"- {versions}", "```"]
    return "\n".join(lines)
