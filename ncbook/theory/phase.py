"""Phase diagrams: the closed forms of :mod:`ncbook.theory` evaluated on whole parameter grids.

Each map answers "which geometry is optimal?" at every point of a grid, built only from the public
closed forms (``collapse_thresholds``, ``ce_minimizer``, ``dufm_comparison_table``), so a map is exactly as
right as the formulas it draws:

* :func:`mse_collapse_map`: imbalanced bias-free MSE (paper A) over (imbalance ratio, lambda): how
  many classes the global minimizer sets to zero, and how many the authors' code rule does;
* :func:`ce_phase_map`: balanced CE (paper A) over (lambda, M): the lowest of the zero point, the
  simplex ETF and the orthoplex;
* :func:`dufm_ratio_map`: the ReLU deep UFM (paper B) over (K, L, lambda): the best low-rank
  construction's loss over the DNC loss.

Each map is tidy (one row per grid point). The two-candidate maps are *upper-bound* maps: they rank
known families, and an optimiser may find a point lower than all of them.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from ncbook._checks import check_choice, check_float, check_int
from ncbook.theory import ce_minimizer, collapse_thresholds, dufm_comparison_table

__all__ = [
    "CE_PHASES",
    "IMBALANCE_SHAPES",
    "ce_phase_boundaries",
    "ce_phase_map",
    "dufm_ratio_map",
    "garrod_keating_scope",
    "imbalanced_counts",
    "mse_collapse_boundaries",
    "mse_collapse_map",
]

IMBALANCE_SHAPES = ("exponential", "step")  # how class sizes fall from n_max to n_max / ratio
CE_PHASES = ("zero", "etf", "orthoplex")  # candidates of the CE map, in tie-break order


# ------------------------------------------------------------------------- paper A, MSE
def imbalanced_counts(num_classes: int, n_max: int, ratio: float, shape: str = "exponential") -> list[int]:
    """Class sizes n_1 >= ... >= n_K with n_1 = n_max and n_1 / n_K = ``ratio`` (before rounding):

        exponential: n_k = round(n_max ratio^(-(k-1)/(K-1)))   (long-tailed)
        step:        n_k = n_max for the first half, round(n_max / ratio) for the second

    >>> imbalanced_counts(5, 100, 16.0)
    [100, 50, 25, 12, 6]
    >>> imbalanced_counts(4, 100, 10.0, "step")
    [100, 100, 10, 10]
    """
    k = check_int("num_classes", num_classes, low=2)
    n_max = check_int("n_max", n_max, low=1)
    ratio = check_float("ratio", ratio, low=1.0, high=float(n_max))
    check_choice("shape", shape, IMBALANCE_SHAPES)
    if shape == "exponential":
        sizes = n_max * ratio ** (-np.arange(k) / (k - 1))
    else:
        sizes = np.where(np.arange(k) < (k + 1) // 2, n_max, n_max / ratio)
    return [max(1, int(v)) for v in np.round(sizes)]


def mse_collapse_boundaries(
    ratios: Sequence[float], depth: int, num_classes: int, n_max: int, shape: str = "exponential"
) -> pd.DataFrame:
    """Per imbalance ratio, the common lambda (lambda_W[m] = lambda_H) at which the smallest class
    leaves the global minimizer (``first_global``) and the largest one does (``all_global``), and
    the same for the authors' code rule (``first_code``, ``all_code``), from
    :func:`ncbook.theory.collapse_thresholds` (bias-free model, widths >= K).

    >>> b = mse_collapse_boundaries([1.0], 1, 4, 10)
    >>> bool(b.first_global.iloc[0] == b.all_global.iloc[0] == b.first_code.iloc[0])  # balanced, M = 1
    True
    """
    rows = []
    for ratio in ratios:
        counts = imbalanced_counts(num_classes, n_max, ratio, shape)
        table = collapse_thresholds(counts, depth)
        rows.append({
            "ratio": float(ratio),
            "first_global": table["lambda_global"].min(),
            "all_global": table["lambda_global"].max(),
            "first_code": table["lambda_code"].min(),
            "all_code": table["lambda_code"].max(),
        })
    return pd.DataFrame(rows)


def mse_collapse_map(
    ratios: Sequence[float],
    lambdas: Sequence[float],
    depth: int,
    num_classes: int,
    n_max: int,
    shape: str = "exponential",
) -> pd.DataFrame:
    """How many classes sit at zero (w_k = 0, hbar_k = 0) over a (ratio, lambda) grid.

    Class k is zero at the global minimum iff lambda >= lambda_global,k, i.e. beta_k >= beta*_M,
    and under the authors' code rule iff lambda > lambda_code,k (beta_k > phi_max(M)), thresholds
    from :func:`ncbook.theory.collapse_thresholds`. One row per (ratio, lambda): ``zero_global``,
    ``zero_code`` and ``window`` (the two rules disagree: some class is zero at the global minimum
    but kept by the code rule; never for M = 1).

    >>> grid = mse_collapse_map([1.0, 20.0], [1e-3, 3e-2], 2, 4, 40)
    >>> grid.zero_global.tolist()
    [0, 4, 0, 2]
    """
    lam = np.asarray([check_float("lambdas", v, low=0.0, low_open=True) for v in lambdas])
    frames = []
    for ratio in ratios:
        counts = imbalanced_counts(num_classes, n_max, ratio, shape)
        table = collapse_thresholds(counts, depth)
        glob = (lam[:, None] >= table["lambda_global"].to_numpy()[None, :]).sum(axis=1)
        code = (lam[:, None] > table["lambda_code"].to_numpy()[None, :]).sum(axis=1)
        frames.append(pd.DataFrame({
            "ratio": float(ratio), "lambda": lam, "depth": depth, "zero_global": glob,
            "zero_code": code, "window": glob != code,
        }))
    return pd.concat(frames, ignore_index=True)


# -------------------------------------------------------------------------- paper A, CE
def _ce_losses(n: int, num_classes: int, depth: int, lam: float) -> dict[str, float]:
    """Loss of each CE candidate at a common lambda (orthoplex: even K only)."""
    losses = {"zero": float(np.log(num_classes))}
    for geometry in CE_PHASES[1:]:
        if geometry == "orthoplex" and num_classes % 2:
            continue
        losses[geometry] = ce_minimizer(n, num_classes, depth, lambda_W=lam, lambda_H=lam,
                                        geometry=geometry).loss
    return losses


def _winner(losses: dict[str, float]) -> str:
    # The zero point wins ties (it is the limit a -> 0 of both families), then the ETF.
    return min(losses, key=lambda name: (losses[name], CE_PHASES.index(name)))


def garrod_keating_scope(num_classes: int, depth: int) -> bool:
    """Whether (K, M) lies in the scope of Garrod & Keating's Theorem 1 (arXiv 2410.23169): for
    widths >= K, no DNC/ETF point is a global minimum of the deep linear CE UFM when K >= 4 and
    M >= 3, or K >= 6 and M = 2.

    >>> [garrod_keating_scope(4, m) for m in (1, 2, 3)], garrod_keating_scope(6, 2)
    ([False, False, True], True)
    """
    k = check_int("num_classes", num_classes, low=2)
    m = check_int("depth", depth, low=1)
    return (k >= 4 and m >= 3) or (k >= 6 and m >= 2)


def ce_phase_map(
    n: int, num_classes: int, depths: Sequence[int], lambdas: Sequence[float]
) -> pd.DataFrame:
    """The lowest of three balanced-CE candidates over a (M, lambda) grid (lambda_W = lambda_H):
    the zero point (loss log K), the best simplex ETF and the best orthoplex
    (:func:`ncbook.theory.ce_minimizer`; odd K has no orthoplex). One row per (depth, lambda):
    columns zero, etf, orthoplex (losses), winner, and gap = (orthoplex - etf) / etf.

    An upper-bound map: for large K and M, points of rank below K/2 can be lower still.

    >>> ce_phase_map(10, 4, [1, 3], [1e-3]).winner.tolist()
    ['etf', 'orthoplex']
    """
    n = check_int("n", n, low=1)
    num_classes = check_int("num_classes", num_classes, low=2)
    rows = []
    for depth in depths:
        for lam in lambdas:
            losses = _ce_losses(n, num_classes, depth, lam)
            rows.append({"K": num_classes, "depth": int(depth), "lambda": float(lam), **losses,
                         "winner": _winner(losses)})
    frame = pd.DataFrame(rows)
    if "orthoplex" in frame:
        frame["gap"] = (frame["orthoplex"] - frame["etf"]) / frame["etf"]
    return frame


def ce_phase_boundaries(phase_map: pd.DataFrame, n: int, rtol: float = 1e-9) -> pd.DataFrame:
    """Where the winner of :func:`ce_phase_map` changes along lambda, located by bisection in
    log lambda between two neighbouring grid points with different winners (to ``rtol``). Bisection
    on the winner, not a root of a loss difference: a family's best loss is pinned at log K once its
    minimiser is the zero point, so the difference has no sign change there. One row per change:
    K, depth, lambda, below, above (the winners on either side).

    >>> grid = ce_phase_map(10, 4, [2], np.geomspace(1e-5, 1.0, 12))
    >>> ce_phase_boundaries(grid, 10)[["below", "above"]].values.tolist()
    [['etf', 'orthoplex'], ['orthoplex', 'zero']]
    """
    n = check_int("n", n, low=1)
    rtol = check_float("rtol", rtol, low=0.0, low_open=True)
    rows = []
    for (k, depth), group in phase_map.sort_values("lambda").groupby(["K", "depth"]):
        lam, winner = group["lambda"].to_numpy(), group["winner"].to_numpy()
        for i in np.flatnonzero(winner[1:] != winner[:-1]):
            low, high = np.log(lam[i]), np.log(lam[i + 1])
            while high - low > rtol:
                middle = (low + high) / 2
                if _winner(_ce_losses(n, int(k), int(depth), float(np.exp(middle)))) == winner[i]:
                    low = middle
                else:
                    high = middle
            rows.append({"K": int(k), "depth": int(depth), "lambda": float(np.exp((low + high) / 2)),
                         "below": winner[i], "above": winner[i + 1]})
    return pd.DataFrame(rows, columns=["K", "depth", "lambda", "below", "above"])


# ------------------------------------------------------------------------------ paper B
def dufm_ratio_map(
    rs: Sequence[int],
    depths: Sequence[int],
    lambdas: Sequence[float],
    n: int = 1,
    *,
    nonnegative_features: bool = False,
) -> pd.DataFrame:
    """L_best-low-rank / L_DNC for the ReLU deep UFM (lambda_H = every lambda_W = lambda), one row
    per (r, depth, lambda) with K = r(r-1)/2: columns dnc, srg (best readout size s), s, naive,
    low_rank = min(srg, naive), ratio = low_rank / dnc (NaN where the zero point beats DNC,
    L_DNC = 1/2) and ``nonnegative_features`` (H_1 free, or H_1 >= 0 as a ReLU backbone gives).

    >>> row = dufm_ratio_map([5], [4], [0.004]).iloc[0]
    >>> int(row.K), int(row.s), round(float(row.ratio), 3)
    (10, 3, 0.816)
    """
    n = check_int("n", n, low=1)
    check_choice("nonnegative_features", nonnegative_features, (True, False))
    table = dufm_comparison_table(rs, depths, lambdas, n, nonnegative_features=nonnegative_features)
    low_rank = np.minimum(table.srg, table.naive)
    return table.assign(
        depth=table.depth.astype(int), **{"lambda": table["lambda"].astype(float)}, low_rank=low_rank,
        ratio=(low_rank / table.dnc).where(table.dnc < 0.5),
    )[["r", "K", "depth", "lambda", "dnc", "srg", "s", "naive", "low_rank", "ratio", "nonnegative_features"]]
