"""Closed forms for the ReLU deep unconstrained-features model (L-DUFM) of paper B
(Súkeník, Lampert, Mondelli 2024; its predecessor Súkeník, Mondelli, Lampert 2023): the scalar
chain every collapsed family reduces to, and the best deep-neural-collapse (DNC) solution.
Chapter 31 (``notebooks/31_dufm_theory.py``) uses it; the low-rank SRG family is in
:mod:`ncbook.theory.relu_srg`.

With K classes, n samples per class, free features H_1 and L bias-free layers (ReLU after every
hidden layer, none on H_1), the objective is

    1/(2N) ||W_L s(W_{L-1} ... s(W_1 H_1)) - Y||_F^2 + sum_l lambda_W[l]/2 ||W_l||_F^2
        + lambda_H/2 ||H_1||_F^2 .

``nonnegative_features=True`` restricts H_1 to the non-negative orthant, which is what a ReLU
backbone outputs; whether paper B restricts the sign of H_1 could not be read, so every closed
form takes both variants. The formulas are ours (derived and checked against explicit weights in
the tests), not statements read in the papers.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy.optimize import brentq

from ncbook._checks import check_float, check_float_list, check_int

__all__ = [
    "DUFMOptimum",
    "dufm_dnc_loss",
    "dufm_dnc_optimum",
    "dufm_dnc_threshold",
    "dufm_lambda_bar",
]


@dataclass(frozen=True)
class DUFMOptimum:
    loss: float  # optimal objective of the family (0.5 when the zero solution wins)
    scale: float  # DNC/naive: output scale c (output = c I_K); SRG: pre-ReLU scale u; 0 if zero
    factors: tuple[float, ...]  # scalar size of each balanced factor; their product is `scale`


# ----------------------------------------------------------------------------------- validation
def check_flag(name: str, value: object) -> bool:
    """``value`` if it is a bool, else a one-line ``ValueError`` naming ``name``."""
    if not isinstance(value, (bool, np.bool_)):
        raise ValueError(f"`{name}` must be True or False, got {value!r}")
    return bool(value)


def check_problem(
    depth: int, n_per_class: int, lambda_H: float, lambda_W: float | Sequence[float], min_depth: int
) -> tuple[int, int, float, tuple[float, ...]]:
    """Validated (depth, n_per_class, lambda_H, one lambda_W per layer); lambdas must be > 0."""
    depth = check_int("depth", depth, low=min_depth)
    n_per_class = check_int("n_per_class", n_per_class, low=1)
    lambda_H = check_float("lambda_H", lambda_H, low=0.0, low_open=True)
    lambdas = check_float_list("lambda_W", lambda_W, depth, low=0.0, low_open=True)
    return depth, n_per_class, lambda_H, lambdas


def dufm_lambda_bar(
    depth: int, n_per_class: int, *, lambda_H: float, lambda_W: float | Sequence[float]
) -> float:
    """Geometric mean of the L+1 effective constants, (n lambda_H prod_l lambda_W[l])^(1/(L+1)).

    >>> round(dufm_lambda_bar(4, 5, lambda_H=0.004, lambda_W=0.004), 6)  # (5 * 0.004^5)^(1/5)
    0.005519
    """
    depth, n_per_class, lambda_H, lambdas = check_problem(depth, n_per_class, lambda_H, lambda_W, 1)
    return geometric_mean([n_per_class * lambda_H, *lambdas])


def geometric_mean(values: Sequence[float]) -> float:
    return math.exp(sum(math.log(v) for v in values) / len(values))


# ----------------------------------------------------------------------------- scalar chain
def chain_optimum(coefficients: Sequence[float]) -> DUFMOptimum:
    """min over scalars z_i of 1/2 (1 - prod z)^2 + sum_i a_i/2 z_i^2, by the deep-linear-chain
    identity (a Schatten quasi-norm of exponent 2/m):

        min_c 1/2 (1 - c)^2 + (m/2) G c^(2/m),   G = (prod a_i)^(1/m),  z_i = sqrt(G/a_i) c^(1/m).

    The non-zero minimiser solves (1 - c) c^(1-p) = p A (p = 2/m, A = m G / 2) on the branch
    right of the maximiser c* = (1-p)/(2-p) of the left side; it wins only if it beats c = 0.
    """
    m = len(coefficients)
    geo = geometric_mean(coefficients)
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
    num_classes: int,
    depth: int,
    n_per_class: int,
    *,
    lambda_H: float,
    lambda_W: float | Sequence[float],
    nonnegative_features: bool = False,
) -> DUFMOptimum:
    """Best DNC solution: orthogonal-frame class means, every ReLU inactive, output c I_K,

        L_DNC = min_c 1/2 (1-c)^2 + (L+1)/2 K lbar c^(2/(L+1)),  lbar = dufm_lambda_bar(...).

    ``factors`` = (x_0, x_1, ..., x_L): M_1 = x_0 [I_K; 0], W_l = x_l (partial identity). That M_1
    is non-negative, so ``nonnegative_features`` does not change the value (it is accepted, and
    checked, so that both variants are called alike).
    """
    K = check_int("num_classes", num_classes, low=2)
    check_flag("nonnegative_features", nonnegative_features)
    depth, n_per_class, lambda_H, lambdas = check_problem(depth, n_per_class, lambda_H, lambda_W, 1)
    return chain_optimum([K * n_per_class * lambda_H, *(K * lam for lam in lambdas)])


def dufm_dnc_loss(
    num_classes: int,
    depth: int,
    n_per_class: int,
    *,
    lambda_H: float,
    lambda_W: float | Sequence[float],
    nonnegative_features: bool = False,
) -> float:
    """Optimal loss of the DNC family (0.5 when the zero solution wins); see ``dufm_dnc_optimum``.

    >>> round(dufm_dnc_loss(10, 4, 1, lambda_H=0.004, lambda_W=0.004), 10)
    0.0991798746
    """
    return dufm_dnc_optimum(num_classes, depth, n_per_class, lambda_H=lambda_H, lambda_W=lambda_W,
                            nonnegative_features=nonnegative_features).loss


def dufm_dnc_threshold(num_classes: int, depth: int) -> float:
    """Largest lbar for which DNC beats the zero solution: with p = 2/(L+1),

        lbar_crit = 2 A_crit / ((L+1) K),  A_crit = (2(1-p)/(2-p))^(1-p) / (2-p).

    >>> round(dufm_dnc_threshold(10, 4), 5)
    0.02104
    """
    K = check_int("num_classes", num_classes, low=2)
    depth = check_int("depth", depth, low=1)
    p = 2.0 / (depth + 1)
    a_crit = (2 * (1 - p) / (2 - p)) ** (1 - p) / (2 - p)
    return 2 * a_crit / ((depth + 1) * K)
