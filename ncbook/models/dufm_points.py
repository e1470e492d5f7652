"""Explicit collapsed points of the ReLU DUFM whose objective equals a closed form of
:mod:`ncbook.theory` (chapters 31-32): the best DNC point, the clique-readout SRG point and the
naive SRG point. The SRG realisations are ours (paper B's abstract names a low-rank solution
built from a strongly regular graph; its exact construction could not be read).
"""

from __future__ import annotations

import math

import numpy as np
import torch

from ncbook._checks import check_int
from ncbook.models.relu_dufm import ReLUDUFM, check_relu_spec, class_labels
from ncbook.spec import UFMSpec
from ncbook.theory.relu import dufm_dnc_optimum
from ncbook.theory.relu_srg import dufm_srg_naive_optimum, dufm_srg_optimum, srg_incidence, srg_readout

__all__ = ["antipodal_dufm", "dnc_dufm", "srg_dufm", "srg_naive_dufm"]


def _embed(block: np.ndarray, rows: int, cols: int, what: str) -> np.ndarray:
    """Zero-pad ``block`` to (rows, cols); the construction needs the widths to hold it."""
    if block.shape[0] > rows or block.shape[1] > cols:
        raise ValueError(
            f"`widths` are too small for this construction: {what} needs at least "
            f"{block.shape[0]} x {block.shape[1]}, got {rows} x {cols}"
        )
    out = np.zeros((rows, cols))
    out[: block.shape[0], : block.shape[1]] = block
    return out


def _assemble(
    means: np.ndarray, blocks: list[np.ndarray], spec: UFMSpec, dtype: torch.dtype, device: str | torch.device
) -> ReLUDUFM:
    """Collapsed point: H_1 = M_1 (x) 1_n^T and the weight blocks, padded to the widths."""
    dims = spec.dims
    padded = [_embed(b, dims[l + 1], dims[l], f"W_{l + 1}") for l, b in enumerate(blocks)]
    features = np.repeat(_embed(means, dims[0], spec.num_classes, "H_1"), spec.n_per_class[0], axis=1)

    def leaf(array: np.ndarray) -> torch.Tensor:
        return torch.tensor(array, dtype=dtype, device=device).requires_grad_(True)

    return ReLUDUFM([leaf(w) for w in padded], leaf(features), class_labels(spec, device), spec.lambda_W,
                    spec.lambda_H, spec.nonnegative_features)  # fmt: skip


def _closed_form_args(spec: UFMSpec, min_depth: int) -> dict:
    """Keyword arguments of the closed forms for ``spec`` (balanced, every decay > 0)."""
    spec = check_relu_spec(spec, balanced=True).require_positive_decay()
    check_int("spec.depth", spec.depth, low=min_depth)
    return {"depth": spec.depth, "n_per_class": spec.n_per_class[0], "lambda_H": spec.lambda_H,
            "lambda_W": spec.lambda_W, "nonnegative_features": spec.nonnegative_features}  # fmt: skip


def _clique_size(spec: UFMSpec) -> int:
    """r with K = r(r-1)/2, or a ValueError: the SRG points need K of that form."""
    r = round((1 + math.sqrt(1 + 8 * spec.num_classes)) / 2)
    if r * (r - 1) // 2 != spec.num_classes:
        raise ValueError(f"`spec` must have K = r(r-1)/2 classes (3, 6, 10, 15, ...), got {spec.num_classes}")
    return r


def _balanced_pair(target: np.ndarray, left: float, right: float) -> tuple[np.ndarray, np.ndarray]:
    """(M, W) with W M = left * right * target and ||M||^2 = left^2 ||target||_*,
    ||W||^2 = right^2 ||target||_*: the square-root factorisation (mixed signs in general)."""
    u, sing, vt = np.linalg.svd(target, full_matrices=False)
    keep = sing > 1e-12 * sing[0]
    root = np.sqrt(sing[keep])
    return left * root[:, None] * vt[keep], right * u[:, keep] * root[None, :]


def dnc_dufm(
    spec: UFMSpec, *, dtype: torch.dtype = torch.float64, device: str | torch.device = "cpu"
) -> ReLUDUFM:
    """The best DNC point of ``spec``: M_1 = x_0 [I_K; 0] (non-negative), W_l = x_l (partial
    identity), all ReLUs inactive; its objective equals ``ncbook.theory.dufm_dnc_loss`` (all zeros
    when zero wins).

    >>> spec = UFMSpec((1,) * 10, 4, 30, lambda_W=0.004, lambda_H=0.004, activation="relu")
    >>> round(dnc_dufm(spec).objective_value(), 10)
    0.0991798746
    """
    optimum = dufm_dnc_optimum(spec.num_classes, **_closed_form_args(spec, 1))
    eye = np.eye(spec.num_classes)
    return _assemble(optimum.factors[0] * eye, [x * eye for x in optimum.factors[1:]], spec, dtype, device)


def antipodal_dufm(
    spec: UFMSpec, *, dtype: torch.dtype = torch.float64, device: str | torch.device = "cpu"
) -> ReLUDUFM:
    """K = 2 with free-sign H_1: the DNC point with (M_1, W_1) replaced by the balanced square root
    of t [[1, -1], [-1, 1]] (t = x_0 x_1). The two class means of H_1 are antipodal (rank 1), H~_2
    has rank 1, and relu(H~_2) = t I as at DNC; both first-layer targets have nuclear norm 2t, so
    the objective is L_DNC: with free-sign H_1 the K = 2 optimum is not unique (ours).

    >>> spec = UFMSpec((1, 1), 3, 4, lambda_W=0.004, lambda_H=0.004, activation="relu")
    >>> abs(antipodal_dufm(spec).objective_value() - dnc_dufm(spec).objective_value()) < 1e-15
    True
    """
    args = _closed_form_args(spec, 2)  # depth 1 has no ReLU to turn H~_2 back into t I
    if spec.num_classes != 2 or spec.nonnegative_features:
        raise ValueError(
            "`spec` must have K = 2 classes and free-sign H_1 (antipodal means need negative entries)"
        )
    x = dufm_dnc_optimum(2, **args).factors
    means, first = _balanced_pair(np.array([[1.0, -1.0], [-1.0, 1.0]]), x[0], x[1])
    return _assemble(means, [first, *(y * np.eye(2) for y in x[2:])], spec, dtype, device)


def _ridge(features: np.ndarray, lam: float) -> np.ndarray:
    """argmin_W 1/(2K) ||W M - I||^2 + lam/2 ||W||^2 = (M^T M + K lam I)^(-1) M^T."""
    K = features.shape[1]
    return np.linalg.solve(features.T @ features + K * lam * np.eye(K), features.T)


def srg_dufm(
    spec: UFMSpec, s: int, *, dtype: torch.dtype = torch.float64, device: str | torch.device = "cpu"
) -> ReLUDUFM:
    """The clique-readout SRG point of ``spec`` (K = r(r-1)/2, readout over s-subsets). Free H_1:
    (M_1, W_1) is the balanced square root of t B (L = 2: of u F B). H_1 >= 0: M_1 = z_0 B and
    W_1 = z_1 I_r (L = 2: z_1 F). Then W_2..W_{L-2} = y I_r, W_{L-1} = y F, W_L the ridge readout
    of u C. Its objective equals ``ncbook.theory.dufm_srg_loss``; needs depth >= 2, d_1 >= r,
    d_2..d_{L-1} >= r and d_L >= C(r, s) (the number of readout rows)."""
    args = _closed_form_args(spec, 2)
    r = _clique_size(spec)
    optimum = dufm_srg_optimum(r, s, **args)
    readout, inclusion = srg_readout(r, s)
    incidence = srg_incidence(r)
    z, two = optimum.factors, spec.depth == 2
    if spec.nonnegative_features:
        means, first = z[0] * incidence, z[1] * (readout if two else np.eye(r))
    else:
        means, first = _balanced_pair(readout @ incidence if two else incidence, z[0], z[1])
    blocks = [first] if two else [first, *(y * np.eye(r) for y in z[2:-1]), z[-1] * readout]
    blocks.append(_ridge(optimum.scale * inclusion, spec.lambda_W[-1]))
    return _assemble(means, blocks, spec, dtype, device)


def srg_naive_dufm(
    spec: UFMSpec, *, dtype: torch.dtype = torch.float64, device: str | torch.device = "cpu"
) -> ReLUDUFM:
    """The naive SRG point: H_1 = t B >= 0, W_1..W_{L-2} = y I_r, W_{L-1} = y F (s = 2, so
    relu(F B) = I_K), W_L = y I_K; output c I_K. Its objective equals
    ``ncbook.theory.dufm_srg_naive_loss`` (either variant); needs depth >= 2, widths >= r, d_L >= K."""
    r = _clique_size(check_relu_spec(spec))
    optimum = dufm_srg_naive_optimum(r, **_closed_form_args(spec, 2))
    readout, _ = srg_readout(r, 2)
    z = optimum.factors
    blocks = [*(y * np.eye(r) for y in z[1:-2]), z[-2] * readout, z[-1] * np.eye(spec.num_classes)]
    return _assemble(z[0] * srg_incidence(r), blocks, spec, dtype, device)
