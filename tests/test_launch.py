"""Running a chapter elsewhere: the install cell (ncbook.colab) in every notebook, and
`jupytext --sync` leaving the committed notebook sources unchanged."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import NOTEBOOKS, ROOT

from ncbook import colab

JUPYTEXT = Path(sys.executable).with_name("jupytext")


def test_the_install_cell_is_hidden_and_follows_the_repository_setting():
    cell = colab.install_cell("https://github.com/owner/ncbook")
    assert cell.startswith('# %% tags=["remove-cell"]\n')
    assert '"ncbook @ git+https://github.com/owner/ncbook"' in cell
    assert "git+" not in colab.install_cell("")  # no URL: no guess


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=[n.stem for n in NOTEBOOKS])
def test_every_notebook_opens_with_the_install_cell(notebook: Path):
    cell = colab.install_cell(colab.repository_url())
    assert cell in notebook.read_text(encoding="utf-8"), (
        f"{notebook.name}: paste the output of `python -m ncbook.colab` as its first code cell")


@pytest.mark.parametrize("url", ["", "https://github.com/owner/ncbook"])
def test_the_install_cell_does_nothing_where_ncbook_is_installed(url):
    done = subprocess.run([sys.executable, "-c", colab.install_cell(url)], capture_output=True, text=True,
                          cwd=ROOT)
    assert done.returncode == 0, done.stderr


def test_without_a_repository_the_cell_says_what_to_install():
    code = colab.install_cell("").replace('find_spec("ncbook")', 'find_spec("ncbook_not_installed")')
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode != 0 and "ncbook is not installed: run `pip install -e .`" in done.stderr


def test_bad_settings_raise(tmp_path):
    with pytest.raises(ValueError, match="must be an https://github.com/<owner>/<name> address or empty"):
        colab.install_cell("https://gitlab.com/o/r")
    with pytest.raises(ValueError, match="does not exist"):
        colab.repository_url(tmp_path / "missing.yml")
    config = tmp_path / "_config.yml"
    config.write_text("repository: [1, 2]\n")
    with pytest.raises(ValueError, match="`repository` must be a mapping"):
        colab.repository_url(config)
    config.write_text("repository:\n  url: https://github.com/o/r/\n")
    assert colab.repository_url(config) == "https://github.com/o/r"


@pytest.mark.skipif(not JUPYTEXT.exists(), reason="jupytext is not installed (the `book` extra)")
def test_jupytext_sync_leaves_every_notebook_source_unchanged(tmp_path):
    shutil.copy(ROOT / "jupytext.toml", tmp_path)
    copies = [shutil.copy(notebook, tmp_path) for notebook in NOTEBOOKS]
    done = subprocess.run([str(JUPYTEXT), "--sync", *map(str, copies)], capture_output=True, text=True,
                          cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    changed = [n.name for n in NOTEBOOKS if (tmp_path / n.name).read_text() != n.read_text()]
    assert not changed, f"`jupytext --sync` rewrites {changed}: align their header with jupytext.toml"
    assert all((tmp_path / n.name).with_suffix(".ipynb").is_file() for n in NOTEBOOKS)
