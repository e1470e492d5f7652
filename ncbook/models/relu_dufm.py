"""The ReLU deep unconstrained-features model (L-DUFM) of paper B (chapters 31-33).

Free features H_1 (d_1 x N) pass through L bias-free layers with a ReLU after every hidden layer:
H~_{l+1} = W_l H_l, H_{l+1} = relu(H~_{l+1}) for l < L, output W_L H_L. With one-hot targets Y
(K x N, columns sorted by class) the objective is

    1/(2N) ||W_L H_L - Y||_F^2 + sum_l lambda_W[l]/2 ||W_l||_F^2 + lambda_H/2 ||H_1||_F^2 .

No ReLU acts on H_1 by default. ``nonnegative_features=True`` constrains H_1 >= 0, what a ReLU
backbone outputs: we impose it as a constraint (the factories start inside it, the gradient-descent
kernel projects after every step) rather than writing H_1 = relu(H_raw), because a
re-parametrisation kills every entry that turns negative (its gradient is zero for ever) while a
backbone could still move it; the projection keeps the problem "minimise the same objective over
H_1 >= 0", whose minima the closed forms of :mod:`ncbook.theory.relu_srg` describe.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import torch

from ncbook._checks import check_float, check_int
from ncbook.models._free_features import FreeFeatureStack
from ncbook.spec import UFMSpec
from ncbook.theory.relu import check_flag

__all__ = ["ReLUDUFM", "check_relu_spec", "make_relu_dufm"]


@dataclass
class ReLUDUFM(FreeFeatureStack):
    weights: list[torch.Tensor]  # W_1 .. W_L; W_l is (d_{l+1}, d_l), W_L is (K, d_L)
    features: torch.Tensor  # H_1, (d_1, N), columns sorted by class
    labels: torch.Tensor  # (N,) class of each column
    lambda_W: tuple[float, ...]  # one weight decay per layer
    lambda_H: float  # feature decay (a sum over samples, not divided by N)
    nonnegative_features: bool = False  # constrain H_1 >= 0 (a ReLU backbone's output)

    def __post_init__(self) -> None:
        check_flag("nonnegative_features", self.nonnegative_features)
        if self.nonnegative_features and bool((self.features < 0).any()):
            raise ValueError("`features` must be >= 0 when `nonnegative_features` is True")

    def parameters(self) -> list[torch.Tensor]:
        return [*self.weights, self.features]

    def pre_activations(self) -> list[torch.Tensor]:
        """[H~_2, ..., H~_L]: the hidden layers before their ReLU, each (d_l, N)."""
        hidden, out = self.features, []
        for weight in self.weights[:-1]:
            out.append(weight @ hidden)
            hidden = torch.relu(out[-1])
        return out

    def layer_features(self) -> list[torch.Tensor]:
        """[H_1, ..., H_L]: the input of every layer (post-ReLU except H_1), each (d_l, N)."""
        return [self.features, *(torch.relu(pre) for pre in self.pre_activations())]

    def named_layers(self) -> dict[str, torch.Tensor]:
        """Detached H_1, H~_2, H_2, ..., H~_L, H_L (each d_l x N), keyed by those names."""
        with torch.no_grad():
            layers = {"H1": self.features.detach()}
            for l, pre in enumerate(self.pre_activations(), start=2):
                layers[f"H~{l}"] = pre
                layers[f"H{l}"] = torch.relu(pre)
        return layers

    def logits(self) -> torch.Tensor:
        return self.weights[-1] @ self.layer_features()[-1]  # (K, N)

    def objective(self) -> torch.Tensor:
        return self._with_decays(self._mse_fit(self.logits()))

    def objective_value(self) -> float:
        """The objective as a Python float, without building an autograd graph."""
        with torch.no_grad():
            return float(self.objective())

    def fast_minimize(self, config, monitor=None):  # noqa: ANN001, ANN201 (ncbook.optimize's hook)
        """``ncbook.optimize.minimize``'s kernel hook: method "gd" runs the numpy kernel of
        :mod:`ncbook.models.relu_dufm_gd` (projected when H_1 >= 0); other methods use autograd,
        which cannot keep H_1 >= 0, so they are refused for the constrained model."""
        from ncbook.models.relu_dufm_gd import fast_minimize

        return fast_minimize(self, config, monitor)

    def perturbed(self, std: float, seed: int = 0) -> ReLUDUFM:
        """A copy with N(0, std^2) noise added to every parameter (fresh leaves), projected back
        onto H_1 >= 0 for the constrained model."""
        std = check_float("std", std, low=0.0)
        generator = torch.Generator().manual_seed(check_int("seed", seed, low=0))

        def noisy(t: torch.Tensor) -> torch.Tensor:
            noise = torch.randn(t.shape, generator=generator, dtype=t.dtype).to(t.device)
            return t.detach() + std * noise

        out = copy.copy(self)
        out.weights = [noisy(w).requires_grad_(True) for w in self.weights]
        features = noisy(self.features)
        out.features = (features.clamp(min=0) if self.nonnegative_features else features).requires_grad_(True)
        return out


def check_relu_spec(spec: UFMSpec, *, balanced: bool = False) -> UFMSpec:
    """``spec`` if it is a ReLU DUFM problem (activation "relu", MSE, no bias; ``balanced`` if
    asked), else a one-line ValueError naming what is wrong."""
    if not isinstance(spec, UFMSpec):
        raise ValueError(f"`spec` must be an ncbook.spec.UFMSpec, got {type(spec).__name__}")
    if spec.activation != "relu" or spec.loss != "mse" or spec.bias:
        raise ValueError(
            "`spec` must describe the ReLU DUFM: activation='relu', loss='mse', bias=False; got "
            f"activation={spec.activation!r}, loss={spec.loss!r}, bias={spec.bias}"
        )
    if balanced and not spec.balanced:
        raise ValueError(
            f"`spec.n_per_class` must be balanced for this construction, got {spec.counts_label}"
        )
    return spec


def class_labels(spec: UFMSpec, device: str | torch.device) -> torch.Tensor:
    """(N,) labels, class by class: n_1 zeros, then n_2 ones, ..."""
    counts = torch.tensor(spec.n_per_class, device=device)
    return torch.arange(spec.num_classes, device=device).repeat_interleave(counts)


def make_relu_dufm(
    spec: UFMSpec, *, seed: int = 0, dtype: torch.dtype = torch.float64, device: str | torch.device = "cpu"
) -> ReLUDUFM:
    """A random start of the problem ``spec``: H_1 ~ N(0, 1) and W_l ~ N(0, 1/d_l) (d_l =
    fan-in); with ``spec.nonnegative_features`` the same draw of H_1 projected onto H_1 >= 0.

    >>> spec = UFMSpec((2, 2, 2), 3, 5, lambda_W=0.004, lambda_H=0.004, activation="relu")
    >>> model = make_relu_dufm(spec)
    >>> tuple(model.features.shape), [tuple(w.shape) for w in model.weights]
    ((5, 6), [(5, 5), (5, 5), (3, 5)])
    """
    spec = check_relu_spec(spec)
    generator = torch.Generator().manual_seed(check_int("seed", seed, low=0))
    dims = spec.dims

    def normal(rows: int, cols: int, std: float) -> torch.Tensor:
        return torch.randn(rows, cols, generator=generator, dtype=dtype) * std

    features = normal(dims[0], spec.num_samples, 1.0)
    weights = [
        normal(dims[l + 1], dims[l], dims[l] ** -0.5).to(device).requires_grad_(True)
        for l in range(spec.depth)
    ]
    features = (
        (features.clamp(min=0) if spec.nonnegative_features else features).to(device).requires_grad_(True)
    )
    return ReLUDUFM(weights, features, class_labels(spec, device), spec.lambda_W, spec.lambda_H,
                    spec.nonnegative_features)  # fmt: skip
