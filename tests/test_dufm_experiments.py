"""Paper B's DUFM protocol (ncbook.experiments.dufm) and the ReLU network on fixed data
(ncbook.models.relu_head): per-layer tables, classification, random-start runs, the head net."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ncbook import metrics, models, optimize, theory
from ncbook.experiments import dufm
from ncbook.spec import UFMSpec

LAM = 0.004


def _spec(K: int, depth: int, n: int = 1, widths=30, nonneg: bool = False) -> UFMSpec:  # noqa: ANN001
    return UFMSpec(
        (n,) * K, depth, widths, lambda_W=LAM, lambda_H=LAM, activation="relu", nonnegative_features=nonneg
    )


def test_srg_ranks_match_fig1_caption() -> None:
    # Paper B, Fig. 1 caption: rank r before the last ReLU, K after it; DNC has rank K everywhere.
    table = dufm.layer_metrics(models.srg_dufm(_spec(10, 4), 3))
    ranks = table.query("metric == 'rank'").set_index("name")["value"].to_dict()
    assert ranks == {"H1": 5, "H~2": 5, "H2": 5, "H~3": 5, "H3": 5, "H~4": 5, "H4": 10}
    assert table.query("name == 'H~4'")[["layer", "tap"]].values.tolist() == [[4, "pre"]] * 3
    ranks = dufm.layer_metrics(models.srg_dufm(_spec(6, 3), 2), ["rank"]).set_index("name")["value"].to_dict()
    assert ranks == {"H1": 4, "H~2": 4, "H2": 4, "H~3": 3, "H3": 6}
    dnc = dufm.layer_metrics(models.dnc_dufm(_spec(10, 4, 2)), ["rank", "cdnv", "nc2_of"])
    assert set(dnc.query("metric == 'rank'")["value"]) == {10}
    assert dnc.query("metric != 'rank'")["value"].abs().max() < 1e-12


def test_layer_table_matches_the_accumulator() -> None:
    model = models.make_relu_dufm(_spec(3, 2, 4, 5), seed=0)
    table = dufm.layer_metrics(model, ["nc1", "cdnv"]).set_index(["name", "metric"])["value"]
    h2 = torch.relu(model.weights[0] @ model.features).detach()
    assert table[("H2", "cdnv")] == pytest.approx(metrics.cdnv(h2.T, model.labels, 3), rel=1e-12)
    assert table[("H1", "nc1")] == pytest.approx(
        metrics.nc1(model.features.detach().T, model.labels), rel=1e-12
    )
    with pytest.raises(
        ValueError, match=r"`keys` has unknown metric\(s\) \['nc9'\]"
    ):
        dufm.layer_metrics(model, ["nc9"])


def test_srg_rows_have_r_minus_1_equal_nonzeros() -> None:
    means = dufm.class_mean_layers(models.srg_dufm(_spec(10, 4), 3))["H3"][:5]  # (r, K)
    for row in means:
        nonzero = row[row.abs() > 1e-12]
        assert len(nonzero) == 4 and torch.allclose(nonzero, nonzero[0].expand(4))


def test_srg_spectrum() -> None:
    # M_4 = relu(M~_4) of the triangle readout: singular values 1 : 2/3 (x4) : 1/3 (x5).
    spectra = dufm.layer_spectra(models.srg_dufm(_spec(10, 4), 3))
    last = spectra.query("name == 'H4'")["value"].to_numpy()
    np.testing.assert_allclose(last, [1.0] + [2 / 3] * 4 + [1 / 3] * 5, atol=1e-12)
    assert (spectra.query("name == 'H~4'")["value"].to_numpy()[5:] < 1e-12).all()


@pytest.mark.parametrize(
    ("ratio", "ranks", "expected"),
    [
        (1.001, [4, 4], "DNC"),
        (0.9, [3, 4], "low-rank"),
        (1.3, [4, 4], "stuck"),
        (1.003, [3, 4], "stuck"),
        (0.9, [4], "other"),
    ],
)
def test_classify_solution(ratio: float, ranks: list, expected: str) -> None:
    assert dufm.classify_solution(ratio, ranks, 4) == expected


@pytest.mark.parametrize("nonneg", [False, True])
def test_random_start_runs_and_sweep(nonneg: bool) -> None:
    spec = _spec(2, 3, 2, 8, nonneg)
    runs = dufm.random_start_runs(spec, [0, 1], steps=3000, log_every=1000)
    assert runs.summary["seed"].tolist() == [0, 1] and set(runs.models) == {0, 1}
    assert runs.histories.groupby("seed").size().tolist() == [4, 4]
    first = runs.summary.iloc[0]
    dnc = theory.dufm_dnc_loss(2, 3, 2, lambda_H=LAM, lambda_W=LAM)
    assert first["ratio"] == pytest.approx(first["loss"] / dnc) and first["nonnegative_features"] == nonneg
    assert first["loss"] == pytest.approx(runs.models[0].objective_value())
    assert (runs.models[1].features >= 0).all() or not nonneg
    sweep = dufm.random_start_sweep(spec, [(8, LAM), (8, LAM), (6, 0.01)], [0], steps=200)
    assert sweep[["width", "lambda"]].values.tolist() == [[8, LAM], [6, 0.01]]


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda: dufm.random_start_runs(_spec(2, 2), 3, steps=10), r"`seeds` must be a list, got 3"),
        (lambda: dufm.random_start_runs(_spec(2, 2), [0], steps=0), r"`steps` must be an integer >= 1"),
        (
            lambda: dufm.random_start_sweep(_spec(2, 2), (8, LAM), [0], steps=5),
            r"`grid\[0\]` must be a \(width, lambda\) pair, got 8",
        ),
        (
            lambda: dufm.dnc_loss_of(UFMSpec((1, 2), 2, activation="relu")),
            r"`spec.n_per_class` must be balanced",
        ),
        (
            lambda: dufm.summarize_solution(models.dnc_dufm(_spec(2, 2)), 0.0),
            r"`dnc_loss` must be a number > 0",
        ),
    ],
)
def test_bad_input_raises(call, match: str) -> None:
    with pytest.raises((ValueError, TypeError), match=match):
        call()


# ------------------------------------------------------------------ ReLU head on fixed data
def _head_net(backbone_depth: int = 2, lambda_B: float = 0.003, nonneg: bool = False):  # noqa: ANN202
    gen = torch.Generator().manual_seed(5)
    inputs = torch.randn(12, 7, generator=gen, dtype=torch.float64)
    labels = torch.arange(3).repeat(4)
    net = models.make_relu_head_net(
        inputs,
        labels,
        3,
        backbone_depth=backbone_depth,
        depth=3,
        width=6,
        lambda_W=[0.01, 0.02, 0.03],
        lambda_H=0.004,
        lambda_B=lambda_B,
        nonnegative_features=nonneg,
    )
    return net, inputs


@pytest.mark.parametrize("nonneg", [False, True])
def test_head_net_objective_matches_reference(nonneg: bool) -> None:
    net, inputs = _head_net(nonneg=nonneg)
    x = inputs.numpy().T  # (p, N)
    v1, v2 = (w.detach().numpy() for w in net.backbone)
    features = v2 @ np.maximum(v1 @ x, 0.0)
    features = np.maximum(features, 0.0) if nonneg else features  # the ReLU on H_1, if any
    hidden = features
    for w in net.weights[:-1]:
        hidden = np.maximum(w.detach().numpy() @ hidden, 0.0)
    fit = np.sum((net.weights[-1].detach().numpy() @ hidden - np.eye(3)[:, net.labels.numpy()]) ** 2) / 24
    penalty = sum(lam / 2 * np.sum(w.detach().numpy() ** 2) for lam, w in zip(net.lambda_W, net.weights))
    expected = fit + penalty + 0.004 / 2 * np.sum(features**2) + 0.003 / 2 * (np.sum(v1**2) + np.sum(v2**2))
    assert float(net.objective().detach()) == pytest.approx(expected, rel=1e-13)
    assert net.head().nonnegative_features == nonneg
    assert [tuple(w.shape) for w in net.parameters()] == [(6, 7), (6, 6), (6, 6), (6, 6), (3, 6)]


def test_head_net_on_identity_inputs_is_the_dufm() -> None:
    # One backbone layer on X = I_N with no backbone decay: H_1 = V_1 is free, i.e. the DUFM.
    labels = torch.arange(3).repeat_interleave(2)
    net = models.make_relu_head_net(
        torch.eye(6),
        labels,
        3,
        backbone_depth=1,
        depth=3,
        width=5,
        lambda_W=LAM,
        lambda_H=0.01,
        lambda_B=0.0,
        seed=2,
    )
    model = models.ReLUDUFM(net.weights, net.backbone[0], labels, net.lambda_W, 0.01)
    assert float(net.objective().detach()) == pytest.approx(model.objective_value(), rel=1e-14)


def test_head_net_trains_to_zero_error_and_monitor() -> None:
    net, inputs = _head_net()
    before = float(net.objective().detach())
    dnc = theory.dufm_dnc_loss(3, 3, 4, lambda_H=0.004, lambda_W=[0.01, 0.02, 0.03])
    trace = optimize.minimize(
        net,
        method="adam",
        steps=1500,
        lr=0.01,
        log_every=500,
        progress=False,
        monitor=dufm.head_monitor(net, dnc),
    )
    assert trace.final_loss < before / 5
    assert net.accuracy() == 1.0 and net.accuracy(inputs, net.labels) == 1.0
    assert net.accuracy(inputs, (net.labels + 1) % 3) == 0.0
    last = trace.wide().iloc[-1]
    assert last["ratio"] == pytest.approx(net.head().objective_value() / dnc)
    assert {"min rank", "max cdnv", "train accuracy"} <= set(trace.wide().columns)
    with pytest.raises(ValueError, match=r"`dnc_loss` must be a number > 0"):
        dufm.head_monitor(net, 0.0)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"inputs": torch.zeros(4)}, r"`inputs` must be \(N, p\) and `labels` \(N,\)"),
        ({"labels": torch.tensor([0, 1, 5, 1])}, r"`labels` must lie in \[0, 3\), got \[0, 5\]"),
        ({"backbone_depth": 0}, r"`backbone_depth` must be an integer >= 1"),
        ({"depth": 0}, r"`depth` must be an integer >= 1"),
        ({"width": 0}, r"`width` must be an integer >= 1"),
        ({"lambda_B": -1.0}, r"`lambda_B` must be a number >= 0"),
        ({"num_classes": 1}, r"`num_classes` must be an integer >= 2"),
        ({"nonnegative_features": "no"}, r"`nonnegative_features` must be True or False"),
    ],
)
def test_head_net_bad_input(kwargs: dict, match: str) -> None:
    args = {
        "inputs": torch.zeros(4, 3),
        "labels": torch.tensor([0, 1, 2, 1]),
        "num_classes": 3,
        "backbone_depth": 1,
        "depth": 2,
        "width": 4,
        "lambda_W": LAM,
        "lambda_H": LAM,
        "lambda_B": LAM,
    } | kwargs
    with pytest.raises(ValueError, match=match):
        models.make_relu_head_net(**args)
