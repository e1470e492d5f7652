from __future__ import annotations

import json

import numpy as np
import pytest

import ncbook as nc
from ncbook.claims import Ledger, evaluate


@pytest.mark.parametrize(
    ("predicted", "measured", "tolerance", "kind", "passed"),
    [
        (1.0, 1.0 + 1e-9, 1e-8, "rel", True),
        (1.0, 1.0 + 1e-7, 1e-8, "rel", False),
        (1e-12, 2e-12, 1e-8, "abs", True),
        (0.0, 3e-5, 1e-4, "upper", True),
        (0.0, 3e-3, 1e-4, "upper", False),
        (1e3, 2e3, 1e3, "lower", True),
        (1e3, 5e2, 1e3, "lower", False),
        ([1.0, 2.0], [1.0, 2.1], 0.01, "rel", False),
        ([1.0, 2.0], [1.0, 2.0 + 1e-12], 1e-9, "rel", True),
    ],
)
def test_evaluate(predicted, measured, tolerance, kind, passed):
    assert evaluate(predicted, measured, tolerance, kind)[1] is passed


def test_relative_deviation_is_reported():
    deviation, _ = evaluate(2.0, 2.2, 0.5, "rel")
    assert deviation == pytest.approx(0.1)


def test_bad_kind_and_tolerance_and_shapes():
    with pytest.raises(ValueError, match="`kind` must be one of"):
        evaluate(1, 1, 0.1, "close")
    with pytest.raises(ValueError, match="`tolerance` must be a number >= 0.0"):
        evaluate(1, 1, -0.1, "rel")
    with pytest.raises(ValueError, match="`measured` has shape"):
        evaluate([1, 2], [1, 2, 3], 0.1, "rel")
    with pytest.raises(ValueError, match="`measured` must be finite"):
        evaluate(1, float("nan"), 0.1, "rel")


def test_ledger_saves_json_and_asserts(tmp_path, monkeypatch):
    monkeypatch.setenv("NCBOOK_RESULTS", str(tmp_path))
    ledger = Ledger("demo", "smoke", paper="B")
    ledger.check("a holds", predicted=1.0, measured=1.0, tolerance=1e-9)
    ledger.check("b holds", predicted=np.array([1.0, 2.0]), measured=[1.0, 2.5], tolerance=1e-3)
    path = ledger.save()
    assert path == tmp_path / "smoke" / "demo" / "claims.json"
    records = json.loads(path.read_text())
    assert [r["passed"] for r in records] == [True, False]
    assert records[1]["predicted"] == [1.0, 2.0] and records[0]["paper"] == "B"
    assert list(ledger.table()["verdict"]) == ["pass", "FAIL"]
    with pytest.raises(AssertionError, match="1 of 2 claims failed: b holds"):
        ledger.assert_all()


def test_empty_ledger_fails():
    with pytest.raises(AssertionError, match="recorded no claims"):
        Ledger("empty", "smoke").assert_all()


def test_profiles_save_result_rejects_unknown_suffix(tmp_path, monkeypatch):
    monkeypatch.setenv("NCBOOK_RESULTS", str(tmp_path))
    with pytest.raises(ValueError, match="`name` must end in .csv"):
        nc.profiles.save_result("smoke", "demo", "table.txt", {})
