"""A bias-free ReLU network trained with the DUFM's regularisation on fixed data: a backbone
whose output plays the DUFM's free features H_1, and the DUFM's ReLU head (paper B, Fig. 2
bottom, at CPU scale; chapter 33).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from ncbook._checks import check_float, check_float_list, check_int
from ncbook.models.relu_dufm import ReLUDUFM
from ncbook.theory.relu import check_flag

__all__ = ["ReLUHeadNet", "make_relu_head_net"]


@dataclass
class ReLUHeadNet:
    """The network and its objective:

        H_1 = V_B s(... s(V_1 X))  (with s applied once more if nonnegative_features),
        logits = W_L s(W_{L-1} ... s(W_1 H_1)),
        f = 1/(2N) ||logits - Y||^2 + sum_l lambda_W[l]/2 ||W_l||^2 + lambda_H/2 ||H_1||^2
            + lambda_B/2 sum_b ||V_b||^2 .

    The head and its penalties are exactly the DUFM's, so :meth:`head` returns the DUFM point the
    network sits at and every DUFM diagnostic applies. Because the DUFM frees H_1, the head's
    objective is never below the DUFM's global minimum (of the same H_1 variant).
    """

    inputs: torch.Tensor  # X, (p, N): one column per training sample
    backbone: list[torch.Tensor]  # V_1 .. V_B; V_b is (d, p or d)
    weights: list[torch.Tensor]  # W_1 .. W_L of the head; W_L is (K, d)
    labels: torch.Tensor  # (N,)
    lambda_W: tuple[float, ...]  # head weight decay, one per layer
    lambda_H: float  # penalty on the backbone output H_1 (a sum over samples)
    lambda_B: float  # backbone weight decay
    nonnegative_features: bool = False  # a ReLU on the backbone output, so H_1 >= 0

    def parameters(self) -> list[torch.Tensor]:
        return [*self.backbone, *self.weights]

    def features(self, inputs: torch.Tensor | None = None) -> torch.Tensor:
        """H_1 for ``inputs`` (p x M; default the training inputs)."""
        hidden = self.inputs if inputs is None else inputs
        for b, weight in enumerate(self.backbone):
            hidden = weight @ hidden
            if b < len(self.backbone) - 1 or self.nonnegative_features:
                hidden = torch.relu(hidden)
        return hidden

    def head(self, *, detach: bool = True) -> ReLUDUFM:
        """The DUFM point (head weights, H_1 = backbone output) of the training set."""
        features = self.features()
        weights = self.weights
        if detach:
            features, weights = features.detach(), [w.detach() for w in weights]
        return ReLUDUFM(
            weights, features, self.labels, self.lambda_W, self.lambda_H, self.nonnegative_features
        )

    def objective(self) -> torch.Tensor:
        penalty = sum(self.lambda_B / 2 * v.square().sum() for v in self.backbone)
        return self.head(detach=False).objective() + penalty

    def accuracy(self, inputs: torch.Tensor | None = None, labels: torch.Tensor | None = None) -> float:
        """Fraction of correct argmax predictions on ``inputs`` (M x p rows, like the factory's)
        with ``labels`` (M,); default the training set."""
        with torch.no_grad():
            data = None if inputs is None else inputs.T.to(self.inputs)
            hidden = self.features(data)
            for weight in self.weights[:-1]:
                hidden = torch.relu(weight @ hidden)
            logits = self.weights[-1] @ hidden
        target = self.labels if labels is None else labels
        return float((logits.argmax(0) == target.to(logits.device)).double().mean())


def make_relu_head_net(
    inputs: torch.Tensor,
    labels: torch.Tensor,
    num_classes: int,
    *,
    backbone_depth: int,
    depth: int,
    width: int,
    lambda_W: float | Sequence[float],
    lambda_H: float,
    lambda_B: float,
    nonnegative_features: bool = False,
    seed: int = 0,
    dtype: torch.dtype = torch.float64,
    device: str | torch.device = "cpu",
) -> ReLUHeadNet:
    """A :class:`ReLUHeadNet` on ``inputs`` (N x p, one row per sample) with a head of ``depth``
    layers, every hidden width equal to ``width`` and weights ~ N(0, 1/fan-in)."""
    K = check_int("num_classes", num_classes, low=2)
    if inputs.ndim != 2 or labels.shape != (inputs.shape[0],):
        raise ValueError(
            f"`inputs` must be (N, p) and `labels` (N,), got {tuple(inputs.shape)} and {tuple(labels.shape)}"
        )
    if int(labels.min()) < 0 or int(labels.max()) >= K:
        raise ValueError(f"`labels` must lie in [0, {K}), got [{int(labels.min())}, {int(labels.max())}]")
    backbone_depth = check_int("backbone_depth", backbone_depth, low=1)
    depth = check_int("depth", depth, low=1)
    width = check_int("width", width, low=1)
    lambdas = check_float_list("lambda_W", lambda_W, depth, low=0.0)
    lambda_H = check_float("lambda_H", lambda_H, low=0.0)
    lambda_B = check_float("lambda_B", lambda_B, low=0.0)
    nonnegative = check_flag("nonnegative_features", nonnegative_features)
    generator = torch.Generator().manual_seed(check_int("seed", seed, low=0))

    def normal(rows: int, cols: int) -> torch.Tensor:
        sample = torch.randn(rows, cols, generator=generator, dtype=dtype) / cols**0.5
        return sample.to(device).requires_grad_(True)

    fan_in = [inputs.shape[1]] + [width] * (backbone_depth - 1)
    return ReLUHeadNet(
        inputs=inputs.T.to(device=device, dtype=dtype),
        backbone=[normal(width, f) for f in fan_in],
        weights=[normal(width, width) for _ in range(depth - 1)] + [normal(K, width)],
        labels=labels.to(device),
        lambda_W=lambdas,
        lambda_H=lambda_H,
        lambda_B=lambda_B,
        nonnegative_features=nonnegative,
    )
