"""Functional NC metrics: exact, in-memory, float64; the accumulator's ``compute`` uses the same
pure functions on its streamed statistics (used in chapters 11-15, 21-24 and 31-33).

Notation (Papyan, Han, Donoho, PNAS 2020): class means mu_k (K, d), class counts n_k, N = sum n_k,
global mean mu_G (sample-weighted by default), within-class covariance
Sigma_W = (1/N) sum_i (h_i - mu_{y_i})(h_i - mu_{y_i})^T and between-class covariance
Sigma_B = (1/K) sum_k (mu_k - mu_G)(mu_k - mu_G)^T.
"""

from __future__ import annotations

from typing import Any

import torch

from ncbook._checks import check_choice, check_float
from ncbook.geometry import DegenerateError
from ncbook.metrics.gram import add_gram, symmetric
from ncbook.metrics.inputs import CHUNK_ROWS, as_tensor, check_batch, check_counts, check_finite

__all__ = [
    "WEIGHTINGS",
    "cdnv",
    "class_means",
    "nc1",
    "nc1_from_scatter",
    "nc2_equiangle",
    "nc2_equinorm",
    "nc2_maxangle",
    "nc3_self_duality",
    "numerical_rank",
]

WEIGHTINGS = ("sample", "class")
# ``nc1`` projects residuals on the r class-mean directions when r <= 0.6 d: a float64 (N, d) x
# (d, r) GEMM then costs less than the float64 syrk of S_W (about 0.6 of a full (d, d) GEMM).
_PROJECT_BELOW = 0.6


def _class_sums(x: torch.Tensor, y: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-class float64 sums (K, d) and counts (K,), accumulated chunk by chunk."""
    sums = torch.zeros(k, x.shape[1], dtype=torch.float64, device=x.device)
    counts = torch.bincount(y, minlength=k).to(torch.float64)
    for start in range(0, x.shape[0], CHUNK_ROWS):
        rows = slice(start, start + CHUNK_ROWS)
        # index_add_ beats a (K, B) x (B, d) one-hot GEMM here: that GEMM shape runs far below peak
        sums.index_add_(0, y[rows], x[rows].to(torch.float64))
    check_finite("features", sums)
    return sums, counts


def class_means(features: Any, labels: Any, num_classes: int | None = None) -> torch.Tensor:
    """mu_k = (1/n_k) sum_{i: y_i = k} h_i, as a (K, d) float64 tensor on the features' device.

    Args:
        features: (N, d) floating tensor or array.
        labels: (N,) integers in [0, K).
        num_classes: K; default max(labels) + 1.

    Raises:
        ValueError: bad shapes, labels outside [0, K), NaN features, or a class with no sample.

    >>> class_means(torch.tensor([[0.0], [2.0], [5.0]]), torch.tensor([0, 0, 1])).flatten().tolist()
    [1.0, 5.0]
    """
    x, y, k = check_batch(features, labels, num_classes)
    sums, counts = _class_sums(x, y, k)
    check_counts(counts)
    return sums / counts[:, None]


def between_class(
    means: torch.Tensor, counts: torch.Tensor, weighting: str = "sample", center: bool = True
) -> torch.Tensor:
    """Rows mu_k - mu_G (K, d); ``weighting`` picks mu_G = sum n_k mu_k / N ("sample", Papyan)
    or (1/K) sum mu_k ("class"); ``center=False`` returns the means themselves."""
    check_choice("weighting", weighting, WEIGHTINGS)
    if not center:
        return means
    weights = counts / counts.sum() if weighting == "sample" else torch.full_like(counts, 1 / len(counts))
    return means - weights @ means


def _nc1_projector(between: torch.Tensor, center: bool) -> torch.Tensor:
    """P = V_r diag(1/s_r) (d, r) with Sigma_B^+ = K P P^T, truncated at the known rank
    r = min(K - 1, d) (centred) or min(K, d) (uncentred), never at a default cutoff."""
    k, d = between.shape
    rank = min(k - 1 if center else k, d)
    _, s, vh = torch.linalg.svd(between, full_matrices=False)
    # Only to detect class means that are degenerate (rank below r): the truncation is at r.
    if float(s[0]) == 0.0 or float(s[rank - 1]) <= max(k, d) * torch.finfo(s.dtype).eps * float(s[0]):
        raise DegenerateError(
            f"the class means span rank < {rank}: Sigma_B is degenerate and NC1 is undefined"
        )
    return vh[:rank].T / s[:rank]


def nc1_from_scatter(
    within_scatter: torch.Tensor,
    means: torch.Tensor,
    counts: torch.Tensor,
    *,
    weighting: str = "sample",
    center: bool = True,
    divide_by_k: bool = True,
) -> float:
    """NC1 from the within-class scatter sum_i (h_i - mu_{y_i})(...)^T (d, d), means, counts."""
    between = between_class(means, counts, weighting, center)
    p = _nc1_projector(between, center)  # (d, r)
    value = float(torch.einsum("dr,de,er->", p, within_scatter, p)) / float(counts.sum())
    return value * (1 if divide_by_k else len(counts))


def nc1(
    features: Any,
    labels: Any,
    num_classes: int | None = None,
    *,
    weighting: str = "sample",
    center: bool = True,
    divide_by_k: bool = True,
) -> float:
    """NC1 = Tr(Sigma_W Sigma_B^+) / K (Papyan et al. 2020), exact in float64.

    Sigma_B^+ is the pseudo-inverse truncated at the known rank r of Sigma_B (K-1, or K when
    ``center=False``), so round-off eigenvalues never enter. Two float64 passes over ``features``:
    class means, then the residuals h_i - mu_{y_i}, either projected onto the r-dimensional span
    of the class means (O(N d r), when r <= 0.6 d) or, for many classes, summed into S_W by a
    blocked float64 syrk (O(N d^2 / 2)); working buffers are reused chunk to chunk, so the cost
    is linear in d for fixed K and memory does not grow with N.

    Args:
        features: (N, d) floating tensor/array, any device.
        labels: (N,) integers in [0, K).
        num_classes: K; default max(labels) + 1.
        weighting: global mean mu_G weighted by samples ("sample", default, Papyan and paper A's
            code) or the plain average of class means ("class").
        center: Sigma_B around mu_G (default); False uses the raw means (rank K).
        divide_by_k: divide the trace by K (default, Papyan and paper A); False omits it.

    Raises:
        ValueError: bad shapes, labels outside [0, K), NaN, empty class, degenerate class means.

    >>> h = torch.tensor([[1.0, 0.0], [3.0, 0.0], [0.0, 1.0], [0.0, 3.0]])
    >>> round(nc1(h, torch.tensor([0, 0, 1, 1])), 12)  # Sigma_W = I/2, Sigma_B = 2 u u^T: Tr = 1/4, / K
    0.125
    """
    check_choice("center", center, (True, False))
    check_choice("divide_by_k", divide_by_k, (True, False))
    x, y, k = check_batch(features, labels, num_classes)
    sums, counts = _class_sums(x, y, k)
    check_counts(counts)
    means = sums / counts[:, None]
    p = _nc1_projector(between_class(means, counts, weighting, center), center)  # (d, r)
    d, r = p.shape
    rows_max = min(CHUNK_ROWS, x.shape[0])
    work = torch.empty(rows_max, d, dtype=torch.float64, device=x.device)  # float64 rows, reused
    project = r <= _PROJECT_BELOW * d  # else S_W by a syrk costs less than an (N, d) x (d, r) GEMM
    if project:
        means_p = means @ p  # (K, r)
        projected = torch.empty(rows_max, r, dtype=torch.float64, device=x.device)
        gathered = torch.empty_like(projected)
    else:
        scatter = torch.zeros(d, d, dtype=torch.float64, device=x.device)
        gathered = torch.empty_like(work)
    total = torch.zeros((), dtype=torch.float64, device=x.device)
    for start in range(0, x.shape[0], CHUNK_ROWS):
        rows = slice(start, start + CHUNK_ROWS)
        size = len(y[rows])
        h = work[:size].copy_(x[rows])
        mu = torch.index_select(means_p if project else means, 0, y[rows], out=gathered[:size])
        if project:
            # P^T h_i - P^T mu_{y_i}: the GEMM runs on the raw features, so no (B, d) residual is
            # formed; float64 keeps the subtraction exact to eps_64 |h| / |h - mu|, 1e-11 relative
            # even at offset 50 and spread 1e-3
            total += torch.linalg.vector_norm(torch.mm(h, p, out=projected[:size]).sub_(mu)).square()
        else:
            add_gram(scatter, h.sub_(mu))
    if not project:
        total = torch.einsum("dr,de,er->", p, symmetric(scatter), p)
    return float(total) / x.shape[0] * (1 if divide_by_k else k)


def cdnv(features: Any, labels: Any, num_classes: int | None = None) -> float:
    """Class-distance normalised variance (Galanti et al. 2022), averaged over pairs k < j:
    (Var_k + Var_j) / (2 ||mu_k - mu_j||^2), Var_k = (1/n_k) sum_{i in k} ||h_i - mu_k||^2.

    >>> h = torch.tensor([[0.0], [2.0], [10.0], [12.0]])
    >>> cdnv(h, torch.tensor([0, 0, 1, 1]))  # (1 + 1) / (2 * 10^2)
    0.01
    """
    x, y, k = check_batch(features, labels, num_classes)
    sums, counts = _class_sums(x, y, k)
    check_counts(counts)
    means = sums / counts[:, None]
    spread = torch.zeros(k, dtype=torch.float64, device=x.device)
    for start in range(0, x.shape[0], CHUNK_ROWS):
        rows = slice(start, start + CHUNK_ROWS)
        residual = x[rows].to(torch.float64) - means[y[rows]]
        spread.index_add_(0, y[rows], residual.square().sum(1))
    return cdnv_from(means, spread / counts)


def cdnv_from(means: torch.Tensor, variances: torch.Tensor) -> float:
    """CDNV from class means (K, d) and per-class variances Var_k (K,)."""
    centred = means - means.mean(0)  # distances are shift-invariant; centring avoids cancellation
    gram = centred @ centred.T
    dist_sq = gram.diag()[:, None] + gram.diag()[None, :] - 2 * gram
    pairs = torch.triu_indices(len(means), len(means), offset=1)
    ratio = (variances[pairs[0]] + variances[pairs[1]]) / (2 * dist_sq[pairs[0], pairs[1]])
    return float(ratio.mean())


def _rows(name: str, value: Any) -> torch.Tensor:
    """``value`` as a finite float64 (K, d) matrix, K >= 2."""
    v = as_tensor(name, value).to(torch.float64)
    if v.ndim != 2 or v.shape[0] < 2:
        raise ValueError(f"`{name}` must have shape (K, d) with K >= 2, got {tuple(v.shape)}")
    check_finite(name, v)
    return v


def _vectors(name: str, value: Any) -> torch.Tensor:
    """``_rows`` whose every row has a direction (per-row cosines and norm ratios need one)."""
    v = _rows(name, value)
    if bool((v.norm(dim=1) == 0).any()):
        raise DegenerateError(f"`{name}` has a zero row; its direction is undefined")
    return v


def _unit_frobenius(name: str, matrix: torch.Tensor) -> torch.Tensor:
    norm = matrix.norm()
    if float(norm) == 0.0:
        raise DegenerateError(f"`{name}` is zero; its normalised form is undefined")
    return matrix / norm


def _off_diagonal_cosines(v: torch.Tensor) -> torch.Tensor:
    unit = v / v.norm(dim=1, keepdim=True)
    cos = unit @ unit.T
    return cos[~torch.eye(len(v), dtype=torch.bool, device=v.device)]


def nc2_equinorm(vectors: Any) -> float:
    """Std_k ||v_k|| / Avg_k ||v_k|| (population std), rows of ``vectors`` (K, d): centred class
    means mu_k - mu_G or classifier rows w_k (Papyan et al. 2020, Fig. 2).

    >>> nc2_equinorm([[1.0, 0.0], [0.0, 3.0]])
    0.5
    """
    norms = _vectors("vectors", vectors).norm(dim=1)
    return float(norms.std(correction=0) / norms.mean())


def nc2_equiangle(vectors: Any) -> float:
    """Std_{k != j} cos(v_k, v_j) (population std; Papyan et al. 2020, Fig. 3). 0 for an ETF."""
    return float(_off_diagonal_cosines(_vectors("vectors", vectors)).std(correction=0))


def nc2_maxangle(vectors: Any) -> float:
    """Avg_{k != j} |cos(v_k, v_j) + 1/(K-1)| (Papyan et al. 2020, Fig. 4). 0 for a simplex ETF.

    >>> round(nc2_maxangle([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0]]), 6)  # cosines 0, -1, 0
    0.5
    """
    v = _vectors("vectors", vectors)
    return float((_off_diagonal_cosines(v) + 1 / (len(v) - 1)).abs().mean())


def nc3_self_duality(classifier: Any, vectors: Any, *, squared: bool = True) -> float:
    """||W/||W||_F - V/||V||_F||_F^2 with W (K, d) and V (K, d), by default the centred class means
    (Papyan et al. 2020, Fig. 5); ``squared=False`` gives paper A's NC3_W_sub_H (not squared).

    Matrix-level: only the whole of W and of V must be non-zero (else ``DegenerateError``), so a
    collapsed class, whose classifier row and class mean are both zero, is allowed.

    >>> nc3_self_duality([[2.0, 0.0], [0.0, 2.0]], [[1.0, 0.0], [0.0, 1.0]])
    0.0
    >>> nc3_self_duality([[2.0, 0.0], [0.0, 0.0]], [[1.0, 0.0], [0.0, 0.0]])  # class 2 collapsed
    0.0
    """
    w = _rows("classifier", classifier)
    v = _rows("vectors", vectors)
    if w.shape != v.shape:
        raise ValueError(f"`classifier` {tuple(w.shape)} and `vectors` {tuple(v.shape)} differ")
    unit_w, unit_v = _unit_frobenius("classifier", w), _unit_frobenius("vectors", v.to(w.device))
    gap = float(torch.linalg.matrix_norm(unit_w - unit_v))
    return gap**2 if squared else gap


def numerical_rank(matrix: Any, rtol: float = 1e-3) -> int:
    """#{singular values s_j > rtol * s_max} of a 2-D ``matrix`` (float64 SVD); 0 for a zero matrix.

    The default rtol = 1e-3 is paper B's convention for the rank of class-mean matrices.

    >>> numerical_rank([[1.0, 0.0], [0.0, 1e-4]])
    1
    """
    m = as_tensor("matrix", matrix).to(torch.float64)
    if m.ndim != 2:
        raise ValueError(f"`matrix` must be 2-D, got shape {tuple(m.shape)}")
    check_finite("matrix", m)
    tol = check_float("rtol", rtol, low=0.0, high=1.0, low_open=True)
    if m.numel() == 0:
        return 0
    s = torch.linalg.svdvals(m)
    return int((s > tol * s[0]).sum()) if float(s[0]) > 0 else 0
