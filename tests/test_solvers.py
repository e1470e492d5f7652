from __future__ import annotations

import pandas as pd
import pytest
import torch

from ncbook.optimize import COLUMNS, MinimizeConfig, Trace, continuation, minimize, multi_start


class Quadratic:
    """f(x) = lambda_H ||x - 1||^2 with a mutable decay, enough for every wrapper."""

    def __init__(self, start=(3.0, -2.0)):
        self.x = torch.tensor(start, dtype=torch.float64, requires_grad=True)
        self.lambda_W, self.lambda_H = (1.0,), 1.0

    def parameters(self):
        return [self.x]

    def objective(self):
        return self.lambda_H * (self.x - 1).square().sum() + 0 * self.lambda_W[0]


@pytest.mark.parametrize("method", ["sgd", "gd", "adam", "lbfgs"])
def test_each_method_minimises_a_quadratic(method):
    lr = {"sgd": 0.1, "gd": 0.2, "adam": 0.1, "lbfgs": 1.0}[method]
    steps = {"sgd": 300, "gd": 200, "adam": 800, "lbfgs": 5}[method]
    model = Quadratic()
    trace = minimize(model, method=method, steps=steps, lr=lr, log_every=50,
                     monitor=lambda m: {(1, "x0"): float(m.x[0])}, progress=False)
    assert trace.final_loss < 1e-8 and trace.model is model and trace.method == method
    assert tuple(trace.table.columns) == COLUMNS
    assert set(trace.table["metric"]) == {"loss", "grad_norm", "seconds", "x0"}
    assert trace.table["step"].iloc[0] == 0 and trace.steps == steps
    wide = trace.wide()
    assert {"loss", "grad_norm", "x0@1"} <= set(wide.columns)
    assert wide["x0@1"].iloc[-1] == pytest.approx(1.0, abs=1e-4)


def test_grad_norm_is_the_gradients_two_norm():
    trace = minimize(Quadratic(), method="gd", steps=1, lr=0.1, progress=False)
    first = trace.final()  # after one step x - 1 = 0.8 (2, -3), gradient 2 (x - 1)
    assert first["grad_norm"] == pytest.approx(1.6 * 13**0.5)


def test_tolerance_stops_early_and_reports_converged():
    trace = minimize(Quadratic(), method="lbfgs", steps=50, lr=1.0, log_every=1, tolerance_grad=1e-9,
                     progress=False)
    assert trace.converged and trace.steps < 50
    assert not minimize(Quadratic(), method="gd", steps=2, lr=0.01, progress=False).converged


def test_monitor_may_return_a_frame():
    frame = pd.DataFrame({"layer": [1, 2], "metric": ["a", "a"], "value": [1.0, 2.0]})
    trace = minimize(Quadratic(), method="gd", steps=1, lr=0.1, monitor=lambda m: frame, progress=False)
    assert set(trace.table.query("metric == 'a'")["layer"]) == {1, 2}
    with pytest.raises(ValueError, match="without the column"):
        minimize(Quadratic(), method="gd", steps=1, lr=0.1, monitor=lambda m: frame.drop(columns="layer"),
                 progress=False)


def test_a_fast_kernel_replaces_autograd_and_none_falls_back():
    class Fast(Quadratic):
        def fast_minimize(self, config, monitor):
            if config.method != "gd":
                return None
            return Trace.from_records([(0, 0, "loss", 5.0), (config.steps, 0, "loss", 0.5)],
                                      model=self, method="gd", status="max_steps")

    assert minimize(Fast(), method="gd", steps=7, lr=0.1, progress=False).final_loss == 0.5
    assert minimize(Fast(), method="sgd", steps=7, lr=0.1, progress=False).final_loss < 13


def test_from_records_needs_the_loss():
    with pytest.raises(ValueError, match="must contain the layer-0 'loss'"):
        Trace.from_records([(0, 1, "nc1", 1.0)], model=None, method="gd", status="max_steps")
    with pytest.raises(ValueError, match="`status` must be one of"):
        Trace.from_records([(0, 0, "loss", 1.0)], model=None, method="gd", status="done")


def test_multi_start_keeps_every_start_and_picks_the_lowest():
    starts = [(3.0, 3.0), (1.1, 1.0), (-5.0, 0.0)]
    result = multi_start(lambda i: Quadratic(starts[i]), 3, method="gd", steps=2, lr=0.1, progress=False)
    assert result.best_start == 1 and result.best is result.traces[1]
    assert list(result.table().columns) == ["start", *COLUMNS]
    with pytest.raises(ValueError, match="`starts` must be an integer >= 1"):
        multi_start(lambda i: Quadratic(), 0)


def test_continuation_scales_and_restores_the_decays():
    model = Quadratic()
    seen = []
    traces = continuation(model, [0.1, 0.5], method="gd", steps=1, lr=0.1, progress=False,
                          monitor=lambda m: seen.append(m.lambda_H) or {})
    assert len(traces) == 2 and sorted(set(seen)) == [0.1, 0.5]
    assert model.lambda_H == 1.0 and model.lambda_W == (1.0,)
    with pytest.raises(ValueError, match=r"`factors\[0\]` must be a number > 0"):
        continuation(model, [0.0], method="gd", steps=1)
    assert model.lambda_H == 1.0


def test_divergence_is_reported_with_its_step():
    with pytest.raises(FloatingPointError, match="lower `lr`"):
        minimize(Quadratic(), method="sgd", steps=2000, lr=5.0, momentum=0.0, log_every=1, progress=False)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"method": "newton"}, "`method` must be one of 'sgd', 'gd', 'adam', 'lbfgs'"),
        ({"steps": 0}, "`steps` must be an integer >= 1"),
        ({"lr": 0.0}, r"`lr` must be a number > 0.0"),
        ({"momentum": 1.5}, r"`momentum` must be a number in \[0.0, 1.0\]"),
        ({"log_every": 0}, "`log_every` must be an integer >= 1"),
        ({"inner": 0}, "`inner` must be an integer >= 1"),
        ({"tolerance_grad": -1.0}, "`tolerance_grad` must be a number >= 0.0"),
    ],
)
def test_bad_config(kwargs, message):
    with pytest.raises(ValueError, match=message):
        MinimizeConfig(**kwargs)
    with pytest.raises(ValueError, match=message):
        minimize(Quadratic(), **kwargs)
