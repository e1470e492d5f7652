"""What the deep linear UFM and the ReLU deep UFM share: free features H_1 feed a stack of
weights W_1 .. W_last whose last one has K rows, and both objectives add the same decays,
sum_l lambda_W[l]/2 ||W_l||_F^2 + lambda_H/2 ||H_1||_F^2, to their fit term."""

from __future__ import annotations

import torch
import torch.nn.functional as F


class FreeFeatureStack:
    """Mixin for dataclasses with fields ``weights``, ``features``, ``labels``, ``lambda_W``, ``lambda_H``."""

    weights: list[torch.Tensor]  # W_1 .. W_last; W_last is (K, d_last)
    features: torch.Tensor  # H_1, (d_1, N)
    labels: torch.Tensor  # (N,) class of each column
    lambda_W: tuple[float, ...]  # one weight decay per layer
    lambda_H: float  # feature decay

    @property
    def num_classes(self) -> int:
        return self.weights[-1].shape[0]

    @property
    def depth(self) -> int:
        return len(self.weights)

    def _mse_fit(self, logits: torch.Tensor) -> torch.Tensor:
        """1/(2N) ||logits - Y||_F^2 with one-hot targets Y (K x N)."""
        targets = F.one_hot(self.labels, self.num_classes).T.to(logits.dtype)
        return (logits - targets).square().sum() / (2 * logits.shape[1])

    def _with_decays(self, fit: torch.Tensor) -> torch.Tensor:
        """``fit`` plus the weight and feature decays: the objective."""
        penalty = sum(lam / 2 * w.square().sum() for lam, w in zip(self.lambda_W, self.weights))
        return fit + penalty + self.lambda_H / 2 * self.features.square().sum()
