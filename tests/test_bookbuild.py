"""`python -m ncbook.pipeline.book prepare`: which executed notebook each chapter renders, and the report."""

from __future__ import annotations

import doctest
import html as html_module
import importlib.util
import json
import re

import pytest
from conftest import ROOT
from test_book import _open, _pages, browser, served_book  # noqa: F401 - the browser fixtures

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
    copy_executed(chapters, tmp_path, {})
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


def _extension(name: str):
    spec = importlib.util.spec_from_file_location(name, ROOT / "book" / "_ext" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("name", ["repository_buttons", "page_assets", "source_tags"])
def test_book_extension_examples_hold(name):
    failed, attempted = doctest.testmod(_extension(name))
    assert attempted and not failed


def test_one_setting_turns_every_repository_button_on_or_off():
    module = _extension("repository_buttons")
    on = module.enable_buttons({"repository_url": "https://example.org/r",
                                "launch_buttons": {"binderhub_url": ""}})
    assert all(on[b] for b in module.BUTTONS)
    assert on["launch_buttons"]["binderhub_url"] == "https://mybinder.org"
    assert on["launch_buttons"]["colab_url"] == "https://colab.research.google.com"
    off = module.enable_buttons({"repository_url": "", "launch_buttons": {"binderhub_url": "x"}})
    assert not any(off[b] for b in module.BUTTONS) and "binderhub_url" not in off["launch_buttons"]


def test_chapter_launch_buttons_open_the_notebook_source_and_other_pages_keep_theirs():
    url = _extension("repository_buttons").chapter_launch_url
    binder = "https://mybinder.org/v2/gh/o/r/main?urlpath=lab/tree/book/intro.md"
    assert url("Binder", binder, "intro", "gh-pages") == binder
    assert url("Binder", binder, "executed/31_x", "gh-pages").endswith("?urlpath=lab/tree/notebooks/31_x.py")
    assert url("Colab", "https://colab.research.google.com/github/o/r/blob/main/book/executed/x.ipynb",
               "executed/x", "pages") == "https://colab.research.google.com/github/o/r/blob/pages/_sources/executed/x.ipynb"


def test_source_tags_accept_only_the_four_kinds():
    kind = _extension("source_tags").tag_kind
    assert [kind(t) for t in ("paper: caption of Figure 1", "literature: garrod2024persistence",
                              "ours: derived and verified here", "spec: 3.1", "paper A")] == [
        "paper", "literature", "ours", None, None]


def test_chapter_title_is_the_first_heading(tmp_path):
    notebook = tmp_path / "x.ipynb"
    notebook.write_text(json.dumps({"cells": [{"cell_type": "markdown", "source": ["# A title\n", "text"]}]}))
    assert chapter_title(notebook) == "A title"
    notebook.write_text(json.dumps({"cells": [{"cell_type": "code", "source": "x = 1"}]}))
    assert chapter_title(notebook) == "x"


# ---------------------------------------------------------------------------------------------------
# The built book as a reader sees it (slow: they build the book once through conftest's `built_book`).
# The browser fixtures are shared with tests/test_book.py.

_TAGS = re.compile(r"<[^>]+>")
_BOX_TITLES = ("Paper A, as reconstructed", "Paper B, as reconstructed", "Garrod & Keating (2025)",
               "Súkeník, Mondelli & Lampert (2023)", "Our result", "Our conjecture", "Who says what")


def _html(built_book, page: str) -> str:
    return (built_book / page).read_text(encoding="utf-8")


def _text(html: str) -> str:
    body = html.split('<main', 1)[-1]
    body = re.sub(r"<(script|style)\b.*?</\1>", " ", body, flags=re.S)
    return _TAGS.sub(" ", body)


@pytest.mark.slow
def test_pages_show_no_plumbing_and_no_internal_notes(built_book):
    problems = []
    for page in _pages(built_book):
        html = _html(built_book, page)
        text = _text(html)
        if "tag_injected-parameters" in html or "# Parameters\n" in text:
            problems.append(f"{page}: papermill's injected-parameters cell is shown")
        if "Claim(" in text:
            problems.append(f"{page}: an object repr `Claim(...)` is shown")
        for note in re.findall(r"\bthe spec\b|paper-[ab]\.md|shared/theory", text):
            problems.append(f"{page}: points to internal notes ({note!r})")
        if "(?)" in text:
            problems.append(f"{page}: a '(?)' is left in the text")
    assert not problems, "\n".join(problems[:40])


@pytest.mark.slow
def test_notation_page_defines_every_symbol_and_acronym_and_the_intro_links_it(built_book):
    text = _text(_html(built_book, "notation.html"))
    for term in ("ETF", "OF", "GOF", "UFM", "DUFM", "DNC", "SRG", "NC1", "NC4", "Orthoplex"):
        assert re.search(rf"\b{term}\b", text), term
    for symbol in (r"\beta^*_M", r"\phi_{\max}", r"\tau", r"\bar\lambda", r"\lambda_{W_m}", r"\lambda_H"):
        assert symbol in text, symbol
    assert 'href="notation.html' in _html(built_book, "intro.html")


@pytest.mark.slow
def test_chapters_sections_and_figures_are_numbered(built_book):
    chapters = [page for page in _pages(built_book)
                if page.startswith(("executed/", "parts/")) or page == "notation.html"]
    unnumbered = [page for page in chapters
                  if not re.search(r'<h1>\s*<span class="section-number">\d+\.', _html(built_book, page))]
    assert not unnumbered, f"chapters without a number: {unnumbered}"
    captions = [page for page in _pages(built_book) if "<figcaption" in _html(built_book, page)]
    assert captions
    for page in captions:  # "Fig. 3.2" in a chapter; the unnumbered landing page has "Fig. 1"
        number = r"\d+\.\d+" if page in chapters else r"\d+"
        assert re.search(rf'class="caption-number">Fig\. {number}', _html(built_book, page)), page


@pytest.mark.slow
def test_statement_boxes_say_whose_statement_they_hold(built_book):
    for stem in ("11_balanced_mse_bias_free", "12_balanced_mse_bias", "13_balanced_ce",
                 "14_imbalanced_mse_plain", "15_imbalanced_mse_deep", "31_dufm_theory",
                 "32_dufm_gradient_descent", "33_dufm_real_data"):
        html = _html(built_book, f"executed/{stem}.html")
        body = html.split("<main", 1)[-1]
        found = re.findall(r'<p class="admonition-title">(.*?)</p>', body, flags=re.S)
        titles = [html_module.unescape(_TAGS.sub("", title)) for title in found]
        boxes = [t for t in titles if re.search(r"(Theorem|Conjecture|Remark|Proposition) [\d.]+", t)]
        assert boxes, f"{stem}: no numbered statement box"
        assert all(any(who in t for who in _BOX_TITLES) for t in boxes), f"{stem}: {boxes}"
    for stem in ("13_balanced_ce", "21_synthetic_balanced"):
        assert "garrod2024persistence" in _html(built_book, f"executed/{stem}.html"), stem


@pytest.mark.slow
def test_every_figure_has_alt_text(built_book):
    missing = []
    for page in _pages(built_book):
        for alt in re.findall(r"<img\b[^>]*?\balt=\"([^\"]*)\"", _html(built_book, page)):
            if len(alt.split()) < 4 or re.fullmatch(r"[0-9a-f]{16,}(\.\w+)?", alt.strip()):
                missing.append(f"{page}: alt={alt!r}")
    assert not missing, "\n".join(missing[:30])


@pytest.mark.slow
def test_thebe_is_not_loaded(built_book):
    html = _html(built_book, "intro.html")
    assert "thebe" not in html.lower().split("<main", 1)[0]


# Elements of the page body wider than the viewport that no scrollable box (overflow-x auto/scroll)
# contains: at 390 px nothing may stick out except code and tables that scroll.
_TOO_WIDE = """() => {
    const width = document.documentElement.clientWidth;
    const scrolls = node => {
        for (let a = node; a && a !== document.body; a = a.parentElement) {
            const style = getComputedStyle(a).overflowX;
            if ((style === 'auto' || style === 'scroll') && a.getBoundingClientRect().right <= width + 1)
                return true;
        }
        return false;
    };
    const wide = [];
    for (const node of document.querySelectorAll('main *')) {
        if (node.closest('.bd-sidebar-primary, .bd-sidebar-secondary')) continue;  // drawers, off-canvas
        const box = node.getBoundingClientRect();
        if (box.width === 0 || box.height === 0) continue;
        if ((box.right > width + 1 || box.left < -1) && !scrolls(node.parentElement)) {
            const where = node.parentElement.closest('[class]')?.getAttribute('class');
            const name = `${node.tagName.toLowerCase()}.${node.getAttribute('class')}`;
            wide.push(`${name} in ${where} (${Math.round(box.width)} px)`);
        }
    }
    return {page: document.documentElement.scrollWidth, width, wide: [...new Set(wide)].slice(0, 8)};
}"""


@pytest.mark.slow
def test_nothing_is_wider_than_a_phone(browser, served_book, built_book):  # noqa: F811 - fixtures
    problems = []
    for page_path in _pages(built_book):
        page, _ = _open(browser, f"{served_book}/{page_path}", served_book)
        page.set_viewport_size({"width": 390, "height": 844})
        if page.locator("span.math, div.math").count():
            page.wait_for_function("document.querySelectorAll('mjx-container').length > 0", timeout=20000)
        result = page.evaluate(_TOO_WIDE)
        if result["wide"] or result["page"] > result["width"] + 1:
            problems.append(f"{page_path}: page {result['page']} px > {result['width']} px; {result['wide']}")
        page.close()
    assert not problems, "\n".join(problems[:40])


@pytest.mark.slow
def test_intro_equations_fit_a_laptop_screen(browser, served_book):  # noqa: F811 - fixtures
    page, _ = _open(browser, f"{served_book}/intro.html", served_book)
    page.wait_for_function("document.querySelectorAll('mjx-container').length > 0", timeout=20000)
    clipped = page.evaluate("""() => Array.from(document.querySelectorAll('div.math mjx-container'))
        .filter(m => m.scrollWidth > m.clientWidth + 1).length""")
    assert clipped == 0, f"{clipped} display equations of the intro need scrolling at 1280 px"
    page.close()


def test_no_internal_notes_in_the_book_sources():
    generated = {"_build", "executed", "report.md", "api.md"}  # the built pages are checked above
    sources = [p for p in (ROOT / "book").rglob("*.md") if not generated & set(p.parts)]
    offending = [f"{p.relative_to(ROOT)}: {m}" for p in sources
                 for m in re.findall(r"\bthe spec\b|paper-[ab]\.md|shared/theory",
                                     p.read_text(encoding="utf-8"))]
    assert not offending, offending
