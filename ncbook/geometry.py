"""Target geometries of neural collapse and the distance the papers use to compare with them.

Every target is a K x K Gram matrix normalised to unit Frobenius norm, nrm(A) = A / ||A||_F:

* simplex ETF: nrm(E) = E / sqrt(K-1), with E = I_K - 1 1^T / K (balanced data with a bias);
* orthogonal frame (OF): I_K / sqrt(K) (balanced data, bias-free MSE, paper A Thm 3.1);
* general orthogonal frame (GOF): nrm(diag(l_1^2, ..., l_K^2)) (imbalanced data, paper A;
  orthogonal vectors whose lengths depend on the class counts: chapters 14 and 15).

``gram_distance(G, T) = ||nrm(G) - nrm(T)||_F`` is the NC2/NC3 metric form of the authors' code
(validate_NC.py in github.com/Fsoft-AIC/Neural-Collapse-in-Deep-Linear-Networks): it ignores the
overall scale and lies in [0, 2].

Inputs may be torch tensors, numpy arrays or nested lists; outputs are float64 torch tensors
(matrices) or Python floats (distances).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from ncbook._checks import check_int

__all__ = [
    "DegenerateError",
    "GOFTargets",
    "as_float64",
    "general_orthogonal_frame",
    "gof_targets_from_counts",
    "gram_distance",
    "normalized",
    "orthogonal_frame",
    "simplex_etf",
]


class DegenerateError(ValueError):
    """The input has no direction (a zero matrix or row, class means of too low rank), so the
    metric is undefined. ``NCAccumulator.compute`` reports such metrics as NaN."""


def as_float64(name: str, value: Any) -> torch.Tensor:
    """``value`` (tensor, array or list) as a float64 CPU tensor; NaN/inf raise ``ValueError``."""
    if isinstance(value, torch.Tensor):
        tensor = value.detach().to("cpu", torch.float64)
    else:
        try:
            tensor = torch.as_tensor(np.asarray(value, dtype=np.float64))
        except (TypeError, ValueError) as err:
            raise ValueError(f"`{name}` must be numeric, got {type(value).__name__}") from err
    if not bool(torch.isfinite(tensor).all()):
        raise ValueError(f"`{name}` contains NaN or infinite entries")
    return tensor


def _square(name: str, value: Any) -> torch.Tensor:
    matrix = as_float64(name, value)
    if matrix.ndim != 2 or matrix.shape[0] != matrix.shape[1] or matrix.shape[0] == 0:
        raise ValueError(f"`{name}` must be a non-empty square matrix, got shape {tuple(matrix.shape)}")
    return matrix


def simplex_etf(num_classes: int) -> torch.Tensor:
    """nrm(I_K - 1 1^T / K) = (I_K - 1 1^T / K) / sqrt(K-1): the normalised simplex-ETF Gram.

    Diagonal (K-1)/K / sqrt(K-1), off-diagonal -1/K / sqrt(K-1): cosine -1/(K-1) between classes.

    >>> round(float(simplex_etf(4)[0, 1]), 6)  # -1/(4 sqrt 3)
    -0.144338
    """
    k = check_int("num_classes", num_classes, low=2)
    centring = torch.eye(k, dtype=torch.float64) - 1.0 / k
    return centring / math.sqrt(k - 1)


def orthogonal_frame(num_classes: int) -> torch.Tensor:
    """I_K / sqrt(K): the normalised Gram of K orthogonal vectors of equal length.

    >>> float(orthogonal_frame(4)[0, 0])
    0.5
    """
    k = check_int("num_classes", num_classes, low=1)
    return torch.eye(k, dtype=torch.float64) / math.sqrt(k)


def general_orthogonal_frame(lengths_sq: Any) -> torch.Tensor:
    """nrm(diag(l_1^2, ..., l_K^2)): orthogonal vectors with squared lengths ``lengths_sq``.

    Args:
        lengths_sq: (K,) non-negative squared lengths, not all zero (a collapsed minority class
            has length 0, chapter 14_imbalanced_mse_plain).

    >>> general_orthogonal_frame([3.0, 4.0, 0.0]).diag().tolist()
    [0.6, 0.8, 0.0]
    """
    lengths = as_float64("lengths_sq", lengths_sq)
    if lengths.ndim != 1 or lengths.numel() == 0:
        raise ValueError(f"`lengths_sq` must be a non-empty 1-D sequence, got shape {tuple(lengths.shape)}")
    if bool((lengths < 0).any()):
        raise ValueError("`lengths_sq` must be >= 0 (squared lengths)")
    return normalized(torch.diag(lengths), name="lengths_sq")


def normalized(gram: Any, *, name: str = "gram") -> torch.Tensor:
    """nrm(A) = A / ||A||_F in float64. A zero matrix has no direction and raises ``ValueError``.

    >>> normalized([[3.0, 0.0], [0.0, 4.0]]).tolist()
    [[0.6, 0.0], [0.0, 0.8]]
    """
    matrix = as_float64(name, gram)
    norm = torch.linalg.matrix_norm(matrix) if matrix.ndim == 2 else matrix.norm()
    if float(norm) == 0.0:
        raise DegenerateError(f"`{name}` is zero; its normalised form is undefined")
    return matrix / norm


def gram_distance(gram: Any, target: Any) -> float:
    """||nrm(G) - nrm(T)||_F, the NC2/NC3 distance of the authors' validate_NC.py (scale-free, in [0, 2]).

    Shape (K, K) for both; ``target`` is typically ``simplex_etf(K)``, ``orthogonal_frame(K)`` or
    ``general_orthogonal_frame(l^2)`` and is normalised again here, so raw targets work too.
    The distance between the OF and the ETF is sqrt(2 - 2 sqrt((K-1)/K)).

    >>> round(gram_distance(orthogonal_frame(4), simplex_etf(4)), 6)
    0.517638
    """
    g = _square("gram", gram)
    t = _square("target", target)
    if g.shape != t.shape:
        raise ValueError(f"`gram` {tuple(g.shape)} and `target` {tuple(t.shape)} differ in shape")
    return float(torch.linalg.matrix_norm(normalized(g) - normalized(t, name="target")))


@dataclass(frozen=True)
class GOFTargets:
    """Per-class GOF targets, each (K,) float64: what NC2-GOF / NC3-GOF compare against.

    Paper A Sections 2.0(f), 2.4, 2.5: W W^T = diag(classifier_sq), Hbar^T Hbar = diag(means_sq),
    W Hbar = diag(inner). Only directions matter (every metric normalises), so any positive scale
    of each vector works; ``ncbook.theory`` gives the exact values for given lambdas and depth.
    """

    means_sq: torch.Tensor  # ||hbar_k||^2, class means (uncentred)
    classifier_sq: torch.Tensor  # ||w_k||^2, rows of the end-to-end classifier
    inner: torch.Tensor  # w_k^T hbar_k


def gof_targets_from_counts(counts: Sequence[int] | Any, depth: int = 1) -> GOFTargets:
    """Small-regularisation limit of the GOF closed form (:func:`ncbook.theory.mse_minimizer`):
    with p = M/(M+1), ||w_k||^2 ∝ n_k^p, ||hbar_k||^2 ∝ n_k^-p and w_k^T hbar_k -> 1 (so NC3-GOF
    targets the OF).

    Balanced counts give the OF. Use ``ncbook.theory`` for finite lambdas and minority collapse.

    >>> gof_targets_from_counts([4, 1]).classifier_sq.tolist()
    [2.0, 1.0]
    """
    n = as_float64("counts", counts)
    if n.ndim != 1 or n.numel() == 0 or bool((n <= 0).any()):
        raise ValueError("`counts` must be a non-empty 1-D sequence of positive class counts")
    m = check_int("depth", depth, low=1)
    power = m / (m + 1)
    return GOFTargets(means_sq=n.pow(-power), classifier_sq=n.pow(power), inner=torch.ones_like(n))
