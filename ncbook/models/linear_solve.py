"""Numerical global minimisation of the deep linear UFM: random starts, continuation in lambda and
basin hopping, all wrappers around :func:`ncbook.optimize.minimize` (:func:`solve`).
Chapters: 00, 11-15.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace

import numpy as np
import pandas as pd
import torch

from ncbook import optimize
from ncbook._checks import check_float, check_float_list, check_int
from ncbook.metrics.layerwise import LayerPrediction
from ncbook.models.linear_ufm import DeepLinearUFM, make_deep_linear_ufm
from ncbook.optimize import COLUMNS, MinimizeConfig, Trace, minimize
from ncbook.spec import UFMSpec

__all__ = ["LBFGS", "SolveResult", "solve"]

# float64 L-BFGS: up to 60 x 50 evaluations.
LBFGS = MinimizeConfig(method="lbfgs", steps=60, lr=1.0, log_every=10)


@dataclass(frozen=True, eq=False)
class SolveResult:
    """Every start of one deep linear UFM (see :func:`solve`); the best is kept as ``model``."""

    model: DeepLinearUFM  # detached parameters of the start with the lowest final loss
    traces: tuple[Trace, ...]  # one per start (its hops appended at step offsets)
    best_start: int  # index of ``model`` in ``traces``

    @property
    def loss(self) -> float:
        return self.traces[self.best_start].final_loss

    @property
    def final_losses(self) -> tuple[float, ...]:
        return tuple(t.final_loss for t in self.traces)

    @property
    def history(self) -> pd.DataFrame:
        """Every start's Trace table stacked, with a ``start`` column in front."""
        return pd.concat([t.table.assign(start=i) for i, t in enumerate(self.traces)],
                         ignore_index=True)[["start", *COLUMNS]]

    def final_metrics(self) -> dict[str, float]:
        """The best start's last logged values, keyed as :meth:`ncbook.optimize.Trace.final`
        (``"loss"``, ``"nc1@1"``, ``"nc2_of_w@2"``, ...)."""
        return self.traces[self.best_start].final()


def solve(
    spec: UFMSpec,
    *,
    config: MinimizeConfig = LBFGS,
    starts: int = 4,
    init_std: float | Sequence[float] = 0.1,
    seed: int = 0,
    hops: int = 0,
    kick: float = 1.0,
    continuation: Sequence[float] = (0.1,),
    reference: LayerPrediction | None = None,
    track: bool = True,
    dtype: torch.dtype = torch.float64,
    device: str | torch.device = "cpu",
) -> SolveResult:
    """Minimise the deep linear UFM ``spec`` from ``starts`` random inits; keep the lowest loss.

    Start i uses seed ``seed + i`` and init scale ``init_std[i % len(init_std)]`` (several scales
    help for M >= 2, where zero classes and code-rule points are strict local minima).
    ``config`` is the :class:`ncbook.optimize.MinimizeConfig` of every run: ``"sgd"`` with lr 0.1
    and momentum 0.9 is the authors' recipe; the default is float64 L-BFGS. With ``track`` every
    logged step carries :meth:`DeepLinearUFM.layer_table` (``reference``, a closed form, adds the
    ``*_pred`` distances).

    Continuation (default ``(0.1,)``): the starts 1, 3, 5, ... (0-based) are first solved with all
    lambdas multiplied by each of ``continuation`` in turn (``config.steps // 4`` steps
    each, :func:`ncbook.optimize.continuation`). Small lambdas leave no barrier around zero, so
    every direction grows; raising lambda then keeps each on its largest root. This finds the
    non-zero minima that random starts miss near a threshold, while the even starts keep the plain
    random search that finds collapsed minima.

    Basin hopping: after each start converges, ``hops`` times add Gaussian noise of ``kick`` times
    each tensor's RMS to every parameter and solve again, keeping the result only if the loss went
    down (a kick revives directions stuck at a zero local minimum). The hop's history continues at
    step offsets of ``config.steps`` per hop (without the kicked point itself), recorded whether or
    not it is kept.
    """
    starts = check_int("starts", starts, low=1)
    hops = check_int("hops", hops, low=0)
    kick = check_float("kick", kick, low=0.0, low_open=True)
    count = len(init_std) if isinstance(init_std, Sequence) else 1
    scales = check_float_list("init_std", init_std, count, low=0.0, low_open=True)
    factors = [check_float(f"continuation[{i}]", factor, low=0.0, low_open=True)
               for i, factor in enumerate(continuation)]
    settings = asdict(config)

    def make(start: int) -> DeepLinearUFM:
        model = make_deep_linear_ufm(spec, init_std=scales[start % len(scales)], seed=seed + start,
                                     dtype=dtype, device=device)
        if start % 2 == 1 and factors:
            optimize.continuation(model, factors, **(settings | {"steps": max(1, config.steps // 4)}))
        return model

    def monitor(model: DeepLinearUFM) -> pd.DataFrame | dict:
        return model.layer_table(reference) if track else {}

    runs = optimize.multi_start(make, starts, monitor=monitor, **settings)
    traces = [_hop(trace, hops, kick, seed + i, monitor, settings) for i, trace in enumerate(runs.traces)]
    best = int(np.argmin([t.final_loss for t in traces]))
    return SolveResult(model=_detached(traces[best].model), traces=tuple(traces), best_start=best)


def _hop(trace: Trace, hops: int, kick: float, seed: int, monitor, settings: dict) -> Trace:
    """Basin hopping from ``trace.model``: kick, re-solve, keep only a lower loss; one Trace."""
    model, tables, best = trace.model, [trace.table], trace.final_loss
    generator = torch.Generator().manual_seed(seed)
    for hop in range(1, hops + 1):
        saved = [p.detach().clone() for p in model.parameters()]
        with torch.no_grad():
            for p in model.parameters():
                noise = torch.randn(p.shape, generator=generator, dtype=p.dtype).to(p.device)
                p.add_(kick * p.square().mean().sqrt() * noise)
        hopped = minimize(model, monitor=monitor, description=f"hop {hop}", **settings)
        logged = hopped.table[hopped.table["step"] > 0]  # step 0 (the kicked point) would repeat a step
        tables.append(logged.assign(step=logged["step"] + hop * settings["steps"]))
        if hopped.final_loss < best:
            best = hopped.final_loss
        else:
            with torch.no_grad():
                for p, old in zip(model.parameters(), saved):
                    p.copy_(old)
    if not hops:
        return trace
    table = pd.concat(tables, ignore_index=True)
    return replace(trace, table=table, steps=int(table["step"].max()), final_loss=best)


def _detached(model: DeepLinearUFM) -> DeepLinearUFM:
    leaf = lambda t: t.detach().clone()  # noqa: E731
    return replace(
        model,
        weights=[leaf(w) for w in model.weights],
        features=leaf(model.features),
        bias=None if model.bias is None else leaf(model.bias),
    )
