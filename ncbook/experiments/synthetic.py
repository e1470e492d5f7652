"""Paper A's synthetic experiments: gradient descent on the deep linear UFM, with theory overlaid.

The authors' recipe (../shared/theory/paper-a.md, Section 4): K = 4 classes of n = 100 samples
(balanced) or n = [200, 100, 50, 50] (imbalanced); free features H_1 and M linear layers of width
64 (2048 in their imbalanced README), all initialised N(0, 0.1^2); lambda_W = lambda_H = 5e-4;
full-batch SGD with lr 0.1 and momentum 0.9 for 30,000 iterations; seed 2. This module runs that
recipe for a grid of (loss, depth, bias, counts, ...) and logs, every ``log_every`` steps, the NC
metrics of every layer into a tidy table (one row per step, metric, layer and class)::

    step  metric  layer  k  value

Layer m = 1 .. M is the input H_m of the m-th linear layer, with classifier W_{>=m} = W_M...W_m;
``layer = 0`` holds run-level values (loss, seconds). ``k`` is the class (or singular-value index)
for per-class values and -1 otherwise. See :func:`measure` for the metrics.

:func:`run_all` writes each run's table to ``results/<profile>/<notebook>/<run>.csv`` (plus a JSON
with its wall time and device) and skips runs whose CSV already exists, so a long (full-profile)
grid is computed once and notebooks render from the files. :func:`predictions` gives the same
metrics at the closed-form candidates of ``ncbook.theory`` (the final values a run should reach).
"""

from __future__ import annotations

import hashlib
import json
import math
import platform
import time
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from itertools import product
from typing import Any

import pandas as pd
import torch
import torch.nn.functional as F
from tqdm import tqdm

from ncbook._checks import check_choice, check_float, check_int
from ncbook._io import write_csv, write_json
from ncbook._runtime import progress_disabled, results_dir
from ncbook.geometry import orthogonal_frame, simplex_etf
from ncbook.models import DeepLinearUFM, classifier_tails, make_deep_linear_ufm, nc1_or_nan
from ncbook.optimize import SolverConfig, minimize
from ncbook.theory import CEMinimizer, MSEMinimizer, ce_minimizer, mse_minimizer

__all__ = [
    "BALANCED",
    "DTYPES",
    "IMBALANCED",
    "LOSSES",
    "RUN_KEYS",
    "SyntheticConfig",
    "attach",
    "candidates",
    "closest_candidate",
    "final",
    "grid",
    "measure",
    "predictions",
    "run",
    "run_all",
]

LOSSES = ("mse", "ce")
RUN_KEYS = ("run", "metric", "layer", "k")  # identify one logged quantity of one run
DTYPES = ("float32", "float64")
BALANCED = (100, 100, 100, 100)  # the authors' balanced counts
IMBALANCED = (200, 100, 50, 50)  # the authors' imbalanced counts


@dataclass(frozen=True)
class SyntheticConfig:
    """One gradient-descent run; the defaults are the authors' balanced recipe (in float64)."""

    n_per_class: tuple[int, ...] = BALANCED  # n_k, samples per class (K = len)
    depth: int = 1  # M, number of weight matrices
    bias: bool = False  # unpenalised last-layer bias
    loss: str = "mse"  # "mse" or "ce"
    width: int = 64  # d_1 = ... = d_M
    lambda_W: float = 5e-4  # weight decay of every layer
    lambda_H: float = 5e-4  # feature decay
    steps: int = 30_000  # full-batch SGD iterations
    lr: float = 0.1  # SGD learning rate
    momentum: float = 0.9  # SGD momentum
    log_every: int = 100  # measure every this many steps (and at 0 and the last step)
    init_std: float = 0.1  # every weight and feature entry starts N(0, init_std^2)
    seed: int = 2  # the authors' default seed
    dtype: str = "float64"  # "float32" is the authors' precision; float64 to compare with closed forms

    def __post_init__(self) -> None:
        counts = self.n_per_class
        if isinstance(counts, (str, bytes)) or not isinstance(counts, Sequence):
            raise ValueError(f"`n_per_class` must be a sequence of class sizes, got {counts!r}")
        counts = tuple(check_int(f"n_per_class[{k}]", n, low=1) for k, n in enumerate(counts))
        if len(counts) < 2:
            raise ValueError(f"`n_per_class` needs at least 2 classes, got {len(counts)}")
        object.__setattr__(self, "n_per_class", counts)
        object.__setattr__(self, "depth", check_int("depth", self.depth, low=1))
        object.__setattr__(self, "bias", bool(check_choice("bias", self.bias, (True, False))))
        check_choice("loss", self.loss, LOSSES)
        object.__setattr__(self, "width", check_int("width", self.width, low=1))
        for name in ("lambda_W", "lambda_H", "lr", "init_std"):
            object.__setattr__(self, name, check_float(name, getattr(self, name), low=0.0, low_open=True))
        object.__setattr__(self, "momentum", check_float("momentum", self.momentum, low=0.0, high=1.0))
        object.__setattr__(self, "steps", check_int("steps", self.steps, low=1))
        object.__setattr__(self, "log_every", check_int("log_every", self.log_every, low=1))
        object.__setattr__(self, "seed", check_int("seed", self.seed, low=0, high=2**32 - 1))
        check_choice("dtype", self.dtype, DTYPES)

    @property
    def counts_label(self) -> str:
        """The class sizes as text, e.g. '200-100-50-50'."""
        return "-".join(str(n) for n in self.n_per_class)

    @property
    def name(self) -> str:
        """A file-safe run name: readable fields, then a digest of every field (so a change of
        steps, lr or dtype never reuses another run's results)."""
        digest = hashlib.sha1(json.dumps(asdict(self), sort_keys=True).encode()).hexdigest()[:8]
        tail = "bias" if self.bias else "nobias"
        return f"{self.loss}-M{self.depth}-{tail}-n{self.counts_label}-d{self.width}-s{self.seed}-{digest}"

    def columns(self) -> dict[str, Any]:
        """The identifying columns attached to every row of this run's table."""
        return {
            "run": self.name,
            "criterion": self.loss,  # not "loss": that is a metric name
            "depth": self.depth,
            "bias": self.bias,
            "counts": self.counts_label,
            "width": self.width,
            "lambda_W": self.lambda_W,
            "lambda_H": self.lambda_H,
            "lr": self.lr,
            "seed": self.seed,
        }


def grid(
    *,
    depths: Iterable[int],
    biases: Iterable[bool] = (False,),
    losses: Iterable[str] = ("mse",),
    seeds: Iterable[int] = (2,),
    decays: Iterable[float] | None = None,
    **shared: Any,
) -> list[SyntheticConfig]:
    """Every combination of ``losses x depths x biases x seeds``; ``shared`` sets the other fields.

    ``decays``, if given, holds one lambda per depth (paired, not crossed): that depth's runs get
    lambda_W = lambda_H = its decay. Cross-entropy runs are kept bias-free only: with balanced
    classes a shared shift of all logits leaves CE unchanged, so an unpenalised bias is irrelevant
    (Section 1.3).

    >>> [(c.depth, c.lambda_W) for c in grid(depths=[1, 2], decays=[0.035, 0.04])]
    [(1, 0.035), (2, 0.04)]
    """
    depths = _as_list("depths", depths)
    if decays is None:
        pairs = [(depth, {}) for depth in depths]
    else:
        decays = _as_list("decays", decays)
        if len(decays) != len(depths):
            raise ValueError(f"`decays` needs one value per depth ({len(depths)}), got {len(decays)}")
        pairs = [(depth, {"lambda_W": lam, "lambda_H": lam}) for depth, lam in zip(depths, decays)]
    configs = [
        SyntheticConfig(loss=loss, depth=depth, bias=bias, seed=seed, **(shared | decay))
        for loss, (depth, decay), bias, seed in product(
            _as_list("losses", losses), pairs, _as_list("biases", biases), _as_list("seeds", seeds)
        )
        if not (loss == "ce" and bias)
    ]
    if not configs:
        raise ValueError("the grid is empty: give at least one depth, bias, loss and seed")
    return configs


def _as_list(name: str, values: Any) -> list[Any]:
    """A non-empty list from an iterable parameter; a bare number or string is an error."""
    if isinstance(values, (str, bytes)) or not isinstance(values, Iterable):
        raise ValueError(f"`{name}` must be a list of values, got {values!r}")
    values = list(values)
    if not values:
        raise ValueError(f"`{name}` must not be empty")
    return values


def _distance(a: torch.Tensor, b: Any) -> float:
    """||a/||a||_F - b/||b||_F||_F for matrices of one shape (``gram_distance`` for K x K Grams),
    or NaN where either side is zero (a collapsed point has no direction)."""
    b = torch.as_tensor(b, dtype=torch.float64)
    norm_a, norm_b = torch.linalg.matrix_norm(a), torch.linalg.matrix_norm(b)
    if not bool(norm_a > 0) or not bool(norm_b > 0):
        return math.nan
    return float(torch.linalg.matrix_norm(a / norm_a - b / norm_b))


def measure(model: DeepLinearUFM, reference: MSEMinimizer | None = None) -> dict[tuple[str, int, int], float]:
    """NC metrics of ``model``, keyed ``(metric, layer, k)``; all distances are
    ``gram_distance`` (||nrm(A) - nrm(B)||_F, scale-free, paper A's code).

    Per layer m (features H_m, uncentred class means Hbar_m, centred Hc_m = Hbar_m - h_G with the
    sample-weighted global mean, classifier V = W_M ... W_m), ``k = -1``:

    * ``nc1``: Tr(Sigma_W Sigma_B^+)/K of H_m (NaN if the means span rank < K-1);
    * ``w_of`` / ``w_etf``: V V^T against the orthogonal frame / simplex ETF;
    * ``h_of`` / ``h_etf``: Hbar^T Hbar against the OF, Hc^T Hc against the ETF;
    * ``nc3``: V against Hbar^T (self-duality, the code's ``NC3_W_sub_H``);
    * with ``reference`` (a closed-form MSE minimizer): ``w_pred``, ``h_pred`` against its Grams
      (the GOF under imbalance, the OF or ETF when balanced), and ``nc3_pred``: V against
      A Hbar^T with A = L G^+ from the predicted logits L and Gram G (V = A Hbar^T at the minimum;
      A is diagonal for the GOF, the centring E for the ETF).

    Layer 1 also holds the logit metrics ``wh_of``, ``wh_etf`` (W Hbar, W Hc) and ``wh_pred``, and
    per class k: ``w_norm_sq`` (||w_k||^2, rows of W = W_M...W_1), ``h_norm_sq`` (||hbar_k||^2 of
    H_1), ``wh`` (w_k . hbar_k), ``sv`` (k-th singular value of W, descending) and ``bias`` (b_k).
    """
    k = model.num_classes
    out: dict[tuple[str, int, int], float] = {}
    with torch.no_grad():
        onehot = F.one_hot(model.labels, k).to(model.features.dtype)  # (N, K)
        counts = onehot.sum(0)
        share = (counts / counts.sum()).double().cpu()
        of, etf = orthogonal_frame(k), simplex_etf(k)
        for m, (h, v) in enumerate(zip(model.layer_features(), classifier_tails(model.weights)), start=1):
            means = (h @ onehot / counts).double().cpu()  # (d_m, K)
            centred = means - (means @ share)[:, None]
            v = v.double().cpu()  # (K, d_m)
            gram_w, gram_h = v @ v.T, means.T @ means
            out[("nc1", m, -1)] = nc1_or_nan(h.T, model.labels, k)
            out[("w_of", m, -1)] = _distance(gram_w, of)
            out[("w_etf", m, -1)] = _distance(gram_w, etf)
            out[("h_of", m, -1)] = _distance(gram_h, of)
            out[("h_etf", m, -1)] = _distance(centred.T @ centred, etf)
            out[("nc3", m, -1)] = _distance(v, means.T)
            if reference is not None:
                want_h = torch.as_tensor(reference.layer_h_gram(m))
                pinv = torch.linalg.pinv(want_h, rtol=1e-10, hermitian=True)
                dual = torch.as_tensor(reference.logits) @ pinv  # A = L G^+
                out[("w_pred", m, -1)] = _distance(gram_w, reference.layer_w_gram(m))
                out[("h_pred", m, -1)] = _distance(gram_h, want_h)
                out[("nc3_pred", m, -1)] = _distance(v, dual @ means.T)
            if m == 1:
                logits = v @ means  # (K, K), column k: class k's mean logits without the bias
                out[("wh_of", 1, -1)] = _distance(logits, of)
                out[("wh_etf", 1, -1)] = _distance(v @ centred, etf)
                if reference is not None:
                    out[("wh_pred", 1, -1)] = _distance(logits, reference.logits)
                per_class = {
                    "w_norm_sq": v.square().sum(1),
                    "h_norm_sq": means.square().sum(0),
                    "wh": logits.diagonal(),
                    "sv": torch.linalg.svdvals(v),
                }
                if model.bias is not None:
                    per_class["bias"] = model.bias.double().cpu()
                for name, values in per_class.items():
                    out.update({(name, 1, j): float(value) for j, value in enumerate(values)})
    return out


def _reference(config: SyntheticConfig) -> MSEMinimizer | None:
    """The closed-form global minimizer the ``*_pred`` metrics compare with (MSE only)."""
    if config.loss != "mse":
        return None
    return mse_minimizer(
        config.n_per_class, config.depth, lambda_W=config.lambda_W, lambda_H=config.lambda_H,
        bias=config.bias, widths=config.width,
    )


def run(config: SyntheticConfig, device: str | torch.device = "cpu") -> pd.DataFrame:
    """One run of the recipe; returns its tidy table (step, metric, layer, k, value).

    Classes are stored sorted rather than shuffled and the bias starts at 0 rather than PyTorch's
    uniform init: full-batch gradient descent does not depend on the sample order, and the
    unpenalised bias does not change the minimizer.
    """
    model = make_deep_linear_ufm(
        config.n_per_class, config.depth, config.width, config.lambda_W, config.lambda_H,
        bias=config.bias, loss=config.loss, init_std=config.init_std, seed=config.seed,
        dtype=getattr(torch, config.dtype), device=device,
    )
    reference = _reference(config)
    began = time.perf_counter()

    def monitor() -> dict[str, float]:
        row = {"|".join(map(str, key)): value for key, value in measure(model, reference).items()}
        return row | {"seconds|0|-1": time.perf_counter() - began}

    solver = SolverConfig("sgd", steps=config.steps, lr=config.lr, momentum=config.momentum,
                          log_every=config.log_every)
    wide = minimize(model.objective, model.parameters(), solver, monitor, description=config.name)
    wide = wide.rename(columns={"loss": "loss|0|-1"})
    long = wide.melt(id_vars="step", var_name="key", value_name="value")
    parts = long.pop("key").str.split("|", expand=True)
    long = long.assign(metric=parts[0], layer=parts[1].astype(int), k=parts[2].astype(int))
    # 9 significant digits keep the files small; the loss keeps all 17 for the 1e-8 comparisons.
    rounded = long["value"].map(lambda v: float(f"{v:.9g}"))
    long["value"] = long["value"].where(long["metric"] == "loss", rounded)
    return long[["step", "metric", "layer", "k", "value"]].sort_values(
        ["step", "metric", "layer", "k"], ignore_index=True
    )


def run_all(
    configs: Iterable[SyntheticConfig],
    profile: str,
    notebook: str,
    device: str | torch.device = "cpu",
) -> pd.DataFrame:
    """Run (or load) every config; return all tables stacked, with the config columns.

    Each run writes ``<run>.csv`` and ``<run>.json`` (wall seconds, device, versions) under
    ``results_dir(profile, notebook)``; an existing CSV is read instead of re-running, so a full
    grid computed once (e.g. on a GPU) renders later without recomputation. The table is always
    read back from the CSV, so a fresh run and a loaded one give identical frames.
    """
    folder = results_dir(profile, notebook)
    frames = []
    configs = list(configs)
    for config in tqdm(configs, desc=notebook, disable=progress_disabled()):
        path = folder / f"{config.name}.csv"
        if not path.is_file():
            began = time.perf_counter()
            table = run(config, device)
            write_json(path.with_suffix(".json"), {
                "config": asdict(config),
                "wall_seconds": time.perf_counter() - began,
                "device": str(device),
                "torch": torch.__version__,
                "machine": platform.machine(),
            })
            write_csv(path, table)
        frames.append(pd.read_csv(path).assign(**config.columns()))
    return pd.concat(frames, ignore_index=True)


def final(table: pd.DataFrame) -> pd.DataFrame:
    """The rows of each run's last logged step."""
    last = table.groupby("run")["step"].transform("max")
    return table[table["step"] == last].reset_index(drop=True)


def candidates(config: SyntheticConfig) -> dict[str, MSEMinimizer | CEMinimizer]:
    """Closed-form points a run may converge to, by name.

    MSE: ``"global"`` (the global minimizer) and, where it differs, ``"code"`` (the authors'
    root-exists rule: a strict local minimum for M >= 2, Section 2.0(e)). CE with balanced classes:
    ``"etf"`` (global for M = 1) and, for an even K, ``"orthoplex"`` (lower for M >= 2 at small
    lambda, Section 2.3). Imbalanced CE has no closed form here: ``{}``.
    """
    k = len(config.n_per_class)
    widths = min(config.width, k)  # the minimizer depends on the widths only through min(d, K)
    if config.loss == "mse":
        found: dict[str, MSEMinimizer | CEMinimizer] = {}
        for rule in ("global", "code"):
            point = mse_minimizer(config.n_per_class, config.depth, lambda_W=config.lambda_W, lambda_H=config.lambda_H,
                                  bias=config.bias, widths=widths, rule=rule)
            if rule == "global" or not math.isclose(point.loss, found["global"].loss, rel_tol=1e-14):
                found[rule] = point
        return found
    if len(set(config.n_per_class)) != 1:
        return {}
    geometries = ("etf", "orthoplex") if k % 2 == 0 and 2 * widths >= k else ("etf",)
    return {
        g: ce_minimizer(config.n_per_class[0], k, config.depth, lambda_W=config.lambda_W, lambda_H=config.lambda_H,
                        geometry=g, widths=widths)
        for g in geometries
    }


def predictions(configs: Iterable[SyntheticConfig]) -> pd.DataFrame:
    """The metrics of :func:`measure` at every closed-form candidate of every config.

    One row per (run, candidate, metric, layer, k), with the config columns; ``metric = "loss"``
    (layer 0) is the candidate's objective value. Each candidate's explicit point is built by
    ``ncbook.theory`` and measured with the run's reference, so the values are what the run's
    curves converge to if gradient descent reaches that point.

    The OF distance of W W^T under the authors' imbalance (a regression value of the spec, Sec. 4):

    >>> frame = predictions([SyntheticConfig(n_per_class=IMBALANCED, depth=1)])
    >>> round(float(frame.query("metric == 'w_of' and layer == 1")["value"].iloc[0]), 6)
    0.298736
    """
    rows = []
    for config in configs:
        reference = _reference(config)
        for label, point in candidates(config).items():
            model = DeepLinearUFM.from_point(point.point(), loss=config.loss)
            values = measure(model, reference) | {("loss", 0, -1): point.loss}
            rows += [
                config.columns() | {"candidate": label, "metric": metric, "layer": layer, "k": k,
                                    "value": value}
                for (metric, layer, k), value in values.items()
            ]
    return pd.DataFrame(rows)



def attach(
    table: pd.DataFrame, predicted: pd.DataFrame, candidate: str | pd.Series = "global"
) -> pd.DataFrame:
    """``table`` (from :func:`run_all` or :func:`final`) with a ``predicted`` column: the value of
    the same (run, metric, layer, k) at ``candidate``, a name or a Series mapping run -> name
    (e.g. ``closest_candidate(...)["candidate"]``). Rows without a prediction get NaN."""
    _require_columns(table, "table", RUN_KEYS)
    _require_columns(predicted, "predicted", [*RUN_KEYS, "candidate"])
    if isinstance(candidate, str):
        chosen = predicted[predicted["candidate"] == candidate]
    else:
        chosen = predicted[predicted["candidate"] == predicted["run"].map(candidate)]
    values = chosen[[*RUN_KEYS, "value"]].rename(columns={"value": "predicted"})
    return table.merge(values, on=list(RUN_KEYS), how="left")


def closest_candidate(table: pd.DataFrame, predicted: pd.DataFrame) -> pd.DataFrame:
    """One row per run: its final loss, the loss of every candidate (one column each), the
    candidate whose loss is nearest (``candidate``) and the relative gap to it (``gap``)."""
    _require_columns(table, "table", RUN_KEYS)
    _require_columns(predicted, "predicted", [*RUN_KEYS, "candidate"])
    end = final(table)
    reached = end[end["metric"] == "loss"].drop(columns=["metric", "layer", "k"])
    losses = predicted[predicted["metric"] == "loss"].pivot(index="run", columns="candidate",
                                                             values="value")
    out = reached.rename(columns={"value": "loss"}).merge(losses, left_on="run", right_index=True)
    at_run = losses.loc[out["run"]]
    gaps = at_run.sub(out["loss"].to_numpy(), axis=0).abs().div(at_run).reset_index(drop=True)
    out = out.reset_index(drop=True)
    out["candidate"] = gaps.idxmin(axis=1)
    out["gap"] = gaps.min(axis=1)
    return out.reset_index(drop=True)


def _require_columns(frame: pd.DataFrame, name: str, columns: Sequence[str]) -> None:
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise ValueError(
            f"`{name}` lacks the column(s) {missing}; pass a table from ncbook.experiments.synthetic"
        )
