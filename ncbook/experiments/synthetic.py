"""Paper A's synthetic experiments: gradient descent on the deep linear UFM, with theory overlaid.

The authors' recipe (synthetic_experiment_balanced.py and synthetic_experiment_imbalanced.py in
github.com/Fsoft-AIC/Neural-Collapse-in-Deep-Linear-Networks, run with their README's arguments):
K = 4 classes of n = 100 samples (balanced) or n = [200, 100, 50, 50] (imbalanced); free features
H_1 and M linear layers of width 64 (2048 in their imbalanced README), all initialised
N(0, 0.1^2); lambda_W = lambda_H = 5e-4; full-batch SGD with lr 0.1 and momentum 0.9 for 30,000
iterations; seed 2. This module runs that recipe for a grid of (loss, depth, bias, counts, ...)
and logs, every ``log_every`` steps, the NC metrics of every layer: :func:`run` returns the
:class:`ncbook.optimize.Trace` of :func:`ncbook.optimize.minimize` (method "sgd"), whose table is
``step, layer, metric, value``.
Layer m = 1 .. M is the input H_m of the m-th linear layer, with classifier W_{>=m} = W_M...W_m;
``layer = 0`` holds run-level values (loss, grad_norm, seconds). See
:func:`~ncbook.experiments.synthetic_tables.measure` for the metrics (the vocabulary of
``ncbook.metrics``).

:func:`run_all` writes each run's table to ``results/<profile>/<notebook>/<run>.csv`` (plus a JSON
with its wall time, device and the digest of the ncbook code it ran) and reuses a CSV only while
that code digest (:func:`code_digest`) is unchanged, so a long (full-profile) grid is computed
once and notebooks render from the files, and a changed metric or solver never reads stale ones.
:func:`predictions` gives the same metrics at the closed-form candidates of ``ncbook.theory`` (the
final values a run should reach). Chapters: 21, 22.
"""

from __future__ import annotations

import hashlib
import json
import math
import platform
import time
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from itertools import product
from pathlib import Path
from typing import Any

import pandas as pd
import torch
from tqdm import tqdm

from ncbook._checks import check_choice, check_float, check_int, check_list
from ncbook._io import write_csv, write_json
from ncbook._runtime import code_hash, progress_disabled, results_dir
from ncbook.experiments.synthetic_tables import (
    CLASS_METRICS,
    LAYER_METRICS,
    RUN_KEYS,
    attach,
    closest_candidate,
    final,
    measure,
    split_class,
)
from ncbook.models import DeepLinearUFM, make_deep_linear_ufm
from ncbook.optimize import Trace, minimize
from ncbook.spec import UFMSpec
from ncbook.theory import CEMinimizer, MSEMinimizer, ce_minimizer, mse_minimizer

__all__ = [
    "BALANCED",
    "CLASS_METRICS",
    "DTYPES",
    "IMBALANCED",
    "LAYER_METRICS",
    "RUN_KEYS",
    "SyntheticConfig",
    "attach",
    "candidates",
    "closest_candidate",
    "code_digest",
    "final",
    "grid",
    "measure",
    "predictions",
    "run",
    "run_all",
    "split_class",
]

DTYPES = ("float32", "float64")
BALANCED = (100, 100, 100, 100)  # the authors' balanced counts
IMBALANCED = (200, 100, 50, 50)  # the authors' imbalanced counts


@dataclass(frozen=True)
class SyntheticConfig:
    """One gradient-descent run; the defaults are the authors' balanced recipe (in float64)."""

    n_per_class: tuple[int, ...] = BALANCED  # n_k, samples per class (K = len)
    depth: int = 1  # M, number of weight matrices
    bias: bool = False  # unpenalised last-layer bias
    loss: str = "mse"  # "mse" or "ce"
    widths: int = 64  # d_1 = ... = d_M
    lambda_W: float = 5e-4  # weight decay of every layer
    lambda_H: float = 5e-4  # feature decay
    steps: int = 30_000  # full-batch SGD iterations
    lr: float = 0.1  # SGD learning rate
    momentum: float = 0.9  # SGD momentum
    log_every: int = 100  # measure every this many steps (and at 0 and the last step)
    init_std: float = 0.1  # every weight and feature entry starts N(0, init_std^2)
    seed: int = 2  # the authors' default seed
    dtype: str = "float64"  # "float32" is the authors' precision; float64 to compare with closed forms

    def __post_init__(self) -> None:
        for name in ("lambda_W", "lambda_H", "lr", "init_std"):  # scalars here, and > 0
            object.__setattr__(self, name, check_float(name, getattr(self, name), low=0.0, low_open=True))
        if isinstance(self.widths, Sequence):
            raise ValueError(f"`widths` must be one integer (every layer), got {self.widths!r}")
        spec = self.spec  # validates the problem's fields
        for name in ("n_per_class", "depth", "bias"):
            object.__setattr__(self, name, getattr(spec, name))
        object.__setattr__(self, "widths", spec.widths[0])
        object.__setattr__(self, "momentum", check_float("momentum", self.momentum, low=0.0, high=1.0))
        object.__setattr__(self, "steps", check_int("steps", self.steps, low=1))
        object.__setattr__(self, "log_every", check_int("log_every", self.log_every, low=1))
        object.__setattr__(self, "seed", check_int("seed", self.seed, low=0, high=2**32 - 1))
        check_choice("dtype", self.dtype, DTYPES)

    @property
    def spec(self) -> UFMSpec:
        """The problem this run minimises."""
        return UFMSpec(self.n_per_class, self.depth, self.widths, lambda_W=self.lambda_W,
                       lambda_H=self.lambda_H, bias=self.bias, loss=self.loss)

    @property
    def counts_label(self) -> str:
        """The class sizes as text, e.g. '200-100-50-50'."""
        return "-".join(str(n) for n in self.n_per_class)

    @property
    def name(self) -> str:
        """A file-safe run name: readable fields, then a digest of every field (so a change of
        steps, lr or dtype never reuses another run's results)."""
        digest = hashlib.sha1(json.dumps(asdict(self), sort_keys=True).encode()).hexdigest()[:8]
        tail = "bias" if self.bias else "nobias"
        return f"{self.loss}-M{self.depth}-{tail}-n{self.counts_label}-d{self.widths}-s{self.seed}-{digest}"

    def columns(self) -> dict[str, Any]:
        """The identifying columns attached to every row of this run's table."""
        return {
            "run": self.name,
            "criterion": self.loss,  # not "loss": that is a metric name
            "depth": self.depth,
            "bias": self.bias,
            "counts": self.counts_label,
            "widths": self.widths,
            "lambda_W": self.lambda_W,
            "lambda_H": self.lambda_H,
            "lr": self.lr,
            "seed": self.seed,
        }


def grid(
    *,
    depths: Iterable[int],
    biases: Iterable[bool] = (False,),
    losses: Iterable[str] = ("mse",),
    seeds: Iterable[int] = (2,),
    decays: Iterable[float] | None = None,
    **shared: Any,
) -> list[SyntheticConfig]:
    """Every combination of ``losses x depths x biases x seeds``; ``shared`` sets the other fields.

    ``decays``, if given, holds one lambda per depth (paired, not crossed): that depth's runs get
    lambda_W = lambda_H = its decay. Cross-entropy runs are kept bias-free only: with balanced
    classes a shared shift of all logits leaves CE unchanged, so an unpenalised bias is irrelevant.

    >>> [(c.depth, c.lambda_W) for c in grid(depths=[1, 2], decays=[0.035, 0.04])]
    [(1, 0.035), (2, 0.04)]
    """
    depths = check_list("depths", depths)
    if decays is None:
        pairs = [(depth, {}) for depth in depths]
    else:
        decays = check_list("decays", decays)
        if len(decays) != len(depths):
            raise ValueError(f"`decays` needs one value per depth ({len(depths)}), got {len(decays)}")
        pairs = [(depth, {"lambda_W": lam, "lambda_H": lam}) for depth, lam in zip(depths, decays)]
    configs = [
        SyntheticConfig(loss=loss, depth=depth, bias=bias, seed=seed, **(shared | decay))
        for loss, (depth, decay), bias, seed in product(
            check_list("losses", losses), pairs, check_list("biases", biases), check_list("seeds", seeds)
        )
        if not (loss == "ce" and bias)
    ]
    if not configs:
        raise ValueError("the grid is empty: give at least one depth, bias, loss and seed")
    return configs


def _reference(config: SyntheticConfig) -> MSEMinimizer | None:
    """The closed-form global minimizer the ``*_pred`` metrics compare with (MSE only)."""
    if config.loss != "mse":
        return None
    return mse_minimizer(config.n_per_class, config.depth, lambda_W=config.lambda_W, lambda_H=config.lambda_H,
                         bias=config.bias, widths=config.widths)


def run(config: SyntheticConfig, device: str | torch.device = "cpu") -> Trace:
    """One run of the recipe: full-batch SGD through :func:`ncbook.optimize.minimize` with
    :func:`measure` as the monitor; returns its Trace (table: step, layer, metric, value).

    Classes are stored sorted rather than shuffled and the bias starts at 0 rather than PyTorch's
    uniform init: full-batch gradient descent does not depend on the sample order, and the
    unpenalised bias does not change the minimizer. Values keep 9 significant digits (the files
    stay small), the loss all 17 (for the 1e-8 comparisons with the closed forms).
    """
    model = make_deep_linear_ufm(config.spec, init_std=config.init_std, seed=config.seed,
                                 dtype=getattr(torch, config.dtype), device=device)
    reference = _reference(config)
    trace = minimize(model, method="sgd", steps=config.steps, lr=config.lr, momentum=config.momentum,
                     log_every=config.log_every, monitor=lambda m: measure(m, reference),
                     description=config.name)
    values = trace.table["value"]
    rounded = values.map(lambda v: float(f"{v:.9g}"))
    table = trace.table.assign(value=values.where(trace.table["metric"] == "loss", rounded))
    return Trace(table=table, model=trace.model, method=trace.method, steps=trace.steps,
                 final_loss=trace.final_loss, status=trace.status)


def code_digest() -> str:
    """SHA-1 of the torch version and of every ncbook source file. A hand-kept list of the modules
    that decide a run's numbers goes stale as the package moves (a new base class, a split module),
    so any change to ncbook invalidates the cached runs: a recompute costs minutes, a stale
    number is silently wrong."""
    return hashlib.sha1(f"{torch.__version__}\0{code_hash()}".encode()).hexdigest()


def run_all(
    configs: Iterable[SyntheticConfig],
    profile: str,
    notebook: str,
    device: str | torch.device = "cpu",
) -> pd.DataFrame:
    """Run (or load) every config; return all tables stacked, split by class
    (:func:`split_class`), with the config columns.

    Each run writes ``<run>.csv`` (its Trace table) and ``<run>.json`` (config, code digest, wall
    seconds, device, versions) under ``results_dir(profile, notebook)``. A CSV is reused only when
    its JSON records the current :func:`code_digest` (the file name already carries a digest of
    every config field); otherwise the run is recomputed and both files overwritten. The table is
    always read back from the CSV, so a fresh run and a loaded one give identical frames.
    """
    folder = results_dir(profile, notebook)
    frames = []
    configs = list(configs)
    code = code_digest()
    for config in tqdm(configs, desc=notebook, disable=progress_disabled()):
        path = folder / f"{config.name}.csv"
        if not (path.is_file() and _recorded_code(path.with_suffix(".json")) == code):
            began = time.perf_counter()
            table = run(config, device).table
            write_json(path.with_suffix(".json"), {
                "config": asdict(config),
                "code": code,
                "wall_seconds": time.perf_counter() - began,
                "device": str(device),
                "torch": torch.__version__,
                "machine": platform.machine(),
            })
            write_csv(path, table)
        frames.append(split_class(pd.read_csv(path)).assign(**config.columns()))
    return pd.concat(frames, ignore_index=True)


def _recorded_code(meta: Path) -> str | None:
    """The code digest a run's JSON records; None when it is missing or unreadable."""
    try:
        return json.loads(meta.read_text()).get("code")
    except (OSError, ValueError, AttributeError):
        return None


def candidates(config: SyntheticConfig) -> dict[str, MSEMinimizer | CEMinimizer]:
    """Closed-form points a run may converge to, by name.

    MSE: ``"global"`` (the global minimizer) and, where it differs, ``"code"`` (the authors'
    root-exists rule: a strict local minimum for M >= 2, see :func:`ncbook.theory.mse_minimizer`).
    CE with balanced classes: ``"etf"`` (global for M = 1) and, for an even K, ``"orthoplex"``
    (lower for M >= 2 at small lambda, see :func:`ncbook.theory.ce_minimizer`). Imbalanced CE has
    no closed form here: ``{}``.
    """
    k = len(config.n_per_class)
    widths = min(config.widths, k)  # the minimizer depends on the widths only through min(d, K)
    if config.loss == "mse":
        found: dict[str, MSEMinimizer | CEMinimizer] = {}
        for rule in ("global", "code"):
            point = mse_minimizer(config.n_per_class, config.depth, lambda_W=config.lambda_W,
                                  lambda_H=config.lambda_H, bias=config.bias, widths=widths, rule=rule)
            if rule == "global" or not math.isclose(point.loss, found["global"].loss, rel_tol=1e-14):
                found[rule] = point
        return found
    if len(set(config.n_per_class)) != 1:
        return {}
    geometries = ("etf", "orthoplex") if k % 2 == 0 and 2 * widths >= k else ("etf",)
    return {
        g: ce_minimizer(config.n_per_class[0], k, config.depth, lambda_W=config.lambda_W,
                        lambda_H=config.lambda_H,
                        geometry=g, widths=widths)
        for g in geometries
    }


def predictions(configs: Iterable[SyntheticConfig]) -> pd.DataFrame:
    """The metrics of :func:`measure` at every closed-form candidate of every config.

    One row per (run, candidate, metric, layer, k) (split as :func:`split_class`), with the config
    columns; ``metric = "loss"``
    (layer 0) is the candidate's objective value. Each candidate's explicit point is built by
    ``ncbook.theory`` and measured with the run's reference, so the values are what the run's
    curves converge to if gradient descent reaches that point.

    The OF distance of W W^T under the authors' imbalance (a regression value of the spec, Sec. 4):

    >>> frame = predictions([SyntheticConfig(n_per_class=IMBALANCED, depth=1)])
    >>> round(float(frame.query("metric == 'nc2_of_w' and layer == 1")["value"].iloc[0]), 6)
    0.298736
    """
    frames = []
    for config in configs:
        reference = _reference(config)
        for label, point in candidates(config).items():
            model = DeepLinearUFM.from_point(point.point(), loss=config.loss)
            loss = pd.DataFrame({"layer": [0], "metric": ["loss"], "value": [point.loss]})
            table = split_class(pd.concat([measure(model, reference), loss], ignore_index=True))
            frames.append(table.assign(candidate=label, **config.columns()))
    return pd.concat(frames, ignore_index=True)
