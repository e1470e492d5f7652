"""One setting, `repository.url` in _config.yml, turns on the repository, issue, edit and launch
buttons; left empty, the book has none (sphinx-book-theme refuses the buttons without a URL)."""

from __future__ import annotations

BUTTONS = ("use_repository_button", "use_issues_button", "use_edit_page_button")
DEFAULT_BINDERHUB = "https://mybinder.org"


def enable_buttons(theme_options: dict) -> dict:
    """Return theme options with every repository and launch button on iff a URL is set."""
    options = dict(theme_options)
    has_url = bool(options.get("repository_url"))
    for button in BUTTONS:
        options[button] = has_url
    launch = dict(options.get("launch_buttons") or {})
    if has_url:
        launch.setdefault("binderhub_url", DEFAULT_BINDERHUB)
        launch["binderhub_url"] = launch["binderhub_url"] or DEFAULT_BINDERHUB
    else:
        launch = {key: value for key, value in launch.items() if not key.endswith("_url")}
    options["launch_buttons"] = launch
    return options


def _on_config_inited(app, config) -> None:
    config.html_theme_options = enable_buttons(config.html_theme_options or {})


def setup(app):
    app.connect("config-inited", _on_config_inited)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
