"""The reproduction report (``book/report.md``): a summary table of the chapters, tallies by source,
then every claim of every chapter with its full text, expected value, measured value, the check
applied (thresholds as ≤ / ≥) and the verdict; long tables fold away."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Any

SOURCES = ("paper-A", "paper-B", "literature", "ours", "consistency")
# Tables longer than this start folded, so the report's summary fits one screen.
FOLD_ROWS = 12


@dataclass(frozen=True)
class ChapterClaims:
    stem: str
    title: str
    profile: str
    records: list[dict[str, Any]]  # claims.json of the run the chapter renders
    stale_commit: str | None  # the commit of a stored result the tree no longer matches


def source_of(record: dict[str, Any]) -> str:
    """A claim's source; ledgers written before `source` existed carry `paper` ("A", "B", "ours").

    >>> source_of({"source": "literature"}), source_of({"paper": "A"}), source_of({"paper": "ours"})
    ('literature', 'paper-A', 'ours')
    """
    if record.get("source"):
        return str(record["source"])
    paper = str(record.get("paper", "ours"))
    return f"paper-{paper}" if paper in ("A", "B") else paper


def number(value: Any) -> str:
    """A compact number or list of numbers.

    >>> number(0.000123), number([1.0, 2.5]), number(None)
    ('1.23e-04', '[1, 2.5]', '—')
    """
    if value is None:
        return "—"
    if isinstance(value, list):
        shown = ", ".join(number(v) for v in value[:6])
        return f"[{shown}{', …' if len(value) > 6 else ''}]"
    if isinstance(value, bool) or not isinstance(value, int | float):
        return str(value)
    if value == 0 or 1e-3 <= abs(value) < 1e5:
        return f"{value:.6g}"
    return f"{value:.2e}"


def expected_and_check(record: dict[str, Any]) -> tuple[str, str]:
    """What the claim expects and the test applied, with thresholds written as ≤ / ≥.

    >>> expected_and_check({"kind": "upper", "tolerance": 1e-4, "predicted": 0})
    ('≤ 1.00e-04', 'measured ≤ 1.00e-04')
    >>> expected_and_check({"kind": "rel", "tolerance": 0.05, "predicted": 2.0})
    ('2', 'relative error ≤ 0.05')
    """
    kind, tolerance = record.get("kind"), record.get("tolerance")
    if kind == "upper":
        return f"≤ {number(tolerance)}", f"measured ≤ {number(tolerance)}"
    if kind == "lower":
        return f"≥ {number(tolerance)}", f"measured ≥ {number(tolerance)}"
    words = "relative error" if kind == "rel" else "absolute error"
    return number(record.get("predicted")), f"{words} ≤ {number(tolerance)}"


def _cell(text: str) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def _passed(records: list[dict[str, Any]]) -> int:
    return sum(bool(r.get("passed")) for r in records)


def _tally(title: str, counts: dict[str, list[dict[str, Any]]]) -> list[str]:
    lines = [f"| {title} | claims | pass | fail |", "|---|---:|---:|---:|"]
    for name, records in counts.items():
        passed = _passed(records)
        lines.append(f"| {name} | {len(records)} | {passed} | {len(records) - passed} |")
    return [*lines, ""]


def claims_table(records: list[dict[str, Any]]) -> list[str]:
    lines = ["| claim | source | expected | measured | check | verdict |", "|---|---|---|---|---|---|"]
    for record in records:
        expected, check = expected_and_check(record)
        verdict = "pass" if record.get("passed") else "**FAIL**"
        source = source_of(record) + (f" {{cite}}`{record['cite']}`" if record.get("cite") else "")
        lines.append(f"| {_cell(record.get('claim', ''))} | {source} | {_cell(expected)} | "
                     f"{_cell(number(record.get('measured')))} | {_cell(check)} | {verdict} |")
    return lines


def report_markdown(chapters: list[ChapterClaims]) -> str:
    lines = [
        "# Reproduction report",
        "",
        "Every claim checked by every chapter, read from the `claims.json` of the run each chapter "
        "renders. *expected* is the prediction (or the threshold, written ≤ / ≥); *check* is the test "
        "applied to the measured value.",
        "",
    ]
    everything = [r for c in chapters for r in c.records]
    if not everything:
        return "\n".join([*lines, "No ledger has been written yet.", ""])
    lines += [f"**{_passed(everything)} of {len(everything)} claims pass.**", ""]
    lines += ["| chapter | claims | pass | fail | profile | page |", "|---|---:|---:|---:|---|---|"]
    for c in chapters:
        passed = _passed(c.records)
        profile = c.profile + (f" (stale: stored at {c.stale_commit}; code changed since)"
                               if c.stale_commit else "")
        lines.append(f"| {_cell(c.title)} | {len(c.records)} | {passed} | {len(c.records) - passed} | "
                     f"{profile} | {{doc}}`open <executed/{c.stem}>` |")
    lines.append("")
    by_source = {s: [r for r in everything if source_of(r) == s] for s in SOURCES}
    others = Counter(source_of(r) for r in everything) - Counter({s: 1 << 30 for s in SOURCES})
    by_source |= {s: [r for r in everything if source_of(r) == s] for s in others}
    lines += ["## Tallies", "", *_tally("source", {s: r for s, r in by_source.items() if r})]
    lines += _tally("chapter", {c.stem: c.records for c in chapters})
    for c in chapters:
        passed = _passed(c.records)
        lines += [f"## {c.title}", "",
                  f"{{doc}}`Chapter <executed/{c.stem}>`: {passed} of {len(c.records)} claims pass "
                  f"({c.profile} profile).", ""]
        if c.stale_commit:
            lines += [f"Stored at commit {c.stale_commit}; code changed since (`make stale` reruns it).", ""]
        table = claims_table(c.records)
        if len(c.records) > FOLD_ROWS:
            lines += [f"```{{admonition}} All {len(c.records)} claims", ":class: dropdown", *table, "```"]
        else:
            lines += table
        lines.append("")
    return "\n".join(lines)
