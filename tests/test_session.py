"""The notebook session: name, results folder, strictness and claims come from the runner's
environment; a notebook opened by hand writes to a scratch folder."""

from __future__ import annotations

import json

import pytest

import ncbook as nc
from ncbook.pipeline import session


@pytest.fixture
def runner_env(tmp_path, monkeypatch):
    for name in (session.ENV_NOTEBOOK, session.ENV_RUN_DIR, session.ENV_STRICT, session.ENV_RUN_ID):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.delenv("JPY_SESSION_NAME", raising=False)
    monkeypatch.setenv("NCBOOK_RESULTS", str(tmp_path / "results"))
    return tmp_path


def test_strict_run_writes_claims_and_raises(runner_env, monkeypatch):
    run_dir = runner_env / "run"
    monkeypatch.setenv(session.ENV_NOTEBOOK, "12_demo")
    monkeypatch.setenv(session.ENV_RUN_DIR, str(run_dir))
    monkeypatch.setenv(session.ENV_STRICT, "1")
    monkeypatch.setenv(session.ENV_RUN_ID, "abc")
    nb = nc.notebook(profile="smoke", device="cpu", seed=3)
    assert (nb.name, nb.results, nb.strict, str(nb.device)) == ("12_demo", run_dir, True, "cpu")
    assert nb.check("one", source="ours", measured=1.0, predicted=1.0, tolerance=0) is None
    nb.check("two", source="ours", measured=2.0, predicted=1.0, tolerance=0)
    with pytest.raises(AssertionError, match="1 of 2 claims failed: two"):
        nb.finish()
    records = json.loads((run_dir / "claims.json").read_text())
    assert [r["passed"] for r in records] == [True, False] and records[0]["run_id"] == "abc"
    assert repr(nb) == "<notebook 12_demo: smoke, cpu, seed 3>"


def test_hand_run_is_not_strict_and_uses_scratch(runner_env, capsys):
    nb = nc.notebook(profile="smoke", device="cpu", name="13_demo")
    assert nb.results == runner_env / "results" / "smoke" / "_scratch" / "13_demo" and not nb.strict
    nb.check("fails", source="ours", measured=2.0, tolerance=1.0, kind="upper")
    nb.finish()  # an exploratory run shows its failures and finishes
    assert (nb.results / "claims.json").is_file()
    assert nb.save("table.json", {"a": 1}).read_text().strip().startswith("{")


def test_bad_parameters_are_named(runner_env):
    with pytest.raises(ValueError, match="`profile` must be one of"):
        nc.notebook(profile="huge", name="x")
    with pytest.raises(ValueError, match="`seed` must be"):
        nc.notebook(profile="smoke", seed=-1, name="x")
    with pytest.raises(ValueError, match="`device` must be one of"):
        nc.notebook(profile="smoke", device="tpu", name="x")
    with pytest.raises(ValueError, match="set NCBOOK_NOTEBOOK=<its stem> .*or pass `name=`"):
        nc.notebook(profile="smoke")
    nb = nc.notebook(profile="smoke", name="x")
    with pytest.raises(ValueError, match="`filename` must be a plain file name"):
        nb.save("../x.json", {})
    with pytest.raises(ValueError, match="`filename` must end in .csv"):
        nb.save("x.txt", {})
    with pytest.raises(AssertionError, match="recorded no claims"):
        nb.finish()


def test_name_from_jupyter_server(runner_env, monkeypatch):
    monkeypatch.setenv("JPY_SESSION_NAME", "/home/me/notebooks/21_synthetic_balanced.ipynb")
    assert nc.notebook(profile="smoke", device="cpu").name == "21_synthetic_balanced"
