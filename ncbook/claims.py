"""The claims ledger: every numerical check a notebook makes, who makes the statement, its verdict.

A claim compares a ``measured`` number (or array) with an expectation under one of four kinds:

* ``"rel"``:   max |measured - predicted| / max(|predicted|, tiny) <= tolerance
* ``"abs"``:   max |measured - predicted| <= tolerance
* ``"upper"``: max measured <= tolerance   (e.g. NC1 below a threshold; ``predicted`` is the ideal)
* ``"lower"``: min measured >= tolerance   (e.g. a loss gap that must stay positive)

Every claim names its ``source`` (see ``SOURCES``): what paper A or paper B says as far as we could
read it, a published result (``literature``, with its bibliography key in ``cite``), our own
result (``ours``), or an internal ``consistency`` check that is counted apart from the papers.

A notebook saves its ledger to ``claims.json`` in its results folder (the notebook session of
:mod:`ncbook.pipeline.session` does this in ``finish()``). Whether a failed claim stops the run is
the caller's choice (:meth:`Ledger.assert_all`): the runner makes stored profile runs strict,
while an exploratory run shows its failures and finishes.
"""

from __future__ import annotations

import html
import json
import math
import os
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ncbook._checks import check_choice, check_float
from ncbook._io import write_json

KINDS = ("rel", "abs", "upper", "lower")
SOURCES = ("paper-A", "paper-B", "literature", "ours", "consistency")
COLLAPSE_ROWS = 12  # claims tables longer than this are folded in the rendered page
_TINY = 1e-300


@dataclass(frozen=True)
class Claim:
    claim: str  # the statement checked, in words
    source: str  # who makes the statement: one of SOURCES
    cite: str | None  # bibliography key when source is "literature"
    predicted: Any  # the expected value (number or list); None for "upper"/"lower" bounds
    measured: Any  # what the notebook computed
    tolerance: float  # bound, interpreted by ``kind``
    kind: str  # one of KINDS
    deviation: float  # the quantity compared with ``tolerance``
    passed: bool

    @property
    def verdict(self) -> str:
        return "pass" if self.passed else "FAIL"

    @property
    def expected(self) -> str:
        """The expectation as a reader reads it: a value, or a bound written with ≤ / ≥."""
        if self.kind == "upper":
            return f"≤ {short(self.tolerance)}"
        if self.kind == "lower":
            return f"≥ {short(self.tolerance)}"
        return short(self.predicted)

    @property
    def check(self) -> str:
        """How the measurement was compared: the deviation against the allowed one."""
        if self.kind in ("upper", "lower"):
            return "max ≤ bound" if self.kind == "upper" else "min ≥ bound"
        name = "relative error" if self.kind == "rel" else "absolute error"
        return f"{name} {short(self.deviation)} ≤ {short(self.tolerance)}"


def _as_array(name: str, value: Any) -> np.ndarray:
    array = np.asarray(value, dtype=float)
    if not np.all(np.isfinite(array)):
        raise ValueError(f"`{name}` must be finite, got {value!r}")
    return array


def evaluate(predicted: Any, measured: Any, tolerance: float, kind: str) -> tuple[float, bool]:
    """Return ``(deviation, passed)`` for one comparison; see the module docstring for kinds."""
    check_choice("kind", kind, KINDS)
    tolerance = check_float("tolerance", tolerance, low=0.0)
    got = _as_array("measured", measured)
    if kind == "upper":
        deviation = float(np.max(got))
        return deviation, deviation <= tolerance
    if kind == "lower":
        deviation = float(np.min(got))
        return deviation, deviation >= tolerance
    want = _as_array("predicted", predicted)
    if want.shape != got.shape and want.size != 1:
        raise ValueError(f"`measured` has shape {got.shape} but `predicted` has shape {want.shape}")
    gap = np.abs(got - want)
    if kind == "rel":
        gap = gap / np.maximum(np.abs(want), _TINY)
    deviation = float(np.max(gap)) if gap.size else 0.0
    return deviation, deviation <= tolerance


def _plain(value: Any) -> Any:
    if value is None:
        return None
    array = np.asarray(value)
    if array.dtype.kind in "biuf":
        return array.astype(float).tolist() if array.ndim else float(array)
    return value if isinstance(value, (str, int, float, bool)) else str(value)


def check_source(source: Any, cite: Any) -> None:
    """``source`` must be one of SOURCES; ``literature`` needs a bibliography key in ``cite``."""
    check_choice("source", source, SOURCES)
    if source == "literature" and not (isinstance(cite, str) and cite.strip()):
        raise ValueError("a claim with source 'literature' needs `cite`, its bibliography key")
    if cite is not None and not isinstance(cite, str):
        raise ValueError(f"`cite` must be a bibliography key (a string), got {cite!r}")


@dataclass(repr=False)
class Ledger:
    """Collects :class:`Claim` objects for one notebook run and writes them to ``path``.

    >>> ledger = Ledger("doctest")
    >>> ledger.check("x equals 1/3", source="ours", predicted=1 / 3, measured=0.3333333333,
    ...              tolerance=1e-8).passed
    True
    >>> ledger
    Ledger('doctest': 1 of 1 claims pass)
      pass  x equals 1/3: measured 0.333333, expected 0.333333
    """

    notebook: str
    run_id: str = ""  # identifies the run that wrote the file (the runner checks it is this run)
    claims: list[Claim] = field(default_factory=list)

    def check(
        self,
        claim: str,
        *,
        source: str,
        measured: Any,
        tolerance: float,
        predicted: Any = None,
        kind: str = "rel",
        cite: str | None = None,
    ) -> Claim:
        """Evaluate one claim, record it whatever the outcome, and return it (it never raises on a
        failed claim; see :meth:`assert_all`)."""
        check_source(source, cite)
        if predicted is None and kind in ("rel", "abs"):
            raise ValueError(f"a {kind!r} claim needs `predicted`: {claim!r}")
        deviation, passed = evaluate(predicted, measured, tolerance, kind)
        record = Claim(
            claim=claim, source=source, cite=cite, predicted=_plain(predicted),
            measured=_plain(measured), tolerance=float(tolerance), kind=kind,
            deviation=deviation, passed=bool(passed),
        )
        self.claims.append(record)
        return record

    def check_rows(
        self,
        rows: pd.DataFrame | Iterable[Mapping[str, Any]],
        *,
        claim: str,
        source: str,
        measured: str,
        tolerance: float | str,
        predicted: str | float | None = None,
        kind: str = "rel",
        cite: str | None = None,
    ) -> list[Claim]:
        """One claim per row of a table: ``claim`` is formatted with the row's columns
        (``"NC1 at M={M}"``), ``measured`` names a column, ``predicted`` and ``tolerance`` name a
        column or give a constant.

        >>> ledger = Ledger("doctest")
        >>> rows = pd.DataFrame({"M": [1, 2], "nc1": [1e-9, 3e-3]})
        >>> [c.verdict for c in ledger.check_rows(rows, claim="NC1 at M={M}", source="ours",
        ...                                       measured="nc1", tolerance=1e-6, kind="upper")]
        ['pass', 'FAIL']
        """
        records = rows.to_dict("records") if isinstance(rows, pd.DataFrame) else list(rows)
        if not records:
            raise ValueError(f"`rows` is empty: no claim {claim!r} to check")

        def column_or_value(row: Mapping[str, Any], spec: Any, name: str) -> Any:
            if not isinstance(spec, str):
                return spec
            if spec not in row:
                raise ValueError(f"`{name}` names the column {spec!r}, not among {sorted(row)}")
            return row[spec]

        made = []
        for row in records:
            try:
                text = claim.format(**row)
            except KeyError as error:
                raise ValueError(f"`claim` refers to {error}, not a column of `rows`") from None
            made.append(self.check(
                text, source=source, cite=cite, kind=kind,
                measured=column_or_value(row, measured, "measured"),
                predicted=column_or_value(row, predicted, "predicted"),
                tolerance=column_or_value(row, tolerance, "tolerance"),
            ))
        return made

    def records(self) -> list[dict[str, Any]]:
        return [asdict(c) | {"verdict": c.verdict, "notebook": self.notebook, "run_id": self.run_id}
                for c in self.claims]

    def save(self, path: str | os.PathLike) -> Path:
        """Write the claims to ``path`` (a ``claims.json``) atomically and return it."""
        return write_json(Path(path), self.records())

    def table(self) -> pd.DataFrame:
        """claim / source / expected / measured / check / verdict, one row per claim."""
        return pd.DataFrame([{
            "claim": c.claim,
            "source": c.source + (f" ({c.cite})" if c.cite else ""),
            "expected": c.expected,
            "measured": short(c.measured),
            "check": c.check,
            "verdict": c.verdict,
        } for c in self.claims], columns=["claim", "source", "expected", "measured", "check", "verdict"])

    def summary(self) -> str:
        failed = sum(not c.passed for c in self.claims)
        total = len(self.claims)
        text = f"{total - failed} of {total} claims pass"
        return text + (f"; {failed} FAIL" if failed else "")

    def _repr_html_(self) -> str:
        rows = self.table().to_html(index=False, escape=True, border=0, classes="claims-table")
        head = f"<p><strong>{html.escape(self.summary())}</strong></p>"
        if len(self.claims) > COLLAPSE_ROWS:
            return f"{head}<details><summary>All {len(self.claims)} claims</summary>{rows}</details>"
        return head + rows

    def __repr__(self) -> str:
        """The summary, then one line per claim (what a notebook shows as text/plain)."""
        lines = [f"{c.verdict:>4}  {c.claim}: measured {short(c.measured)}, expected {c.expected}"
                 for c in self.claims]
        return "\n".join([f"Ledger({self.notebook!r}: {self.summary()})", *(f"  {line}" for line in lines)])

    def _repr_markdown_(self) -> str:
        return f"**{self.summary()}**"

    def failures(self) -> list[Claim]:
        return [c for c in self.claims if not c.passed]

    def assert_all(self) -> None:
        """Raise ``AssertionError`` listing every failed claim; do nothing when all pass."""
        if not self.claims:
            raise AssertionError(f"notebook {self.notebook!r} recorded no claims")
        failed = self.failures()
        if failed:
            lines = "; ".join(
                f"{c.claim} (measured {short(c.measured)}, expected {c.expected}, "
                f"{c.kind} tol {c.tolerance:g}, deviation {c.deviation:.3g})"
                for c in failed
            )
            raise AssertionError(f"{len(failed)} of {len(self.claims)} claims failed: {lines}")


def short(value: Any) -> str:
    """A compact display of a number or a list of numbers."""
    if isinstance(value, list):
        flat = np.asarray(value, dtype=float).ravel()
        text = ", ".join(short(float(v)) for v in flat[:6])
        return f"[{text}{', ...' if flat.size > 6 else ''}]"
    if isinstance(value, float):
        if value == 0 or (1e-3 <= abs(value) < 1e5):
            return f"{value:.6g}"
        return f"{value:.3e}" if math.isfinite(value) else str(value)
    return str(value)


def load(path: str | Path) -> list[dict[str, Any]]:
    """Read a ``claims.json`` written by :meth:`Ledger.save`."""
    path = Path(path)
    try:
        records = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ValueError(f"cannot read the claims file {path}: {error}; rerun its notebook") from None
    if not isinstance(records, list) or not all(isinstance(r, dict) for r in records):
        raise ValueError(f"the claims file {path} is not a list of claims; rerun its notebook")
    return records
