"""`python -m ncbook.pipeline.book prepare`: which executed notebook each chapter renders, and the report."""

from __future__ import annotations

import json

import pytest

from ncbook.pipeline import provenance
from ncbook.pipeline.book import chapter_title, copy_executed, find_chapter, mathjax_source, prepare


def _claim(text: str, passed: bool) -> dict:
    return {"claim": text, "source": "paper-A", "predicted": 1.0, "measured": 1.0 if passed else 2.0,
            "tolerance": 1e-6, "kind": "rel", "deviation": 0.0 if passed else 1.0, "passed": passed}


def _run(root, profile: str, stem: str, notebook, claims: list[dict], run_id: str) -> None:
    """What the runner leaves behind for one finished run."""
    folder = root / "results" / profile / stem
    folder.mkdir(parents=True, exist_ok=True)
    notebook.parent.mkdir(parents=True, exist_ok=True)
    notebook.write_text(json.dumps({"cells": [{"cell_type": "markdown", "metadata": {},
                                               "source": f"# {stem} {profile}"}],
                                    "metadata": {"ncbook": {"run_id": run_id}},
                                    "nbformat": 4, "nbformat_minor": 4}))
    (folder / "claims.json").write_text(json.dumps(claims))
    record = {"notebook": stem, "profile": profile, "run_id": run_id, "commit": "abc1234", "seed": 0,
              "device": "cpu", "wall_time_s": 1.0, **provenance.fingerprint(root, stem, profile)}
    (folder / "provenance.json").write_text(json.dumps(record))


def _tree(root):
    (root / "notebooks").mkdir()
    for stem in ("a", "b"):
        (root / "notebooks" / f"{stem}.py").write_text("# %%\n")
        _run(root, "smoke", stem, root / "_executed" / "smoke" / f"{stem}.ipynb",
             [_claim(f"{stem} smoke", True)], f"{stem}-smoke")
    _run(root, "full", "b", root / "results" / "full" / "b" / "b.ipynb",
         [_claim("b full one", True), _claim("b full two", False)], "b-full")


def test_stored_full_runs_win_over_smoke_and_the_note_is_redrawn(tmp_path):
    _tree(tmp_path)
    chapters = [find_chapter(stem, "smoke", tmp_path) for stem in ("a", "b")]
    assert [c.profile for c in chapters] == ["smoke", "full"] and not any(c.stale for c in chapters)
    copy_executed(chapters, tmp_path)
    cells = json.loads((tmp_path / "book" / "executed" / "b.ipynb").read_text())["cells"]
    assert "".join(cells[0]["source"]) == "# b full"
    assert "Run: full · CPU · seed 0 · abc1234 · 1 s" in "".join(cells[1]["source"])


def test_a_notebook_without_the_results_of_its_run_is_refused(tmp_path):
    _tree(tmp_path)
    (tmp_path / "results" / "smoke" / "a" / "claims.json").unlink()
    with pytest.raises(ValueError, match=r"a.ipynb has no matching claims.json and provenance.json"):
        find_chapter("a", "smoke", tmp_path)


def test_report_is_written_from_the_rendered_runs(tmp_path, monkeypatch, capsys):
    _tree(tmp_path)
    monkeypatch.chdir(tmp_path)
    (tmp_path / "pyproject.toml").write_text('name = "ncbook"\n')
    monkeypatch.setattr("ncbook.pipeline.book.copy_mathjax", lambda root: None)
    prepare("smoke")
    text = (tmp_path / "book" / "report.md").read_text()
    assert "**2 of 3 claims pass.**" in text
    assert "| a smoke | 1 | 1 | 0 | smoke |" in text and "| b full | 2 | 1 | 1 | full |" in text
    assert "book: 2 notebooks (1 from stored full runs), 3 claims" in capsys.readouterr().out


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
