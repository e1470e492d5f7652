"""Closed forms for the ReLU deep unconstrained-features model (L-DUFM) of paper B
(Súkeník, Mondelli, Lampert 2023; Súkeník, Lampert, Mondelli 2024); see ../shared/theory/paper-b.md.

With K classes, n samples per class, free features H_1 and L bias-free layers (ReLU after every
hidden layer, none on H_1), the objective is

    1/(2N) ||W_L s(W_{L-1} ... s(W_1 H_1)) - Y||_F^2 + sum_l lambda_W[l]/2 ||W_l||_F^2
        + lambda_H/2 ||H_1||_F^2 .

Two families of collapsed solutions are compared:

* DNC (deep neural collapse): orthogonal-frame class means of rank K in every layer;
* SRG (strongly regular graph): classes = edges of the complete graph K_r (K = r(r-1)/2), class
  means proportional to the vertex-edge incidence matrix B (rank r) up to the last hidden layer,
  where a readout F over the s-subsets of vertices and the ReLU raise the rank back to K.

Each family's optimal loss reduces to a one-dimensional problem over an output scale; the
explicit weights that attain it are built by :mod:`ncbook.models.relu_dufm`.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from itertools import combinations

import numpy as np
import pandas as pd
from scipy.optimize import brentq, minimize_scalar

from ncbook._checks import check_float, check_float_list, check_int

__all__ = [
    "DUFMOptimum",
    "dufm_comparison_table",
    "dufm_dnc_loss",
    "dufm_dnc_optimum",
    "dufm_dnc_threshold",
    "dufm_lambda_bar",
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


@dataclass(frozen=True)
class DUFMOptimum:
    loss: float  # optimal objective of the family (0.5 when the zero solution wins)
    scale: float  # DNC/naive: output scale c (output = c I_K); SRG: pre-ReLU scale u; 0 if zero
    factors: tuple[float, ...]  # scalar size of each balanced factor; their product is `scale`


# ----------------------------------------------------------------------------------- validation
def _common(
    depth: int, n: int, lambda_H: float, lambda_W: float | Sequence[float], min_depth: int
) -> tuple[int, int, float, tuple[float, ...]]:
    depth = check_int("depth", depth, low=min_depth)
    n = check_int("n", n, low=1)
    lambda_H = check_float("lambda_H", lambda_H, low=0.0, low_open=True)
    lambdas = check_float_list("lambda_W", lambda_W, depth, low=0.0, low_open=True)
    return depth, n, lambda_H, lambdas


def _check_rs(r: int, s: int) -> tuple[int, int]:
    r = check_int("r", r, low=3)
    s = check_int("s", s, low=2, high=r - 1)
    return r, s


def dufm_lambda_bar(depth: int, n: int, lambda_H: float, lambda_W: float | Sequence[float]) -> float:
    """Geometric mean of the L+1 effective constants, (n lambda_H prod_l lambda_W[l])^(1/(L+1)).

    >>> round(dufm_lambda_bar(4, 5, 0.004, 0.004), 6)  # (5 * 0.004^5)^(1/5)
    0.005519
    """
    depth, n, lambda_H, lambdas = _common(depth, n, lambda_H, lambda_W, 1)
    return _geometric_mean([n * lambda_H, *lambdas])


def _geometric_mean(values: Sequence[float]) -> float:
    return math.exp(sum(math.log(v) for v in values) / len(values))


# ----------------------------------------------------------------------------- scalar chain
def _chain_optimum(coefficients: Sequence[float]) -> DUFMOptimum:
    """min over scalars z_i of 1/2 (1 - prod z)^2 + sum_i a_i/2 z_i^2, by Lemma (C):

        min_c 1/2 (1 - c)^2 + (m/2) G c^(2/m),   G = (prod a_i)^(1/m),  z_i = sqrt(G/a_i) c^(1/m).

    The non-zero minimiser solves (1 - c) c^(1-p) = p A (p = 2/m, A = m G / 2) on the branch
    right of the maximiser c* = (1-p)/(2-p) of the left side; it wins only if it beats c = 0.
    """
    m = len(coefficients)
    geo = _geometric_mean(coefficients)
    p, big_a = 2.0 / m, m * geo / 2.0
    c_star = (1.0 - p) / (2.0 - p)

    def stationarity(c: float) -> float:
        return (1.0 - c) * c ** (1.0 - p) - p * big_a

    if stationarity(c_star) <= 0.0:
        return DUFMOptimum(0.5, 0.0, (0.0,) * m)
    c = brentq(stationarity, c_star, 1.0, xtol=1e-300, rtol=4 * np.finfo(float).eps, maxiter=500)
    loss = 0.5 * (1.0 - c) ** 2 + big_a * c**p
    if loss >= 0.5:
        return DUFMOptimum(0.5, 0.0, (0.0,) * m)
    return DUFMOptimum(loss, c, tuple(math.sqrt(geo / a) * c ** (1.0 / m) for a in coefficients))


# ------------------------------------------------------------------------------------------ DNC
def dufm_dnc_optimum(
    K: int, depth: int, n: int, lambda_H: float, lambda_W: float | Sequence[float]
) -> DUFMOptimum:
    """Best DNC solution: orthogonal-frame class means, every ReLU inactive, output c I_K,

        L_DNC = min_c 1/2 (1-c)^2 + (L+1)/2 K lbar c^(2/(L+1)),  lbar = dufm_lambda_bar(...).

    ``factors`` = (x_0, x_1, ..., x_L): M_1 = x_0 [I_K; 0], W_l = x_l (partial identity).
    """
    K = check_int("K", K, low=2)
    depth, n, lambda_H, lambdas = _common(depth, n, lambda_H, lambda_W, 1)
    return _chain_optimum([K * n * lambda_H, *(K * lam for lam in lambdas)])


def dufm_dnc_loss(K: int, depth: int, n: int, lambda_H: float, lambda_W: float | Sequence[float]) -> float:
    """Optimal loss of the DNC family (0.5 when the zero solution wins); see ``dufm_dnc_optimum``.

    >>> round(dufm_dnc_loss(10, 4, 1, 0.004, 0.004), 10)
    0.0991798746
    """
    return dufm_dnc_optimum(K, depth, n, lambda_H, lambda_W).loss


def dufm_dnc_threshold(K: int, depth: int) -> float:
    """Largest lbar for which DNC beats the zero solution: with p = 2/(L+1),

        lbar_crit = 2 A_crit / ((L+1) K),  A_crit = (2(1-p)/(2-p))^(1-p) / (2-p).

    >>> round(dufm_dnc_threshold(10, 4), 5)
    0.02104
    """
    K = check_int("K", K, low=2)
    depth = check_int("depth", depth, low=1)
    p = 2.0 / (depth + 1)
    a_crit = (2 * (1 - p) / (2 - p)) ** (1 - p) / (2 - p)
    return 2 * a_crit / ((depth + 1) * K)


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


def _upstream_coefficients(
    r: int, s: int, depth: int, n: int, lambda_H: float, lambdas: tuple[float, ...]
) -> list[float]:
    """a_i of the L scalar factors producing the pre-ReLU scale u of the last hidden layer.

    L >= 3: the (M_1, W_1) pair (nuclear norm of B), W_2..W_{L-2} = y I_r, W_{L-1} = y F.
    L = 2: the (M_1, W_1) pair produces u F B directly.
    """
    if depth == 2:
        nuclear = _nuclear_fb(r, s)
        return [n * lambda_H * nuclear, lambdas[0] * nuclear]
    nuclear = _nuclear_b(r)
    middle = [lam * r for lam in lambdas[1 : depth - 2]]
    return [
        n * lambda_H * nuclear,
        lambdas[0] * nuclear,
        *middle,
        lambdas[depth - 2] * math.comb(r, s) * r / 4,
    ]


# ------------------------------------------------------------------------------------------ SRG
def dufm_srg_optimum(
    r: int, s: int, depth: int, n: int, lambda_H: float, lambda_W: float | Sequence[float]
) -> DUFMOptimum:
    """Best clique-readout SRG solution (K = r(r-1)/2, readout over s-subsets, L >= 2):

        L_SRG = min_u (L/2) G u^(2/L) + lambda_W[L]/2 tr((u^2 C^T C + K lambda_W[L] I)^(-1)),

    G = (prod_i a_i)^(1/L) over the upstream factors, and the last layer is the ridge solution
    (the zero solution, 0.5, is the limit u -> 0). ``factors`` are the upstream scalars
    (product u); the last layer is W_L = (u^2 C^T C + K lambda I)^(-1) u C^T.
    """
    r, s = _check_rs(r, s)
    depth, n, lambda_H, lambdas = _common(depth, n, lambda_H, lambda_W, 2)
    K, lam_last = r * (r - 1) // 2, lambdas[-1]
    coefficients = _upstream_coefficients(r, s, depth, n, lambda_H, lambdas)
    geo = _geometric_mean(coefficients)
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
        loss,
        bounds=(grid[best] - step, grid[best] + step),
        method="bounded",
        options={"xatol": 1e-13},
    )
    value = float(polished.fun)
    if value >= 0.5:
        return DUFMOptimum(0.5, 0.0, (0.0,) * depth)
    u = math.exp(polished.x)
    return DUFMOptimum(value, u, tuple(math.sqrt(geo / a) * u ** (1 / depth) for a in coefficients))


def dufm_srg_loss(
    r: int, s: int, depth: int, n: int, lambda_H: float, lambda_W: float | Sequence[float]
) -> float:
    """Optimal loss of the clique-readout SRG family; see ``dufm_srg_optimum``.

    >>> round(dufm_srg_loss(5, 3, 4, 1, 0.004, 0.004), 10)
    0.0809113322
    """
    return dufm_srg_optimum(r, s, depth, n, lambda_H, lambda_W).loss


def dufm_srg_naive_optimum(
    r: int, depth: int, n: int, lambda_H: float, lambda_W: float | Sequence[float]
) -> DUFMOptimum:
    """The "naive" SRG solution (s = 2, unbalanced non-negative H_1 = t B, W_L = y I_K), whose
    output is c I_K: a chain of L+1 scalars with coefficients
    (2K n lambda_H, r lambda_1, ..., r lambda_{L-2}, K r/4 lambda_{L-1}, K lambda_L), so

        L_naive = min_c 1/2 (1-c)^2 + (L+1)/2 lbar C_naive c^(2/(L+1)),  C_naive^(L+1) = K^3 r^(L-1)/2.
    """
    r = check_int("r", r, low=3)
    depth, n, lambda_H, lambdas = _common(depth, n, lambda_H, lambda_W, 2)
    K = r * (r - 1) // 2
    middle = [lam * r for lam in lambdas[: depth - 2]]
    return _chain_optimum([2 * K * n * lambda_H, *middle, lambdas[depth - 2] * K * r / 4, lambdas[-1] * K])


def dufm_srg_naive_loss(
    r: int, depth: int, n: int, lambda_H: float, lambda_W: float | Sequence[float]
) -> float:
    """Optimal loss of the naive SRG family; see ``dufm_srg_naive_optimum``.

    >>> round(dufm_srg_naive_loss(5, 4, 1, 0.004, 0.004), 10)
    0.0903502056
    """
    return dufm_srg_naive_optimum(r, depth, n, lambda_H, lambda_W).loss


# -------------------------------------------------------------------------- small-lambda limit
def srg_constant(r: int, s: int, depth: int) -> float:
    """C_SRG: as lambda -> 0 (all constants equal), L_SRG ~ (L+1)/2 lambda C_SRG, while
    L_DNC ~ (L+1)/2 lambda K. With T = tr((C^T C)^(-1)) (infinite when C^T C is singular),

        C_SRG^(L+1) = ||B||_*^2 r^(L-3) (m r / 4) T  (L >= 3),   ||F B||_*^2 T  (L = 2).

    >>> round(srg_constant(5, 3, 4) / 10, 3)
    0.817
    """
    r, s = _check_rs(r, s)
    depth = check_int("depth", depth, low=2)
    spectrum = _gram_c_spectrum(r, s)
    if min(value for value, _ in spectrum) <= 1e-12:
        return math.inf
    trace = sum(mult / value for value, mult in spectrum)
    if depth == 2:
        return (_nuclear_fb(r, s) ** 2 * trace) ** (1 / 3)
    upstream = _nuclear_b(r) ** 2 * r ** (depth - 3) * math.comb(r, s) * r / 4
    return (upstream * trace) ** (1 / (depth + 1))


def srg_naive_constant(r: int, depth: int) -> float:
    """C_naive = (K^3 r^(L-1) / 2)^(1/(L+1)); it beats DNC (C_naive < K) iff 2^(L-3) r < (r-1)^(L-2).

    >>> srg_naive_constant(5, 4) < 10 < srg_naive_constant(5, 3)
    True
    """
    r = check_int("r", r, low=3)
    depth = check_int("depth", depth, low=2)
    K = r * (r - 1) // 2
    return (K**3 * r ** (depth - 1) / 2) ** (1 / (depth + 1))


def srg_constant_table(rs: Iterable[int], depths: Iterable[int]) -> pd.DataFrame:
    """C_SRG / K at the best readout size s, one row per (r, depth): columns r, K, depth, s, ratio.

    >>> srg_constant_table([6], [2]).round(3).to_dict("records")
    [{'r': 6, 'K': 15, 'depth': 2, 's': 3, 'ratio': 0.987}]
    """
    rows = []
    for r in rs:
        for depth in depths:
            K = check_int("r", r, low=3) * (r - 1) // 2
            ratio, s = min((srg_constant(r, s, depth) / K, s) for s in range(2, r))
            rows.append({"r": r, "K": K, "depth": depth, "s": s, "ratio": ratio})
    return pd.DataFrame(rows)


def dufm_comparison_table(
    rs: Iterable[int], depths: Iterable[int], lambdas: Iterable[float], n: int = 1
) -> pd.DataFrame:
    """DNC against the best SRG solution (all constants equal to ``lambda``), one row per
    (r, depth, lambda): columns r, K, depth, lambda, dnc, srg, s (the best readout size),
    naive (``dufm_srg_naive_loss``) and ratio = srg / dnc.

    >>> row = dufm_comparison_table([5], [4], [0.004]).iloc[0]
    >>> int(row.s), round(float(row.ratio), 3)
    (3, 0.816)
    """
    rows = []
    for r in rs:
        for depth in depths:
            for lam in lambdas:
                K = check_int("r", r, low=3) * (r - 1) // 2
                dnc = dufm_dnc_loss(K, depth, n, lam, lam)
                srg, s = min((dufm_srg_loss(r, s, depth, n, lam, lam), s) for s in range(2, r))
                naive = dufm_srg_naive_loss(r, depth, n, lam, lam)
                rows.append(
                    {"r": r, "K": K, "depth": depth, "lambda": lam, "dnc": dnc, "srg": srg,
                     "s": s, "naive": naive, "ratio": srg / dnc}
                )  # fmt: skip
    return pd.DataFrame(rows)
