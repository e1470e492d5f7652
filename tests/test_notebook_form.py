"""Notebooks are thin lectures: short code cells, one session, claims at the end, statements
attributed, nothing that points the reader to notes they do not have."""

from __future__ import annotations

import re
import statistics

import jupytext
import pytest
from conftest import NOTEBOOKS, ROOT

MEDIAN_LINES = 6
MAX_LINES = 15
MAX_FIGURE_LINES = 20
INTERNAL_NOTES = re.compile(r"\bthe spec\b|paper-[ab]\.md|shared/theory", re.IGNORECASE)
GENERATED_PAGES = {"api.md", "report.md"}  # written by `book prepare`; their built pages are checked
BOOK_PAGES = sorted(p for p in (ROOT / "book").glob("*.md") if p.name not in GENERATED_PAGES) + sorted(
    (ROOT / "book" / "parts").glob("*.md"))


def _ids(paths):
    return [p.stem for p in paths]


def _code_lines(source: str) -> int:
    return sum(1 for line in source.splitlines() if line.strip() and not line.lstrip().startswith("#"))


def _code_cells(path):
    cells = jupytext.read(path).cells
    return [c for c in cells if c.cell_type == "code" and "parameters" not in c.metadata.get("tags", [])]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=_ids(NOTEBOOKS))
def test_code_cells_are_short(path):
    sizes = [_code_lines(c.source) for c in _code_cells(path)]
    assert statistics.median(sizes) <= MEDIAN_LINES, f"{path.name}: median cell {statistics.median(sizes)}"
    for cell, size in zip(_code_cells(path), sizes):
        limit = MAX_FIGURE_LINES if "figure" in cell.metadata.get("mystnb", {}) else MAX_LINES
        assert size <= limit, f"{path.name}: a cell of {size} code lines (limit {limit}):\n{cell.source}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=_ids(NOTEBOOKS))
def test_one_session_and_claims_at_the_end(path):
    code = _code_cells(path)
    sessions = [c for c in code if re.search(r"\bnc\.notebook\(", c.source)]
    assert len(sessions) == 1, f"{path.name}: open the chapter with exactly one nc.notebook(...)"
    assert re.search(r"^nb\.finish\(\)\s*$", code[-1].source, re.MULTILINE), \
        f"{path.name}: the last code cell must call nb.finish()"
    text = path.read_text(encoding="utf-8")
    assert "nc.profiles." not in text and "nc.claims.Ledger" not in text, \
        f"{path.name}: use the notebook session, not nc.profiles / nc.claims.Ledger"


@pytest.mark.parametrize("path", NOTEBOOKS + BOOK_PAGES, ids=_ids(NOTEBOOKS + BOOK_PAGES))
def test_no_internal_notes_and_no_question_mark_titles(path):
    text = path.read_text(encoding="utf-8")
    found = INTERNAL_NOTES.search(text)
    assert not found, f"{path.name}: points the reader to internal notes: {found.group(0)!r}"
    titles = re.findall(r"^(?:# )?```\{[\w:]+\}\s*(.*)$", text, re.MULTILINE)
    titles += re.findall(r"^(?:# )?#+ (.*)$", text, re.MULTILINE)
    assert not [t for t in titles if t.rstrip().endswith("(?)")], f"{path.name}: a title ends in '(?)'"
