"""Closed forms for the deep linear UFM of paper A (Dang et al., ICML 2023).

Notation and derivations: ../shared/theory/paper-a.md, Sections 1 and 2. Every MSE result follows
from the reduction lemma (2.0): at a global minimum the logits Z = W_M ... W_1 H_1 share singular
vectors with the (centred, with bias) targets, and each target singular value sqrt(n_k) gives the
scalar problem

    g_k(x) = n_k/(2N) [ 1/(1 + x^M) + beta_k x ],   beta_k = M N c / n_k,
    c = (N lambda_W[1] ... lambda_W[M] lambda_H)^(1/M),   ||w_k||^2 = N lambda_H x_k^M.

Any logits matrix Z is then written as a product of M + 1 factors with the smallest total weight
decay (all factors balanced, lambda_W[m] sigma(W_m)^2 = lambda_H sigma(H_1)^2 = tau), which gives
explicit points (:class:`LinearPoint`) that plug into the objective.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
from scipy.optimize import brentq, minimize_scalar

from ncbook._checks import check_choice, check_float, check_float_list, check_int

__all__ = [
    "CE_GEOMETRIES",
    "RULES",
    "CEMinimizer",
    "LinearPoint",
    "MSEMinimizer",
    "beta_star",
    "ce_minimizer",
    "ce_scalar_loss",
    "direction_objective",
    "collapse_thresholds",
    "lambda_for_beta",
    "lambda_sweep",
    "mse_minimizer",
    "phi",
    "phi_max",
]

RULES = ("global", "code")  # which x = 0 versus x > 0 test decides a direction (Section 2.0(e))
CE_GEOMETRIES = ("etf", "orthoplex")


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
    >>> round(float(mse_minimizer([40, 20, 10, 5], 2, lam, lam).beta[3]), 12)
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
    ``lambda_code``). Between the two lies the window of Section 2.5 (empty for M = 1).

    >>> round(float(collapse_thresholds([40, 20, 10, 5], 1)["lambda_global"].iloc[3]), 6)  # sqrt(5)/75
    0.029814
    """
    counts = _problem(n_per_class, depth, 1.0, 1.0, None).counts.astype(int)
    n, m = int(counts.sum()), check_int("depth", depth, low=1)
    return pd.DataFrame({
        "class": np.arange(len(counts)),
        "n_k": counts,
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
            result = mse_minimizer(n_per_class, depth, lam, lam, widths=widths, rule=rule)
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
class LinearPoint:
    """An explicit point of the deep linear UFM, in the layout of :mod:`ncbook.models`."""

    weights: tuple[torch.Tensor, ...]  # W_1 .. W_M; W_m is (d_{m+1}, d_m), W_M is (K, d_M)
    features: torch.Tensor  # H_1, (d_1, N), columns sorted by class
    bias: torch.Tensor | None  # b, (K,); None for the bias-free model
    labels: torch.Tensor  # (N,) class of each column
    lambda_W: tuple[float, ...]  # one weight decay per layer
    lambda_H: float  # feature decay


@dataclass(frozen=True, eq=False)
class _Problem:
    counts: np.ndarray  # n_k, (K,)
    depth: int
    lambda_W: tuple[float, ...]
    lambda_H: float
    widths: tuple[int, ...]  # d_1 .. d_M

    @property
    def rank_limit(self) -> int:
        return min(len(self.counts), *self.widths)


def _problem(
    n_per_class: Sequence[int],
    depth: int,
    lambda_W: float | Sequence[float],
    lambda_H: float,
    widths: int | Sequence[int] | None,
) -> _Problem:
    if isinstance(n_per_class, (str, bytes)) or not isinstance(n_per_class, Sequence):
        raise ValueError(f"`n_per_class` must be a sequence of class sizes, got {n_per_class!r}")
    counts = [check_int(f"n_per_class[{k}]", n, low=1) for k, n in enumerate(n_per_class)]
    if len(counts) < 2:
        raise ValueError(f"`n_per_class` needs at least 2 classes, got {len(counts)}")
    depth = check_int("depth", depth, low=1)
    lambdas = check_float_list("lambda_W", lambda_W, depth, low=0.0, low_open=True)
    lambda_H = check_float("lambda_H", lambda_H, low=0.0, low_open=True)
    if widths is None:
        dims = (len(counts),) * depth
    elif isinstance(widths, Sequence):
        if len(widths) != depth:
            raise ValueError(f"`widths` needs one entry per layer ({depth}), got {len(widths)}")
        dims = tuple(check_int(f"widths[{m}]", w, low=1) for m, w in enumerate(widths))
    else:
        dims = (check_int("widths", widths, low=1),) * depth
    return _Problem(np.asarray(counts, dtype=float), depth, lambdas, lambda_H, dims)


def _balanced_point(
    problem: _Problem,
    left: np.ndarray,
    logit_sv: np.ndarray,
    right: np.ndarray,
    bias: np.ndarray | None,
    dtype: torch.dtype,
) -> LinearPoint:
    """Factor class logits Zbar = left diag(logit_sv) right^T diag(n)^(-1/2) (r directions) into
    W_M ... W_1 H_1 with every factor balanced: lambda_W[m] s_m^2 = lambda_H s_H^2 = tau, the
    factorization of least weight decay (Section 2.0(c))."""
    lam = np.asarray(problem.lambda_W)
    tau = (logit_sv**2 * lam.prod() * problem.lambda_H) ** (1 / (problem.depth + 1))
    r = len(logit_sv)
    if r > problem.rank_limit:
        raise ValueError(f"the point needs rank {r} but the widths allow only {problem.rank_limit}")
    dims = [*problem.widths, len(problem.counts)]
    weights = []
    for m in range(problem.depth):
        w = np.zeros((dims[m + 1], dims[m]))
        w[np.arange(r), np.arange(r)] = np.sqrt(tau / lam[m])
        weights.append(w)
    weights[-1] = left @ weights[-1][:r]  # rotate the last layer's output into the logit basis
    labels = np.repeat(np.arange(len(problem.counts)), problem.counts.astype(int))
    means = np.zeros((dims[0], len(problem.counts)))  # Hbar = diag(s_H) right^T diag(n)^(-1/2)
    means[:r] = np.sqrt(tau / problem.lambda_H)[:, None] * right.T / np.sqrt(problem.counts)
    as_tensor = lambda a: torch.tensor(np.ascontiguousarray(a), dtype=dtype)  # noqa: E731
    return LinearPoint(
        weights=tuple(as_tensor(w) for w in weights),
        features=as_tensor(means[:, labels]),
        bias=None if bias is None else as_tensor(bias),
        labels=torch.tensor(labels),
        lambda_W=problem.lambda_W,
        lambda_H=problem.lambda_H,
    )


@dataclass(frozen=True, eq=False)
class MSEMinimizer:
    """The minimizer of the MSE deep linear UFM predicted by Section 2 (see :func:`mse_minimizer`).

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

    def point(self, dtype: torch.dtype = torch.float64) -> LinearPoint:
        """An explicit (W_1, ..., W_M, H_1, b) with objective value :attr:`loss`."""
        on = self.direction_active
        problem = _Problem(
            np.asarray(self.n_per_class, dtype=float),
            self.depth,
            self.lambda_W,
            self.lambda_H,
            self.widths,
        )
        gain = self.x[on] ** self.depth / (1 + self.x[on] ** self.depth) * np.sqrt(self.n_eff[on])
        return _balanced_point(
            problem, self.basis[:, on], gain, self.right[:, on], self.output_bias, dtype
        )


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
    lambda_W: float | Sequence[float],
    lambda_H: float,
    *,
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
    widths allow fewer directions than are active, the largest n_j are kept (Section 2.0(g)).
    With ``bias=True`` the bias is unpenalised and the targets are centred (b* = n/N).

    Args:
        n_per_class: class sizes n_1 .. n_K (each >= 1, K >= 2).
        depth: number of weight matrices M >= 1.
        lambda_W: weight decay, one float or one per layer (> 0).
        lambda_H: feature decay (> 0).
        widths: d_1 .. d_M (int or one per layer); None means K everywhere.

    Raises:
        ValueError: for an empty class, a non-positive lambda, depth < 1, or bad widths/rule.

    >>> result = mse_minimizer([20] * 4, 1, 0.01, 0.01)
    >>> round(result.loss, 10), round(float(result.w_norm_sq[0]), 8)
    (0.1628854382, 3.67213595)
    >>> round(mse_minimizer([40, 20, 10, 5], 2, 0.04, 0.04, widths=6).loss, 10)
    0.4190671084
    >>> round(mse_minimizer([40, 20, 10, 5], 2, 0.04, 0.04, widths=6, rule="code").loss, 10)
    0.4216311318
    """
    problem = _problem(n_per_class, depth, lambda_W, lambda_H, widths)
    check_choice("rule", rule, RULES)
    m, counts = problem.depth, problem.counts
    n = counts.sum()
    c = (n * np.prod(problem.lambda_W) * problem.lambda_H) ** (1 / m)
    left, n_eff, right = _target_spectrum(counts, bias)
    with np.errstate(divide="ignore"):
        beta = np.where(n_eff > 0, m * n * c / np.where(n_eff > 0, n_eff, 1.0), np.inf)
    limit = beta_star(m) if rule == "global" else phi_max(m)
    active = beta < limit if (rule == "global" or m == 1) else beta <= limit
    # Rank limit: keep the largest n_eff (stable order, so ties keep the first classes).
    order = np.argsort(-n_eff, kind="stable")
    kept = order[active[order]][: problem.rank_limit]
    active = np.isin(np.arange(len(counts)), kept)
    x = np.array([_largest_root(b, m) if on else 0.0 for b, on in zip(beta, active)])
    per_direction = np.where(active, 1 / (1 + x**m) + np.where(active, beta, 0.0) * x, 1.0)
    loss = float(np.sum(n_eff / (2 * n) * per_direction))
    return MSEMinimizer(
        n_per_class=tuple(int(v) for v in counts),
        depth=m,
        lambda_W=problem.lambda_W,
        lambda_H=problem.lambda_H,
        bias=bool(bias),
        widths=problem.widths,
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


def _ce_shape(geometry: str, num_classes: int) -> tuple[int, float, float]:
    """(rank, logit singular value per unit a and sqrt(n), weight of e^{-2a} in the CE sum)."""
    if geometry == "etf":
        return num_classes - 1, 1.0, 0.0
    if num_classes % 2:
        raise ValueError(f"the orthoplex needs an even `num_classes`, got {num_classes}")
    return num_classes // 2, 2.0, 1.0


def ce_scalar_loss(
    a: float | np.ndarray,
    n: int,
    num_classes: int,
    depth: int,
    lambda_W: float | Sequence[float],
    lambda_H: float,
    *,
    geometry: str = "etf",
) -> float | np.ndarray:
    """Balanced CE objective on a one-scale family of collapsed points (Section 2.3), with
    lam_bar = (lambda_W[1] ... lambda_W[M] lambda_H)^(1/(M+1)) and p = 2/(M+1):

        etf:       log(1 + (K-1) e^-a)            + (M+1)/2 lam_bar (K-1) (sqrt(n) a)^p
        orthoplex: log(1 + (K-2) e^-a + e^-2a)    + (M+1)/2 lam_bar (K/2) (2 sqrt(n) a)^p

    The ETF's logits are a (I - 11^T/K); the orthoplex's are a on the true class, -a on its
    antipode (classes paired 0-1, 2-3, ...), 0 elsewhere. The penalty is the least weight decay
    of any factorisation of those logits (balanced layers).

    >>> round(float(ce_scalar_loss(0.0, 10, 4, 3, 1e-3, 1e-3)), 6)  # log K at a = 0
    1.386294
    """
    problem = _problem([n] * check_int("num_classes", num_classes, low=2), depth, lambda_W,
                       lambda_H, None)
    check_choice("geometry", geometry, CE_GEOMETRIES)
    k, m = len(problem.counts), problem.depth
    rank, scale, antipode = _ce_shape(geometry, k)
    lam_bar = (np.prod(problem.lambda_W) * problem.lambda_H) ** (1 / (m + 1))
    a = np.asarray(a, dtype=float)
    fit = np.log1p((k - 1 - antipode) * np.exp(-a) + antipode * np.exp(-2 * a))
    return fit + (m + 1) / 2 * lam_bar * rank * (scale * math.sqrt(n) * a) ** (2 / (m + 1))


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
        problem = _Problem(
            np.full(self.num_classes, float(self.n)), self.depth, self.lambda_W, self.lambda_H,
            self.widths,
        )
        left, sv, right_t = np.linalg.svd(self.logits * math.sqrt(self.n))
        on = sv > 1e-12 * max(sv.max(), 1e-300)
        return _balanced_point(problem, left[:, on], sv[on], right_t[on].T, None, dtype)


def ce_minimizer(
    n: int,
    num_classes: int,
    depth: int,
    lambda_W: float | Sequence[float],
    lambda_H: float,
    *,
    geometry: str = "etf",
    widths: int | Sequence[int] | None = None,
) -> CEMinimizer:
    """Minimise :func:`ce_scalar_loss` over a >= 0 (globally, on a fine grid then Brent).

    For M = 1 the ETF is the global minimizer of the balanced CE UFM. For M >= 2 it is a
    stationary point and a local minimum, but the rank-K/2 orthoplex can be lower (Section 2.3,
    our finding): compare ``ce_minimizer(..., geometry="orthoplex").loss``. For M >= 2, a = 0 is
    always a local minimum too (the penalty grows like a^(2/(M+1))).

    >>> round(ce_minimizer(10, 4, 3, 1e-3, 1e-3).loss, 10)
    0.0308518264
    >>> round(ce_minimizer(10, 4, 3, 1e-3, 1e-3, geometry="orthoplex").loss, 10)
    0.0284359616
    """
    check_int("n", n, low=1)
    problem = _problem([n] * check_int("num_classes", num_classes, low=2), depth, lambda_W,
                       lambda_H, widths)
    check_choice("geometry", geometry, CE_GEOMETRIES)
    rank = _ce_shape(geometry, num_classes)[0]
    if rank > problem.rank_limit:
        raise ValueError(
            f"the {geometry} needs widths >= {rank}, got min(widths) = {min(problem.widths)}"
        )
    loss = lambda a: float(  # noqa: E731
        ce_scalar_loss(a, n, num_classes, depth, problem.lambda_W, problem.lambda_H,
                       geometry=geometry)
    )
    # Beyond a_max the penalty alone exceeds log K = loss(0), so the minimum lies in [0, a_max].
    a_max = 1.0
    while loss(a_max) - math.log(num_classes) < 0 or a_max < 50:
        a_max *= 2
    grid = np.concatenate([[0.0], np.geomspace(a_max * 1e-9, a_max, 4000)])
    values = ce_scalar_loss(grid, n, num_classes, depth, problem.lambda_W, problem.lambda_H,
                            geometry=geometry)
    best = int(np.argmin(values))
    a_star = 0.0
    if best > 0:
        low, high = grid[best - 1], grid[min(best + 1, len(grid) - 1)]
        a_star = minimize_scalar(loss, bounds=(low, high), method="bounded",
                                 options={"xatol": 1e-13 * high}).x
    return CEMinimizer(
        n=n,
        num_classes=num_classes,
        depth=problem.depth,
        lambda_W=problem.lambda_W,
        lambda_H=problem.lambda_H,
        widths=problem.widths,
        geometry=geometry,
        a=float(a_star),
        loss=loss(a_star),
        rank=rank if a_star > 0 else 0,
    )
