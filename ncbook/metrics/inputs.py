"""Validation of (features, labels) batches shared by every NC metric (chapters 11-15, 21-24, 31-33)."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from ncbook._checks import check_int

# Rows per chunk of the float64 working copies: bounds extra memory (d=512: 16 MB a copy) and keeps
# every GEMM large enough to run at full speed.
CHUNK_ROWS = 4096


def as_tensor(name: str, value: Any) -> torch.Tensor:
    """A torch view of ``value`` (tensor, numpy array or list); no copy for tensors."""
    if isinstance(value, torch.Tensor):
        return value.detach()
    try:
        return torch.as_tensor(np.asarray(value))
    except (TypeError, ValueError) as err:
        raise ValueError(f"`{name}` must be array-like, got {type(value).__name__}") from err


def check_features(features: Any, dim: int | None = None) -> torch.Tensor:
    """(N, d) floating tensor; ``dim`` fixes d when the caller already knows it."""
    x = as_tensor("features", features)
    if x.ndim != 2:
        raise ValueError(f"`features` must have shape (N, d), got {tuple(x.shape)}")
    if not x.is_floating_point():
        raise ValueError(f"`features` must be floating point, got {x.dtype}")
    if dim is not None and x.shape[1] != dim:
        raise ValueError(f"`features` has dimension {x.shape[1]}, expected {dim}")
    return x


def check_labels(labels: Any, n: int, num_classes: int | None, device: torch.device) -> torch.Tensor:
    """(N,) int64 labels in [0, K) on ``device``."""
    y = as_tensor("labels", labels)
    if y.ndim != 1 or y.shape[0] != n:
        raise ValueError(f"`labels` must have shape ({n},) to match `features`, got {tuple(y.shape)}")
    if y.is_floating_point() or y.is_complex() or y.dtype == torch.bool:
        raise ValueError(f"`labels` must be integers, got {y.dtype}")
    if n and num_classes is not None:
        low, high = int(y.min()), int(y.max())
        if low < 0 or high >= num_classes:
            bad = low if low < 0 else high
            raise ValueError(f"Expected `labels` in [0, {num_classes}), got {bad}")
    return y.to(device=device, dtype=torch.long)


def infer_num_classes(labels: torch.Tensor, num_classes: int | None) -> int:
    """``num_classes`` if given (>= 2), else max(label) + 1."""
    if num_classes is None:
        if labels.numel() == 0:
            raise ValueError("`num_classes` is needed when `labels` is empty")
        num_classes = int(labels.max()) + 1
        if num_classes < 2:
            raise ValueError(f"Expected at least 2 classes in `labels`, got {num_classes}")
    return check_int("num_classes", num_classes, low=2)


def check_batch(
    features: Any, labels: Any, num_classes: int | None
) -> tuple[torch.Tensor, torch.Tensor, int]:
    """In-memory (features, labels) checked together: (N, d) features, (N,) int64 labels on their
    device, and K (``num_classes``, else max(label) + 1)."""
    x = check_features(features)
    y = as_tensor("labels", labels)
    k = infer_num_classes(y, num_classes)
    return x, check_labels(y, x.shape[0], k, x.device), k


def check_finite(name: str, value: torch.Tensor) -> None:
    if not bool(torch.isfinite(value).all()):
        raise ValueError(f"`{name}` contains NaN or infinite entries")


def check_counts(counts: torch.Tensor) -> None:
    """Every class needs at least one sample for its mean to exist."""
    empty = (counts == 0).nonzero().flatten().tolist()
    if empty:
        raise ValueError(f"class(es) {empty} have no samples; every class needs at least one")
