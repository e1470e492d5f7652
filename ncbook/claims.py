"""The claims ledger: every numerical check a notebook makes, with its verdict, in one JSON file.

A claim compares a ``measured`` number (or array) with a ``predicted`` one under a tolerance of
one of four kinds:

* ``"rel"``:   max |measured - predicted| / max(|predicted|, tiny) <= tolerance
* ``"abs"``:   max |measured - predicted| <= tolerance
* ``"upper"``: max measured <= tolerance   (e.g. NC1 below a threshold; ``predicted`` is the ideal)
* ``"lower"``: min measured >= tolerance   (e.g. a loss gap that must stay positive)

The notebook saves the ledger to ``results/<profile>/<notebook>/claims.json`` and then calls
:meth:`Ledger.assert_all`, so a failed claim fails the notebook's run and the book build.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ncbook._checks import check_choice, check_float
from ncbook._io import write_json
from ncbook._runtime import results_dir

KINDS = ("rel", "abs", "upper", "lower")
_TINY = 1e-300


@dataclass(frozen=True)
class Claim:
    claim: str  # what the paper (or our analysis) asserts, in words
    paper: str  # "A", "B" or "ours"
    predicted: Any  # the theory's value (number or list of numbers)
    measured: Any  # what the notebook computed
    tolerance: float  # bound, interpreted by ``kind``
    kind: str  # one of KINDS
    deviation: float  # the quantity compared with ``tolerance``
    passed: bool

    @property
    def verdict(self) -> str:
        return "pass" if self.passed else "FAIL"


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
    array = np.asarray(value)
    if array.dtype.kind in "biuf":
        return array.astype(float).tolist() if array.ndim else float(array)
    return value if isinstance(value, (str, int, float, bool, type(None))) else str(value)


@dataclass
class Ledger:
    """Collects :class:`Claim` objects for one notebook run.

    >>> ledger = Ledger("doctest", "smoke")
    >>> ledger.check("x equals 1/3", predicted=1 / 3, measured=0.3333333333, tolerance=1e-8).passed
    True
    """

    notebook: str
    profile: str
    paper: str = "A"
    claims: list[Claim] = field(default_factory=list)

    def check(
        self,
        claim: str,
        *,
        predicted: Any,
        measured: Any,
        tolerance: float,
        kind: str = "rel",
        paper: str | None = None,
    ) -> Claim:
        """Evaluate one claim, record it, and return it (it does not raise; see ``assert_all``)."""
        deviation, passed = evaluate(predicted, measured, tolerance, kind)
        record = Claim(
            claim=claim,
            paper=paper or self.paper,
            predicted=_plain(predicted),
            measured=_plain(measured),
            tolerance=float(tolerance),
            kind=kind,
            deviation=deviation,
            passed=bool(passed),
        )
        self.claims.append(record)
        return record

    def records(self) -> list[dict[str, Any]]:
        return [asdict(c) | {"verdict": c.verdict, "notebook": self.notebook} for c in self.claims]

    def save(self) -> Path:
        """Write ``results/<profile>/<notebook>/claims.json`` (atomically) and return its path."""
        return write_json(results_dir(self.profile, self.notebook) / "claims.json", self.records())

    def table(self) -> pd.DataFrame:
        """claim / predicted / measured / tolerance / verdict, one row per claim, for display."""
        frame = pd.DataFrame(self.records())
        if frame.empty:
            return frame
        frame["predicted"] = frame["predicted"].map(short)
        frame["measured"] = frame["measured"].map(short)
        frame["tolerance"] = [f"{k} {t:.1e}" for k, t in zip(frame["kind"], frame["tolerance"])]
        return frame[["claim", "paper", "predicted", "measured", "tolerance", "verdict"]]

    def assert_all(self) -> None:
        """Raise ``AssertionError`` listing every failed claim; do nothing when all pass."""
        if not self.claims:
            raise AssertionError(f"notebook {self.notebook!r} recorded no claims")
        failed = [c for c in self.claims if not c.passed]
        if failed:
            lines = "; ".join(
                f"{c.claim} (measured {short(c.measured)}, predicted {short(c.predicted)}, "
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
    return json.loads(Path(path).read_text(encoding="utf-8"))
