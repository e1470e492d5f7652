"""Closed forms for the MSE deep linear UFM of paper A (Dang et al., ICML 2023).

Every MSE result follows from one reduction. For given logits Z = W_M ... W_1 H_1 the least total
weight decay over all factorisations is (M+1)/2 (lambda_W[1] ... lambda_W[M] lambda_H)^(1/(M+1))
sum_i sigma_i(Z)^(2/(M+1)), reached by balanced factors; so, by von Neumann's trace inequality,
at a global minimum Z shares singular vectors with the (centred, with bias) targets, and each
target singular value sqrt(n_k) gives the scalar problem

    g_k(x) = n_k/(2N) [ 1/(1 + x^M) + beta_k x ],   beta_k = M N c / n_k,
    c = (N lambda_W[1] ... lambda_W[M] lambda_H)^(1/M),   ||w_k||^2 = N lambda_H x_k^M.

Any logits matrix Z is then written as a product of M + 1 factors with the smallest total weight
decay (all factors balanced, lambda_W[m] sigma(W_m)^2 = lambda_H sigma(H_1)^2 = tau), which gives
explicit points (:class:`~ncbook.theory.linear_point.LinearPoint`) that plug into the objective.
Chapters: 00, 11, 12, 14, 15, 21, 22.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
from scipy.optimize import brentq

from ncbook._checks import check_choice, check_float, check_int
from ncbook.spec import UFMSpec
from ncbook.theory.linear_point import LinearPoint, balanced_point

__all__ = [
    "RULES",
    "MSEMinimizer",
    "beta_star",
    "direction_objective",
    "collapse_thresholds",
    "lambda_for_beta",
    "lambda_sweep",
    "mse_minimizer",
    "phi",
    "phi_max",
]

RULES = ("global", "code")  # which x = 0 versus x > 0 test decides a direction (see :func:`mse_minimizer`)


def beta_star(depth: int) -> float:
    """Global collapse threshold beta*_M: class k is non-zero at the global minimum iff
    beta_k < beta*_M, with beta*_1 = 1 and beta*_M = (M-1)^((M-1)/M) / M for M >= 2.

    >>> round(beta_star(3), 6)
    0.529134
    """
    m = check_int("depth", depth, low=1)
    return 1.0 if m == 1 else (m - 1) ** ((m - 1) / m) / m


def phi_max(depth: int) -> float:
    """Largest value of phi_M(x) = M x^(M-1)/(1+x^M)^2: a stationary point with x > 0 exists iff
    beta_k <= phi_max (the authors' code uses only this condition).

    >>> round(phi_max(2), 6)
    0.649519
    """
    m = check_int("depth", depth, low=1)
    if m == 1:
        return 1.0
    return (m + 1) ** 2 / (4 * m) * ((m - 1) / (m + 1)) ** ((m - 1) / m)


def phi(x: float | np.ndarray, depth: int) -> float | np.ndarray:
    """phi_M(x) = M x^(M-1) / (1 + x^M)^2; g_k'(x) = 0 iff phi_M(x) = beta_k.

    >>> round(float(phi(1.0, 2)), 6)
    0.5
    """
    m = check_int("depth", depth, low=1)
    return m * np.power(x, m - 1) / (1 + np.power(x, m)) ** 2


def direction_objective(x: float | np.ndarray, beta: float, depth: int) -> float | np.ndarray:
    """The bracket of g_k: 1/(1 + x^M) + beta x, so g_k(x) = n_k/(2N) * direction_objective.

    x = 0 gives 1 (the class left at zero); for M >= 2 it is a strict local minimum.

    >>> float(direction_objective(0.0, 0.3, 2))
    1.0
    """
    m = check_int("depth", depth, low=1)
    return 1 / (1 + np.power(x, m)) + beta * np.asarray(x)


def lambda_for_beta(beta: float, n_k: int, n_total: int, depth: int) -> float:
    """The common lambda (lambda_W[m] = lambda_H = lambda) at which a class of n_k samples out of
    N has beta_k = beta: beta_k = M N (N lambda^(M+1))^(1/M) / n_k, solved for lambda.

    >>> lam = lambda_for_beta(0.5, 5, 75, 2)
    >>> round(float(mse_minimizer([40, 20, 10, 5], 2, lambda_W=lam, lambda_H=lam).beta[3]), 12)
    0.5
    """
    beta = check_float("beta", beta, low=0.0, low_open=True)
    n_k = check_int("n_k", n_k, low=1)
    n_total = check_int("n_total", n_total, low=n_k)
    m = check_int("depth", depth, low=1)
    c = beta * n_k / (m * n_total)
    return (c**m / n_total) ** (1 / (m + 1))


def collapse_thresholds(n_per_class: Sequence[int], depth: int) -> pd.DataFrame:
    """Per class, the common lambda (lambda_W[m] = lambda_H) at which it leaves the global
    minimum (beta_k = beta*_M, column ``lambda_global``) and the authors' rule (beta_k = phi_max,
    ``lambda_code``). Between the two lies the window where the authors' rule keeps a
    class that the global minimum has collapsed (empty for M = 1; chapter 15_imbalanced_mse_deep).

    >>> round(float(collapse_thresholds([40, 20, 10, 5], 1)["lambda_global"].iloc[3]), 6)  # sqrt(5)/75
    0.029814
    """
    spec = UFMSpec(n_per_class, depth)
    counts, n, m = spec.n_per_class, spec.num_samples, spec.depth
    return pd.DataFrame({
        "class": np.arange(len(counts)),
        "n_k": np.asarray(counts),
        "lambda_global": [lambda_for_beta(beta_star(m), int(c), n, m) for c in counts],
        "lambda_code": [lambda_for_beta(phi_max(m), int(c), n, m) for c in counts],
    })


def lambda_sweep(
    n_per_class: Sequence[int],
    depth: int,
    lambdas: Sequence[float],
    *,
    widths: int | Sequence[int] | None = None,
) -> pd.DataFrame:
    """Closed forms over a grid of common lambdas (lambda_W[m] = lambda_H = lambda), both rules.

    Tidy: one row per (lambda, rule, class) with ``loss`` (the whole objective), ``w_norm_sq``,
    ``h_norm_sq``, ``wh`` and ``active`` of that class.
    """
    rows = []
    for lam in lambdas:
        for rule in RULES:
            result = mse_minimizer(n_per_class, depth, lambda_W=lam, lambda_H=lam, widths=widths, rule=rule)
            for k in range(len(result.n_per_class)):
                rows.append({
                    "lambda": float(lam),
                    "rule": rule,
                    "class": k,
                    "loss": result.loss,
                    "w_norm_sq": result.w_norm_sq[k],
                    "h_norm_sq": result.h_norm_sq[k],
                    "wh": result.wh[k],
                    "active": bool(result.active[k]),
                })
    return pd.DataFrame(rows)


def _largest_root(beta: float, depth: int) -> float:
    """Largest x > 0 with phi_M(x) = beta, for 0 < beta <= phi_max(M)."""
    if depth == 1:
        return 1 / math.sqrt(beta) - 1
    # phi is decreasing on [x_peak, inf) and phi(x) <= M x^-(M+1), so the root is bracketed.
    x_peak = ((depth - 1) / (depth + 1)) ** (1 / depth)
    high = max(x_peak, (depth / beta) ** (1 / (depth + 1)))
    if phi(x_peak, depth) <= beta:  # beta == phi_max up to rounding
        return x_peak
    return brentq(lambda x: phi(x, depth) - beta, x_peak, high, xtol=1e-300, rtol=1e-15, maxiter=500)


@dataclass(frozen=True, eq=False)
class MSEMinimizer:
    """The minimizer of the MSE deep linear UFM predicted by the reduction above (see :func:`mse_minimizer`).

    Direction arrays (length K) follow the singular directions of the targets: for the bias-free
    model direction k is class k; with a bias they are the eigenvectors of the centred targets
    (one has n_eff = 0 and is never active). Class arrays (length K) follow the classes.
    """

    n_per_class: tuple[int, ...]
    depth: int
    lambda_W: tuple[float, ...]
    lambda_H: float
    bias: bool
    widths: tuple[int, ...]  # d_1 .. d_M used by :meth:`point`
    rule: str  # "global" (true minimum) or "code" (the authors' root-exists rule)
    n_eff: np.ndarray  # squared target singular value per direction (n_k without a bias)
    beta: np.ndarray  # beta_j = M N c / n_eff_j per direction (inf where n_eff = 0)
    x: np.ndarray  # x_j per direction, 0 where inactive
    direction_active: np.ndarray  # bool per direction
    tau: np.ndarray  # lambda_W[m] sigma_{m,j}^2 = lambda_H sigma_{H,j}^2 = tau_j per direction
    basis: np.ndarray  # (K, K) left singular vectors of the targets, one column per direction
    right: np.ndarray  # (K, K) class-space right singular vectors of the targets
    output_bias: np.ndarray | None  # b* = (n_k / N)_k with a bias
    loss: float  # objective value at this point (the global minimum for rule="global")

    @property
    def w_gram(self) -> np.ndarray:
        """W W^T (K x K) for W = W_M ... W_1: basis diag(N lambda_H x_j^M) basis^T."""
        return self.layer_w_gram(1)

    @property
    def h_gram(self) -> np.ndarray:
        """Hbar^T Hbar (K x K) for the class means of H_1."""
        means = self._means()
        return means.T @ means

    @property
    def wh(self) -> np.ndarray:
        """w_k . hbar_k per class: the diagonal of W Hbar (the logit of the correct class)."""
        return np.diag(self.logits)

    @property
    def logits(self) -> np.ndarray:
        """W Hbar (K x K): column k is the logit vector of class k (minus the bias)."""
        gain = self.x**self.depth / (1 + self.x**self.depth) * np.sqrt(self.n_eff)
        return (self.basis * gain) @ self.right.T / np.sqrt(np.asarray(self.n_per_class))

    @property
    def w_norm_sq(self) -> np.ndarray:
        """||w_k||^2 per class (rows of W = W_M ... W_1)."""
        return np.diag(self.w_gram).copy()

    @property
    def h_norm_sq(self) -> np.ndarray:
        """||hbar_k||^2 per class (class means of H_1)."""
        return np.diag(self.h_gram).copy()

    @property
    def active(self) -> np.ndarray:
        """Which classes keep a non-zero classifier row w_k."""
        return self.w_norm_sq > 0

    @property
    def singular_values(self) -> np.ndarray:
        """(M, K): singular values of W_1 .. W_M per direction, sqrt(tau_j / lambda_W[m])."""
        return np.sqrt(self.tau[None, :] / np.asarray(self.lambda_W)[:, None])

    @property
    def feature_singular_values(self) -> np.ndarray:
        """(K,): singular values of H_1 per direction, sqrt(tau_j / lambda_H)."""
        return np.sqrt(self.tau / self.lambda_H)

    def layer_h_gram(self, layer: int) -> np.ndarray:
        """Hbar_m^T Hbar_m (K x K) for the class means of H_m, m = 1 .. M."""
        layer = check_int("layer", layer, low=1, high=self.depth)
        means = self._means() * np.sqrt(
            np.prod(self.tau[:, None] / np.asarray(self.lambda_W[: layer - 1])[None, :], axis=1)
        )[:, None]
        return means.T @ means

    def layer_w_gram(self, layer: int) -> np.ndarray:
        """(W_M ... W_m)(W_M ... W_m)^T (K x K), the classifier seen by layer m = 1 .. M."""
        layer = check_int("layer", layer, low=1, high=self.depth)
        lam = np.asarray(self.lambda_W[layer - 1 :])
        sq = np.prod(self.tau[:, None] / lam[None, :], axis=1)
        return (self.basis * sq) @ self.basis.T

    def _means(self) -> np.ndarray:
        """Hbar in the direction basis (K directions x K classes)."""
        scale = np.sqrt(self.tau / self.lambda_H)[:, None]
        return scale * self.right.T / np.sqrt(np.asarray(self.n_per_class))[None, :]

    @property
    def spec(self) -> UFMSpec:
        """The problem this point solves."""
        return UFMSpec(self.n_per_class, self.depth, self.widths, lambda_W=self.lambda_W,
                       lambda_H=self.lambda_H, bias=self.bias)

    def point(self, dtype: torch.dtype = torch.float64) -> LinearPoint:
        """An explicit (W_1, ..., W_M, H_1, b) with objective value :attr:`loss`."""
        on = self.direction_active
        gain = self.x[on] ** self.depth / (1 + self.x[on] ** self.depth) * np.sqrt(self.n_eff[on])
        return balanced_point(self.spec, self.basis[:, on], gain, self.right[:, on], self.output_bias, dtype)


def _target_spectrum(counts: np.ndarray, bias: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Left vectors, squared singular values and right class-space vectors of the targets
    T diag(n)^(-1/2)-scaled: T = left diag(s) right^T diag(n)^(-1/2) E (E the class indicator)."""
    k = len(counts)
    if not bias:
        return np.eye(k), counts.copy(), np.eye(k)
    share = counts / counts.sum()
    scaled = (np.eye(k) - share[:, None]) * np.sqrt(counts)[None, :]  # centred targets C diag(n)^1/2
    eig, left = np.linalg.eigh(scaled @ scaled.T)
    order = np.argsort(-eig, kind="stable")
    eig, left = eig[order], left[:, order]
    eig[eig <= 1e-12 * eig.max()] = 0.0  # the all-ones direction, zero up to rounding
    right = np.zeros((k, k))
    on = eig > 0
    right[:, on] = scaled.T @ left[:, on] / np.sqrt(eig[on])
    right[:, ~on] = np.linalg.svd(scaled)[2][on.sum() :].T  # complete the orthonormal basis
    return left, eig, right


def mse_minimizer(
    n_per_class: Sequence[int],
    depth: int,
    *,
    lambda_W: float | Sequence[float],
    lambda_H: float,
    bias: bool = False,
    widths: int | Sequence[int] | None = None,
    rule: str = "global",
) -> MSEMinimizer:
    """Global minimizer of the MSE deep linear UFM (Sections 2.0, 2.1, 2.2, 2.4, 2.5):

        f = 1/(2N) ||W_M...W_1 H_1 (+ b 1^T) - Y||^2 + sum_m lambda_W[m]/2 ||W_m||^2
            + lambda_H/2 ||H_1||^2,      f* = sum_j n_j/(2N) [1/(1 + x_j^M) + beta_j x_j].

    Direction j (class j without a bias) is active iff beta_j < beta*_M (``rule="global"``) or
    beta_j <= phi_max(M) (``rule="code"``, the authors' ``compute_x``: for M >= 2 only a local
    minimum inside the window); x_j is then the largest root of phi_M(x) = beta_j. When the
    widths allow fewer directions than are active, the largest n_j are kept (chapters 11 and 15,
    "A width below K").
    With ``bias=True`` the bias is unpenalised and the targets are centred (b* = n/N).

    Args:
        n_per_class: class sizes n_1 .. n_K (each >= 1, K >= 2).
        depth: number of weight matrices M >= 1.
        lambda_W: weight decay, one float or one per layer (> 0).
        lambda_H: feature decay (> 0).
        widths: d_1 .. d_M (int or one per layer); None means K everywhere.

    Raises:
        ValueError: for an empty class, a non-positive lambda, depth < 1, or bad widths/rule.

    >>> result = mse_minimizer([20] * 4, 1, lambda_W=0.01, lambda_H=0.01)
    >>> round(result.loss, 10), round(float(result.w_norm_sq[0]), 8)
    (0.1628854382, 3.67213595)
    >>> round(mse_minimizer([40, 20, 10, 5], 2, lambda_W=0.04, lambda_H=0.04, widths=6).loss, 10)
    0.4190671084
    >>> round(mse_minimizer([40, 20, 10, 5], 2, lambda_W=0.04, lambda_H=0.04, widths=6, rule="code").loss, 10)
    0.4216311318
    """
    spec = UFMSpec(n_per_class, depth, widths, lambda_W=lambda_W, lambda_H=lambda_H,
                  bias=check_choice("bias", bias, (True, False))).require_positive_decay()
    check_choice("rule", rule, RULES)
    m, counts = spec.depth, spec.counts
    n = counts.sum()
    c = (n * np.prod(spec.lambda_W) * spec.lambda_H) ** (1 / m)
    left, n_eff, right = _target_spectrum(counts, bias)
    with np.errstate(divide="ignore"):
        beta = np.where(n_eff > 0, m * n * c / np.where(n_eff > 0, n_eff, 1.0), np.inf)
    limit = beta_star(m) if rule == "global" else phi_max(m)
    active = beta < limit if (rule == "global" or m == 1) else beta <= limit
    # Rank limit: keep the largest n_eff (stable order, so ties keep the first classes).
    order = np.argsort(-n_eff, kind="stable")
    kept = order[active[order]][: spec.rank_limit]
    active = np.isin(np.arange(len(counts)), kept)
    x = np.array([_largest_root(b, m) if on else 0.0 for b, on in zip(beta, active)])
    per_direction = np.where(active, 1 / (1 + x**m) + np.where(active, beta, 0.0) * x, 1.0)
    loss = float(np.sum(n_eff / (2 * n) * per_direction))
    return MSEMinimizer(
        n_per_class=tuple(int(v) for v in counts),
        depth=m,
        lambda_W=spec.lambda_W,
        lambda_H=spec.lambda_H,
        bias=bool(bias),
        widths=spec.widths,
        rule=rule,
        n_eff=n_eff,
        beta=beta,
        x=x,
        direction_active=active,
        tau=c * x,
        basis=left,
        right=right,
        output_bias=counts / n if bias else None,
        loss=loss,
    )
