"""Closed forms for the balanced cross-entropy deep linear UFM of paper A (Dang et al., ICML 2023).

On a one-scale family of collapsed points (the simplex ETF, and for even K the rank-K/2
orthoplex) with balanced factors (:mod:`~ncbook.theory.linear_point`) the logits are a times a
fixed pattern, and the objective reduces to a scalar function of that logit scale a (the CE of the
pattern plus the least weight decay of logits with a's singular values), minimised here globally.
Chapter 13_balanced_ce explains it and where the orthoplex beats the ETF. Chapters: 13, 21.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from scipy.optimize import minimize_scalar

from ncbook._checks import check_choice, check_int
from ncbook.spec import UFMSpec
from ncbook.theory.linear_mse import MSEMinimizer, mse_minimizer
from ncbook.theory.linear_point import LinearPoint, balanced_point

__all__ = ["CE_GEOMETRIES", "CEMinimizer", "ce_minimizer", "ce_scalar_loss", "linear_minimizer"]

CE_GEOMETRIES = ("etf", "orthoplex")


def _balanced_spec(
    n: int, num_classes: int, depth: int, lambda_W: float | Sequence[float], lambda_H: float,
    widths: int | Sequence[int] | None,
) -> UFMSpec:
    check_int("n", n, low=1)
    k = check_int("num_classes", num_classes, low=2)
    return UFMSpec((n,) * k, depth, widths, lambda_W=lambda_W, lambda_H=lambda_H,
                   loss="ce").require_positive_decay()


def _ce_shape(geometry: str, num_classes: int) -> tuple[int, float, float]:
    """(rank, logit singular value per unit a and sqrt(n), weight of e^{-2a} in the CE sum)."""
    if geometry == "etf":
        return num_classes - 1, 1.0, 0.0
    if num_classes % 2:
        raise ValueError(f"the orthoplex needs an even `num_classes`, got {num_classes}")
    return num_classes // 2, 2.0, 1.0


def _penalty_slope(spec: UFMSpec, geometry: str) -> float:
    """c = lam_bar rank (scale sqrt(n))^p, p = 2/(M+1): the penalty of :func:`ce_scalar_loss` is
    (c / p) a^p, so its slope is c a^(p-1)."""
    rank, scale, _ = _ce_shape(geometry, spec.num_classes)
    lam_bar = (np.prod(spec.lambda_W) * spec.lambda_H) ** (1 / (spec.depth + 1))
    return lam_bar * rank * (scale * math.sqrt(spec.n_per_class[0])) ** (2 / (spec.depth + 1))


def _stationary_bound(spec: UFMSpec, geometry: str) -> float:
    """A scale above every stationary point of :func:`ce_scalar_loss` on a > 0.

    There the penalty's slope c a^(p-1) equals the fit's, which is below K e^-a, so
    a - (1-p) log a < log(K / c); with log a <= a / e this gives a < log(K / c) / (1 - (1-p)/e).
    Floored at 1 so that the search range is never empty.
    """
    p = 2 / (spec.depth + 1)
    return max(math.log(spec.num_classes / _penalty_slope(spec, geometry)) / (1 - (1 - p) / math.e), 1.0)


def ce_scalar_loss(
    a: float | np.ndarray,
    n: int,
    num_classes: int,
    depth: int,
    *,
    lambda_W: float | Sequence[float],
    lambda_H: float,
    geometry: str = "etf",
) -> float | np.ndarray:
    """Balanced CE objective on a one-scale family of collapsed points, with
    lam_bar = (lambda_W[1] ... lambda_W[M] lambda_H)^(1/(M+1)) and p = 2/(M+1):

        etf:       log(1 + (K-1) e^-a)            + (M+1)/2 lam_bar (K-1) (sqrt(n) a)^p
        orthoplex: log(1 + (K-2) e^-a + e^-2a)    + (M+1)/2 lam_bar (K/2) (2 sqrt(n) a)^p

    The ETF's logits are a (I - 11^T/K); the orthoplex's are a on the true class, -a on its
    antipode (classes paired 0-1, 2-3, ...), 0 elsewhere. The penalty is the least weight decay
    of any factorisation of those logits (balanced layers).

    >>> round(float(ce_scalar_loss(0.0, 10, 4, 3, lambda_W=1e-3, lambda_H=1e-3)), 6)  # log K at a = 0
    1.386294
    """
    spec = _balanced_spec(n, num_classes, depth, lambda_W, lambda_H, None)
    check_choice("geometry", geometry, CE_GEOMETRIES)
    k, p = spec.num_classes, 2 / (spec.depth + 1)
    antipode = _ce_shape(geometry, k)[2]
    a = np.asarray(a, dtype=float)
    fit = np.log1p((k - 1 - antipode) * np.exp(-a) + antipode * np.exp(-2 * a))
    return fit + _penalty_slope(spec, geometry) / p * a**p


@dataclass(frozen=True, eq=False)
class CEMinimizer:
    """The best point of one CE geometry (see :func:`ce_minimizer`)."""

    n: int  # samples per class
    num_classes: int
    depth: int
    lambda_W: tuple[float, ...]
    lambda_H: float
    widths: tuple[int, ...]
    geometry: str  # "etf" or "orthoplex"
    a: float  # logit scale a* (0: the all-zero point)
    loss: float  # ce_scalar_loss at a*
    rank: int  # rank of the logits (K-1 or K/2; 0 when a* = 0)

    @property
    def logits(self) -> np.ndarray:
        """W Hbar (K x K), column k the logits of class k."""
        k = self.num_classes
        if self.geometry == "etf":
            return self.a * (np.eye(k) - 1 / k)
        swap = np.arange(k) ^ 1  # antipodal partner of each class
        return self.a * (np.eye(k) - np.eye(k)[swap])

    def point(self, dtype: torch.dtype = torch.float64) -> LinearPoint:
        """An explicit (W_1, ..., W_M, H_1) with objective value :attr:`loss` (no bias)."""
        left, sv, right_t = np.linalg.svd(self.logits * math.sqrt(self.n))
        on = sv > 1e-12 * max(sv.max(), 1e-300)
        return balanced_point(self.spec, left[:, on], sv[on], right_t[on].T, None, dtype)

    @property
    def spec(self) -> UFMSpec:
        """The problem this point solves."""
        return UFMSpec((self.n,) * self.num_classes, self.depth, self.widths, lambda_W=self.lambda_W,
                       lambda_H=self.lambda_H, loss="ce")


def ce_minimizer(
    n: int,
    num_classes: int,
    depth: int,
    *,
    lambda_W: float | Sequence[float],
    lambda_H: float,
    geometry: str = "etf",
    widths: int | Sequence[int] | None = None,
) -> CEMinimizer:
    """Minimise :func:`ce_scalar_loss` over a >= 0 (globally, on a fine grid then Brent).

    For M = 1 the ETF is the global minimizer of the balanced CE UFM. For M >= 2 it is a
    stationary point and a local minimum, but the rank-K/2 orthoplex can be lower (our finding,
    chapter 13_balanced_ce): compare ``ce_minimizer(..., geometry="orthoplex").loss``. For M >= 2,
    a = 0 is always a local minimum too (the penalty grows like a^(2/(M+1))).

    >>> round(ce_minimizer(10, 4, 3, lambda_W=1e-3, lambda_H=1e-3).loss, 10)
    0.0308518264
    >>> round(ce_minimizer(10, 4, 3, lambda_W=1e-3, lambda_H=1e-3, geometry="orthoplex").loss, 10)
    0.0284359616
    """
    spec = _balanced_spec(n, num_classes, depth, lambda_W, lambda_H, widths)
    check_choice("geometry", geometry, CE_GEOMETRIES)
    rank = _ce_shape(geometry, num_classes)[0]
    if rank > spec.rank_limit:
        raise ValueError(f"the {geometry} needs widths >= {rank}, got min(widths) = {min(spec.widths)}")
    loss = lambda a: float(  # noqa: E731
        ce_scalar_loss(a, n, num_classes, depth, lambda_W=spec.lambda_W, lambda_H=spec.lambda_H,
                       geometry=geometry)
    )
    # The minimiser is 0 or a stationary point, so it lies in [0, a_max]. (A looser a_max, where
    # the penalty alone exceeds log K, reaches 1e24 at small lambda: the grid then starts far
    # above the minimiser.)
    a_max = _stationary_bound(spec, geometry)
    grid = np.concatenate([[0.0], np.geomspace(a_max * 1e-9, a_max, 4000)])
    values = ce_scalar_loss(grid, n, num_classes, depth, lambda_W=spec.lambda_W, lambda_H=spec.lambda_H,
                            geometry=geometry)
    # Refine every local minimum of the grid, not only the lowest grid value: near the lambda
    # where the zero point takes over, an interior minimum lies below loss(0) by less than the
    # grid's resolution. The zero point wins ties.
    right = np.append(values[2:], np.inf)
    dips = np.flatnonzero((values[1:] < values[:-1]) & (values[1:] <= right)) + 1
    candidates = [0.0]
    for i in dips:
        high = grid[min(i + 1, len(grid) - 1)]
        candidates.append(minimize_scalar(loss, bounds=(grid[i - 1], high), method="bounded",
                                          options={"xatol": 1e-13 * high}).x)
    a_star = min(candidates, key=loss)
    return CEMinimizer(
        n=n,
        num_classes=num_classes,
        depth=spec.depth,
        lambda_W=spec.lambda_W,
        lambda_H=spec.lambda_H,
        widths=spec.widths,
        geometry=geometry,
        a=float(a_star),
        loss=loss(a_star),
        rank=rank if a_star > 0 else 0,
    )


def linear_minimizer(spec: UFMSpec, *, rule: str = "global",
                     geometry: str = "etf") -> MSEMinimizer | CEMinimizer:
    """The closed form for a linear ``spec``: :func:`mse_minimizer` (with ``rule``) for MSE,
    :func:`ce_minimizer` (with ``geometry``; balanced classes only) for CE.

    >>> spec = UFMSpec([20] * 4, 1, lambda_W=0.01, lambda_H=0.01)
    >>> linear_minimizer(spec).loss == mse_minimizer([20] * 4, 1, lambda_W=0.01, lambda_H=0.01).loss
    True
    """
    if spec.activation != "linear":
        raise ValueError(
            f"`spec` must be a linear UFM for these closed forms, got activation={spec.activation!r}"
        )
    if spec.loss == "mse":
        return mse_minimizer(spec.n_per_class, spec.depth, lambda_W=spec.lambda_W, lambda_H=spec.lambda_H,
                             bias=spec.bias, widths=spec.widths, rule=rule)
    if not spec.balanced or spec.bias:
        raise ValueError("the CE closed forms need balanced classes and no bias")
    return ce_minimizer(spec.n_per_class[0], spec.num_classes, spec.depth, lambda_W=spec.lambda_W,
                        lambda_H=spec.lambda_H, geometry=geometry, widths=spec.widths)
