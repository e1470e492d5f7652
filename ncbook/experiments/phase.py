"""Spot checks of the phase diagrams (:mod:`ncbook.theory.phase`) by optimisation from random starts.

Each ``verify_*`` function takes a few grid points, optimises the full model there (float64
L-BFGS for paper A's deep linear UFM, full-batch gradient descent for paper B's ReLU deep UFM) and
returns one row per point with the map's prediction next to what the optimiser reached, so a
notebook can record every comparison as a claim, whatever its outcome.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from ncbook._checks import check_float, check_int
from ncbook.experiments.dufm import random_start_runs
from ncbook.models import UFMSpec, snapshot, solve
from ncbook.optimize import MinimizeConfig
from ncbook.theory import mse_minimizer
from ncbook.theory.phase import ce_phase_map, dufm_ratio_map, imbalanced_counts

__all__ = ["SearchConfig", "verify_ce", "verify_dufm", "verify_mse"]


@dataclass(frozen=True)
class SearchConfig:
    starts: int = 3  # random starts per point (best kept)
    init_std: tuple[float, ...] = (0.5, 2.0, 0.1)  # init scale of start i: init_std[i % len]
    hops: int = 2  # basin hops after each L-BFGS start (paper A); see ``ncbook.models.solve``
    seed: int = 0  # start i uses seed + i
    zero_tol: float = 1e-6  # a class is "at zero" when ||w_k||^2 <= zero_tol * max_j ||w_j||^2
    steps: int = 20  # L-BFGS outer steps per start and hop (each up to 50 evaluations)

    def __post_init__(self) -> None:
        check_int("starts", self.starts, low=1)
        check_int("hops", self.hops, low=0)
        check_int("seed", self.seed, low=0)
        check_float("zero_tol", self.zero_tol, low=0.0, low_open=True)
        check_int("steps", self.steps, low=1)
        for i, scale in enumerate(self.init_std):
            check_float(f"init_std[{i}]", scale, low=0.0, low_open=True)


def _solve(counts: Sequence[int], depth: int, lam: float, loss: str, search: SearchConfig):
    spec = UFMSpec(tuple(counts), depth, lambda_W=lam, lambda_H=lam, loss=loss)
    config = MinimizeConfig(method="lbfgs", steps=search.steps, lr=1.0, log_every=search.steps)
    return solve(spec, config=config, starts=search.starts, init_std=list(search.init_std),
                 seed=search.seed, hops=search.hops, track=False)


def verify_mse(
    points: Sequence[tuple[float, float, int]],
    num_classes: int,
    n_max: int,
    shape: str = "exponential",
    search: SearchConfig = SearchConfig(),
) -> pd.DataFrame:
    """At each (ratio, lambda, M): the closed-form global and code-rule minima of the bias-free
    MSE model (:func:`ncbook.theory.mse_minimizer`) against L-BFGS from random starts. Columns:
    ratio, lambda, depth, counts, zero_global / zero_code (classes at zero by each rule),
    zero_found (classes the optimiser leaves at zero), loss_global, loss_code, loss_found."""
    rows = []
    for ratio, lam, depth in points:
        counts = imbalanced_counts(num_classes, n_max, ratio, shape)
        best = {rule: mse_minimizer(counts, depth, lambda_W=lam, lambda_H=lam, rule=rule)
                for rule in ("global", "code")}
        run = _solve(counts, depth, lam, "mse", search)
        norms = np.diag(snapshot(run.model).w_grams[0])
        rows.append({
            "ratio": float(ratio), "lambda": float(lam), "depth": int(depth), "counts": counts,
            "zero_global": int((~best["global"].active).sum()),
            "zero_code": int((~best["code"].active).sum()),
            "zero_found": int((norms <= search.zero_tol * max(norms.max(), 1e-300)).sum()),
            "loss_global": best["global"].loss, "loss_code": best["code"].loss, "loss_found": run.loss,
        })
    return pd.DataFrame(rows)


def verify_ce(
    points: Sequence[tuple[int, int, float]], n: int, search: SearchConfig = SearchConfig()
) -> pd.DataFrame:
    """At each (K, M, lambda): the three CE candidates of :func:`ncbook.theory.phase.ce_phase_map`
    against L-BFGS from random starts (width K). Columns: K, depth, lambda, zero, etf, orthoplex,
    winner, best (the winner's loss), found (L-BFGS best), rank (numerical rank of the class-mean
    logits found, singular values above 1e-3 of the largest)."""
    rows = []
    for k, depth, lam in points:
        row = ce_phase_map(n, k, [depth], [lam]).iloc[0].to_dict()
        run = _solve([n] * k, depth, lam, "ce", search)
        values = np.linalg.svd(snapshot(run.model).logits, compute_uv=False)
        rows.append({**row, "best": row[row["winner"]], "found": run.loss,
                     "rank": int((values > 1e-3 * max(values.max(), 1e-300)).sum())})
    return pd.DataFrame(rows)


def verify_dufm(
    points: Sequence[tuple[int, int, float]],
    *,
    width: int,
    seeds: int,
    steps: int,
    lr: float = 0.5,
    nonnegative_features: bool = False,
) -> pd.DataFrame:
    """At each (r, L, lambda) (K = r(r-1)/2, n = 1): the map's DNC and best low-rank losses
    (:func:`ncbook.theory.phase.dufm_ratio_map`) against full-batch GD from ``seeds`` random starts
    (:func:`ncbook.experiments.dufm.random_start_runs`). Columns: r, K, depth, lambda, dnc, low_rank, ratio
    (map), best = min(dnc, low_rank), found (lowest GD loss), found_ratio = found / dnc,
    below_best = (best - found) / best, kinds (GD end points by kind), nonnegative_features."""
    width = check_int("width", width, low=1)
    rows = []
    for r, depth, lam in points:
        row = dufm_ratio_map([r], [depth], [lam], nonnegative_features=nonnegative_features)
        row = row.iloc[0].to_dict()
        spec = UFMSpec((1,) * row["K"], depth, width, lambda_W=lam, lambda_H=lam, activation="relu",
                       nonnegative_features=nonnegative_features)
        runs = random_start_runs(spec, range(seeds), steps=steps, lr=lr, log_every=max(1, steps // 4))
        found = float(runs.summary["loss"].min())
        kinds = runs.summary["kind"].value_counts().to_dict()
        best = min(row["dnc"], row["low_rank"])
        rows.append({key: row[key] for key in ("r", "K", "depth", "lambda", "dnc", "low_rank", "ratio")}
                    | {"best": best, "found": found, "found_ratio": found / row["dnc"],
                       "below_best": (best - found) / best, "kinds": kinds,
                       "nonnegative_features": nonnegative_features})
    return pd.DataFrame(rows)
