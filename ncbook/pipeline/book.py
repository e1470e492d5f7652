"""Assemble the book's source before `jupyter-book build`:

    python -m ncbook.pipeline.book prepare --profile smoke

1. copy one executed notebook per ``notebooks/<stem>.py`` to ``book/executed/``: the stored
   full-profile run ``results/full/<stem>/<stem>.ipynb`` when it exists (written by ``make full``
   and committed), else ``_executed/<profile>/<stem>.ipynb``; each page's banner says which;
2. copy MathJax from the ``sphinx-mathjax-offline`` package to ``book/_extra/_static/mathjax`` so
   equations render with no network (``html_extra_path`` copies it without injecting scripts);
3. write ``book/report.md``, the reproduction report: every claim of every ledger.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import shutil
import sys
from pathlib import Path

import pandas as pd

from ncbook._runtime import PROFILES, repo_root
from ncbook.claims import load, short


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


def copy_executed(profile: str, root: Path) -> dict[str, str]:
    """Copy the notebook each chapter renders; return {stem: profile it came from}."""
    target = root / "book" / "executed"
    shutil.rmtree(target, ignore_errors=True)
    target.mkdir(parents=True)
    chosen = {}
    for source in sorted((root / "notebooks").glob("*.py")):
        stem = source.stem
        candidates = [(stored_full_run(stem, root), "full"),
                      (root / "_executed" / profile / f"{stem}.ipynb", profile)]
        for path, used in candidates:
            if path.is_file():
                shutil.copy2(path, target / f"{stem}.ipynb")
                chosen[stem] = used
                break
    return chosen


def copy_mathjax(root: Path) -> None:
    target = root / "book" / "_extra" / "_static" / "mathjax"
    if not (target / "tex-chtml.js").is_file():
        shutil.rmtree(target, ignore_errors=True)
        shutil.copytree(mathjax_source(), target)


def collect_claims(chosen: dict[str, str], root: Path) -> pd.DataFrame:
    """Every claim of the ledgers behind the rendered chapters, one row each."""
    rows = []
    for stem, profile in sorted(chosen.items()):
        path = root / "results" / profile / stem / "claims.json"
        if path.is_file():
            rows += [{**record, "notebook": stem, "profile": profile} for record in load(path)]
    return pd.DataFrame(rows)


def _cell(value: object) -> str:
    text = str(value).replace("|", "\\|").replace("\n", " ")
    return text if len(text) <= 90 else text[:87] + "..."


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


def report_markdown(claims: pd.DataFrame, titles: dict[str, str] | None = None) -> str:
    lines = [
        "# Reproduction report",
        "",
        "Every claim checked by every chapter, read from "
        "`results/<profile>/<notebook>/claims.json` of the run each chapter renders (its profile is "
        "named in each section). A claim passes when the measured value is "
        "within the stated tolerance of the prediction (`rel`: relative error, `abs`: absolute error, "
        "`upper`: measured at most the tolerance, `lower`: measured at least the tolerance).",
        "",
    ]
    if claims.empty:
        return "\n".join([*lines, "No ledger has been written yet.", ""])
    passed = int(claims["passed"].sum())
    lines += [f"**{passed} of {len(claims)} claims pass.**", ""]
    for notebook, group in claims.groupby("notebook", sort=True):
        ok = int(group["passed"].sum())
        title = (titles or {}).get(notebook, notebook)
        lines += [
            f"## {title}",
            "",
            f"{{doc}}`Chapter <executed/{notebook}>`: {ok} of {len(group)} claims pass "
            f"({group['profile'].iloc[0]} profile).",
            "",
            "| claim | paper | predicted | measured | tolerance | verdict |",
            "|---|---|---|---|---|---|",
        ]
        for row in group.itertuples():
            verdict = "pass" if row.passed else "**FAIL**"
            lines.append(
                f"| {_cell(row.claim)} | {row.paper} | {_cell(short(row.predicted))} | "
                f"{_cell(short(row.measured))} | {row.kind} {row.tolerance:.1e} | {verdict} |"
            )
        lines.append("")
    return "\n".join(lines)


def prepare(profile: str) -> None:
    root = repo_root()
    chosen = copy_executed(profile, root)
    missing = sorted(p.stem for p in (root / "notebooks").glob("*.py") if p.stem not in chosen)
    if missing:
        raise SystemExit(f"not executed yet: {', '.join(missing)}; run `make notebooks`")
    copy_mathjax(root)
    claims = collect_claims(chosen, root)
    titles = {stem: chapter_title(root / "book" / "executed" / f"{stem}.ipynb") for stem in chosen}
    (root / "book" / "report.md").write_text(report_markdown(claims, titles), encoding="utf-8")
    full = sum(used == "full" for used in chosen.values())
    print(f"book: {len(chosen)} notebooks ({full} from stored full runs), {len(claims)} claims")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="prepare the book's source before building it")
    parser.add_argument("command", choices=["prepare"])
    parser.add_argument("--profile", default="smoke", choices=PROFILES)
    args = parser.parse_args(argv)
    prepare(args.profile)
    return 0


if __name__ == "__main__":
    sys.exit(main())
