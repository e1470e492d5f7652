"""`python -m ncbook.pipeline.book prepare`: which executed notebook each chapter renders, and the report."""

from __future__ import annotations

import json

from ncbook.pipeline.book import chapter_title, collect_claims, copy_executed, mathjax_source, report_markdown


def _claim(text: str, passed: bool) -> dict:
    return {"claim": text, "paper": "A", "predicted": 1.0, "measured": 1.0 if passed else 2.0,
            "tolerance": 1e-6, "kind": "rel", "deviation": 0.0 if passed else 1.0, "passed": passed}


def _tree(root):
    (root / "notebooks").mkdir()
    for stem in ("a", "b"):
        (root / "notebooks" / f"{stem}.py").write_text("# %%\n")
        (root / "_executed" / "smoke").mkdir(parents=True, exist_ok=True)
        (root / "_executed" / "smoke" / f"{stem}.ipynb").write_text("{}")
        (root / "results" / "smoke" / stem).mkdir(parents=True)
        (root / "results" / "smoke" / stem / "claims.json").write_text(
            json.dumps([_claim(f"{stem} smoke", True)]))
    (root / "results" / "full" / "b").mkdir(parents=True)
    (root / "results" / "full" / "b" / "b.ipynb").write_text('{"full": true}')
    (root / "results" / "full" / "b" / "claims.json").write_text(
        json.dumps([_claim("b full one", True), _claim("b full two", False)]))


def test_stored_full_runs_win_over_smoke(tmp_path):
    _tree(tmp_path)
    chosen = copy_executed("smoke", tmp_path)
    assert chosen == {"a": "smoke", "b": "full"}
    assert (tmp_path / "book" / "executed" / "b.ipynb").read_text() == '{"full": true}'


def test_report_groups_claims_by_chapter_with_totals(tmp_path):
    _tree(tmp_path)
    claims = collect_claims(copy_executed("smoke", tmp_path), tmp_path)
    assert sorted(claims["claim"]) == ["a smoke", "b full one", "b full two"]
    text = report_markdown(claims, {"a": "Chapter A"})
    assert "**2 of 3 claims pass.**" in text
    assert "## Chapter A" in text and "## b" in text
    assert "{doc}`Chapter <executed/a>`: 1 of 1 claims pass (smoke profile)" in text
    assert "1 of 2 claims pass (full profile)" in text and "**FAIL**" in text


def test_mathjax_comes_from_an_installed_package():
    assert (mathjax_source() / "tex-chtml.js").is_file()


def test_one_setting_turns_every_repository_button_on_or_off():
    import importlib.util

    from conftest import ROOT

    spec = importlib.util.spec_from_file_location(
        "repository_buttons", ROOT / "book" / "_ext" / "repository_buttons.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    on = module.enable_buttons({"repository_url": "https://example.org/r",
                                "launch_buttons": {"binderhub_url": ""}})
    assert all(on[b] for b in module.BUTTONS)
    assert on["launch_buttons"]["binderhub_url"] == "https://mybinder.org"
    off = module.enable_buttons({"repository_url": "", "launch_buttons": {"binderhub_url": "x"}})
    assert not any(off[b] for b in module.BUTTONS) and "binderhub_url" not in off["launch_buttons"]


def test_chapter_title_is_the_first_heading(tmp_path):
    notebook = tmp_path / "x.ipynb"
    notebook.write_text(json.dumps({"cells": [{"cell_type": "markdown", "source": ["# A title\n", "text"]}]}))
    assert chapter_title(notebook) == "A title"
    notebook.write_text(json.dumps({"cells": [{"cell_type": "code", "source": "x = 1"}]}))
    assert chapter_title(notebook) == "x"
