"""One way to optimise every unconstrained-feature model: :func:`minimize` -> :class:`Trace`.

A *model* is any object with ``objective()`` (a scalar tensor) and ``parameters()`` (the leaf
tensors it depends on, ``requires_grad=True``); :func:`minimize` changes those leaves in place.
Methods: ``"sgd"`` (full-batch, with momentum: paper A's recipe), ``"gd"`` (plain gradient
descent: paper B's), ``"adam"`` and ``"lbfgs"`` (strong-Wolfe line search, float64 closed-form
checks).

Fast kernels: a model may define ``fast_minimize(config, monitor) -> Trace | None``. ``minimize``
calls it first with the validated :class:`MinimizeConfig`; a returned Trace is the result, ``None``
means "no kernel for this config" and autograd runs as usual. A kernel builds its result with
:meth:`Trace.from_records` so its table has the same schema (paper B's numpy gradient descent of
the ReLU DUFM is such a kernel).

History schema (every optimiser, every stored table): ``Trace.table`` is tidy, with columns exactly
``step, layer, metric, value``; ``layer`` is the 1-based layer m for per-layer quantities and 0 for
model-level ones (``loss``, ``grad_norm``, ``seconds`` are always logged). A ``monitor(model)``
adds rows: a mapping ``{metric: value}`` (layer 0), ``{(layer, metric): value}``, or a DataFrame
with columns ``layer, metric, value`` (e.g. :func:`ncbook.metrics.layerwise.layer_table`).

Multi-start and continuation are wrappers around :func:`minimize` (:func:`multi_start`,
:func:`continuation`). Chapters: 00, 11-15, 21-22 (paper A), 32-33 (paper B).

>>> import torch
>>> class Quadratic:
...     def __init__(self):
...         self.x = torch.tensor([3.0, -1.0], dtype=torch.float64, requires_grad=True)
...     def parameters(self):
...         return [self.x]
...     def objective(self):
...         return (self.x - 1).square().sum()
>>> trace = minimize(Quadratic(), method="lbfgs", steps=3, lr=1.0, progress=False)
>>> trace.final_loss < 1e-20, list(trace.table.columns)
(True, ['step', 'layer', 'metric', 'value'])
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import torch
from tqdm import tqdm

from ncbook._checks import check_choice, check_float, check_int
from ncbook._runtime import progress_disabled

__all__ = [
    "COLUMNS",
    "METHODS",
    "monitor_rows",
    "STATUSES",
    "MinimizeConfig",
    "MultiStart",
    "Trace",
    "continuation",
    "minimize",
    "multi_start",
]

METHODS = ("sgd", "gd", "adam", "lbfgs")
COLUMNS = ("step", "layer", "metric", "value")  # the one history schema
STATUSES = ("converged", "max_steps")  # converged: the gradient's norm fell to `tolerance_grad`

Monitor = Callable[[Any], "Mapping[Any, float] | pd.DataFrame"]


@dataclass(frozen=True)
class MinimizeConfig:
    """The validated settings of one :func:`minimize` call (what a fast kernel receives)."""

    method: str = "sgd"  # one of METHODS
    steps: int = 1000  # optimiser steps (L-BFGS: outer iterations of up to `inner` evaluations)
    lr: float = 0.1  # learning rate (L-BFGS: initial step of the strong-Wolfe line search)
    momentum: float = 0.9  # SGD momentum; "gd" is SGD with 0, the others ignore it
    log_every: int = 10  # log every this many steps (and at step 0 and the last step)
    inner: int = 50  # L-BFGS evaluations per outer step
    tolerance_grad: float = 0.0  # stop once the gradient's 2-norm at a logged step is <= this

    def __post_init__(self) -> None:
        check_choice("method", self.method, METHODS)
        check_int("steps", self.steps, low=1)
        check_float("lr", self.lr, low=0.0, low_open=True)
        check_float("momentum", self.momentum, low=0.0, high=1.0)
        check_int("log_every", self.log_every, low=1)
        check_int("inner", self.inner, low=1)
        check_float("tolerance_grad", self.tolerance_grad, low=0.0)


@dataclass(frozen=True, eq=False)
class Trace:
    """The result of one :func:`minimize` call."""

    table: pd.DataFrame  # tidy history: step, layer, metric, value (layer 0: model-level)
    model: Any  # the optimised model (its leaves were changed in place)
    method: str  # the method that ran
    steps: int  # the last step taken
    final_loss: float  # objective at the last step
    status: str  # one of STATUSES

    @property
    def converged(self) -> bool:
        return self.status == "converged"

    def wide(self) -> pd.DataFrame:
        """One row per step, one column per quantity: ``metric`` (layer 0) or ``metric@layer``."""
        key = np.where(
            self.table["layer"] == 0,
            self.table["metric"],
            self.table["metric"] + "@" + self.table["layer"].astype(str),
        )
        return self.table.assign(key=key).pivot(index="step", columns="key", values="value") \
            .rename_axis(columns=None).reset_index()

    def final(self) -> dict[str, float]:
        """The last logged step, keyed like the columns of :meth:`wide` (``"loss"``, ``"nc1@1"``)."""
        last = self.wide().iloc[-1]
        return {key: float(last[key]) for key in last.index if key != "step"}

    @classmethod
    def from_records(
        cls, records: Iterable[tuple[int, int, str, float]], *, model: Any, method: str, status: str
    ) -> Trace:
        """A Trace from (step, layer, metric, value) records; they must include layer-0 ``loss``."""
        check_choice("status", status, STATUSES)
        table = pd.DataFrame(list(records), columns=list(COLUMNS)).astype(
            {"step": int, "layer": int, "metric": str, "value": float}
        )
        losses = table[(table["metric"] == "loss") & (table["layer"] == 0)]
        if losses.empty:
            raise ValueError("`records` must contain the layer-0 'loss' of at least one step")
        last = losses.loc[losses["step"].idxmax()]
        return cls(table=table.sort_values(["step", "layer", "metric"], ignore_index=True),
                   model=model, method=method, steps=int(last["step"]), final_loss=float(last["value"]),
                   status=status)


def minimize(
    model: Any,
    *,
    method: str = "sgd",
    steps: int = 1000,
    lr: float = 0.1,
    momentum: float = 0.9,
    log_every: int = 10,
    inner: int = 50,
    tolerance_grad: float = 0.0,
    monitor: Monitor | None = None,
    progress: bool = True,
    description: str = "optimising",
) -> Trace:
    """Minimise ``model.objective()`` over ``model.parameters()`` in place.

    Logs step 0, every ``log_every`` steps and the last step: ``loss``, ``grad_norm`` (2-norm of
    the whole gradient), ``seconds`` since the start, plus whatever ``monitor(model)`` returns.
    Stops early (status ``"converged"``) once a logged ``grad_norm`` <= ``tolerance_grad``. A
    non-finite loss raises ``FloatingPointError`` naming the step: a diverged run must never pass
    for a converged one. The settings are those of :class:`MinimizeConfig`.
    """
    config = MinimizeConfig(method, steps, lr, momentum, log_every, inner, tolerance_grad)
    fast = getattr(model, "fast_minimize", None)
    if fast is not None:
        trace = fast(config, monitor)
        if trace is not None:
            return trace
    params = list(model.parameters())
    optimiser = _optimiser(params, config)

    def closure() -> torch.Tensor:
        optimiser.zero_grad(set_to_none=True)
        loss = model.objective()
        loss.backward()
        return loss

    records: list[tuple[int, int, str, float]] = []
    began = time.perf_counter()

    def log(step: int) -> tuple[float, float]:
        objective = model.objective()
        loss = float(objective.detach())
        if not math.isfinite(loss):
            raise FloatingPointError(f"loss became {loss} at step {step}; lower `lr`")
        grads = torch.autograd.grad(objective, params, allow_unused=True)
        norm = math.sqrt(sum(float(g.square().sum()) for g in grads if g is not None))
        records.extend([(step, 0, "loss", loss), (step, 0, "grad_norm", norm),
                        (step, 0, "seconds", time.perf_counter() - began)])
        if monitor is not None:
            with torch.no_grad():
                records.extend((step, *row) for row in monitor_rows(monitor(model)))
        return loss, norm

    loss, norm = log(0)
    bar = tqdm(range(1, config.steps + 1), desc=description, leave=False,
               disable=not progress or progress_disabled())
    for step in bar:
        optimiser.step(closure)
        if step % config.log_every == 0 or step == config.steps:
            loss, norm = log(step)
            bar.set_postfix(loss=f"{loss:.3e}", refresh=False)
            if norm <= config.tolerance_grad:
                break
    bar.close()
    status = "converged" if norm <= config.tolerance_grad else "max_steps"
    return Trace.from_records(records, model=model, method=config.method, status=status)


def _optimiser(params: list[torch.Tensor], config: MinimizeConfig) -> torch.optim.Optimizer:
    if config.method in ("sgd", "gd"):
        momentum = config.momentum if config.method == "sgd" else 0.0
        return torch.optim.SGD(params, lr=config.lr, momentum=momentum)
    if config.method == "adam":
        return torch.optim.Adam(params, lr=config.lr)
    return torch.optim.LBFGS(params, lr=config.lr, max_iter=config.inner, tolerance_grad=0.0,
                             tolerance_change=0.0, history_size=50, line_search_fn="strong_wolfe")


def monitor_rows(out: Any) -> list[tuple[int, str, float]]:
    """(layer, metric, value) rows from a monitor's mapping or DataFrame."""
    if isinstance(out, pd.DataFrame):
        missing = {"layer", "metric", "value"} - set(out.columns)
        if missing:
            raise ValueError(f"`monitor` returned a DataFrame without the column(s) {sorted(missing)}")
        return [(int(m), str(k), float(v)) for m, k, v in zip(out["layer"], out["metric"], out["value"])]
    rows = []
    for key, value in out.items():
        layer, metric = (0, key) if isinstance(key, str) else key
        rows.append((int(layer), str(metric), float(value)))
    return rows


@dataclass(frozen=True, eq=False)
class MultiStart:
    """Several :func:`minimize` runs of one problem from different starts (see :func:`multi_start`)."""

    traces: tuple[Trace, ...]  # one per start, in start order

    @property
    def best(self) -> Trace:
        """The start with the lowest final loss."""
        return self.traces[self.best_start]

    @property
    def best_start(self) -> int:
        return int(np.argmin([t.final_loss for t in self.traces]))

    @property
    def final_losses(self) -> tuple[float, ...]:
        return tuple(t.final_loss for t in self.traces)

    def table(self) -> pd.DataFrame:
        """Every start's table stacked, with a ``start`` column in front."""
        return pd.concat([t.table.assign(start=i) for i, t in enumerate(self.traces)], ignore_index=True)[
            ["start", *COLUMNS]
        ]


def multi_start(make_model: Callable[[int], Any], starts: int, **minimize_kwargs: Any) -> MultiStart:
    """Run ``minimize(make_model(i), **minimize_kwargs)`` for start i = 0 .. starts-1."""
    starts = check_int("starts", starts, low=1)
    description = minimize_kwargs.pop("description", "start")
    return MultiStart(tuple(
        minimize(make_model(i), description=f"{description} {i + 1}",
                 **minimize_kwargs) for i in range(starts)
    ))


def continuation(model: Any, factors: Sequence[float], **minimize_kwargs: Any) -> tuple[Trace, ...]:
    """Minimise ``model`` with its decays ``lambda_W`` and ``lambda_H`` scaled by each factor in
    turn, then restore them (the model is left at the last stage's point, not re-solved).

    Small decays leave no barrier around zero, so every direction grows first; raising them then
    keeps each on its largest root. The model must have ``lambda_W`` (tuple) and ``lambda_H``
    attributes that its ``objective`` reads.
    """
    lambda_W, lambda_H = tuple(model.lambda_W), float(model.lambda_H)
    traces = []
    try:
        for i, factor in enumerate(factors):
            factor = check_float(f"factors[{i}]", factor, low=0.0, low_open=True)
            model.lambda_W = tuple(factor * lam for lam in lambda_W)
            model.lambda_H = factor * lambda_H
            traces.append(minimize(model, description=f"lambda x {factor:g}", **minimize_kwargs))
    finally:
        model.lambda_W, model.lambda_H = lambda_W, lambda_H
    return tuple(traces)

