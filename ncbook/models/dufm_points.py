"""Explicit collapsed points of the ReLU DUFM whose objective equals a closed form of
:mod:`ncbook.theory` (chapters 31-32): the best DNC point, the clique-readout SRG point and the
naive SRG point. The SRG realisations are ours (paper B's abstract names an SRG solution of rank
Theta(sqrt K); its exact construction could not be read).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from ncbook.models.relu_dufm import ReLUDUFM, check_widths, class_labels
from ncbook.theory.relu import check_flag, check_problem, dufm_dnc_optimum
from ncbook.theory.relu_srg import dufm_srg_naive_optimum, dufm_srg_optimum, srg_incidence, srg_readout

__all__ = ["dnc_dufm", "srg_dufm", "srg_naive_dufm"]


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
    means: np.ndarray, blocks: list[np.ndarray], problem: dict, dtype: torch.dtype, device: str | torch.device
) -> ReLUDUFM:
    """Collapsed point: H_1 = M_1 (x) 1_n^T and the weight blocks, padded to the widths."""
    K = means.shape[1]
    dims = [*problem["widths"], K]
    padded = [_embed(b, dims[l + 1], dims[l], f"W_{l + 1}") for l, b in enumerate(blocks)]
    features = np.repeat(_embed(means, dims[0], K, "H_1"), problem["n"], axis=1)

    def leaf(array: np.ndarray) -> torch.Tensor:
        return torch.tensor(array, dtype=dtype, device=device).requires_grad_(True)

    return ReLUDUFM(
        [leaf(w) for w in padded],
        leaf(features),
        class_labels(K, problem["n"], device),
        problem["lambda_W"],
        problem["lambda_H"],
        problem["nonnegative_features"],
    )


def _problem(depth, n_per_class, widths, lambda_H, lambda_W, nonnegative_features, min_depth) -> dict:  # noqa: ANN001
    depth, n, lambda_H, lambdas = check_problem(depth, n_per_class, lambda_H, lambda_W, min_depth)
    return {"depth": depth, "n": n, "widths": check_widths(widths, depth), "lambda_H": lambda_H,
            "lambda_W": lambdas, "nonnegative_features": check_flag("nonnegative_features", nonnegative_features)}  # fmt: skip


def _balanced_pair(target: np.ndarray, left: float, right: float) -> tuple[np.ndarray, np.ndarray]:
    """(M, W) with W M = left * right * target and ||M||^2 = left^2 ||target||_*,
    ||W||^2 = right^2 ||target||_*: the square-root factorisation (mixed signs in general)."""
    u, sing, vt = np.linalg.svd(target, full_matrices=False)
    keep = sing > 1e-12 * sing[0]
    root = np.sqrt(sing[keep])
    return left * root[:, None] * vt[keep], right * u[:, keep] * root[None, :]


def dnc_dufm(
    num_classes: int,
    depth: int,
    n_per_class: int,
    *,
    widths: int | Sequence[int],
    lambda_H: float,
    lambda_W: float | Sequence[float],
    nonnegative_features: bool = False,
    dtype: torch.dtype = torch.float64,
    device: str | torch.device = "cpu",
) -> ReLUDUFM:
    """The best DNC point: M_1 = x_0 [I_K; 0] (non-negative), W_l = x_l (partial identity), all
    ReLUs inactive; its objective equals ``ncbook.theory.dufm_dnc_loss`` (all zeros when zero wins)."""
    problem = _problem(depth, n_per_class, widths, lambda_H, lambda_W, nonnegative_features, 1)
    optimum = dufm_dnc_optimum(
        num_classes, problem["depth"], problem["n"], lambda_H=problem["lambda_H"], lambda_W=problem["lambda_W"]
    )
    eye = np.eye(num_classes)
    return _assemble(optimum.factors[0] * eye, [x * eye for x in optimum.factors[1:]], problem, dtype, device)


def _ridge(features: np.ndarray, lam: float) -> np.ndarray:
    """argmin_W 1/(2K) ||W M - I||^2 + lam/2 ||W||^2 = (M^T M + K lam I)^(-1) M^T."""
    K = features.shape[1]
    return np.linalg.solve(features.T @ features + K * lam * np.eye(K), features.T)


def srg_dufm(
    r: int,
    s: int,
    depth: int,
    n_per_class: int,
    *,
    widths: int | Sequence[int],
    lambda_H: float,
    lambda_W: float | Sequence[float],
    nonnegative_features: bool = False,
    dtype: torch.dtype = torch.float64,
    device: str | torch.device = "cpu",
) -> ReLUDUFM:
    """The clique-readout SRG point (K = r(r-1)/2). Free H_1: (M_1, W_1) is the balanced square
    root of t B (L = 2: of u F B). H_1 >= 0: M_1 = z_0 B and W_1 = z_1 I_r (L = 2: z_1 F). Then
    W_2..W_{L-2} = y I_r, W_{L-1} = y F, W_L the ridge readout of u C. Its objective equals
    ``ncbook.theory.dufm_srg_loss``; needs depth >= 2, d_2..d_{L-1} >= r and d_L >= C(r, s)."""
    problem = _problem(depth, n_per_class, widths, lambda_H, lambda_W, nonnegative_features, 2)
    optimum = dufm_srg_optimum(
        r, s, problem["depth"], problem["n"], lambda_H=problem["lambda_H"], lambda_W=problem["lambda_W"],
        nonnegative_features=problem["nonnegative_features"],
    )  # fmt: skip
    readout, inclusion = srg_readout(r, s)
    incidence = srg_incidence(r)
    z = optimum.factors
    if problem["nonnegative_features"]:
        means, first = z[0] * incidence, z[1] * (readout if problem["depth"] == 2 else np.eye(r))
    else:
        means, first = _balanced_pair(readout @ incidence if problem["depth"] == 2 else incidence, z[0], z[1])
    blocks = [first] if problem["depth"] == 2 else [first, *(y * np.eye(r) for y in z[2:-1]), z[-1] * readout]
    blocks.append(_ridge(optimum.scale * inclusion, problem["lambda_W"][-1]))
    return _assemble(means, blocks, problem, dtype, device)


def srg_naive_dufm(
    r: int,
    depth: int,
    n_per_class: int,
    *,
    widths: int | Sequence[int],
    lambda_H: float,
    lambda_W: float | Sequence[float],
    nonnegative_features: bool = False,
    dtype: torch.dtype = torch.float64,
    device: str | torch.device = "cpu",
) -> ReLUDUFM:
    """The naive SRG point: H_1 = t B >= 0, W_1..W_{L-2} = y I_r, W_{L-1} = y F (s = 2, so
    relu(F B) = I_K), W_L = y I_K; output c I_K. Its objective equals
    ``ncbook.theory.dufm_srg_naive_loss`` (either variant); needs depth >= 2, widths >= r, d_L >= K."""
    problem = _problem(depth, n_per_class, widths, lambda_H, lambda_W, nonnegative_features, 2)
    optimum = dufm_srg_naive_optimum(
        r, problem["depth"], problem["n"], lambda_H=problem["lambda_H"], lambda_W=problem["lambda_W"]
    )
    readout, _ = srg_readout(r, 2)
    z = optimum.factors
    K = readout.shape[0]
    blocks = [*(y * np.eye(r) for y in z[1:-2]), z[-2] * readout, z[-1] * np.eye(K)]
    return _assemble(z[0] * srg_incidence(r), blocks, problem, dtype, device)
