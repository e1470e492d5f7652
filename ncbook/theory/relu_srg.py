"""The low-rank SRG solutions of the ReLU deep UFM in closed form, against DNC (chapters 31-33).

Classes are the edges of the complete graph K_r (K = r(r-1)/2); class means proportional to the
vertex-edge incidence matrix B (rank r) run through layers 2..L-1 with inactive ReLUs, and a
readout F over the s-subsets of vertices before the last ReLU raises the rank back to K. Paper B
(abstract) names a strongly-regular-graph solution of rank Theta(sqrt K); this realisation (the
s-subset readout, the balanced mixed-sign H_1, the "naive" variant) and every formula here are
ours, derived and checked against explicit weights (:mod:`ncbook.models.dufm_points`).

With ``nonnegative_features=True`` (H_1 >= 0, a ReLU backbone's output) the mixed-sign square
root of B cannot be used: H_1 is B itself (scaled), which costs ||B||_F^2 = 2K and r (for W_1 = I_r)
instead of the nuclear norm ||B||_* twice; at L = 2, H_1 = B and W_1 = F.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from itertools import combinations

import numpy as np
import pandas as pd
from scipy.optimize import minimize_scalar

from ncbook._checks import check_int
from ncbook.theory.relu import (
    DUFMOptimum,
    chain_optimum,
    check_flag,
    check_problem,
    dufm_dnc_loss,
    geometric_mean,
)

__all__ = [
    "dufm_comparison_table",
    "dufm_srg_loss",
    "dufm_srg_naive_loss",
    "dufm_srg_naive_optimum",
    "dufm_srg_optimum",
    "srg_constant",
    "srg_constant_table",
    "srg_incidence",
    "srg_naive_constant",
    "srg_readout",
]


def _check_rs(r: int, s: int) -> tuple[int, int]:
    r = check_int("r", r, low=3)
    s = check_int("s", s, low=2, high=r - 1)
    return r, s


# ----------------------------------------------------------------------- SRG building blocks
def srg_incidence(r: int) -> np.ndarray:
    """Vertex-edge incidence matrix B (r x K) of K_r; edges (classes) in lexicographic order.

    >>> srg_incidence(3).astype(int).tolist()
    [[1, 1, 0], [1, 0, 1], [0, 1, 1]]
    """
    r = check_int("r", r, low=3)
    edges = list(combinations(range(r), 2))
    incidence = np.zeros((r, len(edges)))
    for k, (v, w) in enumerate(edges):
        incidence[[v, w], k] = 1.0
    return incidence


def srg_readout(r: int, s: int) -> tuple[np.ndarray, np.ndarray]:
    """Readout F (m x r; +1/2 on S, -1/2 off S, one row per s-subset S) and C = relu(F B) (m x K).

    Entry (S, e) of F B is +1 if e lies in S, 0 if it meets S once, -1 if it misses S, so C is
    the s-subset / edge inclusion matrix; m = C(r, s).
    """
    r, s = _check_rs(r, s)
    subsets = list(combinations(range(r), s))
    readout = -0.5 * np.ones((len(subsets), r))
    for row, subset in enumerate(subsets):
        readout[row, list(subset)] = 0.5
    return readout, np.maximum(readout @ srg_incidence(r), 0.0)


def _comb(top: int, bottom: int) -> int:
    # Binomial coefficient that is 0 outside 0 <= bottom <= top (math.comb rejects negatives).
    return math.comb(top, bottom) if 0 <= bottom <= top else 0


def _nuclear_b(r: int) -> float:
    # B B^T = (r-2) I + J: eigenvalues 2(r-1) once and r-2 (r-1 times).
    return math.sqrt(2 * (r - 1)) + (r - 1) * math.sqrt(r - 2)


def _triangular_spectrum(r: int) -> list[tuple[float, int, bool]]:
    # Adjacency of T(r) = line graph of K_r: (eigenvalue, multiplicity, is the all-ones direction).
    return [(2.0 * (r - 2), 1, True), (r - 4.0, r - 1, False), (-2.0, r * (r - 3) // 2, False)]


def _gram_c_spectrum(r: int, s: int) -> list[tuple[float, int]]:
    """Eigenvalues of C^T C = a I + b A + c (J - I - A), A the adjacency of T(r)."""
    K = r * (r - 1) // 2
    a, b, c = _comb(r - 2, s - 2), _comb(r - 3, s - 3), _comb(r - 4, s - 4)
    return [
        (a + b * theta + c * (K * ones - 1 - theta), mult) for theta, mult, ones in _triangular_spectrum(r)
    ]


def _nuclear_fb(r: int, s: int) -> float:
    """||F B||_*: F^T F = alpha I + beta J, so B^T F^T F B = alpha (2 I + A) + 4 beta J."""
    K, m = r * (r - 1) // 2, math.comb(r, s)
    beta = (_comb(r - 2, s - 2) + _comb(r - 2, s) - 2 * _comb(r - 2, s - 1)) / 4
    alpha = m / 4 - beta
    eigen = [
        (alpha * (2 + theta) + 4 * beta * K * ones, mult) for theta, mult, ones in _triangular_spectrum(r)
    ]
    return sum(mult * math.sqrt(max(value, 0.0)) for value, mult in eigen)


def _upstream_norms(r: int, s: int, depth: int, nonnegative: bool) -> list[float]:
    """Squared norm of the unit factor behind each upstream scalar (H_1, W_1, ..., W_{L-1}).

    Free H_1: the balanced pair (M_1, W_1) costs the nuclear norm of its product (B, or F B at
    L = 2) in each factor. H_1 >= 0: M_1 = B (||B||_F^2 = 2K) and W_1 = I_r (r), or F at L = 2.
    Then W_2..W_{L-2} = I_r (r each) and W_{L-1} = F (||F||_F^2 = m r / 4).
    """
    K, readout = r * (r - 1) // 2, math.comb(r, s) * r / 4
    if nonnegative:
        pair = [2.0 * K, readout if depth == 2 else float(r)]
    else:
        nuclear = _nuclear_fb(r, s) if depth == 2 else _nuclear_b(r)
        pair = [nuclear, nuclear]
    if depth == 2:
        return pair
    return [*pair, *([float(r)] * (depth - 3)), readout]


# ------------------------------------------------------------------------------------------ SRG
def dufm_srg_optimum(
    r: int,
    s: int,
    depth: int,
    n_per_class: int,
    *,
    lambda_H: float,
    lambda_W: float | Sequence[float],
    nonnegative_features: bool = False,
) -> DUFMOptimum:
    """Best clique-readout SRG solution (K = r(r-1)/2, readout over s-subsets, L >= 2):

        L_SRG = min_u (L/2) G u^(2/L) + lambda_W[L]/2 tr((u^2 C^T C + K lambda_W[L] I)^(-1)),

    G = (prod_i a_i)^(1/L) over the upstream factors (``_upstream_norms`` times their lambdas),
    and the last layer is the ridge solution (the zero solution, 0.5, is the limit u -> 0).
    ``factors`` are the upstream scalars (product u); W_L = (u^2 C^T C + K lambda I)^(-1) u C^T.
    """
    r, s = _check_rs(r, s)
    nonnegative = check_flag("nonnegative_features", nonnegative_features)
    depth, n, lambda_H, lambdas = check_problem(depth, n_per_class, lambda_H, lambda_W, 2)
    K, lam_last = r * (r - 1) // 2, lambdas[-1]
    constants = [n * lambda_H, *lambdas[:-1]]
    coefficients = [lam * norm for lam, norm in zip(constants, _upstream_norms(r, s, depth, nonnegative))]
    geo = geometric_mean(coefficients)
    spectrum = _gram_c_spectrum(r, s)

    def loss(log_u: float) -> float:
        u2 = math.exp(2 * log_u)
        ridge = sum(mult / (u2 * value + K * lam_last) for value, mult in spectrum)
        return depth / 2 * geo * u2 ** (1 / depth) + lam_last / 2 * ridge

    # The 1-D problem can have two local minima (like the DNC jump): grid first, then polish.
    grid = np.linspace(-20.0, 20.0, 4001)
    best = int(np.argmin([loss(v) for v in grid]))
    step = grid[1] - grid[0]
    polished = minimize_scalar(
        loss, bounds=(grid[best] - step, grid[best] + step), method="bounded", options={"xatol": 1e-13}
    )
    value = float(polished.fun)
    if value >= 0.5:
        return DUFMOptimum(0.5, 0.0, (0.0,) * depth)
    u = math.exp(polished.x)
    return DUFMOptimum(value, u, tuple(math.sqrt(geo / a) * u ** (1 / depth) for a in coefficients))


def dufm_srg_loss(
    r: int,
    s: int,
    depth: int,
    n_per_class: int,
    *,
    lambda_H: float,
    lambda_W: float | Sequence[float],
    nonnegative_features: bool = False,
) -> float:
    """Optimal loss of the clique-readout SRG family; see ``dufm_srg_optimum``.

    >>> round(dufm_srg_loss(5, 3, 4, 1, lambda_H=0.004, lambda_W=0.004), 10)
    0.0809113322
    """
    return dufm_srg_optimum(r, s, depth, n_per_class, lambda_H=lambda_H, lambda_W=lambda_W,
                            nonnegative_features=nonnegative_features).loss


def dufm_srg_naive_optimum(
    r: int,
    depth: int,
    n_per_class: int,
    *,
    lambda_H: float,
    lambda_W: float | Sequence[float],
    nonnegative_features: bool = False,
) -> DUFMOptimum:
    """The "naive" SRG solution (s = 2, H_1 = t B >= 0, W_L = y I_K), whose output is c I_K: a
    chain of L+1 scalars with coefficients
    (2K n lambda_H, r lambda_1, ..., r lambda_{L-2}, K r/4 lambda_{L-1}, K lambda_L), so

        L_naive = min_c 1/2 (1-c)^2 + (L+1)/2 lbar C_naive c^(2/(L+1)),  C_naive^(L+1) = K^3 r^(L-1)/2.

    Its H_1 is non-negative already, so ``nonnegative_features`` does not change the value.
    """
    r = check_int("r", r, low=3)
    check_flag("nonnegative_features", nonnegative_features)
    depth, n, lambda_H, lambdas = check_problem(depth, n_per_class, lambda_H, lambda_W, 2)
    K = r * (r - 1) // 2
    middle = [lam * r for lam in lambdas[: depth - 2]]
    return chain_optimum([2 * K * n * lambda_H, *middle, lambdas[depth - 2] * K * r / 4, lambdas[-1] * K])


def dufm_srg_naive_loss(
    r: int,
    depth: int,
    n_per_class: int,
    *,
    lambda_H: float,
    lambda_W: float | Sequence[float],
    nonnegative_features: bool = False,
) -> float:
    """Optimal loss of the naive SRG family; see ``dufm_srg_naive_optimum``.

    >>> round(dufm_srg_naive_loss(5, 4, 1, lambda_H=0.004, lambda_W=0.004), 10)
    0.0903502056
    """
    return dufm_srg_naive_optimum(
        r, depth, n_per_class, lambda_H=lambda_H, lambda_W=lambda_W, nonnegative_features=nonnegative_features
    ).loss


# -------------------------------------------------------------------------- small-lambda limit
def srg_constant(r: int, s: int, depth: int, *, nonnegative_features: bool = False) -> float:
    """C_SRG: as lambda -> 0 (all constants equal), L_SRG ~ (L+1)/2 lambda C_SRG, while
    L_DNC ~ (L+1)/2 lambda K. With T = tr((C^T C)^(-1)) (infinite when C^T C is singular) and
    P the product of the upstream norms (``_upstream_norms``),

        C_SRG^(L+1) = P T,  P = ||B||_*^2 r^(L-3) (m r / 4) for free H_1 at L >= 3.

    >>> round(srg_constant(5, 3, 4) / 10, 3), round(srg_constant(5, 3, 4, nonnegative_features=True) / 10, 3)
    (0.817, 0.825)
    """
    r, s = _check_rs(r, s)
    nonnegative = check_flag("nonnegative_features", nonnegative_features)
    depth = check_int("depth", depth, low=2)
    spectrum = _gram_c_spectrum(r, s)
    if min(value for value, _ in spectrum) <= 1e-12:
        return math.inf
    trace = sum(mult / value for value, mult in spectrum)
    return (math.prod(_upstream_norms(r, s, depth, nonnegative)) * trace) ** (1 / (depth + 1))


def srg_naive_constant(r: int, depth: int) -> float:
    """C_naive = (K^3 r^(L-1) / 2)^(1/(L+1)); it beats DNC (C_naive < K) iff 2^(L-3) r < (r-1)^(L-2).

    >>> srg_naive_constant(5, 4) < 10 < srg_naive_constant(5, 3)
    True
    """
    r = check_int("r", r, low=3)
    depth = check_int("depth", depth, low=2)
    K = r * (r - 1) // 2
    return (K**3 * r ** (depth - 1) / 2) ** (1 / (depth + 1))


def _flags(nonnegative_features: bool | Sequence[bool]) -> list[bool]:
    if isinstance(nonnegative_features, (bool, np.bool_)):
        return [bool(nonnegative_features)]
    if not isinstance(nonnegative_features, Sequence) or not nonnegative_features:
        raise ValueError(
            f"`nonnegative_features` must be True, False or a list of them, got {nonnegative_features!r}"
        )
    return [check_flag(f"nonnegative_features[{i}]", v) for i, v in enumerate(nonnegative_features)]


def _rs_list(rs: Iterable[int]) -> list[int]:
    if not isinstance(rs, Iterable):
        raise ValueError(f"`rs` must be a list of integers >= 3, got {rs!r}")
    return [check_int(f"rs[{i}]", r, low=3) for i, r in enumerate(rs)]


def srg_constant_table(
    rs: Iterable[int], depths: Iterable[int], *, nonnegative_features: bool | Sequence[bool] = False
) -> pd.DataFrame:
    """C_SRG / K at the best readout size s, one row per (H_1 variant, r, depth): columns
    nonnegative_features, r, K, depth, s, ratio.

    >>> srg_constant_table([6], [2]).round(3).to_dict("records")
    [{'nonnegative_features': False, 'r': 6, 'K': 15, 'depth': 2, 's': 3, 'ratio': 0.987}]
    """
    rows = []
    for flag in _flags(nonnegative_features):
        for r in _rs_list(rs):
            for depth in depths:
                K = r * (r - 1) // 2
                ratio, s = min(
                    (srg_constant(r, s, depth, nonnegative_features=flag) / K, s) for s in range(2, r)
                )
                rows.append(
                    {"nonnegative_features": flag, "r": r, "K": K, "depth": depth, "s": s, "ratio": ratio}
                )
    return pd.DataFrame(rows)


def dufm_comparison_table(
    rs: Iterable[int],
    depths: Iterable[int],
    lambdas: Iterable[float],
    n_per_class: int = 1,
    *,
    nonnegative_features: bool | Sequence[bool] = False,
) -> pd.DataFrame:
    """DNC against the best SRG solution (all constants equal to ``lambda``), one row per
    (H_1 variant, r, depth, lambda): columns nonnegative_features, r, K, depth, lambda, dnc, srg,
    s (the best readout size), naive (``dufm_srg_naive_loss``) and ratio = srg / dnc.

    >>> table = dufm_comparison_table([5], [4], [0.004], nonnegative_features=[False, True])
    >>> [(int(row.s), round(float(row.ratio), 3)) for row in table.itertuples()]
    [(3, 0.816), (3, 0.824)]
    """
    if not isinstance(lambdas, Iterable):
        raise ValueError(f"`lambdas` must be a list of numbers > 0, got {lambdas!r}")
    rows = []
    for flag in _flags(nonnegative_features):
        for r in _rs_list(rs):
            for depth in depths:
                for lam in lambdas:
                    K = r * (r - 1) // 2
                    same = {"lambda_H": lam, "lambda_W": lam, "nonnegative_features": flag}
                    dnc = dufm_dnc_loss(K, depth, n_per_class, **same)
                    srg, s = min((dufm_srg_loss(r, s, depth, n_per_class, **same), s) for s in range(2, r))
                    naive = dufm_srg_naive_loss(r, depth, n_per_class, **same)
                    rows.append(
                        {"nonnegative_features": flag, "r": r, "K": K, "depth": depth, "lambda": lam,
                         "dnc": dnc, "srg": srg, "s": s, "naive": naive, "ratio": srg / dnc}
                    )  # fmt: skip
    return pd.DataFrame(rows, columns=["nonnegative_features", "r", "K", "depth", "lambda", "dnc", "srg", "s",
                                       "naive", "ratio"])
