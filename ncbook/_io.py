"""Atomic result files: a crash mid-write never leaves a truncated JSON, CSV, text or checkpoint
behind. Every writer goes through :func:`atomic_write` (temporary file in the same folder, then
``os.replace``); this is the only place in ncbook that implements it."""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd

# Result files are read by others (the book build, a web server, a colleague): world-readable like
# any file `open` creates, not mkstemp's private 0600.
FILE_MODE = 0o644

__all__ = ["atomic_write", "save_torch", "write_bytes", "write_csv", "write_json", "write_text"]


def atomic_write(path: str | os.PathLike, write: Callable[[IO[Any]], Any], *, binary: bool = False) -> Path:
    """Create ``path``'s folder, call ``write(handle)`` on a temporary file beside it, then rename
    it onto ``path``; on any error the temporary file is removed and ``path`` is left untouched."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb" if binary else "w", **({} if binary else {"encoding": "utf-8"})) as handle:
            write(handle)
        os.chmod(tmp, FILE_MODE)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def write_text(path: str | os.PathLike, text: str) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    return atomic_write(path, lambda handle: handle.write(text))


def write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically."""
    return atomic_write(path, lambda handle: handle.write(data), binary=True)


def save_torch(path: str | os.PathLike, obj: Any) -> Path:
    """``torch.save(obj)`` to ``path`` atomically (checkpoints: a killed run keeps the last whole one)."""
    import torch  # here, so that JSON and CSV writers (claims, pipeline) do not load torch

    return atomic_write(path, lambda handle: torch.save(obj, handle), binary=True)


def write_json(path: str | os.PathLike, obj: Any) -> Path:
    """Write ``obj`` as indented JSON to ``path`` through a temporary file and a rename."""
    return write_text(path, json.dumps(obj, indent=2, sort_keys=False) + "\n")


def write_csv(path: str | os.PathLike, frame: pd.DataFrame) -> Path:
    """Write ``frame`` (without its index) as CSV to ``path`` atomically."""
    return write_text(path, frame.to_csv(index=False))
