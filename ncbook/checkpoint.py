"""Training checkpoints that are complete and fresh, or not used.

A checkpoint holds the run's identity (both configs, a signature of the data and the content hash of
the ncbook code), the training state and a SHA-256 of that state's bytes. It is written through a
temporary file and a rename, so a kill mid-write leaves the previous one. Reading one that is
truncated, corrupted or from an older format moves it aside (``<name>.pt.corrupt``, named in a
warning) and training restarts from epoch 0; it is never loaded unchecked.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import warnings
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch

from ncbook._checks import check_choice
from ncbook._io import save_torch
from ncbook._runtime import PROFILES, code_hash, repo_root

FORMAT = 2  # checkpoint layout version: 2 adds the code hash and the digest of the state


def identity(data: Any, net: Any, config: Any) -> dict[str, Any]:
    """What a checkpoint must match to be resumed: both configs, the ncbook code and enough to tell
    two data sets apart (name, sizes, class counts, an input checksum)."""
    signature = {
        "name": data.name,
        "train_counts": data.train.counts(),
        "test_size": len(data.test),
        "checksum": float(data.train.x.sum(dtype=torch.float64)),
    }
    return {"config": asdict(config), "net": asdict(net), "data": signature, "code": code_hash()}


def path_for(profile: str, notebook: str, name: str, run_identity: dict[str, Any]) -> Path:
    """``checkpoints/<profile>/<notebook>/<name>-<digest>.pt`` under ``$NCBOOK_CHECKPOINTS`` or the
    checkout (git-ignored: large, never committed). The digest of the identity gives a changed run,
    or the same run with changed code, a fresh file, so only an identical run resumes."""
    check_choice("profile", profile, PROFILES)
    text = json.dumps(run_identity, sort_keys=True, default=str)
    digest = hashlib.sha256(text.encode()).hexdigest()[:12]
    base = Path(os.environ.get("NCBOOK_CHECKPOINTS", repo_root() / "checkpoints"))
    return base / profile / notebook / f"{name}-{digest}.pt"


def save(path: Path, run_identity: dict[str, Any], state: dict[str, Any]) -> None:
    """Write ``state`` with ``run_identity`` and the digest of its bytes, atomically."""
    buffer = io.BytesIO()
    torch.save({**run_identity, **state}, buffer)
    payload = buffer.getvalue()
    envelope = {"format": FORMAT, "digest": hashlib.sha256(payload).hexdigest(), "payload": payload}
    save_torch(path, envelope)  # atomic: a kill mid-write leaves the previous checkpoint intact


def _unreadable(error: BaseException) -> str:
    text = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
    if "Weights only load failed" in text:
        return "it holds objects other than tensors and plain data"
    return f"{type(error).__name__}: {text[:120]}"


def move_aside(path: Path, reason: str) -> Path:
    """Rename an unusable checkpoint to ``<name>.corrupt`` (numbered if taken) and warn, naming it."""
    aside = path.with_name(path.name + ".corrupt")
    number = 1
    while aside.exists():
        number += 1
        aside = path.with_name(f"{path.name}.corrupt{number}")
    path.replace(aside)
    warnings.warn(f"checkpoint {path} cannot be used ({reason}); moved it to {aside} and training "
                  "restarts from epoch 0", RuntimeWarning, stacklevel=3)
    return aside


class DamagedCheckpoint(ValueError):
    """A checkpoint file that cannot be read back as it was written."""


def read(path: Path, device: Any = "cpu") -> dict[str, Any]:
    """The identity and state saved in ``path``, checked against its digest.

    Raises ``DamagedCheckpoint`` (naming the file) when it is truncated, corrupted or of another format.
    """
    try:
        envelope = torch.load(path, map_location="cpu", weights_only=True)
        if not isinstance(envelope, dict) or envelope.get("format") != FORMAT:
            raise DamagedCheckpoint(f"{path} is not an ncbook checkpoint of format {FORMAT}")
        payload = envelope["payload"]
        if hashlib.sha256(payload).hexdigest() != envelope["digest"]:
            raise DamagedCheckpoint(f"{path}: its content does not match its SHA-256 (corrupted bytes)")
        return torch.load(io.BytesIO(payload), map_location=device, weights_only=True)
    except DamagedCheckpoint:
        raise
    except Exception as error:  # torch and its unpickler raise many types on a damaged file
        if isinstance(error, MemoryError | KeyboardInterrupt):
            raise
        raise DamagedCheckpoint(f"{path}: {_unreadable(error)}") from error


def load(path: Path, run_identity: dict[str, Any], device: Any) -> dict[str, Any] | None:
    """The state saved in ``path``, or None after moving a damaged checkpoint aside (with a warning).

    Raises ``ValueError`` when the checkpoint is intact but belongs to another run."""
    try:
        state = read(path, device)
    except DamagedCheckpoint as error:
        move_aside(path, str(error).removeprefix(f"{path}: "))
        return None
    for key, expected in run_identity.items():
        if state.get(key) != expected:
            differ = sorted(k for k in expected if (state.get(key) or {}).get(k) != expected[k]) \
                if isinstance(expected, dict) else [key]
            raise ValueError(f"{path} was written by a different run ({key} differs in "
                             f"{', '.join(differ)}); delete it or choose another `checkpoint`")
    return state
