"""The book builds with warnings as errors, every internal link and image resolves, and in headless
Chromium (every non-local host blocked) the pages load offline with typeset math and loaded figures."""

from __future__ import annotations

import functools
import http.server
import os
import shutil
import threading
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest
from conftest import ROOT

pytestmark = pytest.mark.slow

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
SCREENSHOTS = ROOT / "_executed" / "screenshots"


class _Links(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.targets: list[str] = []

    def handle_starttag(self, tag, attrs):
        attributes = dict(attrs)
        for key in ("href", "src"):
            if tag in {"a", "img", "script", "link"} and attributes.get(key):
                self.targets.append(attributes[key])


def test_book_has_an_index_and_every_notebook(built_book: Path):
    assert (built_book / "index.html").is_file() or (built_book / "intro.html").is_file()
    for notebook in (ROOT / "notebooks").glob("*.py"):
        assert (built_book / "executed" / f"{notebook.stem}.html").is_file(), notebook.stem


def test_every_internal_link_and_image_resolves(built_book: Path):
    broken = []
    for page in built_book.rglob("*.html"):
        if page.relative_to(built_book).parts[0] in {"_static", "_sources"}:
            continue  # theme templates and page sources, not pages
        parser = _Links()
        parser.feed(page.read_text(encoding="utf-8", errors="replace"))
        for target in parser.targets:
            parts = urlsplit(target)
            if parts.scheme or parts.netloc or not parts.path:
                continue
            resolved = (page.parent / unquote(parts.path)).resolve()
            if not resolved.exists():
                broken.append(f"{page.relative_to(built_book)} -> {target}")
    assert not broken, "broken links:\n" + "\n".join(broken[:30])


def test_mathjax_is_served_locally(built_book: Path):
    assert (built_book / "_static" / "mathjax" / "tex-chtml.js").is_file()
    index = (built_book / "intro.html").read_text(encoding="utf-8")
    assert "_static/mathjax/tex-chtml.js" in index
    assert "cdn.jsdelivr.net" not in index


@pytest.fixture(scope="module")
def served_book(built_book: Path):
    handler = functools.partial(_QuietHandler, directory=str(built_book))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format, *args):  # noqa: A002 - the base class's signature
        pass


@pytest.fixture(scope="module")
def browser():
    if CHROMIUM is None:
        if os.environ.get("CI"):
            pytest.fail("chromium is not installed; .ci/run installs it with apt-get")
        pytest.skip("chromium is not installed (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM,
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--no-first-run"],
        )
        yield browser
        browser.close()


def _open(browser, url: str, base: str):
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    outside: list[str] = []

    def route(request_route):
        if request_route.request.url.startswith(base) or request_route.request.url.startswith("data:"):
            request_route.continue_()
        else:
            outside.append(request_route.request.url)
            request_route.abort()

    page.route("**/*", route)
    page.goto(url, wait_until="networkidle")
    return page, outside


def _assert_page_renders(page, outside, name: str) -> None:
    if page.locator("span.math, div.math").count():
        page.wait_for_function("document.querySelectorAll('mjx-container').length > 0", timeout=20000)
    images = page.evaluate(
        "Array.from(document.images).map(i => [i.currentSrc, i.complete && i.naturalWidth > 0])"
    )
    assert all(ok for _, ok in images), f"{name}: images failed to load {images}"
    assert not outside, f"{name}: requests left the machine: {outside}"


@pytest.mark.parametrize("page_path", ["intro.html", "executed/00_overview.html"])
def test_page_renders_offline_in_chromium(browser, served_book, page_path):
    page, outside = _open(browser, f"{served_book}/{page_path}", served_book)
    _assert_page_renders(page, outside, page_path)
    assert page.locator("mjx-container").count() > 0, f"{page_path}: no typeset equation"
    if "executed" in page_path:
        assert page.locator("img").count() >= 2, "the overview shows at least two figures"
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"{Path(page_path).stem}.png"), full_page=True)
    page.close()
