"""A stored result depends on the ncbook sources its run imported: a change there makes it stale,
a change elsewhere in the package does not."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from conftest import ROOT

from ncbook import _runtime
from ncbook.pipeline import provenance


@pytest.fixture
def package(tmp_path, monkeypatch):
    """A stand-in ncbook package of two modules that code hashes read instead of the real one."""
    folder = tmp_path / "ncbook"
    folder.mkdir()
    (folder / "a.py").write_text("A = 1\n")
    (folder / "b.py").write_text("B = 1\n")
    monkeypatch.setattr(_runtime, "__file__", str(folder / "_runtime.py"))
    return folder


def test_hash_covers_only_the_listed_files(package):
    only_a, everything = _runtime.code_hash(["a.py"]), _runtime.code_hash()
    (package / "b.py").write_text("B = 2\n")
    assert _runtime.code_hash(["a.py"]) == only_a and _runtime.code_hash() != everything
    (package / "a.py").write_text("A = 2\n")
    assert _runtime.code_hash(["a.py"]) != only_a
    (package / "a.py").unlink()
    assert _runtime.code_hash(["a.py"]) != only_a  # a vanished source is a change too


def test_a_run_records_the_modules_it_imported():
    code = ("import json, ncbook.claims; from ncbook._runtime import loaded_code_files; "
            "print(json.dumps(loaded_code_files()))")
    files = json.loads(subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=True,
                                      capture_output=True, text=True).stdout)
    assert "claims.py" in files and "__init__.py" in files
    assert not [f for f in files if f.startswith(("models/", "pipeline/sweep"))]


def test_stale_only_when_an_imported_source_changes(package):
    record = {"notebook": "00_overview", "profile": "smoke",
              **provenance.fingerprint(ROOT, "00_overview", "smoke", ["a.py"])}
    assert provenance.stale_reasons(record, ROOT) == []
    (package / "b.py").write_text("B = 2\n")
    assert provenance.stale_reasons(record, ROOT) == []
    (package / "a.py").write_text("A = 2\n")
    assert provenance.stale_reasons(record, ROOT) == ["ncbook code"]


def test_parameters_hash_covers_only_the_notebooks_own_sections(tmp_path):
    (tmp_path / "notebooks").mkdir()
    (tmp_path / "notebooks" / "a.py").write_text("x = 1\n")
    params = tmp_path / "params" / "smoke.yml"
    params.parent.mkdir()
    params.write_text("_all: {device: cpu}\na: {steps: 10}\nb: {steps: 20}\n")
    before = provenance.snapshot(tmp_path, "a", "smoke")
    params.write_text("_all: {device: cpu}\na: {steps: 10}\nb: {steps: 30}\n")
    assert provenance.snapshot(tmp_path, "a", "smoke")["params_hash"] == before["params_hash"]
    params.write_text("_all: {device: cpu}\na: {steps: 11}\nb: {steps: 30}\n")
    assert provenance.snapshot(tmp_path, "a", "smoke")["params_hash"] != before["params_hash"]


def test_a_run_is_fingerprinted_by_the_code_it_started_with(package):
    start = provenance.snapshot(ROOT, "00_overview", "smoke")
    (package / "a.py").write_text("A = 2\n")  # edited while the run goes on
    record = {"notebook": "00_overview", "profile": "smoke",
              **provenance.fingerprint(ROOT, "00_overview", "smoke", ["a.py"], start)}
    assert provenance.stale_reasons(record, ROOT) == ["ncbook code"]


def test_commit_is_taken_at_the_start_and_ignores_rewritten_results(tmp_path):
    def git(*args):
        subprocess.run(["git", *args], cwd=tmp_path, check=True, capture_output=True)

    git("init", "-q")
    git("config", "user.email", "t@example.org")
    git("config", "user.name", "t")
    (tmp_path / "results").mkdir()
    (tmp_path / "results" / "claims.json").write_text("[]")
    (tmp_path / "code.py").write_text("x = 1\n")
    git("add", ".")
    git("commit", "-qm", "first")
    start = provenance.snapshot(tmp_path, "a", "smoke")
    assert "+dirty" not in start["commit"] and start["commit"] != "unknown"
    (tmp_path / "results" / "claims.json").write_text("[1]")  # another run publishing its results
    assert provenance.git_commit(tmp_path) == start["commit"]
    (tmp_path / "code.py").write_text("x = 2\n")  # an edited input is dirty
    assert provenance.git_commit(tmp_path) == start["commit"] + "+dirty"
