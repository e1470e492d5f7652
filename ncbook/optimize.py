"""Solvers shared by every unconstrained-feature model: full-batch SGD with momentum (the
authors' recipe), Adam, and L-BFGS. Each minimises a closure over a list of leaf tensors and
returns a tidy per-step table built from the caller's ``monitor``."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import pandas as pd
import torch
from tqdm import tqdm

from ncbook._checks import check_choice, check_float, check_int
from ncbook._runtime import progress_disabled

METHODS = ("sgd", "adam", "lbfgs")


@dataclass(frozen=True)
class SolverConfig:
    method: str = "sgd"  # one of METHODS
    steps: int = 1000  # optimiser steps (L-BFGS: outer iterations of up to `inner` evaluations)
    lr: float = 0.1  # learning rate (L-BFGS: initial step, strong-Wolfe line search)
    momentum: float = 0.9  # SGD momentum; ignored by the others
    log_every: int = 10  # call `monitor` every this many steps (and at the first and last)
    inner: int = 50  # L-BFGS evaluations per outer step
    tolerance_grad: float = 1e-12  # L-BFGS stops when the gradient's max-norm falls below this

    def __post_init__(self) -> None:
        check_choice("method", self.method, METHODS)
        check_int("steps", self.steps, low=1)
        check_float("lr", self.lr, low=0.0, low_open=True)
        check_float("momentum", self.momentum, low=0.0, high=1.0)
        check_int("log_every", self.log_every, low=1)
        check_int("inner", self.inner, low=1)
        check_float("tolerance_grad", self.tolerance_grad, low=0.0)


def minimize(
    loss_fn: Callable[[], torch.Tensor],
    params: Sequence[torch.Tensor],
    config: SolverConfig = SolverConfig(),
    monitor: Callable[[], dict[str, Any]] | None = None,
    *,
    description: str = "optimising",
) -> pd.DataFrame:
    """Minimise ``loss_fn()`` over ``params`` in place; return one row per logged step.

    Each row holds ``step`` and ``loss``, plus whatever ``monitor()`` returns (NC metrics, say),
    evaluated on the current parameters. A non-finite loss stops the run with a ``FloatingPointError``
    naming the step, since a diverged run must not be mistaken for a converged one.
    """
    params = list(params)
    if config.method == "sgd":
        optimiser = torch.optim.SGD(params, lr=config.lr, momentum=config.momentum)
    elif config.method == "adam":
        optimiser = torch.optim.Adam(params, lr=config.lr)
    else:
        optimiser = torch.optim.LBFGS(
            params,
            lr=config.lr,
            max_iter=config.inner,
            tolerance_grad=config.tolerance_grad,
            tolerance_change=0.0,
            history_size=50,
            line_search_fn="strong_wolfe",
        )

    def closure() -> torch.Tensor:
        optimiser.zero_grad(set_to_none=True)
        loss = loss_fn()
        loss.backward()
        return loss

    rows: list[dict[str, Any]] = []

    def log(step: int) -> None:
        with torch.no_grad():
            loss = float(loss_fn())
            if not math.isfinite(loss):
                raise FloatingPointError(f"loss became {loss} at step {step}; lower `lr`")
            rows.append({"step": step, "loss": loss, **(monitor() if monitor else {})})

    log(0)
    bar = tqdm(range(1, config.steps + 1), desc=description, disable=progress_disabled(), leave=False)
    for step in bar:
        optimiser.step(closure)
        if step % config.log_every == 0 or step == config.steps:
            log(step)
            bar.set_postfix(loss=f"{rows[-1]['loss']:.3e}", refresh=False)
    return pd.DataFrame(rows)
