"""Checks of the deep linear UFM statements (chapters 11-15): numerical optima set against the
closed forms of :mod:`ncbook.theory`, as tables that the chapters turn into claims, one row each.

* :func:`solve_depths`: the closed form and the best L-BFGS point for each depth M;
* :func:`statement_table`: per depth, what the MSE statements say (loss, NC1, frame, NC3);
* :func:`closed_form_errors`: every predicted matrix, layer by layer, against the optimum;
* :func:`norm_sweep`: ``||w_k||^2`` and the loss across a common lambda, every start placed
  among the :func:`branch_losses`;
* :func:`local_check`: is a point stationary, and does the loss come back after a kick?;
* :func:`class_table`: per class, the norms and NC3 constants against the closed form;
* :func:`window_gap`: the authors' collapse rule against the global one, over a lambda grid;
* :func:`ce_scope`: where the CE orthoplex is below the simplex ETF, over a lambda grid.

>>> scope = ce_scope(10, 4, 3, [1e-3, 1e-2])
>>> bool(scope["orthoplex_below"].all())
True
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
import torch

from ncbook._checks import check_float, check_int, check_list  # check_list: the chapters call tc.check_list
from ncbook.metrics import class_means, nc3_self_duality
from ncbook.models.linear_snapshot import compare, snapshot
from ncbook.models.linear_solve import LBFGS, SolveResult, solve
from ncbook.models.linear_ufm import DeepLinearUFM
from ncbook.optimize import minimize
from ncbook.spec import UFMSpec
from ncbook.theory import (
    LinearPoint,
    MSEMinimizer,
    beta_star,
    ce_minimizer,
    collapse_thresholds,
    lambda_for_beta,
    lambda_sweep,
    mse_minimizer,
)

# frame -> per-layer metric keys (classifier W_M..W_m, class means H_m) and the logits' key (layer 1);
# "gof" compares with the closed form's own general orthogonal frame (the ``*_pred`` distances)
FRAME_KEYS = {
    "of": ("nc2_of_w", "nc2_of", "nc3_of"),  # orthogonal frame
    "etf": ("nc2_etf_w", "nc2_etf", "nc3_etf"),  # simplex ETF
    "gof": ("nc2_pred_w", "nc2_pred", "nc3_pred"),  # general orthogonal frame of the prediction
}
FRAMES = tuple(FRAME_KEYS)

__all__ = [
    "FRAMES", "FRAME_KEYS", "branch_losses", "ce_scope", "ce_scope_summary", "check_depths", "check_list",
    "check_width", "class_table",
    "classifier_cosine_gap", "closed_form_errors", "lambda_at_ratio", "local_check", "norm_sweep",
    "rule_summary", "solve_depths", "statement_table", "window_gap",
]


def check_depths(depths: Any, name: str = "depths") -> tuple[int, ...]:
    """``depths`` as a tuple of ints >= 1; a scalar or an empty list is a one-line error."""
    if isinstance(depths, (str, bytes)) or not isinstance(depths, Sequence) or not depths:
        raise ValueError(f"`{name}` must be a non-empty list of depths (integers >= 1), got {depths!r}")
    return tuple(check_int(f"{name}[{i}]", m, low=1) for i, m in enumerate(depths))


def check_width(name: str, width: Any, low: int, high: int | None = None) -> int:
    """A width the chapter's main statement needs (``low`` = K, or K - 1 with a bias): the library
    accepts narrower widths (rank-limited minimizers), so the chapter checks this one itself."""
    return check_int(name, width, low=low, high=high)


def solve_depths(
    counts: Sequence[int], depths: Sequence[int], width: int, *, lambda_W: Any, lambda_H: float,
    bias: bool = False, **solve_options: Any,
) -> tuple[dict[int, MSEMinimizer], dict[int, SolveResult]]:
    """For each depth M: the closed-form global minimizer and the best of the L-BFGS starts
    (``solve_options`` go to :func:`ncbook.models.solve`, e.g. ``starts``, ``init_std``).

    Raises ``ValueError`` when the lambdas make some depth's minimizer zero (nothing to check).
    """
    predictions = {m: mse_minimizer(counts, m, lambda_W=lambda_W, lambda_H=lambda_H, bias=bias, widths=width)
                   for m in check_depths(depths)}
    zero = [m for m, p in predictions.items() if not p.direction_active.any()]
    if zero:
        raise ValueError(f"`lambda_W`/`lambda_H` make the minimizer zero at depths {zero}; lower them")
    runs = {m: solve(UFMSpec(counts, m, width, lambda_W=lambda_W, lambda_H=lambda_H, bias=bias), reference=p,
                     **solve_options) for m, p in predictions.items()}
    return predictions, runs


def statement_table(
    predictions: Mapping[int, MSEMinimizer], runs: Mapping[int, SolveResult], frame: str
) -> pd.DataFrame:
    """One row per depth M with the best start's values of what the MSE statements speak about:

    ``f_star``, ``loss``; ``undershoot`` = (f* - lowest start) / f*, > 0 only if a start beat f*;
    ``nc1`` = max over layers; ``frame`` = max distance of the Grams of W_M..W_j and Hbar_j (every
    layer j) and of the logits W Hbar to the frame (``"of"``, ``"etf"``, ``"gof"``: see
    FRAME_KEYS); ``nc3`` = ||W/||W|| - Hbar^T/||Hbar|| ||;
    ``nc3_ratio`` = ||W||_F / ||Hbar||_F; ``global_mean`` = ||mean of H_1|| / ||Hbar||_F;
    ``bias_error`` = max |b - b*| (NaN without a bias); ``error`` / ``spectrum_error`` = the largest relative
    error of any matrix (of its spectrum) against the closed form (:func:`closed_form_errors`).
    Runs must have been tracked (``track=True``, the default of :func:`solve`).
    """
    if frame not in FRAMES:
        raise ValueError(f"`frame` must be one of {FRAMES}, got {frame!r}")
    errors = closed_form_errors(predictions, runs).groupby("M")
    rows = []
    for m, p in predictions.items():
        run, final = runs[m], runs[m].final_metrics()
        W = run.model.end_to_end().detach()
        means = class_means(run.model.features.detach().T, run.model.labels)
        rows.append({
            "M": m, "f_star": p.loss, "loss": run.loss,
            "undershoot": (p.loss - min(run.final_losses)) / p.loss,
            "nc1": max(final[f"nc1@{j}"] for j in range(1, m + 1)),
            "frame": max([final[f"{key}@{j}"] for key in FRAME_KEYS[frame][:2] for j in range(1, m + 1)]
                         + [final[f"{FRAME_KEYS[frame][2]}@1"]]),
            "nc3": float(nc3_self_duality(W, means, squared=False)),
            "nc3_ratio": float(W.norm() / means.norm()),
            "global_mean": float(run.model.features.detach().mean(1).norm() / means.norm()),
            "bias_error": np.nan if p.output_bias is None else
            float(np.abs(run.model.bias.detach().cpu().numpy() - p.output_bias).max()),
            "error": errors.get_group(m)["matrix_error"].max(),
            "spectrum_error": errors.get_group(m)["spectrum_error"].max(),
        })
    return pd.DataFrame(rows)


def closed_form_errors(
    predictions: Mapping[int, MSEMinimizer], runs: Mapping[int, SolveResult]
) -> pd.DataFrame:
    """Long table (M, quantity, layer, scale, matrix_error, spectrum_error): every matrix the
    closed form predicts, read off the best start (see :func:`ncbook.models.compare`)."""
    return pd.concat([
        compare(snapshot(runs[m].model), snapshot(DeepLinearUFM.from_point(p.point()))).assign(M=m)
        for m, p in predictions.items()
    ], ignore_index=True)


def norm_sweep(
    counts: Sequence[int], depth: int, lambdas: Sequence[float], width: int, **solve_options: Any
) -> pd.DataFrame:
    """Re-solve at each common lambda = lambda_W = lambda_H: one row per (lambda, class) with
    ``w_sq`` = ||w_k||^2 of the best start, ``w_sq_star`` its closed form, ``f`` and ``f_star``.

    Every start is kept in two columns: ``stuck``, how many starts stopped above f* (relative
    1e-9), and ``branch_gap``, the largest relative distance of any start's final loss to the
    nearest loss of a *branch point*: each direction either at zero or at the largest root of
    its own scalar problem (:func:`branch_losses`). For M >= 2 the branch points with beta_k in
    (beta*_M, phi_max] on the upper branch are the local minima of the window; a start that stops
    anywhere else has a positive gap.
    """
    rows = []
    for i, lam in enumerate(lambdas):
        lam = check_float(f"lambdas[{i}]", lam, low=0.0, low_open=True)
        theory = mse_minimizer(counts, depth, lambda_W=lam, lambda_H=lam, widths=width)
        run = solve(UFMSpec(counts, depth, width, lambda_W=lam, lambda_H=lam), track=False, **solve_options)
        measured = np.diag(snapshot(run.model).w_grams[0])
        finals = np.asarray(run.final_losses)
        branches = branch_losses(counts, depth, lam)
        gaps = np.abs(finals[:, None] - branches[None, :]).min(axis=1) / np.abs(finals)
        stuck = int((finals > theory.loss * (1 + 1e-9)).sum())
        rows += [{"lambda": lam, "class": k, "w_sq": w, "w_sq_star": t, "f": run.loss, "f_star": theory.loss,
                  "stuck": stuck, "branch_gap": float(gaps.max())}
                 for k, (w, t) in enumerate(zip(measured, theory.w_norm_sq))]
    return pd.DataFrame(rows)


def branch_losses(counts: Sequence[int], depth: int, lam: float) -> np.ndarray:
    """Sorted losses of every *branch point* of the bias-free MSE model at the common lambda
    ``lam``: each direction k left at zero (bracket 1) or, where phi_M has a root (beta_k <=
    phi_max), put at its largest root x_k (bracket 1/(1 + x_k^M) + beta_k x_k), widths >= K.
    The global minimum is one of them; for M >= 2, so are the local minima of the window.

    >>> branch_losses([5, 5], 1, 0.01).round(6).tolist()  # M = 1: zero, one class, both classes
    [0.043721, 0.271861, 0.5]
    """
    code = mse_minimizer(counts, depth, lambda_W=lam, lambda_H=lam, rule="code")
    share = np.asarray(code.n_eff, dtype=float) / code.n_eff.sum() / 2  # n_k / (2N)
    gains = np.where(code.direction_active, share * ((1 / (1 + code.x**depth) + code.beta * code.x) - 1), 0.0)
    # Directions with the same gain contribute in multiples: the count of choices stays small.
    values, multiplicity = np.unique(gains[gains != 0], return_counts=True)
    count = int(np.prod(multiplicity + 1.0))
    if count > 2**16:
        raise ValueError(f"branch_losses: {count} branch points are too many to list")
    losses = np.array([0.5])
    for value, count in zip(values, multiplicity):
        losses = (losses[:, None] + value * np.arange(count + 1)[None, :]).ravel()
    return np.sort(losses)


def local_check(
    point: LinearPoint, loss: str = "mse", *, noise: float = 1e-3, seed: int = 0
) -> dict[str, float]:
    """Is ``point`` a local minimum? ``grad`` = max |gradient| at the point; ``after`` = the
    objective after adding noise of ``noise`` times each tensor's RMS and re-optimising with
    L-BFGS (equal to the point's value when it is a strict local minimum)."""
    grad = DeepLinearUFM.from_point(point, loss).gradient_norm()
    kicked = DeepLinearUFM.from_point(point, loss, noise=noise, seed=seed)
    minimize(kicked, **vars(LBFGS), progress=False)
    with torch.no_grad():
        return {"grad": grad, "after": float(kicked.objective())}


def ce_scope(n: int, num_classes: int, depth: int, lambdas: Sequence[float]) -> pd.DataFrame:
    """For each common lambda = lambda_W = lambda_H: the best simplex-ETF and orthoplex points of
    the balanced CE model (:func:`ncbook.theory.ce_minimizer`), their scales ``a_etf``, ``a_orth``
    (0: the zero point), losses ``f_etf``, ``f_orth``, ``rel_gap`` = f_orth / f_etf - 1 and
    whether the orthoplex is strictly lower (``orthoplex_below``)."""
    rows = []
    for i, lam in enumerate(lambdas):
        lam = check_float(f"lambdas[{i}]", lam, low=0.0, low_open=True)
        etf = ce_minimizer(n, num_classes, depth, lambda_W=lam, lambda_H=lam)
        orth = ce_minimizer(n, num_classes, depth, lambda_W=lam, lambda_H=lam, geometry="orthoplex")
        rows.append({"K": num_classes, "M": depth, "n": n, "lambda": lam, "a_etf": etf.a, "a_orth": orth.a,
                     "f_etf": etf.loss, "f_orth": orth.loss, "rel_gap": orth.loss / etf.loss - 1,
                     "orthoplex_below": orth.loss < etf.loss})
    return pd.DataFrame(rows)


def ce_scope_summary(scope: pd.DataFrame) -> pd.DataFrame:
    """Per (K, M, n) of a :func:`ce_scope` table, over the lambdas where the ETF minimizer is
    non-zero: how many there are (``points``), the largest such lambda (``lambda_etf_max``), the
    orthoplex's relative advantage 1 - f_orth / f_etf at its smallest (``advantage_min``) and
    largest (``advantage_max``), and whether the orthoplex is strictly lower at every one of them
    (``below_everywhere``). ``lambda_orth_max`` is the largest lambda with a non-zero orthoplex."""
    rows = []
    for (k, m, n), part in scope.groupby(["K", "M", "n"], sort=False):
        live = part[part["a_etf"] > 0]
        advantage = -live["rel_gap"]
        rows.append({"K": k, "M": m, "n": n, "points": len(live),
                     "lambda_etf_max": live["lambda"].max(),
                     "lambda_orth_max": part.loc[part["a_orth"] > 0, "lambda"].max(),
                     "advantage_min": advantage.min(), "advantage_max": advantage.max(),
                     "below_everywhere": bool(live["orthoplex_below"].all()) and len(live) > 0})
    return pd.DataFrame(rows)


def class_table(prediction: MSEMinimizer, run: SolveResult) -> pd.DataFrame:
    """One row per class k of the best start against the closed form: ``w_sq`` = ||w_k||^2,
    ``h_sq`` = ||hbar_k||^2 (class means of H_1), ``ratio`` = ||w_k|| / ||hbar_k|| (NaN for a
    zero class), ``wh`` = w_k . hbar_k, each with its ``*_star``, and ``active``."""
    shot = snapshot(run.model)
    h_sq = np.diag(shot.h_grams[0])
    w_sq = np.diag(shot.w_grams[0])
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(prediction.active, np.sqrt(w_sq / h_sq), np.nan)
        ratio_star = np.sqrt(prediction.w_norm_sq / prediction.h_norm_sq)
    return pd.DataFrame({
        "class": range(len(w_sq)), "n_k": prediction.n_per_class, "active": prediction.active,
        "w_sq": w_sq, "w_sq_star": prediction.w_norm_sq, "h_sq": h_sq, "h_sq_star": prediction.h_norm_sq,
        "ratio": ratio, "ratio_star": np.where(prediction.active, ratio_star, np.nan),
        "wh": np.diag(shot.logits), "wh_star": prediction.wh,
    })


def window_gap(counts: Sequence[int], depth: int, lambdas: Sequence[float], width: int) -> pd.DataFrame:
    """Per common lambda: the closed-form loss under the global rule (``global``) and under the
    authors' rule (``code``), ``gap`` = code - global, and ``in_window``: whether some class has
    beta*_M < beta_k <= phi_max (lambda between its ``lambda_global`` and ``lambda_code``)."""
    curves = lambda_sweep(counts, depth, lambdas, widths=width)
    losses = curves.drop_duplicates(["lambda", "rule"]).pivot(index="lambda", columns="rule", values="loss")
    edges = collapse_thresholds(counts, depth)
    grid = losses.index.to_numpy()
    inside = np.any([(grid > low) & (grid <= high) for low, high in
                     zip(edges["lambda_global"], edges["lambda_code"])], axis=0)
    return pd.DataFrame({
        "lambda": grid, "global": losses["global"].to_numpy(), "code": losses["code"].to_numpy(),
        "gap": (losses["code"] - losses["global"]).to_numpy(), "in_window": inside,
    })


def lambda_at_ratio(depth: int, ratio: float, n_per_class: int, num_samples: int) -> float:
    """The common decay lambda = lambda_W = lambda_H at which beta = ratio * beta*_M for a balanced
    problem (chapter 11's sweep across the threshold)."""
    return lambda_for_beta(ratio * beta_star(depth), n_per_class, num_samples, depth)


def classifier_cosine_gap(model: DeepLinearUFM) -> float:
    """max_{j != k} |cos(w_j, w_k) + 1/(K-1)|: how far the classifier rows are from a simplex ETF's
    angles (chapter 12)."""
    gram = snapshot(model).w_grams[0]
    cosines = gram / np.sqrt(np.outer(np.diag(gram), np.diag(gram)))
    num_classes = gram.shape[0]
    return float(np.abs(cosines[~np.eye(num_classes, dtype=bool)] + 1 / (num_classes - 1)).max())


def rule_summary(gaps: pd.DataFrame, counts: Sequence[int], depths: Sequence[int]) -> pd.DataFrame:
    """Per depth, from :func:`window_gap` tables stacked with an ``M`` column: the largest |gap|
    outside the windows, the smallest gap inside, how many grid points lie inside, and
    w_k^T h_k of the smallest class just below its threshold against (M-1)/M (chapter 15)."""
    rows = []
    for depth in depths:
        table = gaps[gaps.M == depth]
        below = collapse_thresholds(counts, depth)["lambda_global"].iloc[-1] * (1 - 1e-9)
        rows.append({
            "M": depth, "outside": table.loc[~table.in_window, "gap"].abs().max(),
            "inside": table.loc[table.in_window, "gap"].min(), "points_inside": int(table.in_window.sum()),
            "wh_below": mse_minimizer(counts, depth, lambda_W=below, lambda_H=below).wh[-1],
            "wh_star": (depth - 1) / depth,
        })
    return pd.DataFrame(rows)
