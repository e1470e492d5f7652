"""The deep linear unconstrained-feature model of paper A (Dang et al., ICML 2023).

M bias-free linear layers act on free features H_1 (d_1 x N); the last layer may carry an
unpenalised bias b (K). With one-hot targets Y (K x N) the objective is

    f = 1/(2N) ||W_M ... W_1 H_1 (+ b 1^T) - Y||_F^2 + sum_m lambda_W[m]/2 ||W_m||_F^2
        + lambda_H/2 ||H_1||_F^2                                                  (MSE)

or the mean cross-entropy of the logits in place of the first term (CE).
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F

from ncbook import metrics
from ncbook._checks import check_choice, check_float, check_float_list, check_int
from ncbook.geometry import DegenerateError, gram_distance, orthogonal_frame, simplex_etf
from ncbook.optimize import SolverConfig, minimize
from ncbook.theory.linear import LinearPoint, MSEMinimizer

__all__ = [
    "LBFGS",
    "LOSSES",
    "DeepLinearUFM",
    "Snapshot",
    "SolveResult",
    "classifier_tails",
    "compare",
    "layer_metrics",
    "make_deep_linear_ufm",
    "nc1_or_nan",
    "snapshot",
    "solve",
]

LOSSES = ("mse", "ce")
# float64 L-BFGS: up to 60 x 50 evaluations, stopping early once the gradient vanishes.
LBFGS = SolverConfig(method="lbfgs", steps=60, lr=1.0, log_every=10)


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


def _distance(gram: torch.Tensor, target: Any) -> float:
    """gram_distance, or NaN where either side is zero (a collapsed run or target has no shape)."""
    try:
        return gram_distance(gram, target)
    except DegenerateError:
        return math.nan


def layer_metrics(model: DeepLinearUFM, theory: MSEMinimizer | None = None) -> dict[str, float]:
    """NC metrics of every layer, keyed ``"<metric>@<layer>"`` (layer m = 1 .. M).

    For layer m with features H_m, class means Hbar_m (d_m x K, uncentred), centred means
    Hc_m = Hbar_m - h_G (sample-weighted global mean) and classifier W_{>=m} = W_M ... W_m:

    * ``nc1``: ``ncbook.metrics.nc1`` of H_m;
    * ``h_of`` / ``h_etf``: gram_distance of Hbar_m^T Hbar_m to the OF, of Hc_m^T Hc_m to the ETF;
    * ``w_of`` / ``w_etf``: gram_distance of W_{>=m} W_{>=m}^T to the OF / ETF;
    * ``wh_of`` / ``wh_etf`` (layer 1 only; the logits W_{>=m} Hbar_m do not depend on m):
      gram_distance of W Hbar to the OF and of W Hc to the ETF;
    * with ``theory`` (an :func:`ncbook.theory.mse_minimizer` result) also ``h_gof``, ``w_gof``,
      ``wh_gof``: distances to its predicted Grams (the GOF under imbalance).

    Distances are NaN where a Gram is zero (e.g. the all-zero point), NC1 where Sigma_B is
    degenerate (two or more collapsed classes).
    """
    k = model.num_classes
    with torch.no_grad():
        onehot = F.one_hot(model.labels, k).to(model.features.dtype)  # (N, K)
        counts = onehot.sum(0)
        share = counts / counts.sum()
        etf, of = simplex_etf(k), orthogonal_frame(k)
        out: dict[str, float] = {}
        layers = model.layer_features()
        classifier = model.end_to_end()
        for m, (features, weights) in enumerate(zip(layers, classifier_tails(model.weights)), start=1):
            means = (features @ onehot / counts).double().cpu()  # (d_m, K)
            centred = means - means @ share.double().cpu()[:, None]
            w = weights.double().cpu()
            out[f"nc1@{m}"] = nc1_or_nan(features.T, model.labels, k)
            out[f"h_of@{m}"] = _distance(means.T @ means, of)
            out[f"h_etf@{m}"] = _distance(centred.T @ centred, etf)
            out[f"w_of@{m}"] = _distance(w @ w.T, of)
            out[f"w_etf@{m}"] = _distance(w @ w.T, etf)
            if theory is not None:
                out[f"h_gof@{m}"] = _distance(means.T @ means, theory.layer_h_gram(m))
                out[f"w_gof@{m}"] = _distance(w @ w.T, theory.layer_w_gram(m))
            if m == 1:
                logits = classifier.double().cpu() @ means
                out["wh_of@1"] = _distance(logits, of)
                out["wh_etf@1"] = _distance(classifier.double().cpu() @ centred, etf)
                if theory is not None:
                    out["wh_gof@1"] = _distance(logits, theory.logits)
    return out


def nc1_or_nan(features: torch.Tensor, labels: torch.Tensor, k: int) -> float:
    """NC1, or NaN where it is undefined: collapsed classes can leave Sigma_B degenerate."""
    try:
        return metrics.nc1(features, labels, num_classes=k)
    except DegenerateError:
        return math.nan


def classifier_tails(weights: Sequence[torch.Tensor]) -> list[torch.Tensor]:
    """[W_M...W_1, W_M...W_2, ..., W_M]: the classifier acting on each layer's features."""
    tails = [weights[-1]]
    for weight in reversed(weights[:-1]):
        tails.append(tails[-1] @ weight)
    return tails[::-1]


@dataclass(frozen=True, eq=False)
class SolveResult:
    """Best of several random starts of one deep linear UFM (see :func:`solve`)."""

    model: DeepLinearUFM  # parameters of the start with the lowest final loss
    history: pd.DataFrame  # tidy: start, step, loss, seconds, layer, metric, value
    final_losses: tuple[float, ...]  # final objective of each start
    best_start: int  # index of ``model`` in ``final_losses``

    @property
    def loss(self) -> float:
        return self.final_losses[self.best_start]

    def final_metrics(self) -> dict[str, float]:
        """The best start's last logged metrics, keyed ``"<metric>@<layer>"``."""
        rows = self.history[self.history["start"] == self.best_start]
        last = rows[rows["step"] == rows["step"].max()]
        return {
            f"{m}@{layer}": v for m, layer, v in zip(last["metric"], last["layer"], last["value"])
        }


def solve(
    n_per_class: Sequence[int],
    depth: int,
    width: int | Sequence[int],
    lambda_W: float | Sequence[float],
    lambda_H: float,
    *,
    bias: bool = False,
    loss: str = "mse",
    config: SolverConfig = LBFGS,
    starts: int = 4,
    init_std: float | Sequence[float] = 0.1,
    seed: int = 0,
    hops: int = 0,
    kick: float = 1.0,
    continuation: Sequence[float] = (0.1,),
    theory: MSEMinimizer | None = None,
    track: bool = True,
    dtype: torch.dtype = torch.float64,
    device: str | torch.device = "cpu",
) -> SolveResult:
    """Minimise the deep linear UFM from ``starts`` random inits; keep the lowest final loss.

    Start i uses seed ``seed + i`` and init scale ``init_std[i % len(init_std)]`` (several scales
    help for M >= 2, where zero classes and code-rule points are strict local minima).
    ``config`` picks the solver (:class:`ncbook.optimize.SolverConfig`): ``"sgd"`` with lr 0.1 and
    momentum 0.9 is the authors' recipe; the default is float64 L-BFGS. With ``track`` every
    logged step carries :func:`layer_metrics` (pass ``theory`` for the GOF distances).

    Continuation (default ``(0.1,)``): with ``continuation`` = (c_1, c_2, ...) the starts 1, 3,
    5, ... (0-based) are first solved
    with all lambdas multiplied by c_1, then c_2, ... (``config.steps // 4`` steps each) before the
    real problem. Small lambdas leave no barrier around zero, so every direction grows; raising
    lambda then keeps each on its largest root. This finds the non-zero minima that random starts
    miss near a threshold (and, inside the window of Section 2.5, the code-rule point), while
    the even starts keep the plain random search that finds collapsed minima.

    Basin hopping: after each start converges, ``hops`` times add Gaussian noise of ``kick`` times
    each tensor's RMS to every parameter and solve again, keeping the result only if the loss
    went down. A kick revives directions stuck at a zero local minimum (for M >= 2 a zero
    direction is a strict local minimum); the history continues at step offsets of
    ``config.steps`` per hop, with the hop's trace recorded whether or not it is kept.
    """
    starts = check_int("starts", starts, low=1)
    hops = check_int("hops", hops, low=0)
    kick = check_float("kick", kick, low=0.0, low_open=True)
    scales = check_float_list(
        "init_std",
        init_std,
        len(init_std) if isinstance(init_std, Sequence) else 1,
        low=0.0,
        low_open=True,
    )
    frames, finals, models = [], [], []
    for start in range(starts):
        model = make_deep_linear_ufm(
            n_per_class,
            depth,
            width,
            lambda_W,
            lambda_H,
            bias=bias,
            loss=loss,
            init_std=scales[start % len(scales)],
            seed=seed + start,
            dtype=dtype,
            device=device,
        )
        if start % 2 == 1 and continuation:
            _continue(model, continuation, replace(config, steps=max(1, config.steps // 4)))
        began = time.perf_counter()

        def monitor(model: DeepLinearUFM = model, began: float = began) -> dict[str, Any]:
            clock = {"seconds": time.perf_counter() - began}
            return clock | (layer_metrics(model, theory) if track else {})

        trace = minimize(
            model.objective, model.parameters(), config, monitor, description=f"start {start + 1}"
        )
        traces, final = [trace], float(trace["loss"].iloc[-1])
        generator = torch.Generator().manual_seed(seed + start)
        for hop in range(1, hops + 1):
            saved = [p.detach().clone() for p in model.parameters()]
            with torch.no_grad():
                for p in model.parameters():
                    noise = torch.randn(p.shape, generator=generator, dtype=p.dtype).to(p.device)
                    p.add_(kick * p.square().mean().sqrt() * noise)
            trace = minimize(
                model.objective, model.parameters(), config, monitor, description=f"hop {hop}"
            )
            traces.append(trace.assign(step=trace["step"] + hop * config.steps))
            if float(trace["loss"].iloc[-1]) < final:
                final = float(trace["loss"].iloc[-1])
            else:
                with torch.no_grad():
                    for p, old in zip(model.parameters(), saved):
                        p.copy_(old)
        frames.append(pd.concat(traces, ignore_index=True).assign(start=start))
        finals.append(final)
        models.append(model)
    best = int(np.argmin(finals))
    return SolveResult(
        model=_detached(models[best]),
        history=_tidy(pd.concat(frames, ignore_index=True)),
        final_losses=tuple(finals),
        best_start=best,
    )


def _continue(model: DeepLinearUFM, factors: Sequence[float], config: SolverConfig) -> None:
    """Solve ``model`` in place with its lambdas scaled by each factor in turn, then restore them."""
    lambda_W, lambda_H = model.lambda_W, model.lambda_H
    for i, factor in enumerate(factors):
        factor = check_float(f"continuation[{i}]", factor, low=0.0, low_open=True)
        model.lambda_W = tuple(factor * lam for lam in lambda_W)
        model.lambda_H = factor * lambda_H
        minimize(model.objective, model.parameters(), config, description=f"lambda x {factor:g}")
    model.lambda_W, model.lambda_H = lambda_W, lambda_H


def _detached(model: DeepLinearUFM) -> DeepLinearUFM:
    leaf = lambda t: t.detach().clone()  # noqa: E731
    return replace(
        model,
        weights=[leaf(w) for w in model.weights],
        features=leaf(model.features),
        bias=None if model.bias is None else leaf(model.bias),
    )


def _tidy(wide: pd.DataFrame) -> pd.DataFrame:
    """Wide ``metric@layer`` columns to rows (start, step, loss, seconds, layer, metric, value)."""
    ids = ["start", "step", "loss", "seconds"]
    keyed = [c for c in wide.columns if "@" in c]
    if not keyed:
        return wide[ids].assign(layer=pd.NA, metric=pd.NA, value=np.nan)
    long = wide.melt(id_vars=ids, value_vars=keyed, var_name="key", value_name="value")
    parts = long.pop("key").str.split("@", expand=True)
    return long.assign(metric=parts[0], layer=parts[1].astype(int))[
        [*ids, "layer", "metric", "value"]
    ].sort_values(["start", "step", "layer", "metric"], ignore_index=True)


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
