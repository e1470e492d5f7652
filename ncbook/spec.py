"""One unconstrained-feature problem as a value: :class:`UFMSpec`.

Both papers' models are the same problem family: free features H_1 (d_1 x N) for N samples of
K classes, ``depth`` weight matrices W_1 .. W_depth (W_m is d_{m+1} x d_m, the last K x d_depth),
an activation between them ("linear": paper A; "relu": paper B), the fit term ("mse" or "ce")
and the decays

    sum_m lambda_W[m]/2 ||W_m||_F^2 + lambda_H/2 ||H_1||_F^2 .

Models (:mod:`ncbook.models`) and closed forms (:mod:`ncbook.theory`) take a spec, so the counts,
depth, widths and the two decays travel together and in one order; the decays are keyword-only.
Chapters: 11-15, 21-22, 31-33.

>>> spec = UFMSpec((200, 100, 50, 50), 2, 64, lambda_W=5e-4, lambda_H=5e-4)
>>> spec.num_classes, spec.num_samples, spec.widths, spec.lambda_W, spec.balanced
(4, 400, (64, 64), (0.0005, 0.0005), False)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import KW_ONLY, dataclass, replace
from typing import Any

import numpy as np

from ncbook._checks import check_choice, check_float, check_float_list, check_int

__all__ = ["ACTIVATIONS", "LOSSES", "UFMSpec"]

LOSSES = ("mse", "ce")  # the fit terms; defined here once, imported everywhere else
ACTIVATIONS = ("linear", "relu")


@dataclass(frozen=True)
class UFMSpec:
    """One frozen UFM problem; sequences are stored as tuples, scalars broadcast per layer."""

    n_per_class: tuple[int, ...]  # n_k, samples of each class (K = len >= 2)
    depth: int  # number of weight matrices (M in paper A, L in paper B)
    widths: tuple[int, ...] | int | None = None  # d_1 .. d_depth (int: all equal; None: K each)
    _: KW_ONLY
    lambda_W: tuple[float, ...] | float = 5e-4  # weight decay of each layer (float: all equal)
    lambda_H: float = 5e-4  # decay of the free features H_1
    bias: bool = False  # an unpenalised bias on the last layer
    loss: str = "mse"  # fit term, one of LOSSES
    activation: str = "linear"  # between the layers, one of ACTIVATIONS
    nonnegative_features: bool = False  # paper B's variant with H_1 >= 0 (entrywise)

    def __post_init__(self) -> None:
        counts = self.n_per_class
        if isinstance(counts, (str, bytes)) or not isinstance(counts, Sequence):
            raise ValueError(f"`n_per_class` must be a sequence of class sizes, got {counts!r}")
        counts = tuple(check_int(f"n_per_class[{k}]", n, low=1) for k, n in enumerate(counts))
        if len(counts) < 2:
            raise ValueError(f"`n_per_class` needs at least 2 classes, got {len(counts)}")
        depth = check_int("depth", self.depth, low=1)
        widths = self.widths
        if widths is None:
            widths = (len(counts),) * depth
        elif isinstance(widths, Sequence) and not isinstance(widths, (str, bytes)):
            if len(widths) != depth:
                raise ValueError(f"`widths` needs one entry per layer ({depth}), got {len(widths)}")
            widths = tuple(check_int(f"widths[{m}]", w, low=1) for m, w in enumerate(widths))
        else:
            widths = (check_int("widths", widths, low=1),) * depth
        for name, value in [("n_per_class", counts), ("depth", depth), ("widths", widths),
                            ("lambda_W", check_float_list("lambda_W", self.lambda_W, depth, low=0.0)),
                            ("lambda_H", check_float("lambda_H", self.lambda_H, low=0.0))]:
            object.__setattr__(self, name, value)
        for name in ("bias", "nonnegative_features"):
            object.__setattr__(self, name, bool(check_choice(name, getattr(self, name), (True, False))))
        check_choice("loss", self.loss, LOSSES)
        check_choice("activation", self.activation, ACTIVATIONS)
        if self.nonnegative_features and self.activation != "relu":
            raise ValueError("`nonnegative_features` is paper B's ReLU variant: it needs activation='relu'")

    @property
    def num_classes(self) -> int:
        """K."""
        return len(self.n_per_class)

    @property
    def num_samples(self) -> int:
        """N = sum_k n_k."""
        return sum(self.n_per_class)

    @property
    def balanced(self) -> bool:
        """True when every class has the same number of samples."""
        return len(set(self.n_per_class)) == 1

    @property
    def counts(self) -> np.ndarray:
        """n_k as a float array (K,)."""
        return np.asarray(self.n_per_class, dtype=float)

    @property
    def dims(self) -> tuple[int, ...]:
        """(d_1, ..., d_depth, K): input and output sizes of every weight matrix."""
        return (*self.widths, self.num_classes)

    @property
    def rank_limit(self) -> int:
        """min(K, d_1, ..., d_depth): the largest rank any logits matrix can have."""
        return min(self.num_classes, *self.widths)

    @property
    def counts_label(self) -> str:
        """The class sizes as text, e.g. '200-100-50-50'."""
        return "-".join(str(n) for n in self.n_per_class)

    def with_decay(self, factor: float) -> UFMSpec:
        """The same problem with every lambda multiplied by ``factor`` (> 0)."""
        factor = check_float("factor", factor, low=0.0, low_open=True)
        return replace(self, lambda_W=tuple(factor * lam for lam in self.lambda_W),
                       lambda_H=factor * self.lambda_H)

    def require_positive_decay(self) -> UFMSpec:
        """``self``, or a ValueError if a lambda is 0 (the closed forms need every decay > 0)."""
        for m, lam in enumerate(self.lambda_W):
            check_float(f"lambda_W[{m}]", lam, low=0.0, low_open=True)
        check_float("lambda_H", self.lambda_H, low=0.0, low_open=True)
        return self

    def describe(self) -> dict[str, Any]:
        """Flat identifying columns for tables (counts as text, per-layer tuples as text)."""
        return {"counts": self.counts_label, "depth": self.depth,
                "widths": "-".join(map(str, self.widths)), "lambda_W": _compact(self.lambda_W),
                "lambda_H": self.lambda_H, "bias": self.bias, "criterion": self.loss,
                "activation": self.activation}


def _compact(values: tuple[float, ...]) -> float | str:
    """One float when every layer shares it, else the values joined by '-'."""
    return values[0] if len(set(values)) == 1 else "-".join(f"{v:g}" for v in values)
