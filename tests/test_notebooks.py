"""Every notebook: one `parameters` cell, no definitions, parses with jupytext, executes with the
smoke profile through papermill, and passes every claim of its ledger."""

from __future__ import annotations

import json
import re
import subprocess
import sys

import jupytext
import pytest
from conftest import NOTEBOOKS, ROOT, MakeRun

DEFINITION = re.compile(r"^\s*(async\s+def|def|class)\s", re.MULTILINE)


def _ids(paths):
    return [p.stem for p in paths]


def test_there_are_notebooks():
    assert any(p.stem == "00_overview" for p in NOTEBOOKS)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=_ids(NOTEBOOKS))
def test_notebook_shape(path):
    notebook = jupytext.read(path)
    code = [cell for cell in notebook.cells if cell.cell_type == "code"]
    tagged = [cell for cell in code if "parameters" in cell.metadata.get("tags", [])]
    assert len(tagged) == 1, f"{path.name}: expected exactly one `parameters` cell, got {len(tagged)}"
    for name in ("profile", "device", "seed"):
        assert re.search(rf"^{name}\s*=", tagged[0].source, re.MULTILINE), f"{path.name}: no `{name}`"
    for cell in code:
        assert not DEFINITION.search(cell.source), f"{path.name}: move def/class into ncbook"
    assert notebook.cells[0].cell_type == "markdown" and notebook.cells[0].source.startswith("# ")
    assert "ledger.assert_all()" in code[-1].source or "nb.finish()" in code[-1].source, \
        f"{path.name}: the last cell must finish the claims (nb.finish() or ledger.assert_all())"


@pytest.mark.slow
@pytest.mark.parametrize("path", NOTEBOOKS, ids=_ids(NOTEBOOKS))
def test_notebook_executes_and_its_claims_pass(path, executed_notebooks: MakeRun):
    executed = ROOT / "_executed" / "smoke" / f"{path.stem}.ipynb"
    assert executed.is_file(), f"{path.name} did not execute:\n{executed_notebooks.output[-4000:]}"
    node = json.loads(executed.read_text())
    cells = node["cells"]
    assert not [c for c in cells if "injected-parameters" in c.get("metadata", {}).get("tags", [])]
    assert "".join(cells[1]["source"]).startswith("```{admonition} Run: smoke · ")
    record = json.loads((ROOT / "results" / "smoke" / path.stem / "provenance.json").read_text())
    assert record["run_id"] == node["metadata"]["ncbook"]["run_id"]
    errors = [o for c in cells for o in c.get("outputs", []) if o.get("output_type") == "error"]
    assert not errors, f"{path.name}: {errors[0]['ename']}: {errors[0]['evalue']}"
    ledger = ROOT / "results" / "smoke" / path.stem / "claims.json"
    claims = json.loads(ledger.read_text())
    assert claims, f"{path.name}: empty ledger"
    failed = [c["claim"] for c in claims if not c["passed"]]
    assert not failed, f"{path.name}: failed claims {failed}"
    for claim in claims:
        assert {"claim", "predicted", "measured", "tolerance", "passed"} <= set(claim)


@pytest.mark.slow
@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("steps", "-5", r"ValueError: `steps` must be an integer >= 1, got -5"),
        ("device", "tpu", r"ValueError: `device` must be one of 'auto', 'cpu', 'cuda', 'cuda:N'; got 'tpu'"),
        ("seed", "-1", r"ValueError: `seed` must be an integer .*got -1"),
    ],
)
def test_bad_parameter_fails_with_one_line(tmp_path, name, value, message):
    done = subprocess.run(
        [sys.executable, "-m", "ncbook.run_notebook", "notebooks/00_overview.py",
         "--output-dir", str(tmp_path), "-p", name, value],
        cwd=ROOT, capture_output=True, text=True,
    )
    assert done.returncode == 1
    first = next(line for line in done.stderr.splitlines() if "FAILED" in line)
    assert re.search(message, first), done.stderr
    assert not (tmp_path / "00_overview.ipynb").exists()
    assert (tmp_path / "00_overview.failed.ipynb").exists()
