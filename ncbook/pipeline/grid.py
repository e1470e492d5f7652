"""Sweep grid files: expansion of parameter axes, validation against each notebook's parameters cell
(before anything runs) and the run keys that name run folders. See :mod:`ncbook.pipeline.sweep`."""

from __future__ import annotations

import hashlib
import itertools
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from ncbook._checks import check_choice, check_float
from ncbook._runtime import PROFILES, code_hash, repo_root
from ncbook.pipeline.parameters import check_names, load_parameters
from ncbook.pipeline.parameters import notebook_parameters as parameters_of

_GRID_KEYS = ("name", "profile", "notebook", "notebooks", "parameters", "grid", "runs", "resources", "out")
_BLOCK_KEYS = ("notebook", "notebooks", "parameters")
_RESOURCE_KEYS = ("num_gpus", "num_cpus")


@dataclass(frozen=True)
class Resources:
    num_gpus: float = 0.0  # GPUs per run on Ray (fractions share a GPU); the local pool pins one per job
    num_cpus: float = 1.0  # CPUs per run on Ray


@dataclass(frozen=True)
class Run:
    notebook: str  # path relative to the checkout, e.g. notebooks/00_overview.py
    source: str  # the notebook's text when the grid was loaded: the run executes exactly this
    profile: str  # smoke or full
    parameters: dict[str, Any]  # what papermill injects: params/<profile>.yml overlaid with the grid's
    key: str  # folder name: <stem>-<hash of source, parameters and ncbook code>

    @property
    def stem(self) -> str:
        return Path(self.notebook).stem


@dataclass(frozen=True)
class Grid:
    name: str  # the grid file's stem unless the file sets `name`
    profile: str  # smoke or full, for every run
    runs: tuple[Run, ...]  # expanded, validated, without duplicates
    resources: Resources  # per run
    root: Path  # the checkout the notebooks come from; runs execute there
    out: Path  # run folders go to <out>/<run key>/


def expand_axes(parameters: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Every combination of the list-valued entries (the axes), each with the scalar ones.

    >>> expand_axes({"steps": [200, 400], "seed": [0, 1], "lr": 0.1})  # doctest: +NORMALIZE_WHITESPACE
    [{'steps': 200, 'seed': 0, 'lr': 0.1}, {'steps': 200, 'seed': 1, 'lr': 0.1},
     {'steps': 400, 'seed': 0, 'lr': 0.1}, {'steps': 400, 'seed': 1, 'lr': 0.1}]
    """
    axes = {name: value if isinstance(value, list) else [value] for name, value in parameters.items()}
    for name, values in axes.items():
        if not values:
            raise ValueError(f"parameter `{name}` has an empty list of values")
    return [dict(zip(axes, combination)) for combination in itertools.product(*axes.values())]


def run_key(stem: str, source: str, parameters: Mapping[str, Any]) -> str:
    """``<stem>-<12 hex digits>``: SHA-256 of the source, the parameters and the ncbook code (its
    content hash): a finished run of other code is never taken for this one."""
    blob = json.dumps(
        {"source": source, "parameters": dict(parameters), "code": code_hash()},
        sort_keys=True, default=repr,
    )
    return f"{stem}-{hashlib.sha256(blob.encode('utf-8')).hexdigest()[:12]}"


def load_grid(path: str | os.PathLike, out: str | os.PathLike | None = None) -> Grid:
    """Read, expand and validate the grid file ``path``; ``out`` overrides the file's ``out``."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"grid file {path} does not exist")
    spec = yaml.safe_load(path.read_text(encoding="utf-8"))
    root = repo_root(path.resolve().parent)  # the checkout holding the grid file, else the current one
    root = root if (root / "pyproject.toml").is_file() else repo_root()
    return grid_from_mapping(spec, name=path.stem, root=root, out=out)


def grid_from_mapping(
    spec: Any, name: str, root: Path, out: str | os.PathLike | None = None
) -> Grid:
    """Expand and validate a grid given as a mapping (the content of a grid file)."""
    if not isinstance(spec, dict):
        raise ValueError(f"grid {name!r} must be a mapping with keys {', '.join(_GRID_KEYS)}")
    _check_keys(f"grid {name!r}", spec, _GRID_KEYS)
    name = check_folder_name("name", spec.get("name", name))
    profile = check_choice("profile", spec.get("profile", "smoke"), PROFILES)
    blocks = _as_list(spec.get("grid"), "grid")
    if any(key in spec for key in _BLOCK_KEYS):
        blocks = [{key: spec[key] for key in _BLOCK_KEYS if key in spec}, *blocks]
    entries: list[tuple[str, dict[str, Any]]] = []  # (notebook as written, the grid's parameters)
    for block in blocks:
        if not isinstance(block, dict):
            raise ValueError(f"each `grid` entry must be a mapping, got {block!r}")
        _check_keys("a grid block", block, _BLOCK_KEYS)
        notebooks = _as_list(block.get("notebooks", block.get("notebook")), "notebooks")
        if not notebooks:
            raise ValueError(f"a grid block needs `notebook` or `notebooks`, got {block!r}")
        parameters = block.get("parameters") or {}
        if not isinstance(parameters, dict):
            raise ValueError(f"`parameters` must be a mapping of name -> value(s), got {parameters!r}")
        entries += [(nb, combination) for nb in notebooks for combination in expand_axes(parameters)]
    for run in _as_list(spec.get("runs"), "runs"):
        if not isinstance(run, dict) or "notebook" not in run:
            raise ValueError(f"each entry of `runs` must be a mapping with a `notebook`, got {run!r}")
        entries.append((run["notebook"], {k: v for k, v in run.items() if k != "notebook"}))
    if not entries:
        raise ValueError(f"grid {name!r} has no runs: give `notebook` and `parameters`, `grid` or `runs`")
    # Validate every entry before building any run: a typo anywhere stops the grid before it starts.
    paths = {nb: _resolve_notebook(nb, root) for nb, _ in entries}
    allowed = {path: tuple(parameters_of(path)) for path in set(paths.values())}
    for nb, parameters in entries:
        _check_parameters(paths[nb], parameters, allowed[paths[nb]])
    runs: dict[str, Run] = {}
    for nb, parameters in entries:
        path = paths[nb]
        source = path.read_text(encoding="utf-8")
        merged = {**load_parameters(profile, path.stem, root, parameters_of(path)), **parameters}
        key = run_key(path.stem, source, merged)
        relative = path.relative_to(root).as_posix() if path.is_relative_to(root) else str(path)
        runs.setdefault(key, Run(relative, source, profile, merged, key))
    folder = Path(out or spec.get("out") or Path("_sweeps") / name)
    if not out and ".." in Path(str(spec.get("out") or "")).parts:
        raise ValueError(f"grid {name!r}: `out` must stay inside the checkout (no `..`), got {spec['out']!r}")
    return Grid(name, profile, tuple(runs.values()), _resources(spec.get("resources")), root,
                folder if folder.is_absolute() else root / folder)


def check_folder_name(what: str, value: Any) -> str:
    """A name used as a folder: no path separator, not ``.``/``..``, not hidden.

    >>> check_folder_name("name", "smoke")
    'smoke'
    """
    text = str(value)
    if not text or "/" in text or "\\" in text or text.startswith(".") or text != text.strip():
        raise ValueError(f"`{what}` names a folder and must be a plain name (no `/`, `\\`, `..`, not "
                         f"starting with `.`), got {text!r}")
    return text


def _check_keys(what: str, mapping: Mapping[str, Any], allowed: tuple[str, ...]) -> None:
    unknown = sorted(set(mapping) - set(allowed))
    if unknown:
        raise ValueError(f"unknown key(s) {', '.join(map(str, unknown))} in {what}; "
                         f"allowed: {', '.join(allowed)}")


def _as_list(value: Any, name: str) -> list[Any]:
    if value is None:
        return []
    if isinstance(value, list):
        return value
    if isinstance(value, str) and name == "notebooks":
        return [value]
    raise ValueError(f"`{name}` must be a list, got {value!r}")


def _resolve_notebook(notebook: Any, root: Path) -> Path:
    """A notebook given as a path (relative to the checkout) or as a stem of notebooks/."""
    text = str(notebook)
    path = Path(text) if text.endswith(".py") else Path("notebooks") / f"{text}.py"
    path = path if path.is_absolute() else root / path
    if not path.is_file():
        known = ", ".join(sorted(p.stem for p in (root / "notebooks").glob("*.py"))) or "none"
        raise ValueError(f"unknown notebook {text!r}: no file {path}; notebooks here: {known}")
    return path.resolve()


def _check_parameters(path: Path, parameters: Mapping[str, Any], allowed: tuple[str, ...]) -> None:
    if "profile" in parameters:
        raise ValueError("set `profile` at the top of the grid, not as a parameter of a run")
    check_names(f"grid entry for {path.stem}", parameters, dict.fromkeys(allowed), path.stem)


def _resources(spec: Any) -> Resources:
    spec = spec or {}
    if not isinstance(spec, dict):
        raise ValueError(f"`resources` must be a mapping with keys {', '.join(_RESOURCE_KEYS)}")
    _check_keys("resources", spec, _RESOURCE_KEYS)
    return Resources(
        num_gpus=check_float("num_gpus", spec.get("num_gpus", 0.0), low=0.0),
        num_cpus=check_float("num_cpus", spec.get("num_cpus", 1.0), low=0.0, low_open=True),
    )
