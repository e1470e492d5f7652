"""The deep linear unconstrained-feature model of paper A (Dang et al., ICML 2023).

M bias-free linear layers act on free features H_1 (d_1 x N); the last layer may carry an
unpenalised bias b (K). With one-hot targets Y (K x N) the objective is

    f = 1/(2N) ||W_M ... W_1 H_1 (+ b 1^T) - Y||_F^2 + sum_m lambda_W[m]/2 ||W_m||_F^2
        + lambda_H/2 ||H_1||_F^2                                                  (MSE)

or the mean cross-entropy of the logits in place of the first term (CE). The problem is a
:class:`ncbook.spec.UFMSpec` with ``activation="linear"``; :func:`make_deep_linear_ufm` draws the
authors' random start, :meth:`DeepLinearUFM.from_point` builds a closed-form point, and
:meth:`DeepLinearUFM.layer_table` gives every layer's NC metrics (the monitor of
:func:`ncbook.models.solve`). Chapters: 00, 11-15, 21-22.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

import pandas as pd
import torch
import torch.nn.functional as F

from ncbook._checks import check_choice, check_float
from ncbook.metrics.layerwise import LayerPrediction, layer_table
from ncbook.models._free_features import FreeFeatureStack
from ncbook.spec import LOSSES, UFMSpec
from ncbook.theory.linear_point import LinearPoint

__all__ = ["DeepLinearUFM", "classifier_tails", "make_deep_linear_ufm"]


@dataclass
class DeepLinearUFM(FreeFeatureStack):
    weights: list[torch.Tensor]  # W_1 .. W_M; W_m is (d_{m+1}, d_m), W_M is (K, d_M)
    features: torch.Tensor  # H_1, (d_1, N), columns sorted by class
    bias: torch.Tensor | None  # b, (K,), unpenalised; None for the bias-free model
    labels: torch.Tensor  # (N,) class of each column
    lambda_W: tuple[float, ...]  # one weight decay per layer
    lambda_H: float  # feature decay
    loss: str  # "mse" or "ce"

    @classmethod
    def from_point(
        cls, point: LinearPoint, loss: str = "mse", *, noise: float = 0.0, seed: int = 0
    ) -> DeepLinearUFM:
        """A model at ``point`` (e.g. ``ncbook.theory.mse_minimizer(...).point()``), as fresh
        leaves; ``noise`` > 0 adds Gaussian noise of ``noise`` times each tensor's RMS (to test
        that a point is a local minimum: optimise again and see whether the loss comes back)."""
        check_choice("loss", loss, LOSSES)
        noise = check_float("noise", noise, low=0.0)
        generator = torch.Generator().manual_seed(seed)

        def leaf(t: torch.Tensor) -> torch.Tensor:
            t = t.detach().contiguous().clone()
            kick = torch.randn(t.shape, generator=generator, dtype=t.dtype).to(t.device)
            return (t + noise * t.square().mean().sqrt() * kick).requires_grad_(True)

        return cls(
            weights=[leaf(w) for w in point.weights],
            features=leaf(point.features),
            bias=None if point.bias is None else leaf(point.bias),
            labels=point.labels.to(point.features.device),
            lambda_W=tuple(point.lambda_W),
            lambda_H=float(point.lambda_H),
            loss=loss,
        )

    def gradient_norm(self) -> float:
        """Largest absolute entry of the objective's gradient over all parameters."""
        leaves = [p.detach().requires_grad_(True) for p in self.parameters()]  # shares storage
        bias = leaves[-1] if self.bias is not None else None
        twin = replace(self, weights=leaves[: self.depth], features=leaves[self.depth], bias=bias)
        grads = torch.autograd.grad(twin.objective(), leaves)
        return max(float(g.abs().max()) for g in grads)

    @property
    def spec(self) -> UFMSpec:
        """The problem this model is an instance of (read off its shapes and decays)."""
        counts = torch.bincount(self.labels.cpu(), minlength=self.num_classes).tolist()
        return UFMSpec(counts, self.depth, [w.shape[1] for w in self.weights], lambda_W=self.lambda_W,
                       lambda_H=self.lambda_H, bias=self.bias is not None, loss=self.loss)

    def layer_table(self, reference: LayerPrediction | None = None, keys: Sequence[str] | None = None
                    ) -> pd.DataFrame:
        """NC metrics of every layer m = 1 .. M (features H_m, classifier W_M ... W_m) as rows
        ``layer, metric, value``: :func:`ncbook.metrics.layerwise.layer_table` (its docstring
        lists the metrics; ``reference`` = a closed form adds the ``*_pred`` distances)."""
        with torch.no_grad():
            return layer_table([h.T for h in self.layer_features()], self.labels, self.num_classes,
                               classifiers=classifier_tails(self.weights), bias=self.bias,
                               reference=reference, keys=keys)

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
        fit = self._mse_fit(logits) if self.loss == "mse" else F.cross_entropy(logits.T, self.labels)
        return self._with_decays(fit)


def make_deep_linear_ufm(
    spec: UFMSpec,
    *,
    init_std: float = 0.1,
    seed: int = 0,
    dtype: torch.dtype = torch.float64,
    device: str | torch.device = "cpu",
) -> DeepLinearUFM:
    """A deep linear UFM for ``spec`` with N(0, init_std^2) weights and features (the authors'
    init) and a zero bias; columns of H_1 are sorted by class.

    >>> model = make_deep_linear_ufm(UFMSpec((3, 2), 2, 4, lambda_W=0.1, lambda_H=0.1))
    >>> [tuple(w.shape) for w in model.weights], tuple(model.features.shape)
    ([(4, 4), (2, 4)], (4, 5))
    """
    if not isinstance(spec, UFMSpec) or spec.activation != "linear":
        raise ValueError(f"`spec` must be a UFMSpec with activation='linear', got {spec!r}")
    init_std = check_float("init_std", init_std, low=0.0, low_open=True)
    generator = torch.Generator().manual_seed(seed)
    k, dims = spec.num_classes, spec.dims

    def normal(*shape: int) -> torch.Tensor:
        sample = torch.randn(*shape, generator=generator, dtype=dtype) * init_std
        return sample.to(device).requires_grad_(True)

    labels = torch.repeat_interleave(torch.arange(k), torch.tensor(spec.n_per_class)).to(device)
    return DeepLinearUFM(
        weights=[normal(dims[m + 1], dims[m]) for m in range(spec.depth)],
        features=normal(dims[0], spec.num_samples),
        bias=torch.zeros(k, dtype=dtype, device=device, requires_grad=True) if spec.bias else None,
        labels=labels,
        lambda_W=spec.lambda_W,
        lambda_H=spec.lambda_H,
        loss=spec.loss,
    )


def classifier_tails(weights: Sequence[torch.Tensor]) -> list[torch.Tensor]:
    """[W_M...W_1, W_M...W_2, ..., W_M]: the classifier acting on each layer's features."""
    tails = [weights[-1]]
    for weight in reversed(weights[:-1]):
        tails.append(tails[-1] @ weight)
    return tails[::-1]
