"""The ReLU deep unconstrained-features model (L-DUFM) of paper B; see ../shared/theory/paper-b.md.

Free features H_1 (d_1 x N, no ReLU on them) pass through L bias-free layers with a ReLU after
every hidden layer: H~_{l+1} = W_l H_l, H_{l+1} = relu(H~_{l+1}) for l < L, output W_L H_L. With
one-hot targets Y (K x N, columns sorted by class) the objective is

    1/(2N) ||W_L H_L - Y||_F^2 + sum_l lambda_W[l]/2 ||W_l||_F^2 + lambda_H/2 ||H_1||_F^2 .

The factories build random starts (H_1 ~ N(0, 1), W_l ~ N(0, 1/d_l)) and the explicit DNC and
SRG points whose objective equals the closed forms of :mod:`ncbook.theory.relu`.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from tqdm import tqdm

from ncbook._checks import check_float, check_float_list, check_int
from ncbook._runtime import progress_disabled
from ncbook.metrics import class_means, numerical_rank
from ncbook.theory.relu import (
    dufm_dnc_loss,
    dufm_dnc_optimum,
    dufm_srg_naive_optimum,
    dufm_srg_optimum,
    srg_incidence,
    srg_readout,
)

__all__ = [
    "DUFMRuns",
    "GDResult",
    "ReLUDUFM",
    "ReLUHeadNet",
    "class_mean_layers",
    "classify_solution",
    "dnc_dufm",
    "dufm_gradient_descent",
    "head_monitor",
    "layer_ranks",
    "layer_spectra",
    "layer_nc1",
    "make_relu_dufm",
    "make_relu_head_net",
    "nc1_trace_ratio",
    "random_start_runs",
    "random_start_sweep",
    "srg_dufm",
    "srg_naive_dufm",
    "summarize_solution",
]


@dataclass
class ReLUDUFM:
    weights: list[torch.Tensor]  # W_1 .. W_L; W_l is (d_{l+1}, d_l), W_L is (K, d_L)
    features: torch.Tensor  # H_1, (d_1, N), columns sorted by class
    labels: torch.Tensor  # (N,) class of each column
    lambda_W: tuple[float, ...]  # one weight decay per layer
    lambda_H: float  # feature decay (a sum over samples, not divided by N)

    @property
    def num_classes(self) -> int:
        return self.weights[-1].shape[0]

    @property
    def depth(self) -> int:
        return len(self.weights)

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

    def logits(self) -> torch.Tensor:
        return self.weights[-1] @ self.layer_features()[-1]  # (K, N)

    def objective(self) -> torch.Tensor:
        logits = self.logits()
        targets = F.one_hot(self.labels, self.num_classes).T.to(logits.dtype)
        fit = (logits - targets).square().sum() / (2 * logits.shape[1])
        penalty = sum(lam / 2 * w.square().sum() for lam, w in zip(self.lambda_W, self.weights))
        return fit + penalty + self.lambda_H / 2 * self.features.square().sum()

    def objective_value(self) -> float:
        """The objective as a Python float, without building an autograd graph."""
        with torch.no_grad():
            return float(self.objective())

    def perturbed(self, std: float, seed: int = 0) -> ReLUDUFM:
        """A copy with N(0, std^2) noise added to every parameter (a fresh leaf for the solver)."""
        std = check_float("std", std, low=0.0)
        generator = torch.Generator().manual_seed(check_int("seed", seed, low=0))

        def noisy(t: torch.Tensor) -> torch.Tensor:
            noise = torch.randn(t.shape, generator=generator, dtype=t.dtype).to(t.device)
            return (t.detach() + std * noise).requires_grad_(True)

        out = copy.copy(self)
        out.weights = [noisy(w) for w in self.weights]
        out.features = noisy(self.features)
        return out


# ------------------------------------------------------------------------------------ factories
def _widths(width: int | Sequence[int], depth: int) -> list[int]:
    if isinstance(width, Sequence):
        widths = [check_int(f"width[{l}]", w, low=1) for l, w in enumerate(width)]
        if len(widths) != depth:
            raise ValueError(f"`width` needs one entry per layer ({depth}), got {len(widths)}")
        return widths
    return [check_int("width", width, low=1)] * depth


def _labels(K: int, n: int, device: str | torch.device) -> torch.Tensor:
    return torch.arange(K, device=device).repeat_interleave(n)


def make_relu_dufm(
    num_classes: int,
    n: int,
    depth: int,
    width: int | Sequence[int],
    lambda_W: float | Sequence[float],
    lambda_H: float,
    *,
    seed: int = 0,
    dtype: torch.dtype = torch.float64,
    device: str | torch.device = "cpu",
) -> ReLUDUFM:
    """A random L-DUFM start: H_1 ~ N(0, 1) and W_l ~ N(0, 1/d_l) (d_l = fan-in), as in the spec.

    ``width`` is d_1 = ... = d_L or one width per layer input (d_1, ..., d_L).
    """
    K = check_int("num_classes", num_classes, low=2)
    n = check_int("n", n, low=1)
    depth = check_int("depth", depth, low=1)
    widths = _widths(width, depth)
    lambdas = check_float_list("lambda_W", lambda_W, depth, low=0.0)
    lambda_H = check_float("lambda_H", lambda_H, low=0.0)
    generator = torch.Generator().manual_seed(check_int("seed", seed, low=0))
    dims = [*widths, K]

    def normal(rows: int, cols: int, std: float) -> torch.Tensor:
        sample = torch.randn(rows, cols, generator=generator, dtype=dtype) * std
        return sample.to(device).requires_grad_(True)

    features = normal(widths[0], K * n, 1.0)
    weights = [normal(dims[l + 1], dims[l], dims[l] ** -0.5) for l in range(depth)]
    return ReLUDUFM(weights, features, _labels(K, n, device), lambdas, lambda_H)


def _embed(block: np.ndarray, rows: int, cols: int, what: str) -> np.ndarray:
    """Zero-pad ``block`` to (rows, cols); the construction needs the widths to hold it."""
    if block.shape[0] > rows or block.shape[1] > cols:
        raise ValueError(
            f"`width` is too small for this construction: {what} needs at least "
            f"{block.shape[0]} x {block.shape[1]}, got {rows} x {cols}"
        )
    out = np.zeros((rows, cols))
    out[: block.shape[0], : block.shape[1]] = block
    return out


def _assemble(
    means: np.ndarray,
    blocks: list[np.ndarray],
    n: int,
    widths: list[int],
    lambdas: tuple[float, ...],
    lambda_H: float,
    dtype: torch.dtype,
    device: str | torch.device,
) -> ReLUDUFM:
    """Collapsed point: H_1 = M_1 (x) 1_n^T and the weight blocks, padded to the widths."""
    K = means.shape[1]
    dims = [*widths, K]
    padded = [_embed(b, dims[l + 1], dims[l], f"W_{l + 1}") for l, b in enumerate(blocks)]
    features = np.repeat(_embed(means, widths[0], K, "H_1"), n, axis=1)

    def leaf(array: np.ndarray) -> torch.Tensor:
        return torch.tensor(array, dtype=dtype, device=device).requires_grad_(True)

    return ReLUDUFM([leaf(w) for w in padded], leaf(features), _labels(K, n, device), lambdas, lambda_H)


def _balanced_pair(target: np.ndarray, left: float, right: float) -> tuple[np.ndarray, np.ndarray]:
    """(M, W) with W M = left * right * target and ||M||^2 = left^2 ||target||_*,
    ||W||^2 = right^2 ||target||_*: the square-root factorisation of Lemma (B)."""
    u, sing, vt = np.linalg.svd(target, full_matrices=False)
    keep = sing > 1e-12 * sing[0]
    root = np.sqrt(sing[keep])
    return left * root[:, None] * vt[keep], right * u[:, keep] * root[None, :]


def _setup(
    depth: int, n: int, width: int | Sequence[int], lambda_H: float, lambda_W: float | Sequence[float]
) -> tuple[int, int, list[int], tuple[float, ...], float]:
    depth = check_int("depth", depth, low=1)
    n = check_int("n", n, low=1)
    widths = _widths(width, depth)
    lambdas = check_float_list("lambda_W", lambda_W, depth, low=0.0, low_open=True)
    lambda_H = check_float("lambda_H", lambda_H, low=0.0, low_open=True)
    return depth, n, widths, lambdas, lambda_H


def dnc_dufm(
    K: int,
    n: int,
    depth: int,
    width: int | Sequence[int],
    lambda_H: float,
    lambda_W: float | Sequence[float],
    *,
    dtype: torch.dtype = torch.float64,
    device: str | torch.device = "cpu",
) -> ReLUDUFM:
    """The best DNC point: M_1 = x_0 [I_K; 0], W_l = x_l (partial identity), all ReLUs inactive;
    its objective equals ``ncbook.theory.dufm_dnc_loss`` (all zeros when zero wins)."""
    depth, n, widths, lambdas, lambda_H = _setup(depth, n, width, lambda_H, lambda_W)
    optimum = dufm_dnc_optimum(K, depth, n, lambda_H, lambdas)
    eye = np.eye(K)
    return _assemble(
        optimum.factors[0] * eye,
        [x * eye for x in optimum.factors[1:]],
        n,
        widths,
        lambdas,
        lambda_H,
        dtype,
        device,
    )


def _ridge(features: np.ndarray, lam: float) -> np.ndarray:
    """argmin_W 1/(2K) ||W M - I||^2 + lam/2 ||W||^2 = (M^T M + K lam I)^(-1) M^T (Lemma (A))."""
    K = features.shape[1]
    return np.linalg.solve(features.T @ features + K * lam * np.eye(K), features.T)


def srg_dufm(
    r: int,
    s: int,
    n: int,
    depth: int,
    width: int | Sequence[int],
    lambda_H: float,
    lambda_W: float | Sequence[float],
    *,
    dtype: torch.dtype = torch.float64,
    device: str | torch.device = "cpu",
) -> ReLUDUFM:
    """The clique-readout SRG point (K = r(r-1)/2): (M_1, W_1) the balanced square root of t B,
    W_2..W_{L-2} = y I_r, W_{L-1} = y F, W_L the ridge readout of u C (L = 2: (M_1, W_1) is the
    root of u F B). Its objective equals ``ncbook.theory.dufm_srg_loss``; needs depth >= 2,
    widths >= r and d_L >= C(r, s)."""
    depth, n, widths, lambdas, lambda_H = _setup(depth, n, width, lambda_H, lambda_W)
    optimum = dufm_srg_optimum(r, s, depth, n, lambda_H, lambdas)
    readout, inclusion = srg_readout(r, s)
    incidence = srg_incidence(r)
    z = optimum.factors
    if depth == 2:
        means, first = _balanced_pair(readout @ incidence, z[0], z[1])
        blocks = [first]
    else:
        means, first = _balanced_pair(incidence, z[0], z[1])
        blocks = [first, *(y * np.eye(r) for y in z[2:-1]), z[-1] * readout]
    blocks.append(_ridge(optimum.scale * inclusion, lambdas[-1]))
    return _assemble(means, blocks, n, widths, lambdas, lambda_H, dtype, device)


def srg_naive_dufm(
    r: int,
    n: int,
    depth: int,
    width: int | Sequence[int],
    lambda_H: float,
    lambda_W: float | Sequence[float],
    *,
    dtype: torch.dtype = torch.float64,
    device: str | torch.device = "cpu",
) -> ReLUDUFM:
    """The naive SRG point: H_1 = t B >= 0, W_1..W_{L-2} = y I_r, W_{L-1} = y F (s = 2, so
    relu(F B) = I_K), W_L = y I_K; output c I_K. Its objective equals
    ``ncbook.theory.dufm_srg_naive_loss``; needs depth >= 2, widths >= r and d_L >= K."""
    depth, n, widths, lambdas, lambda_H = _setup(depth, n, width, lambda_H, lambda_W)
    optimum = dufm_srg_naive_optimum(r, depth, n, lambda_H, lambdas)
    readout, _ = srg_readout(r, 2)
    z = optimum.factors
    K = readout.shape[0]
    blocks = [*(y * np.eye(r) for y in z[1:-2]), z[-2] * readout, z[-1] * np.eye(K)]
    return _assemble(z[0] * srg_incidence(r), blocks, n, widths, lambdas, lambda_H, dtype, device)


# ------------------------------------------------------------------------ fast gradient descent
@dataclass(frozen=True)
class GDResult:
    model: ReLUDUFM  # the final point (fresh leaves, float64)
    history: pd.DataFrame  # step, loss (every `log_every` steps, the first and the last)
    lr: float  # the learning rate that ran to the end (halved after each divergence)


_BLOW_UP = 1e3  # a logged loss this many times the initial one counts as divergence


def _numpy_gd(
    weights: list[np.ndarray],
    features: np.ndarray,
    targets: np.ndarray,
    lambdas: tuple[float, ...],
    lambda_H: float,
    steps: int,
    lr: float,
    log_every: int,
) -> list[tuple[int, float]] | None:
    """Plain full-batch GD in place with hand-written gradients; None if it diverged.

    Backward pass: dOut = (W_L H_L - Y)/N, dW_l = dH~_{l+1} H_l^T + lambda_l W_l,
    dH_l = W_l^T dH~_{l+1}, dH~_l = dH_l * [H~_l > 0] (relu'(0) = 0, as in torch).
    """
    n_samples, depth = features.shape[1], len(weights)
    log: list[tuple[int, float]] = []
    for step in range(steps + 1):
        hidden, masks = [features], []
        for weight in weights[:-1]:
            pre = weight @ hidden[-1]
            masks.append(pre > 0)
            hidden.append(pre * masks[-1])
        residual = weights[-1] @ hidden[-1] - targets
        if step % log_every == 0 or step == steps:
            loss = (residual**2).sum() / (2 * n_samples) + lambda_H / 2 * (features**2).sum()
            loss += sum(lam / 2 * (w**2).sum() for lam, w in zip(lambdas, weights))
            # Divergence: overflow, or a blow-up far past the start (GD with weight decay can
            # swing to 1e75 and back without ever overflowing).
            if not np.isfinite(loss) or (log and loss > _BLOW_UP * log[0][1]):
                return None
            log.append((step, float(loss)))
        if step == steps:
            return log
        grad = residual / n_samples
        for l in range(depth - 1, -1, -1):
            back = weights[l].T @ grad
            weights[l] -= lr * (grad @ hidden[l].T + lambdas[l] * weights[l])
            grad = back * masks[l - 1] if l > 0 else back
        features -= lr * (grad + lambda_H * features)
    return log


def dufm_gradient_descent(
    model: ReLUDUFM, steps: int, lr: float = 0.5, *, log_every: int = 1000, retries: int = 4
) -> GDResult:
    """Full-batch GD (no momentum) from ``model``, the protocol of the spec (Section 3.2).

    Hand-written float64 numpy gradients: on one CPU thread this is ~11x faster per step than
    autograd through ``ncbook.optimize.minimize`` for the paper's sizes (K = 10, d = 30), which makes
    the 10^4-10^5-step runs affordable. If a logged loss is non-finite or above 1e3 times the
    initial one, the run restarts from ``model`` with lr/2, at most ``retries`` times. Judge
    convergence by the loss: at low-rank solutions pre-activations sit on the ReLU kink and the
    gradient norm stays ~1e-2.
    """
    steps = check_int("steps", steps, low=1)
    lr = check_float("lr", lr, low=0.0, low_open=True)
    log_every = check_int("log_every", log_every, low=1)
    retries = check_int("retries", retries, low=0)
    targets = F.one_hot(model.labels, model.num_classes).T.double().cpu().numpy()
    for _ in range(retries + 1):
        weights = [w.detach().double().cpu().numpy().copy() for w in model.weights]
        features = model.features.detach().double().cpu().numpy().copy()
        with np.errstate(over="ignore", invalid="ignore"):
            log = _numpy_gd(weights, features, targets, model.lambda_W, model.lambda_H, steps, lr, log_every)
        if log is not None:
            break
        lr /= 2
    else:
        raise FloatingPointError(f"GD diverged {retries + 1} times; last lr tried {lr * 2:g}")

    def leaf(array: np.ndarray) -> torch.Tensor:
        return torch.tensor(array, dtype=torch.float64).requires_grad_(True)

    final = ReLUDUFM(
        [leaf(w) for w in weights],
        leaf(features),
        model.labels.cpu(),
        model.lambda_W,
        model.lambda_H,
    )
    return GDResult(final, pd.DataFrame(log, columns=["step", "loss"]), lr)


# ---------------------------------------------------------------------------------- diagnostics
def _named_layers(model: ReLUDUFM) -> dict[str, torch.Tensor]:
    with torch.no_grad():
        layers = {"H1": model.features.detach()}
        for l, pre in enumerate(model.pre_activations(), start=2):
            layers[f"H~{l}"] = pre
            layers[f"H{l}"] = torch.relu(pre)
    return layers


def class_mean_layers(model: ReLUDUFM) -> dict[str, torch.Tensor]:
    """Class-mean matrices M (d_l x K, float64) of H_1, H~_2, H_2, ..., H~_L, H_L, keyed by name."""
    K = model.num_classes
    return {name: class_means(h.T, model.labels, K).T for name, h in _named_layers(model).items()}


def nc1_trace_ratio(features: torch.Tensor, labels: torch.Tensor, num_classes: int) -> float:
    """tr(Sigma_W) / tr(Sigma_B) for features (d x N): the spec's NC1 for layers whose class
    means have rank < K - 1, where Papyan's tr(Sigma_W Sigma_B^+)/K (``ncbook.metrics.nc1``) is
    undefined. Sigma_B is centred at the sample-weighted global mean; nan if tr(Sigma_B) = 0.

    >>> h = torch.tensor([[1.0, 3.0, 0.0, 0.0], [0.0, 0.0, 1.0, 3.0]])
    >>> nc1_trace_ratio(h, torch.tensor([0, 0, 1, 1]), 2)  # tr(Sigma_W) = 1, tr(Sigma_B) = 2
    0.5
    """
    x = features.detach().double().T  # (N, d)
    means = class_means(x, labels, num_classes)  # (K, d)
    within = (x - means[labels]).square().sum() / x.shape[0]
    between = (means[labels] - x.mean(0)).square().sum() / x.shape[0]
    return float(within / between) if between > 0 else float("nan")


def layer_nc1(model: ReLUDUFM) -> dict[str, float]:
    """``nc1_trace_ratio`` of every layer (H_1, H~_2, H_2, ..., H~_L, H_L), keyed by name."""
    K = model.num_classes
    return {name: nc1_trace_ratio(h, model.labels, K) for name, h in _named_layers(model).items()}


def layer_ranks(model: ReLUDUFM, tol: float = 1e-3) -> dict[str, int]:
    """Numerical rank of every class-mean matrix (see ``class_mean_layers``)."""
    return {name: numerical_rank(m, tol) for name, m in class_mean_layers(model).items()}


def layer_spectra(model: ReLUDUFM) -> pd.DataFrame:
    """Singular values of every class-mean matrix, divided by the largest one of that layer:
    a long table with columns layer, index (0 = largest), value."""
    rows = [
        {"layer": name, "index": i, "value": float(v / sing[0]) if sing[0] > 0 else 0.0}
        for name, means in class_mean_layers(model).items()
        for sing in [torch.linalg.svdvals(means)]
        for i, v in enumerate(sing)
    ]
    return pd.DataFrame(rows)


def classify_solution(ratio: float, ranks: dict[str, int], K: int, tol: float = 5e-3) -> str:
    """Label a GD end point by its loss / L_DNC ``ratio`` and its class-mean ranks:

    "DNC" (every rank K, ratio within ``tol`` of 1), "low-rank" (some rank < K, ratio < 1),
    "stuck" (ratio above 1: dead or non-collapsed), or "other" (full rank, ratio < 1 - tol).

    >>> classify_solution(0.82, {"H1": 5, "H4": 10}, 10)
    'low-rank'
    """
    full = all(rank == K for rank in ranks.values())
    if full and abs(ratio - 1) <= tol:
        return "DNC"
    if ratio < 1 and not full:
        return "low-rank"
    return "stuck" if ratio > 1 else "other"


def summarize_solution(model: ReLUDUFM, dnc_loss: float, tol: float = 1e-3) -> dict[str, object]:
    """One row describing a point: loss, ratio = loss / ``dnc_loss``, its ``classify_solution``
    kind, the smallest class-mean rank over the hidden layers, the largest NC1 (trace ratio),
    and ``rank <layer>`` for every layer."""
    loss = model.objective_value()
    ranks = layer_ranks(model, tol)
    ratio = loss / check_float("dnc_loss", dnc_loss, low=0.0, low_open=True)
    return {
        "loss": loss,
        "ratio": ratio,
        "kind": classify_solution(ratio, ranks, model.num_classes),
        "min rank": min(ranks.values()),
        "max NC1": max(layer_nc1(model).values()),
        **{f"rank {name}": rank for name, rank in ranks.items()},
    }


@dataclass(frozen=True)
class DUFMRuns:
    summary: pd.DataFrame  # one row per seed: seed, lr, then ``summarize_solution``'s columns
    histories: pd.DataFrame  # seed, step, loss, ratio (loss / L_DNC)
    models: dict[int, ReLUDUFM]  # final point of every seed


def random_start_runs(
    num_classes: int,
    n: int,
    depth: int,
    width: int | Sequence[int],
    lambda_H: float,
    lambda_W: float | Sequence[float],
    seeds: Iterable[int],
    steps: int,
    lr: float = 0.5,
    *,
    log_every: int = 1000,
) -> DUFMRuns:
    """``dufm_gradient_descent`` from ``make_relu_dufm(..., seed=s)`` for every seed, each end
    point compared with the DNC loss ``ncbook.theory.dufm_dnc_loss`` (see ``summarize_solution``)."""
    dnc = dufm_dnc_loss(num_classes, depth, n, lambda_H, lambda_W)
    rows, histories, models = [], [], {}
    for seed in tqdm(list(seeds), desc="seeds", disable=progress_disabled(), leave=False):
        start = make_relu_dufm(num_classes, n, depth, width, lambda_W, lambda_H, seed=seed)
        result = dufm_gradient_descent(start, steps, lr, log_every=log_every)
        models[seed] = result.model
        rows.append({"seed": seed, "lr": result.lr, **summarize_solution(result.model, dnc)})
        histories.append(result.history.assign(seed=seed, ratio=result.history.loss / dnc))
    return DUFMRuns(pd.DataFrame(rows), pd.concat(histories, ignore_index=True), models)


def random_start_sweep(
    num_classes: int,
    n: int,
    depth: int,
    grid: Iterable[tuple[int, float]],
    seeds: Iterable[int],
    steps: int,
    lr: float = 0.5,
) -> pd.DataFrame:
    """``random_start_runs`` for every distinct (width, lambda) in ``grid`` (lambda_H = every
    lambda_W = lambda): the summaries stacked, with columns width and lambda added."""
    seeds = list(seeds)
    frames = [
        random_start_runs(num_classes, n, depth, width, lam, lam, seeds, steps, lr).summary.assign(
            width=width, **{"lambda": lam}
        )
        for width, lam in dict.fromkeys(grid)
    ]
    return pd.concat(frames, ignore_index=True)


# ------------------------------------------------------------------ a ReLU head on real data
@dataclass
class ReLUHeadNet:
    """A network trained on fixed data with the DUFM's regularisation (paper B, Fig. 2 bottom):

        H_1 = V_B s(... s(V_1 X)),   logits = W_L s(W_{L-1} ... s(W_1 H_1)),
        f = 1/(2N) ||logits - Y||^2 + sum_l lambda_W[l]/2 ||W_l||^2 + lambda_H/2 ||H_1||^2
            + lambda_B/2 sum_b ||V_b||^2 .

    The backbone (bias-free, ReLU between its layers, none on H_1) replaces the DUFM's free
    features; the head and its penalties are exactly the DUFM's, so :meth:`head` returns the
    DUFM point the network sits at and every DUFM diagnostic applies. Because the DUFM frees
    H_1, the head's objective is never below the DUFM's global minimum.
    """

    inputs: torch.Tensor  # X, (p, N): one column per training sample
    backbone: list[torch.Tensor]  # V_1 .. V_B; V_b is (d, p or d)
    weights: list[torch.Tensor]  # W_1 .. W_L of the head; W_L is (K, d)
    labels: torch.Tensor  # (N,)
    lambda_W: tuple[float, ...]  # head weight decay, one per layer
    lambda_H: float  # penalty on the backbone output H_1 (a sum over samples)
    lambda_B: float  # backbone weight decay

    def parameters(self) -> list[torch.Tensor]:
        return [*self.backbone, *self.weights]

    def features(self, inputs: torch.Tensor | None = None) -> torch.Tensor:
        """H_1 = V_B s(... s(V_1 X)) for ``inputs`` (p x M; default the training inputs)."""
        hidden = self.inputs if inputs is None else inputs
        for b, weight in enumerate(self.backbone):
            hidden = weight @ hidden
            if b < len(self.backbone) - 1:
                hidden = torch.relu(hidden)
        return hidden

    def head(self, *, detach: bool = True) -> ReLUDUFM:
        """The DUFM point (head weights, H_1 = backbone output) of the training set."""
        features = self.features()
        weights = self.weights
        if detach:
            features, weights = features.detach(), [w.detach() for w in weights]
        return ReLUDUFM(weights, features, self.labels, self.lambda_W, self.lambda_H)

    def objective(self) -> torch.Tensor:
        penalty = sum(self.lambda_B / 2 * v.square().sum() for v in self.backbone)
        return self.head(detach=False).objective() + penalty

    def accuracy(self, inputs: torch.Tensor | None = None, labels: torch.Tensor | None = None) -> float:
        """Fraction of correct argmax predictions on ``inputs`` (M x p rows, like the factory's)
        with ``labels`` (M,); default the training set."""
        with torch.no_grad():
            data = None if inputs is None else inputs.T.to(self.inputs)
            # Only the forward map of the DUFM is used here; labels and penalties play no part.
            logits = ReLUDUFM(self.weights, self.features(data), self.labels, (), 0.0).logits()
        target = self.labels if labels is None else labels
        return float((logits.argmax(0) == target.to(logits.device)).double().mean())


def make_relu_head_net(
    inputs: torch.Tensor,
    labels: torch.Tensor,
    num_classes: int,
    backbone_depth: int,
    head_depth: int,
    width: int,
    lambda_W: float | Sequence[float],
    lambda_H: float,
    lambda_B: float,
    *,
    seed: int = 0,
    dtype: torch.dtype = torch.float64,
    device: str | torch.device = "cpu",
) -> ReLUHeadNet:
    """A :class:`ReLUHeadNet` on ``inputs`` (N x p, one row per sample) with every hidden width
    equal to ``width`` and weights ~ N(0, 1/fan-in)."""
    K = check_int("num_classes", num_classes, low=2)
    if inputs.ndim != 2 or labels.shape != (inputs.shape[0],):
        raise ValueError(
            f"`inputs` must be (N, p) and `labels` (N,), got {tuple(inputs.shape)} and {tuple(labels.shape)}"
        )
    if int(labels.min()) < 0 or int(labels.max()) >= K:
        raise ValueError(f"`labels` must lie in [0, {K}), got [{int(labels.min())}, {int(labels.max())}]")
    backbone_depth = check_int("backbone_depth", backbone_depth, low=1)
    head_depth = check_int("head_depth", head_depth, low=1)
    width = check_int("width", width, low=1)
    lambdas = check_float_list("lambda_W", lambda_W, head_depth, low=0.0)
    lambda_H = check_float("lambda_H", lambda_H, low=0.0)
    lambda_B = check_float("lambda_B", lambda_B, low=0.0)
    generator = torch.Generator().manual_seed(check_int("seed", seed, low=0))

    def normal(rows: int, cols: int) -> torch.Tensor:
        sample = torch.randn(rows, cols, generator=generator, dtype=dtype) / cols**0.5
        return sample.to(device).requires_grad_(True)

    fan_in = [inputs.shape[1]] + [width] * (backbone_depth - 1)
    return ReLUHeadNet(
        inputs=inputs.T.to(device=device, dtype=dtype),
        backbone=[normal(width, f) for f in fan_in],
        weights=[normal(width, width) for _ in range(head_depth - 1)] + [normal(K, width)],
        labels=labels.to(device),
        lambda_W=lambdas,
        lambda_H=lambda_H,
        lambda_B=lambda_B,
    )


def head_monitor(net: ReLUHeadNet, dnc_loss: float) -> Callable[[], dict[str, float]]:
    """A ``monitor`` for :func:`ncbook.optimize.minimize`: the head's objective / ``dnc_loss``
    (``ratio``), the smallest class-mean rank and the largest NC1 over the head's layers, and the
    training accuracy."""
    dnc_loss = check_float("dnc_loss", dnc_loss, low=0.0, low_open=True)

    def monitor() -> dict[str, float]:
        summary = summarize_solution(net.head(), dnc_loss)
        keep = {key: float(summary[key]) for key in ("ratio", "min rank", "max NC1")}
        return keep | {"train accuracy": net.accuracy()}

    return monitor
