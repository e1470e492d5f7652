from __future__ import annotations

import pytest
import torch

from ncbook.optimize import SolverConfig, minimize


def _quadratic():
    x = torch.tensor([3.0, -2.0], dtype=torch.float64, requires_grad=True)
    target = torch.tensor([1.0, 1.0], dtype=torch.float64)
    return x, lambda: (x - target).square().sum()


@pytest.mark.parametrize("method", ["sgd", "adam", "lbfgs"])
def test_each_method_minimises_a_quadratic(method):
    x, loss = _quadratic()
    lr = {"sgd": 0.1, "adam": 0.1, "lbfgs": 1.0}[method]
    steps = {"sgd": 300, "adam": 800, "lbfgs": 5}[method]
    table = minimize(loss, [x], SolverConfig(method, steps=steps, lr=lr, log_every=50),
                     monitor=lambda: {"x0": float(x[0])})
    assert table["loss"].iloc[-1] < 1e-8
    assert list(table.columns) == ["step", "loss", "x0"]
    assert table["step"].iloc[0] == 0 and table["step"].iloc[-1] == steps


def test_divergence_is_reported_with_its_step():
    x, loss = _quadratic()
    with pytest.raises(FloatingPointError, match="lower `lr`"):
        minimize(loss, [x], SolverConfig("sgd", steps=2000, lr=5.0, momentum=0.0, log_every=1))


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"method": "newton"}, "`method` must be one of 'sgd', 'adam', 'lbfgs'"),
        ({"steps": 0}, "`steps` must be an integer >= 1"),
        ({"lr": 0.0}, r"`lr` must be a number > 0.0"),
        ({"momentum": 1.5}, r"`momentum` must be a number in \[0.0, 1.0\]"),
    ],
)
def test_bad_config(kwargs, message):
    with pytest.raises(ValueError, match=message):
        SolverConfig(**kwargs)
