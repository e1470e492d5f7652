"""The notebook session: what every chapter sets up once (profile, device, seed, results folder,
claims ledger) and closes once (claims written and shown).

>>> import ncbook as nc
>>> nb = nc.notebook(profile="smoke", device="cpu", seed=0, name="doctest")  # doctest: +SKIP
>>> nb.check("1 + 1 = 2", source="consistency", measured=2.0, predicted=2.0, tolerance=0)  # doctest: +SKIP
>>> nb.finish()  # doctest: +SKIP

The runner (:mod:`ncbook.pipeline.run_notebook`) tells the kernel, through its environment, which
notebook runs (``NCBOOK_NOTEBOOK``), where this run writes (``NCBOOK_RUN_DIR``), whether a failed
claim fails the run (``NCBOOK_STRICT=1`` for the runs a profile stores) and the run's identity
(``NCBOOK_RUN_ID``, written into ``claims.json`` so that the runner knows the file is this run's).
Opened by hand (JupyterLab, Colab), a notebook writes to ``results/<profile>/_scratch/<name>/`` and
never touches a profile's stored results.
"""

from __future__ import annotations

import os
import random
import sys
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from ncbook._checks import check_choice, check_int
from ncbook._io import write_csv, write_json
from ncbook._runtime import PROFILES, resolve_device, results_dir
from ncbook.claims import Ledger

ENV_NOTEBOOK = "NCBOOK_NOTEBOOK"
ENV_RUN_DIR = "NCBOOK_RUN_DIR"
ENV_STRICT = "NCBOOK_STRICT"
ENV_RUN_ID = "NCBOOK_RUN_ID"
SCRATCH = "_scratch"


def _running_notebook_name() -> str | None:
    """The stem of the notebook this kernel runs, from the runner or from the Jupyter server."""
    if os.environ.get(ENV_NOTEBOOK):
        return os.environ[ENV_NOTEBOOK]
    shell = sys.modules.get("IPython")
    user_ns = {}
    if shell is not None and shell.get_ipython() is not None:
        user_ns = shell.get_ipython().user_ns
    for candidate in (user_ns.get("__session__"), user_ns.get("__vsc_ipynb_file__"),
                      os.environ.get("JPY_SESSION_NAME")):
        if isinstance(candidate, str) and candidate.endswith((".ipynb", ".py")):
            return Path(candidate).stem
    return None


@dataclass(frozen=True, repr=False)
class Notebook:
    """One chapter's run: use :func:`notebook` to make it."""

    name: str  # the notebook's stem, e.g. "12_balanced_mse_bias"
    profile: str  # "smoke" or "full": which preset the parameters come from
    device: torch.device  # where tensors go; 'auto' already resolved
    seed: int  # every generator (random, numpy, torch) was seeded with it
    results: Path  # this run's results folder (claims.json, tables)
    strict: bool  # a failed claim raises in finish() (stored profile runs)
    ledger: Ledger  # the claims recorded so far

    def __repr__(self) -> str:
        return f"<notebook {self.name}: {self.profile}, {self.device}, seed {self.seed}>"

    def save(self, filename: str, result: Any) -> Path:
        """Write ``result`` into the results folder atomically: a DataFrame as CSV (``.csv``),
        anything JSON-serialisable as JSON (``.json``). Returns the path."""
        if not isinstance(filename, str) or Path(filename).name != filename:
            raise ValueError(f"`filename` must be a plain file name, got {filename!r}")
        if filename.endswith(".csv") and isinstance(result, pd.DataFrame):
            return write_csv(self.results / filename, result)
        if filename.endswith(".json"):
            return write_json(self.results / filename, result)
        raise ValueError(f"`filename` must end in .csv (for a DataFrame) or .json, got {filename!r}")

    def check(self, claim: str, **kwargs: Any) -> None:
        """Record one claim (see :meth:`ncbook.claims.Ledger.check` for the keywords)."""
        self.ledger.check(claim, **kwargs)

    def check_rows(self, rows: pd.DataFrame | Iterable[Mapping[str, Any]], **kwargs: Any) -> None:
        """Record one claim per row (see :meth:`ncbook.claims.Ledger.check_rows`)."""
        self.ledger.check_rows(rows, **kwargs)

    def finish(self) -> None:
        """Write ``claims.json``, show the claims table, and in a strict run raise if one failed."""
        if not self.ledger.claims:
            raise AssertionError(f"notebook {self.name!r} recorded no claims")
        self.ledger.save(self.results / "claims.json")
        from ncbook.pipeline.provenance import report_code

        report_code()
        try:
            from IPython.display import display
        except ImportError:  # plain Python: print the table instead
            print(self.ledger.summary())
            print(self.ledger.table().to_string(index=False))
        else:
            display(self.ledger)
        if self.strict:
            self.ledger.assert_all()


def notebook(*, profile: str, device: str = "auto", seed: int = 0, name: str | None = None) -> Notebook:
    """Validate the common parameters, seed every generator and open this chapter's run.

    ``name`` defaults to the running notebook's stem, told by the runner or a by-hand caller
    (``NCBOOK_NOTEBOOK``) or by the Jupyter server. Plain papermill tells the kernel nothing, and
    the chapters do not name themselves, so without that variable the call fails and says so.
    """
    check_choice("profile", profile, PROFILES)
    seed = check_int("seed", seed, low=0, high=2**32 - 1)
    resolved = resolve_device(device)
    name = name or _running_notebook_name()
    if not name:
        raise ValueError(f"cannot tell which notebook this is: set {ENV_NOTEBOOK}=<its stem> (e.g. "
                         f"`{ENV_NOTEBOOK}=12_balanced_mse_bias papermill ...`) or pass `name=`")
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    from ncbook.pipeline.provenance import record_setup

    record_setup(profile, resolved, seed)
    run_dir = os.environ.get(ENV_RUN_DIR)
    if run_dir:
        results = Path(run_dir)
        results.mkdir(parents=True, exist_ok=True)
    else:
        results = results_dir(profile, f"{SCRATCH}/{name}")
    run_id = os.environ.get(ENV_RUN_ID) or uuid.uuid4().hex
    return Notebook(
        name=name, profile=profile, device=resolved, seed=seed, results=results,
        strict=os.environ.get(ENV_STRICT) == "1", ledger=Ledger(name, run_id=run_id),
    )
