"""One setting, `repository.url` in _config.yml, turns on the repository, issue, edit and launch
(Binder, Colab) buttons; left empty, the book has none (sphinx-book-theme refuses the buttons without
a URL).

The theme points every launch button at `book/<page>.ipynb` in the repository, a file that does not
exist here: chapters are generated from `notebooks/<stem>.py`. So the chapter buttons are redirected:
Binder opens the percent-format source in JupyterLab (jupytext is in the environment), and Colab,
which reads only `.ipynb` files on GitHub, opens the executed notebook that the published book keeps
under `_sources/` on the branch GitHub Pages serves (`ncbook_pages_branch`, default `gh-pages`).
"""

from __future__ import annotations

import re

BUTTONS = ("use_repository_button", "use_issues_button", "use_edit_page_button")
DEFAULT_BINDERHUB = "https://mybinder.org"
DEFAULT_COLAB = "https://colab.research.google.com"
_CHAPTER = re.compile(r"^executed/(?P<stem>[^/]+)$")


def enable_buttons(theme_options: dict) -> dict:
    """Return theme options with every repository and launch button on iff a URL is set."""
    options = dict(theme_options)
    has_url = bool(options.get("repository_url"))
    for button in BUTTONS:
        options[button] = has_url
    launch = dict(options.get("launch_buttons") or {})
    if has_url:
        launch["binderhub_url"] = launch.get("binderhub_url") or DEFAULT_BINDERHUB
        launch["colab_url"] = launch.get("colab_url") or DEFAULT_COLAB
    else:
        launch = {key: value for key, value in launch.items() if not key.endswith("_url")}
    options["launch_buttons"] = launch
    return options


def chapter_launch_url(provider: str, theme_url: str, pagename: str, pages_branch: str) -> str:
    """The launch URL for a chapter page generated from `notebooks/<stem>.py`; other pages and
    providers keep the theme's URL.

    >>> chapter_launch_url("Binder", "https://mybinder.org/v2/gh/o/r/main?urlpath=tree/book/executed/a.ipynb",
    ...                    "executed/a", "gh-pages")
    'https://mybinder.org/v2/gh/o/r/main?urlpath=lab/tree/notebooks/a.py'
    >>> chapter_launch_url("Colab", "https://colab.research.google.com/github/o/r/blob/main/book/executed/a.ipynb",
    ...                    "executed/a", "gh-pages")
    'https://colab.research.google.com/github/o/r/blob/gh-pages/_sources/executed/a.ipynb'
    """
    chapter = _CHAPTER.match(pagename)
    if chapter is None:
        return theme_url
    stem = chapter["stem"]
    if provider == "Binder" and "?urlpath=" in theme_url:
        return theme_url.split("?urlpath=")[0] + f"?urlpath=lab/tree/notebooks/{stem}.py"
    if provider == "Colab" and "/blob/" in theme_url:
        return theme_url.split("/blob/")[0] + f"/blob/{pages_branch}/_sources/executed/{stem}.ipynb"
    return theme_url


def _on_config_inited(app, config) -> None:
    config.html_theme_options = enable_buttons(config.html_theme_options or {})


def _redirect_launch_buttons(app, pagename, templatename, context, doctree) -> None:
    for button in context.get("header_buttons", []):
        for item in button.get("buttons", []) if isinstance(button, dict) else []:
            if isinstance(item, dict) and item.get("url"):
                item["url"] = chapter_launch_url(item.get("text", ""), item["url"], pagename,
                                                 app.config.ncbook_pages_branch)


def setup(app):
    app.add_config_value("ncbook_pages_branch", "gh-pages", "html")
    app.connect("config-inited", _on_config_inited)
    # After sphinx-book-theme builds the launch buttons (priority 501), before the page renders.
    app.connect("html-page-context", _redirect_launch_buttons, priority=502)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
