"""A notebook's parameters: the names its ``parameters`` cell assigns, the values ``params/<profile>.yml``
gives it, and the checks that keep a typo or a piece of code from ever reaching the kernel.

Papermill injects parameters as Python assignments, so a name is only ever passed on when it is an
identifier the notebook's ``parameters`` cell assigns itself; values are YAML data (numbers, strings,
lists), never code.
"""

from __future__ import annotations

import ast
import keyword
from pathlib import Path
from typing import Any

import yaml

# Keys of params/<profile>.yml that are not notebook stems: `_all` applies to every notebook.
ALL_SECTION = "_all"
# A per-notebook key the runner keeps for itself: what this profile's run differs in from the paper,
# shown in the chapter's provenance note (never passed to the notebook).
DIFFERENCES_KEY = "_differences"


def notebook_parameters(path: Path) -> dict[str, Any]:
    """The names the notebook's one code cell tagged ``parameters`` assigns, each with its default
    (a literal; ``None`` when the default is not a literal)."""
    import jupytext

    cells = [
        cell for cell in jupytext.read(path).cells
        if cell.cell_type == "code" and "parameters" in cell.metadata.get("tags", [])
    ]
    if len(cells) != 1:
        raise ValueError(f"{path} must have exactly one code cell tagged `parameters`, found {len(cells)}")
    names: dict[str, Any] = {}
    for statement in ast.parse(cells[0].source).body:
        if isinstance(statement, ast.Assign):
            targets, value = statement.targets, statement.value
        elif isinstance(statement, ast.AnnAssign) and statement.value is not None:
            targets, value = [statement.target], statement.value
        else:
            continue
        for target in targets:
            if isinstance(target, ast.Name):
                try:
                    names[target.id] = ast.literal_eval(value)
                except ValueError:
                    names[target.id] = None
    return names


def check_names(what: str, names: Any, allowed: dict[str, Any], stem: str) -> None:
    """Every name of ``names`` must be an identifier the notebook assigns; ``profile`` never."""
    for name in names:
        if not isinstance(name, str) or not name.isidentifier() or keyword.iskeyword(name):
            raise ValueError(f"{what}: {name!r} is not a parameter name (a Python identifier)")
        if name == "profile":
            raise ValueError(f"{what}: `profile` comes only from --profile (or the grid's `profile`), "
                             "never from a parameter")
        if name not in allowed:
            raise ValueError(f"{what}: unknown parameter `{name}` for notebook {stem}; its parameters "
                             f"cell assigns: {', '.join(p for p in allowed if p != 'profile')}")


def profile_table(profile: str, root: Path) -> dict[str, Any]:
    """The mapping stored in ``params/<profile>.yml`` (empty when the file does not exist)."""
    path = root / "params" / f"{profile}.yml"
    if not path.is_file():
        return {}
    try:
        table = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as error:
        raise ValueError(f"{path} is not valid YAML ({str(error).splitlines()[0]}); fix or restore it "
                         "with git checkout") from error
    table = table or {}
    if not isinstance(table, dict) or not all(isinstance(v, dict | None) for v in table.values()):
        raise ValueError(f"{path} must hold a mapping of notebook stem -> {{parameter: value}}")
    return table


def load_parameters(profile: str, stem: str, root: Path,
                    allowed: dict[str, Any] | None = None) -> dict[str, Any]:
    """The parameters ``params/<profile>.yml`` gives notebook ``stem`` (``_all`` first, then its own
    section), plus ``profile``. With ``allowed`` (the notebook's parameters), unknown keys of the
    notebook's own section are an error; ``_all`` keys the notebook does not assign are skipped."""
    table = profile_table(profile, root)
    common = dict(table.get(ALL_SECTION) or {})
    own = {k: v for k, v in (table.get(stem) or {}).items() if k != DIFFERENCES_KEY}
    if allowed is not None:
        check_names(f"params/{profile}.yml section `{stem}`", own, allowed, stem)
        check_names(f"params/{profile}.yml section `{ALL_SECTION}`", common, {**allowed, **common}, stem)
        common = {k: v for k, v in common.items() if k in allowed}
    return {**common, **own, "profile": profile}


def paper_differences(profile: str, stem: str, root: Path) -> str:
    """What a profile's run of ``stem`` differs in from the paper (``_differences`` in its section)."""
    section = profile_table(profile, root).get(stem) or {}
    return str(section.get(DIFFERENCES_KEY, "") or "")


def parse_value(text: str) -> Any:
    """A ``-p`` value: a YAML scalar or list, as papermill's own ``-p`` reads it.

    >>> parse_value("10"), parse_value("[1, 2]"), parse_value("cpu")
    (10, [1, 2], 'cpu')
    """
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as error:
        raise ValueError(f"-p value {text!r} is not a YAML scalar or list") from error
