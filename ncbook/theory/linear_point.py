"""Explicit points of the deep linear UFM: a logits matrix factored into W_M ... W_1 H_1 with the
least total weight decay, (M+1)/2 (lambda_W[1] ... lambda_W[M] lambda_H)^(1/(M+1)) times
sum_i sigma_i(Z)^(2/(M+1)) (the reduction of :mod:`~ncbook.theory.linear_mse`).

Every factor is balanced, lambda_W[m] s_m^2 = lambda_H s_H^2 = tau per direction, so the closed
forms of :mod:`~ncbook.theory.linear_mse` and :mod:`~ncbook.theory.linear_ce` become points that
plug into :class:`ncbook.models.DeepLinearUFM`. Chapters: 11-15, 21-22.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ncbook.spec import UFMSpec

__all__ = ["LinearPoint", "balanced_point"]


@dataclass(frozen=True, eq=False)
class LinearPoint:
    """An explicit point of the deep linear UFM, in the layout of :mod:`ncbook.models`."""

    weights: tuple[torch.Tensor, ...]  # W_1 .. W_M; W_m is (d_{m+1}, d_m), W_M is (K, d_M)
    features: torch.Tensor  # H_1, (d_1, N), columns sorted by class
    bias: torch.Tensor | None  # b, (K,); None for the bias-free model
    labels: torch.Tensor  # (N,) class of each column
    lambda_W: tuple[float, ...]  # one weight decay per layer
    lambda_H: float  # feature decay


def balanced_point(
    spec: UFMSpec,
    left: np.ndarray,
    logit_sv: np.ndarray,
    right: np.ndarray,
    bias: np.ndarray | None,
    dtype: torch.dtype = torch.float64,
) -> LinearPoint:
    """Factor class logits Zbar = left diag(logit_sv) right^T diag(n)^(-1/2) (r directions) into
    W_M ... W_1 H_1 with every factor balanced: lambda_W[m] s_m^2 = lambda_H s_H^2 = tau, with
    tau = (logit_sv^2 prod_m lambda_W[m] lambda_H)^(1/(M+1)), the factorization of least decay.

    >>> spec = UFMSpec((2, 2), 1, lambda_W=0.25, lambda_H=0.25)
    >>> point = balanced_point(spec, np.eye(2), np.ones(2), np.eye(2), None)
    >>> [round(float(w.square().sum()), 6) for w in point.weights]  # tau / lambda = 1 in each of 2 directions
    [2.0]
    """
    lam = np.asarray(spec.lambda_W)
    tau = (logit_sv**2 * lam.prod() * spec.lambda_H) ** (1 / (spec.depth + 1))
    r = len(logit_sv)
    if r > spec.rank_limit:
        raise ValueError(f"the point needs rank {r} but the widths allow only {spec.rank_limit}")
    dims = spec.dims
    weights = []
    for m in range(spec.depth):
        w = np.zeros((dims[m + 1], dims[m]))
        w[np.arange(r), np.arange(r)] = np.sqrt(tau / lam[m])
        weights.append(w)
    weights[-1] = left @ weights[-1][:r]  # rotate the last layer's output into the logit basis
    counts = spec.counts
    labels = np.repeat(np.arange(spec.num_classes), spec.n_per_class)
    means = np.zeros((dims[0], spec.num_classes))  # Hbar = diag(s_H) right^T diag(n)^(-1/2)
    means[:r] = np.sqrt(tau / spec.lambda_H)[:, None] * right.T / np.sqrt(counts)
    as_tensor = lambda a: torch.tensor(np.ascontiguousarray(a), dtype=dtype)  # noqa: E731
    return LinearPoint(
        weights=tuple(as_tensor(w) for w in weights),
        features=as_tensor(means[:, labels]),
        bias=None if bias is None else as_tensor(bias),
        labels=torch.tensor(labels),
        lambda_W=spec.lambda_W,
        lambda_H=spec.lambda_H,
    )
