"""The reproduction report: summary first, tallies by source and chapter, full claim text,
thresholds as ≤ / ≥, long tables folded, stale chapters marked."""

from __future__ import annotations

from ncbook.pipeline.report import FOLD_ROWS, ChapterClaims, report_markdown

LONG = "a claim whose text is much longer than fifty characters and must never be cut short anywhere"


def _claim(i: int, passed: bool = True, source: str = "paper-A", kind: str = "upper") -> dict:
    return {"claim": f"{LONG} #{i}", "source": source, "predicted": 0.0, "measured": 1e-5,
            "tolerance": 1e-4, "kind": kind, "passed": passed}


def test_summary_tallies_and_full_text():
    chapters = [
        ChapterClaims("11_a", "Chapter A", "full", [_claim(i) for i in range(FOLD_ROWS + 3)], None),
        ChapterClaims("31_b", "Chapter B", "smoke", [_claim(0, False, "paper-B", "lower"),
                                                      _claim(1, True, "consistency", "rel")], "8de46ec"),
    ]
    text = report_markdown(chapters)
    summary = text.index("| chapter | claims | pass | fail | profile | page |")
    assert summary < text.index("## Tallies") < text.index("## Chapter A")
    assert "| Chapter A | 15 | 15 | 0 | full | {doc}`open <executed/11_a>` |" in text
    assert "| Chapter B | 2 | 1 | 1 | smoke (stale: stored at 8de46ec; code changed since) |" in text
    assert "| paper-A | 15 | 15 | 0 |" in text and "| paper-B | 1 | 0 | 1 |" in text
    assert "| consistency | 1 | 1 | 0 |" in text
    assert f"{LONG} #14" in text
    assert "| claim | source | expected | measured | check | verdict |" in text
    assert "| ≤ 1.00e-04 | 1.00e-05 | measured ≤ 1.00e-04 | pass |" in text
    assert "| ≥ 1.00e-04 | 1.00e-05 | measured ≥ 1.00e-04 | **FAIL** |" in text
    assert "relative error ≤ 1.00e-04" in text
    assert "```{admonition} All 15 claims\n:class: dropdown" in text
    assert "All 2 claims" not in text
