"""Assemble the book's source before `jupyter-book build`:

    python -m ncbook.pipeline.book prepare --profile smoke
    python -m ncbook.pipeline.book stale --profile full     # stems whose stored result is stale

1. copy one executed notebook per ``notebooks/<stem>.py`` to ``book/executed/``: the stored
   full-profile run ``results/full/<stem>/<stem>.ipynb`` when it exists (written by ``make full``
   and committed), else ``_executed/<profile>/<stem>.ipynb``; a chapter is taken only with the
   ``provenance.json`` of the same run, and its provenance note is redrawn, saying when the stored
   result no longer matches the notebook, its parameters file or the ncbook code;
2. copy MathJax from the ``sphinx-mathjax-offline`` package to ``book/_extra/_static/mathjax`` so
   equations render with no network (``html_extra_path`` copies it without injecting scripts);
3. write ``book/report.md``, the reproduction report (``ncbook.pipeline.report``).
"""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ncbook._runtime import PROFILES, repo_root
from ncbook.pipeline import api_page, provenance

PROVENANCE_TAG = "ncbook-provenance"


@dataclass(frozen=True)
class Chapter:
    stem: str
    profile: str  # the profile of the run it renders
    notebook: Path  # the executed notebook
    record: dict[str, Any]  # its provenance.json
    stale: tuple[str, ...]  # what changed since it ran (empty: current)


def mathjax_source() -> Path:
    """The MathJax 3 folder shipped inside the ``sphinx-mathjax-offline`` wheel."""
    try:
        files = importlib.metadata.files("sphinx-mathjax-offline") or []
    except importlib.metadata.PackageNotFoundError as error:
        raise RuntimeError(
            "MathJax for offline math comes from the `sphinx-mathjax-offline` package; "
            "install the book extra: pip install -e '.[book]'"
        ) from error
    for entry in files:
        if entry.name == "tex-chtml.js" and entry.parent.name == "mathjax":
            return Path(entry.locate()).parent
    raise RuntimeError("sphinx-mathjax-offline is installed but holds no mathjax/tex-chtml.js")


def stored_full_run(stem: str, root: Path) -> Path:
    """Where ``make full`` keeps the executed notebook of ``stem`` for the book."""
    return root / "results" / "full" / stem / f"{stem}.ipynb"


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as error:
        raise ValueError(f"{path} cannot be read ({error}); rerun the notebook to rewrite it") from error


def find_chapter(stem: str, profile: str, root: Path) -> Chapter | None:
    """The run ``stem``'s chapter renders (stored full run first), or None when none has finished.

    Raises ``ValueError`` when an executed notebook is not matched by the results of the same run."""
    for notebook, used in ((stored_full_run(stem, root), "full"),
                           (root / "_executed" / profile / f"{stem}.ipynb", profile)):
        if not notebook.is_file():
            continue
        folder = root / "results" / used / stem
        record = _read_json(folder / "provenance.json") if (folder / "provenance.json").is_file() else None
        ran = (_read_json(notebook).get("metadata", {}).get("ncbook") or {}).get("run_id")
        claims = _read_json(folder / "claims.json") if (folder / "claims.json").is_file() else None
        if not isinstance(claims, list) or record is None or record.get("run_id") != ran:
            raise ValueError(f"{notebook} has no matching claims.json and provenance.json in {folder} "
                             f"(an interrupted or older run); rerun it: ncbook run notebooks/{stem}.py "
                             f"--profile {used}")
        return Chapter(stem, used, notebook, record, tuple(provenance.stale_reasons(record, root)))
    return None


def stale_stems(profile: str, root: Path) -> list[str]:
    """Notebooks whose stored ``results/<profile>/<stem>/`` no longer matches the tree."""
    stems = []
    for source in sorted((root / "notebooks").glob("*.py")):
        path = root / "results" / profile / source.stem / "provenance.json"
        if path.is_file() and provenance.stale_reasons(_read_json(path), root):
            stems.append(source.stem)
    return stems


def copy_executed(chapters: list[Chapter], root: Path, api_calls: dict[tuple[str, str], list[str]]) -> None:
    """Copy each chapter's notebook to book/executed/ with its provenance note redrawn and a closing
    line linking the API it calls."""
    import nbformat

    target = root / "book" / "executed"
    shutil.rmtree(target, ignore_errors=True)
    target.mkdir(parents=True)
    for chapter in chapters:
        node = nbformat.read(str(chapter.notebook), as_version=4)
        node.cells = [cell for cell in node.cells
                      if PROVENANCE_TAG not in cell.metadata.get("tags", [])
                      and "injected-parameters" not in cell.metadata.get("tags", [])]
        note = nbformat.v4.new_markdown_cell(provenance.banner_markdown(chapter.record, list(chapter.stale)))
        note.metadata["tags"] = [PROVENANCE_TAG]
        node.cells.insert(1, note)
        for cell in node.cells:
            _caption_as_alt_text(cell)
        links = api_page.chapter_links(chapter.stem, api_calls)
        if links:
            node.cells.append(nbformat.v4.new_markdown_cell(links))
        nbformat.write(node, str(target / f"{chapter.stem}.ipynb"))


def _caption_as_alt_text(cell: Any) -> None:
    """A figure cell without alt text gets its caption (TeX dollars dropped) as alt text, so that
    no image is described to a screen reader by its file hash."""
    mystnb = cell.metadata.get("mystnb") or {}
    caption = (mystnb.get("figure") or {}).get("caption")
    if caption and not (mystnb.get("image") or {}).get("alt"):
        mystnb.setdefault("image", {})["alt"] = caption.replace("$", "")
        cell.metadata["mystnb"] = mystnb


def copy_mathjax(root: Path) -> None:
    target = root / "book" / "_extra" / "_static" / "mathjax"
    if not (target / "tex-chtml.js").is_file():
        shutil.rmtree(target, ignore_errors=True)
        shutil.copytree(mathjax_source(), target)


def chapter_title(notebook: Path) -> str:
    """The ``# Title`` of an executed notebook's first markdown cell, else its file stem."""
    cells = json.loads(notebook.read_text(encoding="utf-8")).get("cells", [])
    for cell in cells:
        if cell.get("cell_type") == "markdown":
            first = "".join(cell.get("source", "")).lstrip().splitlines()[0:1]
            if first and first[0].startswith("# "):
                return first[0][2:].strip()
            break
    return notebook.stem


def prepare(profile: str) -> None:
    from ncbook.pipeline.report import ChapterClaims, report_markdown

    root = repo_root()
    stems = [p.stem for p in sorted((root / "notebooks").glob("*.py"))]
    chapters = [c for c in (find_chapter(stem, profile, root) for stem in stems) if c is not None]
    missing = sorted(set(stems) - {c.stem for c in chapters})
    if missing:
        raise SystemExit(f"not executed yet: {', '.join(missing)}; run `make notebooks`")
    api_calls = api_page.calls_by_chapter(sorted((root / "notebooks").glob("*.py")))
    copy_executed(chapters, root, api_calls)
    (root / "book" / "api.md").write_text(api_page.page_markdown(api_calls), encoding="utf-8")
    copy_mathjax(root)
    claims = [ChapterClaims(c.stem, chapter_title(c.notebook), c.profile,
                            _read_json(root / "results" / c.profile / c.stem / "claims.json"),
                            c.record.get("commit", "unknown") if c.stale else None)
              for c in chapters]
    (root / "book" / "report.md").write_text(report_markdown(claims), encoding="utf-8")
    full = sum(c.profile == "full" for c in chapters)
    stale = [c.stem for c in chapters if c.stale]
    print(f"book: {len(chapters)} notebooks ({full} from stored full runs), "
          f"{sum(len(c.records) for c in claims)} claims"
          + (f"; stale: {', '.join(stale)}" if stale else ""))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="prepare the book's source before building it")
    parser.add_argument("command", choices=["prepare", "stale"],
                        help="prepare: book/executed and book/report.md; stale: list stale stored results")
    parser.add_argument("--profile", default="smoke", choices=PROFILES,
                        help="the profile of the runs to render or check (default: smoke)")
    args = parser.parse_args(argv)
    try:
        if args.command == "stale":
            print("\n".join(stale_stems(args.profile, repo_root())))
        else:
            prepare(args.profile)
    except ValueError as error:
        print(f"book: error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
