"""The deep linear unconstrained-feature model of paper A (Dang et al., ICML 2023).

M bias-free linear layers act on free features H_1 (d_1 x N); the last layer may carry an
unpenalised bias b (K). With one-hot targets Y (K x N) the objective is

    f = 1/(2N) ||W_M ... W_1 H_1 (+ b 1^T) - Y||_F^2 + sum_m lambda_W[m]/2 ||W_m||_F^2
        + lambda_H/2 ||H_1||_F^2                                                  (MSE)

or the mean cross-entropy of the logits in place of the first term (CE).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from ncbook._checks import check_choice, check_float, check_float_list, check_int
from ncbook.theory.linear import LinearPoint

__all__ = ["LOSSES", "DeepLinearUFM", "make_deep_linear_ufm"]

LOSSES = ("mse", "ce")


@dataclass
class DeepLinearUFM:
    weights: list[torch.Tensor]  # W_1 .. W_M; W_m is (d_{m+1}, d_m), W_M is (K, d_M)
    features: torch.Tensor  # H_1, (d_1, N), columns sorted by class
    bias: torch.Tensor | None  # b, (K,), unpenalised; None for the bias-free model
    labels: torch.Tensor  # (N,) class of each column
    lambda_W: tuple[float, ...]  # one weight decay per layer
    lambda_H: float  # feature decay
    loss: str  # "mse" or "ce"

    @classmethod
    def from_point(cls, point: LinearPoint, loss: str = "mse") -> DeepLinearUFM:
        """A model at ``point`` (e.g. ``ncbook.theory.mse_minimizer(...).point()``), as fresh leaves."""
        check_choice("loss", loss, LOSSES)
        leaf = lambda t: t.detach().clone().requires_grad_(True)  # noqa: E731
        return cls(
            weights=[leaf(w) for w in point.weights],
            features=leaf(point.features),
            bias=None if point.bias is None else leaf(point.bias),
            labels=point.labels.to(point.features.device),
            lambda_W=tuple(point.lambda_W),
            lambda_H=float(point.lambda_H),
            loss=loss,
        )

    @property
    def num_classes(self) -> int:
        return self.weights[-1].shape[0]

    @property
    def depth(self) -> int:
        return len(self.weights)

    def parameters(self) -> list[torch.Tensor]:
        return [*self.weights, self.features, *([self.bias] if self.bias is not None else [])]

    def layer_features(self) -> list[torch.Tensor]:
        """[H_1, ..., H_M]: the input of every linear layer, each (d_m, N)."""
        layers = [self.features]
        for weight in self.weights[:-1]:
            layers.append(weight @ layers[-1])
        return layers

    def end_to_end(self) -> torch.Tensor:
        """W = W_M ... W_1, (K, d_1)."""
        product = self.weights[0]
        for weight in self.weights[1:]:
            product = weight @ product
        return product

    def logits(self) -> torch.Tensor:
        out = self.weights[-1] @ self.layer_features()[-1]  # (K, N)
        return out if self.bias is None else out + self.bias[:, None]

    def objective(self) -> torch.Tensor:
        logits = self.logits()
        n = logits.shape[1]
        if self.loss == "mse":
            targets = F.one_hot(self.labels, self.num_classes).T.to(logits.dtype)
            fit = (logits - targets).square().sum() / (2 * n)
        else:
            fit = F.cross_entropy(logits.T, self.labels)
        penalty = sum(lam / 2 * w.square().sum() for lam, w in zip(self.lambda_W, self.weights))
        return fit + penalty + self.lambda_H / 2 * self.features.square().sum()


def make_deep_linear_ufm(
    n_per_class: Sequence[int],
    depth: int,
    width: int | Sequence[int],
    lambda_W: float | Sequence[float],
    lambda_H: float,
    *,
    bias: bool = False,
    loss: str = "mse",
    init_std: float = 0.1,
    seed: int = 0,
    dtype: torch.dtype = torch.float64,
    device: str | torch.device = "cpu",
) -> DeepLinearUFM:
    """A deep linear UFM with N(0, init_std^2) weights and features (the authors' init).

    ``width`` is d_1 = ... = d_M or one width per layer input (d_1, ..., d_M).
    """
    counts = [check_int(f"n_per_class[{k}]", n, low=1) for k, n in enumerate(n_per_class)]
    if len(counts) < 2:
        raise ValueError(f"`n_per_class` needs at least 2 classes, got {len(counts)}")
    depth = check_int("depth", depth, low=1)
    widths = (
        [check_int(f"width[{m}]", w, low=1) for m, w in enumerate(width)]
        if isinstance(width, Sequence)
        else [check_int("width", width, low=1)] * depth
    )
    if len(widths) != depth:
        raise ValueError(f"`width` needs one entry per layer ({depth}), got {len(widths)}")
    lambdas = check_float_list("lambda_W", lambda_W, depth, low=0.0)
    lambda_H = check_float("lambda_H", lambda_H, low=0.0)
    check_choice("loss", loss, LOSSES)
    init_std = check_float("init_std", init_std, low=0.0, low_open=True)

    generator = torch.Generator().manual_seed(seed)
    k = len(counts)
    dims = [*widths, k]

    def normal(*shape: int) -> torch.Tensor:
        sample = torch.randn(*shape, generator=generator, dtype=dtype) * init_std
        return sample.to(device).requires_grad_(True)

    labels = torch.repeat_interleave(torch.arange(k), torch.tensor(counts)).to(device)
    return DeepLinearUFM(
        weights=[normal(dims[m + 1], dims[m]) for m in range(depth)],
        features=normal(widths[0], sum(counts)),
        bias=torch.zeros(k, dtype=dtype, device=device, requires_grad=True) if bias else None,
        labels=labels,
        lambda_W=lambdas,
        lambda_H=lambda_H,
        loss=loss,
    )
