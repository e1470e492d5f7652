"""The API reference page is generated from the code and the notebooks: every public name, the
chapters that call it, and a line in each chapter linking back."""

from __future__ import annotations

from conftest import NOTEBOOKS

from ncbook.pipeline import api_page


def test_every_documented_module_has_public_names():
    for module in api_page.PUBLIC_MODULES:
        assert api_page.public_names(module), f"{module} has no __all__ to document"


def test_calls_are_found_through_every_import_style(tmp_path):
    notebook = tmp_path / "99_demo.py"
    notebook.write_text(
        "import ncbook as nc\nfrom ncbook.experiments import dufm\nfrom ncbook.spec import UFMSpec\n"
        "nb = nc.notebook(profile='smoke')\nnc.metrics.collect(m, loader)\ndufm.layer_metrics(x)\n"
        "nc.metrics.not_a_public_name()\n")
    used = api_page.calls_by_chapter([notebook])
    assert set(used) == {("ncbook.pipeline.session", "notebook"), ("ncbook.metrics", "collect"),
                         ("ncbook.experiments.dufm", "layer_metrics"), ("ncbook.spec", "UFMSpec")}
    links = api_page.chapter_links("99_demo", used)
    assert "{ref}`metrics.collect <api-ncbook-metrics-collect>`" in links
    assert api_page.chapter_links("other", used) is None


def test_page_lists_signatures_and_the_chapters_that_call_them():
    used = api_page.calls_by_chapter(NOTEBOOKS)
    page = api_page.page_markdown(used)
    assert "(api-ncbook-theory-mse-minimizer)=" in page and "def mse_minimizer(" in page
    assert "(api-ncbook-metrics-ncmetric-class)=" in page
    collect_users = used[("ncbook.metrics", "collect")]
    assert "45_measure_your_network" in collect_users
    assert "Claim(" not in page


def test_a_class_and_a_function_of_the_same_letters_get_different_labels():
    assert api_page.anchor("ncbook.models", "Snapshot") != api_page.anchor("ncbook.models", "snapshot")
    labels = [line for line in api_page.page_markdown({}).splitlines() if line.startswith("(api-")]
    assert len(labels) == len(set(labels))
