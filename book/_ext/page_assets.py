"""Page assets: the book runs no code in the browser, so the Thebe scripts and stylesheet that
jupyter-book's bundled sphinx-thebe adds to every page (and that would fetch thebe from unpkg.com on a
click) are dropped; the launch buttons (Binder, Colab) are the way to run a chapter."""

from __future__ import annotations


def is_thebe_asset(asset) -> bool:
    """True for a script or stylesheet entry that belongs to Thebe (by file name or inline body).

    >>> is_thebe_asset("_static/sphinx-thebe.js"), is_thebe_asset("_static/copybutton.js")
    (True, False)
    """
    body = getattr(asset, "attributes", {}).get("body", "") if hasattr(asset, "attributes") else ""
    return "thebe" in str(asset).lower() or "thebe" in body.lower()


def _drop_thebe(app, pagename, templatename, context, doctree) -> None:
    for key in ("script_files", "css_files"):
        if key in context:
            context[key] = [asset for asset in context[key] if not is_thebe_asset(asset)]


def setup(app):
    app.connect("html-page-context", _drop_thebe, priority=900)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
