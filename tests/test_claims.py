from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

import ncbook as nc
from ncbook.claims import Ledger, evaluate, load


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


def test_ledger_saves_json_and_asserts(tmp_path):
    ledger = Ledger("demo", run_id="r1")
    ledger.check("a holds", source="paper-B", predicted=1.0, measured=1.0, tolerance=1e-9)
    ledger.check("b holds", source="ours", predicted=np.array([1.0, 2.0]), measured=[1.0, 2.5],
                 tolerance=1e-3)
    path = ledger.save(tmp_path / "claims.json")
    records = json.loads(path.read_text())
    assert [r["passed"] for r in records] == [True, False]
    assert records[1]["predicted"] == [1.0, 2.0] and records[0]["source"] == "paper-B"
    assert {r["run_id"] for r in records} == {"r1"}
    assert list(ledger.table()["verdict"]) == ["pass", "FAIL"]
    with pytest.raises(AssertionError, match="1 of 2 claims failed: b holds"):
        ledger.assert_all()


def test_sources_are_checked():
    ledger = Ledger("demo")
    with pytest.raises(ValueError, match="`source` must be one of"):
        ledger.check("x", source="A", predicted=1, measured=1, tolerance=0)
    with pytest.raises(ValueError, match="needs `cite`"):
        ledger.check("x", source="literature", predicted=1, measured=1, tolerance=0)
    with pytest.raises(ValueError, match="needs `predicted`"):
        ledger.check("x", source="ours", measured=1, tolerance=0)
    made = ledger.check("x", source="literature", cite="garrod2024persistence", predicted=1,
                        measured=1, tolerance=0)
    assert made.passed and ledger.table()["source"][0] == "literature (garrod2024persistence)"


def test_table_shows_bounds_and_full_claim_text():
    ledger = Ledger("demo")
    long = "NC1 of the last-layer features stays below the bound at every depth we ran, " * 2
    ledger.check(long, source="ours", measured=[1e-9, 2e-9], tolerance=1e-6, kind="upper")
    ledger.check("gap", source="ours", measured=0.5, tolerance=0.1, kind="lower")
    table = ledger.table()
    assert list(table.columns) == ["claim", "source", "expected", "measured", "check", "verdict"]
    assert table["claim"][0] == long
    assert list(table["expected"]) == ["≤ 1.000e-06", "≥ 0.1"]
    html = ledger._repr_html_()
    assert html.startswith("<p><strong>2 of 2 claims pass</strong></p>") and "Claim(" not in html


def test_long_tables_fold_and_rows_make_claims():
    ledger = Ledger("demo")
    rows = pd.DataFrame({"M": range(1, 21), "nc1": [1e-9] * 19 + [1.0], "tol": [1e-6] * 20})
    made = ledger.check_rows(rows, claim="NC1 at M={M}", source="ours", measured="nc1",
                             tolerance="tol", kind="upper")
    assert [c.claim for c in made][:2] == ["NC1 at M=1", "NC1 at M=2"] and not made[-1].passed
    assert "<details>" in ledger._repr_html_() and "19 of 20 claims pass; 1 FAIL" in ledger.summary()
    with pytest.raises(ValueError, match="`claim` refers to 'depth'"):
        ledger.check_rows(rows, claim="at {depth}", source="ours", measured="nc1", tolerance=1)
    with pytest.raises(ValueError, match="`measured` names the column 'x'"):
        ledger.check_rows(rows, claim="c", source="ours", measured="x", tolerance=1)
    with pytest.raises(ValueError, match="`rows` is empty"):
        ledger.check_rows([], claim="c", source="ours", measured="x", tolerance=1)


def test_text_repr_is_the_summary_then_one_line_per_claim():
    ledger = Ledger("demo")
    ledger.check("NC1 is small", source="ours", measured=[1e-9, 2e-9], tolerance=1e-6, kind="upper")
    ledger.check("loss equals f*", source="ours", predicted=0.5, measured=0.7, tolerance=0.01)
    assert repr(ledger).splitlines() == [
        "Ledger('demo': 1 of 2 claims pass; 1 FAIL)",
        "  pass  NC1 is small: measured [1.000e-09, 2.000e-09], expected ≤ 1.000e-06",
        "  FAIL  loss equals f*: measured 0.7, expected 0.5",
    ]
    assert repr(Ledger("empty")) == "Ledger('empty': 0 of 0 claims pass)"


def test_unreadable_claims_file_is_named(tmp_path):
    bad = tmp_path / "claims.json"
    bad.write_text("{not json")
    with pytest.raises(ValueError, match="cannot read the claims file .*claims.json"):
        load(bad)


def test_empty_ledger_fails():
    with pytest.raises(AssertionError, match="recorded no claims"):
        Ledger("empty").assert_all()


def test_profiles_save_result_rejects_unknown_suffix(tmp_path, monkeypatch):
    monkeypatch.setenv("NCBOOK_RESULTS", str(tmp_path))
    with pytest.raises(ValueError, match="`name` must end in .csv"):
        nc.profiles.save_result("smoke", "demo", "table.txt", {})
