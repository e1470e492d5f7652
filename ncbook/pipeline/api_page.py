"""The book's API reference, generated from the code at ``book prepare``: every public name of the
library's modules (their ``__all__``) with its signature and docstring, and, found by reading the
notebooks, the chapters that call it. Each chapter ends with links to the API it calls.

Generated rather than written by hand so that it cannot drift from the code: a renamed function
disappears from the page and from the chapters' links the next time the book is prepared.
"""

from __future__ import annotations

import importlib
import inspect
import re
from collections import defaultdict
from pathlib import Path

PUBLIC_MODULES = (
    "ncbook.spec",
    "ncbook.geometry",
    "ncbook.metrics",
    "ncbook.theory",
    "ncbook.models",
    "ncbook.optimize",
    "ncbook.experiments.synthetic",
    "ncbook.experiments.dufm",
    "ncbook.experiments.phase",
    "ncbook.experiments.theorem_checks",
    "ncbook.data",
    "ncbook.train",
    "ncbook.plots",
    "ncbook.claims",
    "ncbook.pipeline.session",
)
# `nc.<module>.<name>` in a notebook, with the module path as ncbook exposes it
_QUALIFIED = re.compile(r"\bnc\.((?:[a-z_]+\.)*?[a-z_]+)\.([A-Za-z_]\w*)")
_FROM_IMPORT = re.compile(r"^from (ncbook(?:\.\w+)*) import (\w+)(?: as (\w+))?", re.MULTILINE)
_ALIASES = {"nc.notebook": ("ncbook.pipeline.session", "notebook")}


def anchor(module: str, name: str | None = None) -> str:
    """The Sphinx label of a module's or a name's entry, e.g. ``api-ncbook-metrics-collect``.
    Sphinx lowercases labels, so a capitalised name (a class) gets ``-class`` to stay apart from a
    function of the same letters (``Snapshot`` and ``snapshot``)."""
    parts = [*module.split("."), *([name] if name else [])]
    suffix = "-class" if name and name[0].isupper() else ""
    return "api-" + "-".join(parts).lower().replace("_", "-") + suffix


def public_names(module: str) -> list[str]:
    """The module's ``__all__`` without submodules, in its own order; without ``__all__``, the
    functions and classes it defines whose names do not start with an underscore."""
    loaded = importlib.import_module(module)
    if hasattr(loaded, "__all__"):
        return [name for name in loaded.__all__ if not inspect.ismodule(getattr(loaded, name, None))]
    return [name for name, obj in vars(loaded).items()
            if not name.startswith("_") and (inspect.isfunction(obj) or inspect.isclass(obj))
            and obj.__module__ == module]


def _first_paragraph(text: str | None) -> str:
    return inspect.cleandoc(text or "").split("\n\n")[0].strip()


def _signature(obj: object, name: str) -> str:
    try:
        parameters = str(inspect.signature(obj))[1:].rsplit(")", 1)[0]
    except (TypeError, ValueError):
        parameters = "..."
    if inspect.isclass(obj):  # as its constructor: a page never shows `Name(...)`, which reads as a repr
        return f"class {name}:\n    def __init__(self{', ' if parameters else ''}{parameters}): ..."
    return f"def {name}({parameters}): ..."


def calls_by_chapter(notebooks: list[Path]) -> dict[tuple[str, str], list[str]]:
    """(module, name) -> the stems of the notebooks that call it, for documented names only."""
    documented = {module: set(public_names(module)) for module in PUBLIC_MODULES}
    used: dict[tuple[str, str], list[str]] = defaultdict(list)

    def note(module: str, name: str, stem: str) -> None:
        if name in documented.get(module, ()) and stem not in used[module, name]:
            used[module, name].append(stem)

    for path in notebooks:
        text = path.read_text(encoding="utf-8")
        for dotted, (module, name) in _ALIASES.items():
            if f"{dotted}(" in text:
                note(module, name, path.stem)
        for module, name in _QUALIFIED.findall(text):
            note(f"ncbook.{module}", name, path.stem)
        for module, name, alias in _FROM_IMPORT.findall(text):
            submodule = f"{module}.{name}"
            if submodule in documented:  # `from ncbook.experiments import dufm [as d]`, then d.x(...)
                for called in re.findall(rf"\b{alias or name}\.([A-Za-z_]\w*)", text):
                    note(submodule, called, path.stem)
            else:
                note(module, name, path.stem)
    return used


def page_markdown(used: dict[tuple[str, str], list[str]]) -> str:
    """The API reference page (MyST markdown); ``used`` from :func:`calls_by_chapter`."""
    lines = ["(api-reference)=", "# API reference", "",
             "Every public name of the library, generated from the code each time the book is prepared: "
             "its signature, the first paragraph of its docstring (the docstring in full is one "
             "`help(...)` away), and the chapters that call it.", ""]
    for module in PUBLIC_MODULES:
        loaded = importlib.import_module(module)
        lines += [f"({anchor(module)})=", f"## `{module}`", "", "```text",
                  _first_paragraph(loaded.__doc__), "```", ""]
        for name in public_names(module):
            obj = getattr(loaded, name)
            lines += [f"({anchor(module, name)})=", f"### `{name}`", ""]
            if callable(obj):
                lines += ["```python", _signature(obj, name), "```", ""]
                summary = _first_paragraph(obj.__doc__)
                if summary.startswith(f"{name}("):  # the dataclass's generated docstring: the signature again
                    summary = ""
            else:
                summary = f"{name} = {obj!r}"[:300]
            if summary:
                lines += ["```text", summary, "```", ""]
            chapters = used.get((module, name), [])
            if chapters:
                links = ", ".join(f"{{doc}}`executed/{stem}`" for stem in chapters)
                lines += [f"Used in {links}.", ""]
    return "\n".join(lines)


def chapter_links(stem: str, used: dict[tuple[str, str], list[str]]) -> str | None:
    """A markdown paragraph linking a chapter to the API entries it calls (None if it calls none)."""
    entries = sorted(key for key, stems in used.items() if stem in stems)
    if not entries:
        return None
    links = ", ".join(f"{{ref}}`{module.removeprefix('ncbook.')}.{name} <{anchor(module, name)}>`"
                      for module, name in entries)
    return f"**API used in this chapter** ({{ref}}`api-reference`): {links}."
