"""ncbook: neural collapse in deep linear and ReLU unconstrained-feature models.

Submodules load on first use, so ``import ncbook as nc`` stays cheap and ``nc.metrics``,
``nc.theory``, ``nc.models``, ... are available without further imports.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_SUBMODULES = {
    "claims": "ncbook.claims",
    "data": "ncbook.data",
    "experiments": "ncbook.experiments",
    "geometry": "ncbook.geometry",
    "metrics": "ncbook.metrics",
    "models": "ncbook.models",
    "optimize": "ncbook.optimize",
    "plots": "ncbook.plots",
    "spec": "ncbook.spec",
    "profiles": "ncbook.pipeline.profiles",
    "theory": "ncbook.theory",
    "train": "ncbook.train",
}


def notebook(**kwargs: Any) -> Any:
    """Open a chapter's run: ``nb = nc.notebook(profile=..., device=..., seed=...)``; see
    :func:`ncbook.pipeline.session.notebook`."""
    from ncbook.pipeline.session import notebook as open_notebook

    return open_notebook(**kwargs)


def __getattr__(name: str) -> Any:
    if name in _SUBMODULES:
        module = importlib.import_module(_SUBMODULES[name])
        globals()[name] = module
        return module
    raise AttributeError(f"module 'ncbook' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(list(globals()) + list(_SUBMODULES))
