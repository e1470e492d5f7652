"""The ReLU deep UFM (ncbook.models.relu_dufm): objective at the explicit DNC/SRG points equals the closed
forms, the hand-written GD equals autograd, and GD on K = 2 reaches the DNC loss (paper-b.md)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ncbook import models as ufm
from ncbook import optimize, theory

LAM = 0.004


def _reference_objective(model: ufm.ReLUDUFM) -> float:
    """The spec's objective (Section 1.3), sample by sample in numpy: independent of the class."""
    weights = [w.detach().numpy() for w in model.weights]
    features = model.features.detach().numpy()
    labels = model.labels.numpy()
    fit = 0.0
    for i in range(features.shape[1]):
        h = features[:, i]
        for w in weights[:-1]:
            h = np.maximum(w @ h, 0.0)
        target = np.eye(model.num_classes)[labels[i]]
        fit += np.sum((weights[-1] @ h - target) ** 2)
    penalty = sum(lam / 2 * np.sum(w**2) for lam, w in zip(model.lambda_W, weights))
    return fit / (2 * features.shape[1]) + penalty + model.lambda_H / 2 * np.sum(features**2)


def test_objective_matches_reference_at_random_point() -> None:
    model = ufm.make_relu_dufm(4, 3, 3, [7, 6, 5], [0.01, 0.02, 0.03], 0.005, seed=3)
    assert float(model.objective().detach()) == pytest.approx(_reference_objective(model), rel=1e-13)
    assert [w.shape for w in model.weights] == [(6, 7), (5, 6), (4, 5)]
    assert model.features.shape == (7, 12) and model.depth == 3 and model.num_classes == 4
    assert model.labels.tolist() == [0, 0, 0, 1, 1, 1, 2, 2, 2, 3, 3, 3]


# -------------------------------------------------------- explicit points == closed forms
PER_LAYER = [0.002, 0.006, 0.003, 0.005, 0.004]


@pytest.mark.parametrize(
    ("K", "depth", "n", "lam_w"),
    [(2, 3, 1, LAM), (2, 4, 5, LAM), (10, 4, 1, LAM), (10, 4, 5, LAM), (15, 5, 5, LAM),
     (6, 1, 2, LAM), (4, 5, 2, PER_LAYER), (10, 4, 1, 0.05)],
)  # fmt: skip
def test_dnc_point_attains_closed_form(K: int, depth: int, n: int, lam_w) -> None:
    model = ufm.dnc_dufm(K, n, depth, 16, LAM, lam_w)
    expected = theory.dufm_dnc_loss(K, depth, n, LAM, lam_w)
    assert _reference_objective(model) == pytest.approx(expected, rel=1e-12)
    assert float(model.objective().detach()) == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize(
    ("r", "s", "depth", "n", "lam_w"),
    [(5, 3, 4, 1, LAM), (6, 3, 2, 1, LAM), (5, 3, 3, 2, LAM), (6, 3, 5, 1, LAM), (4, 2, 4, 3, LAM),
     (4, 3, 3, 1, LAM), (5, 4, 2, 1, LAM), (5, 3, 5, 2, PER_LAYER), (3, 2, 3, 1, LAM)],
)  # fmt: skip
def test_srg_point_attains_closed_form(r: int, s: int, depth: int, n: int, lam_w) -> None:
    model = ufm.srg_dufm(r, s, n, depth, 24, LAM, lam_w)
    expected = theory.dufm_srg_loss(r, s, depth, n, LAM, lam_w)
    assert _reference_objective(model) == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize(("r", "depth", "n"), [(5, 4, 1), (6, 5, 1), (4, 2, 3), (5, 3, 2)])
def test_naive_srg_point_attains_closed_form(r: int, depth: int, n: int) -> None:
    model = ufm.srg_naive_dufm(r, n, depth, 16, LAM, LAM)
    expected = theory.dufm_srg_naive_loss(r, depth, n, LAM, LAM)
    assert _reference_objective(model) == pytest.approx(expected, rel=1e-12)


def test_srg_ranks_match_fig1_caption() -> None:
    # Spec 3.1: H_1..H_{L-1} rank r, pre-ReLU M~_L rank r (3 for r = 4), relu(M~_L) rank K.
    ranks = ufm.layer_ranks(ufm.srg_dufm(5, 3, 1, 4, 30, LAM, LAM))
    assert ranks == {"H1": 5, "H~2": 5, "H2": 5, "H~3": 5, "H3": 5, "H~4": 5, "H4": 10}
    ranks = ufm.layer_ranks(ufm.srg_dufm(4, 2, 1, 3, 30, LAM, LAM))
    assert ranks == {"H1": 4, "H~2": 4, "H2": 4, "H~3": 3, "H3": 6}
    assert set(ufm.layer_ranks(ufm.dnc_dufm(10, 2, 4, 30, LAM, LAM)).values()) == {10}


def test_srg_rows_have_r_minus_1_equal_nonzeros() -> None:
    means = ufm.class_mean_layers(ufm.srg_dufm(5, 3, 1, 4, 30, LAM, LAM))["H3"][:5]  # (r, K)
    for row in means:
        nonzero = row[row.abs() > 1e-12]
        assert len(nonzero) == 4 and torch.allclose(nonzero, nonzero[0].expand(4))


def test_dnc_point_is_stationary() -> None:
    model = ufm.dnc_dufm(6, 2, 3, 10, LAM, [0.003, 0.004, 0.005])
    grads = torch.autograd.grad(model.objective(), model.parameters())
    assert max(float(g.abs().max()) for g in grads) < 1e-12


def test_width_too_small_for_construction() -> None:
    with pytest.raises(ValueError, match=r"`width` is too small for this construction: W_3 needs"):
        ufm.srg_dufm(5, 3, 1, 4, [8, 8, 8, 8], LAM, LAM)  # the readout needs d_4 >= C(5, 3) = 10
    with pytest.raises(ValueError, match=r"too small for this construction: W_1 needs at least 10 x 10"):
        ufm.dnc_dufm(10, 1, 3, 6, LAM, LAM)


# ------------------------------------------------------------------------- gradient descent
def test_numpy_gd_equals_autograd_gd() -> None:
    start = ufm.make_relu_dufm(5, 2, 3, 9, [0.01, 0.02, 0.005], 0.003, seed=1)
    result = ufm.dufm_gradient_descent(start, 40, lr=0.3, log_every=10)
    reference = start.perturbed(0.0)
    config = optimize.SolverConfig(method="sgd", steps=40, lr=0.3, momentum=0.0, log_every=10)
    history = optimize.minimize(reference.objective, reference.parameters(), config)
    np.testing.assert_allclose(result.history.loss, history.loss, rtol=1e-11)
    for mine, theirs in zip(result.model.parameters(), reference.parameters()):
        torch.testing.assert_close(mine, theirs.detach(), rtol=1e-10, atol=1e-12)
    assert result.history.step.tolist() == [0, 10, 20, 30, 40] and result.lr == 0.3


@pytest.mark.parametrize("depth", [3, 4])
def test_gd_on_two_classes_reaches_dnc(depth: int) -> None:
    # [P23]: for K = 2 the global optimum is DNC; spec 3.3 (n = 3, d = 30, lr 0.5).
    start = ufm.make_relu_dufm(2, 3, depth, 30, LAM, LAM, seed=1)
    result = ufm.dufm_gradient_descent(start, 30_000, 0.5, log_every=5000)
    ratio = result.history.loss.iloc[-1] / theory.dufm_dnc_loss(2, depth, 3, LAM, LAM)
    assert ratio == pytest.approx(1.0, abs=1e-4)
    ranks = ufm.layer_ranks(result.model)
    assert set(ranks.values()) == {2}
    assert ufm.classify_solution(ratio, ranks, 2) == "DNC"
    assert max(ufm.layer_nc1(result.model).values()) < 1e-12


def test_gd_started_near_srg_stays_below_dnc() -> None:
    # Spec 3.5: from the perturbed SRG point (K = 10, L = 4) GD stays at the SRG loss.
    start = ufm.srg_dufm(5, 3, 1, 4, 30, LAM, LAM).perturbed(1e-3, seed=0)
    result = ufm.dufm_gradient_descent(start, 10_000, 0.5, log_every=5000)
    srg = theory.dufm_srg_loss(5, 3, 4, 1, LAM, LAM)
    assert result.history.loss.iloc[-1] == pytest.approx(srg, rel=3e-3)
    assert ufm.layer_ranks(result.model)["H2"] == 5


def test_divergence_halves_lr_then_gives_up() -> None:
    start = ufm.make_relu_dufm(3, 1, 3, 8, LAM, LAM, seed=0)
    result = ufm.dufm_gradient_descent(start, 200, lr=20.0, log_every=50)
    assert result.lr < 20.0 and result.history.loss.max() <= result.history.loss.iloc[0]
    with pytest.raises(FloatingPointError, match="GD diverged 1 times"):
        ufm.dufm_gradient_descent(start, 200, lr=1e3, log_every=50, retries=0)


# ------------------------------------------------------------------------------ diagnostics
def test_nc1_trace_ratio_against_direct_formula() -> None:
    gen = torch.Generator().manual_seed(0)
    features = torch.randn(6, 20, generator=gen, dtype=torch.float64)
    labels = torch.arange(4).repeat_interleave(5)
    means = torch.stack([features[:, labels == k].mean(1) for k in range(4)], 1)  # (6, 4)
    within = sum((features[:, i] - means[:, labels[i]]).square().sum() for i in range(20))
    between = 5 * (means - features.mean(1, keepdim=True)).square().sum()
    assert ufm.nc1_trace_ratio(features, labels, 4) == pytest.approx(float(within / between))
    collapsed = means.repeat_interleave(5, 1)
    assert ufm.nc1_trace_ratio(collapsed, labels, 4) < 1e-30
    assert np.isnan(ufm.nc1_trace_ratio(torch.zeros(3, 20, dtype=torch.float64), labels, 4))


def test_class_mean_layers_names_and_shapes() -> None:
    layers = ufm.class_mean_layers(ufm.make_relu_dufm(3, 1, 3, [5, 6, 7], LAM, LAM))
    assert {k: tuple(v.shape) for k, v in layers.items()} == {
        "H1": (5, 3), "H~2": (6, 3), "H2": (6, 3), "H~3": (7, 3), "H3": (7, 3),
    }  # fmt: skip
    assert (layers["H2"] == layers["H~2"].clamp(min=0)).all()  # n = 1: means are the columns


@pytest.mark.parametrize(
    ("ratio", "ranks", "expected"),
    [(1.001, {"a": 4, "b": 4}, "DNC"), (0.9, {"a": 3, "b": 4}, "low-rank"),
     (1.3, {"a": 4, "b": 4}, "stuck"), (1.003, {"a": 3, "b": 4}, "stuck"), (0.9, {"a": 4}, "other")],
)  # fmt: skip
def test_classify_solution(ratio: float, ranks: dict, expected: str) -> None:
    assert ufm.classify_solution(ratio, ranks, 4) == expected


# ------------------------------------------------------------------------------- bad input
@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda: ufm.make_relu_dufm(1, 1, 2, 5, LAM, LAM), r"`num_classes` must be an integer >= 2"),
        (lambda: ufm.make_relu_dufm(3, 0, 2, 5, LAM, LAM), r"`n` must be an integer >= 1"),
        (lambda: ufm.make_relu_dufm(3, 1, 0, 5, LAM, LAM), r"`depth` must be an integer >= 1"),
        (lambda: ufm.make_relu_dufm(3, 1, 2, [5], LAM, LAM), r"`width` needs one entry per layer"),
        (lambda: ufm.make_relu_dufm(3, 1, 2, 0, LAM, LAM), r"`width` must be an integer >= 1"),
        (lambda: ufm.make_relu_dufm(3, 1, 2, 5, -1.0, LAM), r"`lambda_W` must be a number >= 0"),
        (lambda: ufm.make_relu_dufm(3, 1, 2, 5, LAM, -1.0), r"`lambda_H` must be a number >= 0"),
        (lambda: ufm.make_relu_dufm(3, 1, 2, 5, LAM, LAM, seed=-1), r"`seed` must be an integer >= 0"),
        (lambda: ufm.dnc_dufm(3, 1, 2, 5, 0.0, LAM), r"`lambda_H` must be a number > 0"),
        (lambda: ufm.srg_dufm(5, 3, 1, 4, 30, LAM, [LAM] * 3), r"`lambda_W` must be a number or 4"),
        (lambda: ufm.srg_naive_dufm(5, 1, 1, 30, LAM, LAM), r"`depth` must be an integer >= 2"),
        (lambda: _gd(steps=0), r"`steps` must be an integer >= 1"),
        (lambda: _gd(lr=0.0), r"`lr` must be a number > 0"),
        (lambda: _gd(log_every=0), r"`log_every` must be an integer >= 1"),
        (lambda: _gd(retries=-1), r"`retries` must be an integer >= 0"),
        (lambda: _start().perturbed(-1.0), r"`std` must be a number >= 0"),
    ],
)
def test_bad_input_raises(call, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        call()


def _start() -> ufm.ReLUDUFM:
    return ufm.make_relu_dufm(3, 1, 2, 5, LAM, LAM)


def _gd(steps: int = 10, lr: float = 0.1, log_every: int = 5, retries: int = 1) -> ufm.GDResult:
    return ufm.dufm_gradient_descent(_start(), steps, lr, log_every=log_every, retries=retries)


def test_srg_spectrum_matches_spec() -> None:
    # Spec 3.4: M_4 = relu(M~_4) of the triangle readout has singular values 1 : 2/3 (x4) : 1/3 (x5).
    spectra = ufm.layer_spectra(ufm.srg_dufm(5, 3, 1, 4, 30, LAM, LAM))
    last = spectra.query("layer == 'H4'")["value"].to_numpy()
    np.testing.assert_allclose(last, [1.0] + [2 / 3] * 4 + [1 / 3] * 5, atol=1e-12)
    assert (spectra.query("layer == 'H~4'")["value"].to_numpy()[5:] < 1e-12).all()


def test_random_start_runs_and_sweep() -> None:
    runs = ufm.random_start_runs(2, 2, 3, 8, LAM, LAM, [0, 1], 3000, log_every=1000)
    assert runs.summary["seed"].tolist() == [0, 1] and set(runs.models) == {0, 1}
    assert runs.histories.groupby("seed").size().tolist() == [4, 4]
    first = runs.summary.iloc[0]
    assert first["ratio"] == pytest.approx(first["loss"] / theory.dufm_dnc_loss(2, 3, 2, LAM, LAM))
    assert first["loss"] == pytest.approx(runs.models[0].objective_value())
    sweep = ufm.random_start_sweep(2, 1, 3, [(8, LAM), (8, LAM), (6, 0.01)], [0], 200)
    assert sweep[["width", "lambda"]].values.tolist() == [[8, LAM], [6, 0.01]]


# ------------------------------------------------------------------ ReLU head on fixed data
def _head_net(backbone_depth: int = 2, lambda_B: float = 0.003) -> tuple[ufm.ReLUHeadNet, torch.Tensor]:
    gen = torch.Generator().manual_seed(5)
    inputs = torch.randn(12, 7, generator=gen, dtype=torch.float64)
    labels = torch.arange(3).repeat(4)
    net = ufm.make_relu_head_net(inputs, labels, 3, backbone_depth, 3, 6, [0.01, 0.02, 0.03], 0.004, lambda_B)
    return net, inputs


def test_head_net_objective_matches_reference() -> None:
    net, inputs = _head_net()
    x = inputs.numpy().T  # (p, N)
    v1, v2 = (w.detach().numpy() for w in net.backbone)
    features = v2 @ np.maximum(v1 @ x, 0.0)  # no ReLU on H_1
    head = ufm.ReLUDUFM([w.detach() for w in net.weights], torch.tensor(features), net.labels,
                        net.lambda_W, net.lambda_H)  # fmt: skip
    expected = _reference_objective(head) + 0.003 / 2 * (np.sum(v1**2) + np.sum(v2**2))
    assert float(net.objective().detach()) == pytest.approx(expected, rel=1e-13)
    assert net.head().objective_value() == pytest.approx(_reference_objective(head), rel=1e-13)
    assert [tuple(w.shape) for w in net.parameters()] == [(6, 7), (6, 6), (6, 6), (6, 6), (3, 6)]


def test_head_net_on_identity_inputs_is_the_dufm() -> None:
    # One backbone layer on X = I_N with no backbone decay: H_1 = V_1 is free, i.e. the DUFM.
    labels = torch.arange(3).repeat_interleave(2)
    net = ufm.make_relu_head_net(torch.eye(6), labels, 3, 1, 3, 5, LAM, 0.01, 0.0, seed=2)
    dufm = ufm.ReLUDUFM(net.weights, net.backbone[0], labels, net.lambda_W, 0.01)
    assert float(net.objective().detach()) == pytest.approx(dufm.objective_value(), rel=1e-14)


def test_head_net_trains_to_zero_error() -> None:
    net, inputs = _head_net()
    before = float(net.objective().detach())
    config = optimize.SolverConfig("adam", steps=1500, lr=0.01, log_every=500)
    optimize.minimize(net.objective, net.parameters(), config)
    assert float(net.objective().detach()) < before / 5
    assert net.accuracy() == 1.0 and net.accuracy(inputs, net.labels) == 1.0
    assert net.accuracy(inputs, (net.labels + 1) % 3) == 0.0


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"inputs": torch.zeros(4)}, r"`inputs` must be \(N, p\) and `labels` \(N,\)"),
        ({"labels": torch.tensor([0, 1, 5, 1])}, r"`labels` must lie in \[0, 3\), got \[0, 5\]"),
        ({"backbone_depth": 0}, r"`backbone_depth` must be an integer >= 1"),
        ({"head_depth": 0}, r"`head_depth` must be an integer >= 1"),
        ({"width": 0}, r"`width` must be an integer >= 1"),
        ({"lambda_B": -1.0}, r"`lambda_B` must be a number >= 0"),
        ({"num_classes": 1}, r"`num_classes` must be an integer >= 2"),
    ],
)
def test_head_net_bad_input(kwargs: dict, match: str) -> None:
    args = {"inputs": torch.zeros(4, 3), "labels": torch.tensor([0, 1, 2, 1]), "num_classes": 3,
            "backbone_depth": 1, "head_depth": 2, "width": 4, "lambda_W": LAM, "lambda_H": LAM,
            "lambda_B": LAM} | kwargs  # fmt: skip
    with pytest.raises(ValueError, match=match):
        ufm.make_relu_head_net(**args)


def test_head_monitor_reports_head_state() -> None:
    net, _ = _head_net()
    dnc = theory.dufm_dnc_loss(3, 3, 4, 0.004, [0.01, 0.02, 0.03])
    row = ufm.head_monitor(net, dnc)()
    assert set(row) == {"ratio", "min rank", "max NC1", "train accuracy"}
    assert row["ratio"] == pytest.approx(net.head().objective_value() / dnc)
    assert row["train accuracy"] == net.accuracy()
    with pytest.raises(ValueError, match=r"`dnc_loss` must be a number > 0"):
        ufm.head_monitor(net, 0.0)
