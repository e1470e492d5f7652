"""The matrices paper A's theorems speak about, read off a deep linear UFM, and their relative
errors against a closed form (:func:`snapshot`, :func:`compare`). Chapters: 11-15.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F

from ncbook.models.linear_ufm import DeepLinearUFM, classifier_tails

__all__ = ["Snapshot", "compare", "snapshot"]


@dataclass(frozen=True, eq=False)
class Snapshot:
    """The matrices the theorems speak about, read off one model (float64 numpy)."""

    loss: float  # objective value
    w_grams: tuple[np.ndarray, ...]  # (W_M...W_m)(W_M...W_m)^T, (K, K), for m = 1 .. M
    h_grams: tuple[np.ndarray, ...]  # Hbar_m^T Hbar_m, (K, K), class means of H_m, m = 1 .. M
    logits: np.ndarray  # W Hbar_1 (K, K): column k holds the mean logits of class k (no bias)
    singular_values: np.ndarray  # (M, K): the K largest singular values of each W_m
    bias: np.ndarray | None  # b, (K,)


def snapshot(model: DeepLinearUFM) -> Snapshot:
    """Read a :class:`Snapshot` off ``model``."""
    k = model.num_classes
    with torch.no_grad():
        onehot = F.one_hot(model.labels, k).to(model.features.dtype)
        means = [(h @ onehot / onehot.sum(0)).double().cpu() for h in model.layer_features()]
        tails = [t.double().cpu() for t in classifier_tails(model.weights)]
        values = []
        for w in model.weights:
            sv = torch.linalg.svdvals(w.double().cpu())[:k]
            values.append(torch.cat([sv, sv.new_zeros(k - len(sv))]).numpy())
        return Snapshot(
            loss=float(model.objective()),
            w_grams=tuple((t @ t.T).numpy() for t in tails),
            h_grams=tuple((h.T @ h).numpy() for h in means),
            logits=(tails[0] @ means[0]).numpy(),
            singular_values=np.stack(values),
            bias=None if model.bias is None else model.bias.detach().double().cpu().numpy(),
        )


def compare(measured: Snapshot, predicted: Snapshot) -> pd.DataFrame:
    """Relative errors of every matrix in ``measured`` against ``predicted``.

    One row per (quantity, layer): ``scale`` = ||predicted||_F, ``matrix_error`` =
    ||measured - predicted||_F / scale and ``spectrum_error`` = the same for the sorted eigenvalues
    (singular values for ``W_m``), which ignores the rotations and class pairings that leave the
    objective unchanged. Quantities: ``"W W^T"`` (the classifier acting on layer m),
    ``"Hbar^T Hbar"`` (class means of H_m), ``"W Hbar"`` (layer 1), ``"sigma(W_m)"``, ``"bias"``.
    """
    rows = []

    def add(quantity: str, layer: int, got: np.ndarray, want: np.ndarray, spectrum) -> None:
        scale = float(np.linalg.norm(want))
        denominator = scale if scale > 0 else 1.0
        rows.append({
            "quantity": quantity,
            "layer": layer,
            "scale": scale,
            "matrix_error": float(np.linalg.norm(got - want)) / denominator,
            "spectrum_error": float(np.linalg.norm(spectrum(got) - spectrum(want))) / denominator,
        })

    eig = lambda a: np.linalg.eigvalsh((a + a.T) / 2)  # noqa: E731
    svd = lambda a: np.linalg.svd(a, compute_uv=False)  # noqa: E731
    same = lambda a: np.sort(np.atleast_1d(a))  # noqa: E731
    for m, (got, want) in enumerate(zip(measured.w_grams, predicted.w_grams), start=1):
        add("W W^T", m, got, want, eig)
    for m, (got, want) in enumerate(zip(measured.h_grams, predicted.h_grams), start=1):
        add("Hbar^T Hbar", m, got, want, eig)
    add("W Hbar", 1, measured.logits, predicted.logits, svd)
    for m, (got, want) in enumerate(zip(measured.singular_values, predicted.singular_values), 1):
        add("sigma(W_m)", m, got, want, same)
    if measured.bias is not None and predicted.bias is not None:
        add("bias", 1, measured.bias, predicted.bias, same)
    return pd.DataFrame(rows)
