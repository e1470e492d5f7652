"""The install cell that opens every chapter notebook: where the kernel lacks ncbook (Colab, a bare
Binder), it installs ncbook from the repository named in ``book/_config.yml``; everywhere else
(papermill, the book build, a local JupyterLab) it does nothing. The cell is tagged ``remove-cell``,
so the book shows neither it nor its output. Print the cell for the current configuration with

    python -m ncbook.colab

Core-free on purpose: the cell must run before ncbook exists, so it imports only the standard
library, and this module imports nothing from ncbook.
"""

from __future__ import annotations

import sys
from pathlib import Path

import yaml

INSTALL_TAG = "remove-cell"
CONFIG = Path(__file__).resolve().parents[1] / "book" / "_config.yml"
_GITHUB = "https://github.com/"


def repository_url(config: Path = CONFIG) -> str:
    """``repository.url`` of the book's configuration ("" when unset).

    Raises:
        ValueError: if the file is missing or its ``repository`` entry is not a mapping.
    """
    if not config.is_file():
        raise ValueError(f"book configuration {config} does not exist")
    repository = (yaml.safe_load(config.read_text(encoding="utf-8")) or {}).get("repository") or {}
    if not isinstance(repository, dict):
        raise ValueError(f"{config}: `repository` must be a mapping with a `url` entry")
    return str(repository.get("url") or "").strip().rstrip("/")


def install_cell(url: str) -> str:
    """The percent-format install cell for the repository at ``url`` (a GitHub address, or "" while
    the book has none: then the cell explains what to install instead of guessing a URL).

    >>> print(install_cell("https://github.com/o/ncbook").splitlines()[0])
    # %% tags=["remove-cell"]

    Raises:
        ValueError: if ``url`` is set but is not an https://github.com/ address.
    """
    if url and not url.startswith(_GITHUB):
        raise ValueError(f"`url` must be an {_GITHUB}<owner>/<name> address or empty, got {url!r}")
    if url:
        action = (f'    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", '
                  f'"ncbook @ git+{url}"], check=True)\n'
                  "    importlib.invalidate_caches()")
    else:
        action = ('    raise ModuleNotFoundError("ncbook is not installed: run `pip install -e .` in a '
                  'clone of its repository")')
    return "\n".join([
        f'# %% tags=["{INSTALL_TAG}"]',
        "# Colab and Binder: install ncbook if this kernel lacks it (does nothing where it is installed).",
        "import importlib.util",
        "import subprocess",
        "import sys",
        "",
        'if importlib.util.find_spec("ncbook") is None:',
        action,
        "",
    ])


if __name__ == "__main__":
    sys.stdout.write(install_cell(repository_url()))
