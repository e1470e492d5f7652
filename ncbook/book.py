"""Assemble the book's source before `jupyter-book build`:

    python -m ncbook.book prepare --profile smoke

1. copy the executed notebooks ``_executed/<profile>/*.ipynb`` to ``book/executed/``;
2. copy MathJax from the ``sphinx-mathjax-offline`` package to ``book/_extra/_static/mathjax`` so
   equations render with no network (``html_extra_path`` copies it without injecting scripts);
3. write ``book/report.md``, the reproduction report: every claim of every ledger.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import shutil
import sys
from pathlib import Path

import pandas as pd

from ncbook.claims import load, short
from ncbook.profiles import PROFILES, repo_root


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


def copy_executed(profile: str, root: Path) -> list[str]:
    source = root / "_executed" / profile
    target = root / "book" / "executed"
    shutil.rmtree(target, ignore_errors=True)
    target.mkdir(parents=True)
    stems = []
    for notebook in sorted(source.glob("*.ipynb")):
        if notebook.name.endswith(".failed.ipynb"):
            continue
        shutil.copy2(notebook, target / notebook.name)
        stems.append(notebook.stem)
    return stems


def copy_mathjax(root: Path) -> None:
    target = root / "book" / "_extra" / "_static" / "mathjax"
    if not (target / "tex-chtml.js").is_file():
        shutil.rmtree(target, ignore_errors=True)
        shutil.copytree(mathjax_source(), target)


def collect_claims(profile: str, root: Path) -> pd.DataFrame:
    """Every claim of every ``results/<profile>/*/claims.json``, one row each."""
    rows = []
    for path in sorted((root / "results" / profile).glob("*/claims.json")):
        for record in load(path):
            rows.append({**record, "notebook": path.parent.name})
    return pd.DataFrame(rows)


def _cell(value: object) -> str:
    text = str(value).replace("|", "\\|").replace("\n", " ")
    return text if len(text) <= 90 else text[:87] + "..."


def report_markdown(claims: pd.DataFrame, profile: str) -> str:
    lines = [
        "# Reproduction report",
        "",
        f"Every claim checked by every notebook of the **{profile}** run, read from "
        f"`results/{profile}/<notebook>/claims.json`. A claim passes when the measured value is "
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
        lines += [
            f"## {{doc}}`executed/{notebook}`",
            "",
            f"{ok} of {len(group)} claims pass.",
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
    stems = copy_executed(profile, root)
    if not stems:
        raise SystemExit(f"no executed notebooks under _executed/{profile}; run `make notebooks`")
    copy_mathjax(root)
    claims = collect_claims(profile, root)
    claims = claims[claims["notebook"].isin(stems)] if not claims.empty else claims
    (root / "book" / "report.md").write_text(report_markdown(claims, profile), encoding="utf-8")
    print(f"book: {len(stems)} notebooks, {len(claims)} claims ({profile} profile)")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="prepare the book's source before building it")
    parser.add_argument("command", choices=["prepare"])
    parser.add_argument("--profile", default="smoke", choices=PROFILES)
    args = parser.parse_args(argv)
    prepare(args.profile)
    return 0


if __name__ == "__main__":
    sys.exit(main())
