"""The ReLU deep UFM (ncbook.models.relu_dufm, dufm_points, relu_dufm_gd): the objective against a
sample-by-sample reference, the explicit DNC/SRG points against the closed forms (both H_1
variants), the numpy GD kernel against autograd, projected GD for H_1 >= 0, and bad input."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch

from ncbook import models, optimize, theory
from ncbook.spec import UFMSpec

LAM = 0.004
BOTH = [False, True]


def _spec(K: int, depth: int, n: int = 1, widths=30, lam_w=LAM, lam_h=LAM, nonneg: bool = False) -> UFMSpec:  # noqa: ANN001
    return UFMSpec(
        (n,) * K,
        depth,
        widths,
        lambda_W=lam_w,
        lambda_H=lam_h,
        activation="relu",
        nonnegative_features=nonneg,
    )


def _reference_objective(model: models.ReLUDUFM) -> float:
    """The objective sample by sample in numpy: independent of the class."""
    weights = [w.detach().numpy() for w in model.weights]
    features = model.features.detach().numpy()
    labels = model.labels.numpy()
    fit = 0.0
    for i in range(features.shape[1]):
        h = features[:, i]
        for w in weights[:-1]:
            h = np.maximum(w @ h, 0.0)
        fit += np.sum((weights[-1] @ h - np.eye(model.num_classes)[labels[i]]) ** 2)
    penalty = sum(lam / 2 * np.sum(w**2) for lam, w in zip(model.lambda_W, weights))
    return fit / (2 * features.shape[1]) + penalty + model.lambda_H / 2 * np.sum(features**2)


def test_objective_matches_reference_at_random_point() -> None:
    model = models.make_relu_dufm(_spec(4, 3, 3, [7, 6, 5], [0.01, 0.02, 0.03], 0.005), seed=3)
    assert float(model.objective().detach()) == pytest.approx(_reference_objective(model), rel=1e-13)
    assert [w.shape for w in model.weights] == [(6, 7), (5, 6), (4, 5)]
    assert model.features.shape == (7, 12) and model.depth == 3 and model.num_classes == 4
    assert model.labels.tolist() == [0, 0, 0, 1, 1, 1, 2, 2, 2, 3, 3, 3]


def test_nonnegative_start_is_the_projected_free_start() -> None:
    free = models.make_relu_dufm(_spec(3, 2, 2), seed=4)
    projected = models.make_relu_dufm(_spec(3, 2, 2, nonneg=True), seed=4)
    torch.testing.assert_close(projected.features, free.features.clamp(min=0))
    assert bool((free.features < 0).any()) and projected.nonnegative_features
    for a, b in zip(free.weights, projected.weights):
        torch.testing.assert_close(a, b)
    assert (projected.perturbed(0.5, seed=1).features >= 0).all()


# -------------------------------------------------------- explicit points == closed forms
PER_LAYER = [0.002, 0.006, 0.003, 0.005, 0.004]


@pytest.mark.parametrize("nonneg", BOTH)
@pytest.mark.parametrize(
    ("K", "depth", "n", "lam_w"),
    [
        (2, 3, 1, LAM),
        (2, 4, 5, LAM),
        (10, 4, 1, LAM),
        (15, 5, 5, LAM),
        (6, 1, 2, LAM),
        (4, 5, 2, PER_LAYER),
        (10, 4, 1, 0.05),
    ],
)
def test_dnc_point_attains_closed_form(K: int, depth: int, n: int, lam_w, nonneg: bool) -> None:
    model = models.dnc_dufm(_spec(K, depth, n, 16, lam_w, nonneg=nonneg))
    expected = theory.dufm_dnc_loss(K, depth, n, lambda_H=LAM, lambda_W=lam_w, nonnegative_features=nonneg)
    assert _reference_objective(model) == pytest.approx(expected, rel=1e-12)
    assert (model.features >= 0).all()  # the DNC point satisfies H_1 >= 0 in both variants


@pytest.mark.parametrize("nonneg", BOTH)
@pytest.mark.parametrize(
    ("r", "s", "depth", "n", "lam_w"),
    [
        (5, 3, 4, 1, LAM),
        (6, 3, 2, 1, LAM),
        (5, 3, 3, 2, LAM),
        (6, 3, 5, 1, LAM),
        (4, 2, 4, 3, LAM),
        (4, 3, 3, 1, LAM),
        (5, 4, 2, 1, LAM),
        (5, 3, 5, 2, PER_LAYER),
        (3, 2, 3, 1, LAM),
    ],
)
def test_srg_point_attains_closed_form(r: int, s: int, depth: int, n: int, lam_w, nonneg: bool) -> None:
    model = models.srg_dufm(_spec(r * (r - 1) // 2, depth, n, 24, lam_w, nonneg=nonneg), s)
    expected = theory.dufm_srg_loss(r, s, depth, n, lambda_H=LAM, lambda_W=lam_w, nonnegative_features=nonneg)
    assert _reference_objective(model) == pytest.approx(expected, rel=1e-12)
    assert bool((model.features < -1e-12).any()) != nonneg  # free: the balanced root has mixed signs


@pytest.mark.parametrize("nonneg", BOTH)
@pytest.mark.parametrize(("r", "depth", "n"), [(5, 4, 1), (6, 5, 1), (4, 2, 3), (5, 3, 2)])
def test_naive_srg_point_attains_closed_form(r: int, depth: int, n: int, nonneg: bool) -> None:
    model = models.srg_naive_dufm(_spec(r * (r - 1) // 2, depth, n, 16, nonneg=nonneg))
    expected = theory.dufm_srg_naive_loss(
        r, depth, n, lambda_H=LAM, lambda_W=LAM, nonnegative_features=nonneg
    )
    assert _reference_objective(model) == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize("depth", [2, 3, 4])
def test_antipodal_point_reaches_the_dnc_loss_at_rank_1(depth: int) -> None:
    spec = _spec(2, depth, 3, 5, [0.002, 0.005, 0.003, 0.004][:depth])
    point = models.antipodal_dufm(spec)
    assert _reference_objective(point) == pytest.approx(models.dnc_dufm(spec).objective_value(), rel=1e-12)
    means = point.features.detach()[:, ::3]  # (d_1, 2): one column per class
    assert torch.linalg.matrix_rank(means) == 1 and float(means[:, 0] @ means[:, 1]) < 0
    with pytest.raises(ValueError, match=r"`spec` must have K = 2 classes and free-sign H_1"):
        models.antipodal_dufm(_spec(2, depth, nonneg=True))


def test_dnc_point_is_stationary() -> None:
    model = models.dnc_dufm(_spec(6, 3, 2, 10, [0.003, 0.004, 0.005]))
    grads = torch.autograd.grad(model.objective(), model.parameters())
    assert max(float(g.abs().max()) for g in grads) < 1e-12


def test_width_too_small_for_construction() -> None:
    with pytest.raises(ValueError, match=r"`widths` are too small for this construction: W_3 needs"):
        models.srg_dufm(_spec(10, 4, widths=[8, 8, 8, 8]), 3)  # the readout needs d_4 >= C(5, 3) = 10
    with pytest.raises(ValueError, match=r"too small for this construction: W_1 needs at least 20 x 5"):
        models.srg_dufm(_spec(15, 2, widths=[30, 19]), 3)  # Finding 1 needs d_2 >= C(6, 3) = 20
    with pytest.raises(ValueError, match=r"too small for this construction: W_1 needs at least 10 x 10"):
        models.dnc_dufm(_spec(10, 3, widths=6))


# ------------------------------------------------------------------------- gradient descent
def test_numpy_gd_equals_autograd_gd() -> None:
    start = models.make_relu_dufm(_spec(5, 3, 2, 9, [0.01, 0.02, 0.005], 0.003), seed=1)
    reference = start.perturbed(0.0)
    trace = optimize.minimize(start, method="gd", steps=40, lr=0.3, log_every=10, progress=False)
    assert trace.model is start and trace.method == "gd" and trace.status == "max_steps"
    autograd = optimize.minimize(
        reference, method="sgd", momentum=0.0, steps=40, lr=0.3, log_every=10, progress=False
    )
    ours, theirs = trace.wide(), autograd.wide()
    np.testing.assert_allclose(ours["loss"], theirs["loss"], rtol=1e-11)
    np.testing.assert_allclose(ours["grad_norm"], theirs["grad_norm"], rtol=1e-9)
    for mine, other in zip(start.parameters(), reference.parameters()):
        torch.testing.assert_close(mine.detach(), other.detach(), rtol=1e-10, atol=1e-12)
    assert ours["step"].tolist() == [0, 10, 20, 30, 40] and set(ours["lr"]) == {0.3}
    assert list(trace.table.columns) == list(optimize.COLUMNS)


def test_projected_gd_equals_a_projected_autograd_loop() -> None:
    start = models.make_relu_dufm(_spec(4, 3, 2, 6, nonneg=True), seed=2)
    reference = start.perturbed(0.0)
    optimize.minimize(start, method="gd", steps=25, lr=0.4, log_every=25, progress=False)
    for _ in range(25):
        grads = torch.autograd.grad(reference.objective(), reference.parameters())
        with torch.no_grad():
            for leaf, grad in zip(reference.parameters(), grads):
                leaf -= 0.4 * grad
            reference.features.clamp_(min=0)
    for mine, other in zip(start.parameters(), reference.parameters()):
        torch.testing.assert_close(mine.detach(), other.detach(), rtol=1e-10, atol=1e-12)
    assert (start.features >= 0).all() and (start.features == 0).any()


def test_monitor_rows_reach_the_trace() -> None:
    start = models.make_relu_dufm(_spec(3, 2), seed=0)
    trace = optimize.minimize(
        start,
        method="gd",
        steps=4,
        lr=0.1,
        log_every=2,
        progress=False,
        monitor=lambda m: {(1, "rank"): 3.0, "h_norm": float(m.features.norm())},
    )
    assert trace.table.query("metric == 'rank'")["layer"].tolist() == [1, 1, 1]
    assert trace.wide()["h_norm"].iloc[-1] == pytest.approx(float(start.features.detach().norm()))


@pytest.mark.parametrize("depth", [3, 4])
def test_gd_on_two_classes_reaches_dnc(depth: int) -> None:
    # Súkeník et al. (2023): for K = 2 the global optimum is DNC (n = 3, d = 30, lr 0.5).
    spec = _spec(2, depth, 3)
    trace = optimize.minimize(
        models.make_relu_dufm(spec, seed=1), method="gd", steps=30_000, lr=0.5, log_every=5000, progress=False
    )
    ratio = trace.final_loss / theory.dufm_dnc_loss(2, depth, 3, lambda_H=LAM, lambda_W=LAM)
    assert ratio == pytest.approx(1.0, abs=1e-4)


@pytest.mark.parametrize(("nonneg", "expected"), [(False, 0.98324), (True, 1.12132)])
def test_finding_1_point_and_what_gd_does_near_it(nonneg: bool, expected: float) -> None:
    # K = 15, L = 2: free H_1: the rank-5 point beats DNC and GD stays; H_1 >= 0: 1.12 x L_DNC, and GD
    # leaves it downhill (it returns to DNC only after ~1e5 steps; chapter 32 runs that).
    spec = _spec(15, 2, nonneg=nonneg)
    dnc = theory.dufm_dnc_loss(15, 2, 1, lambda_H=LAM, lambda_W=LAM)
    point = models.srg_dufm(spec, 3)
    assert point.objective_value() / dnc == pytest.approx(expected, abs=1e-5)
    trace = optimize.minimize(
        point.perturbed(0.1, seed=0), method="gd", steps=20_000, lr=0.5, log_every=5000, progress=False
    )
    if nonneg:
        assert trace.final_loss / dnc < expected - 0.02
    else:
        assert trace.final_loss / dnc == pytest.approx(expected, abs=2e-3)


def test_divergence_halves_lr_then_gives_up() -> None:
    start = models.make_relu_dufm(_spec(3, 3, widths=8), seed=0)
    trace = optimize.minimize(
        start.perturbed(0.0), method="gd", steps=200, lr=20.0, log_every=50, progress=False
    )
    wide = trace.wide()
    assert wide["lr"].iloc[-1] < 20.0 and wide["loss"].max() <= wide["loss"].iloc[0]
    with pytest.raises(FloatingPointError, match=r"GD diverged 5 times"):
        optimize.minimize(start, method="gd", steps=200, lr=1e6, log_every=50, progress=False)


def test_nonnegative_model_refuses_autograd_methods() -> None:
    with pytest.raises(ValueError, match=r"`method` must be 'gd' when `nonnegative_features` is True"):
        optimize.minimize(models.make_relu_dufm(_spec(3, 2, nonneg=True)), method="adam", steps=2)


# ------------------------------------------------------------------------------- bad input
@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda: models.make_relu_dufm("spec"), r"`spec` must be an ncbook.spec.UFMSpec, got str"),
        (
            lambda: models.make_relu_dufm(replace(_spec(3, 2), activation="linear")),
            r"`spec` must describe the ReLU",
        ),
        (lambda: models.make_relu_dufm(_spec(3, 2), seed=-1), r"`seed` must be an integer >= 0"),
        (lambda: models.dnc_dufm(_spec(3, 2, lam_h=0.0)), r"`lambda_H` must be a number > 0"),
        (
            lambda: models.dnc_dufm(UFMSpec((1, 2), 2, 4, activation="relu")),
            r"`spec.n_per_class` must be balanced",
        ),
        (lambda: models.srg_dufm(_spec(7, 3), 2), r"`spec` must have K = r\(r-1\)/2 classes"),
        (lambda: models.srg_dufm(_spec(10, 3), 5), r"`s` must be an integer in \[2, 4\]"),
        (lambda: models.srg_naive_dufm(_spec(10, 1)), r"`spec.depth` must be an integer >= 2"),
        (lambda: models.make_relu_dufm(_spec(3, 2)).perturbed(-1.0), r"`std` must be a number >= 0"),
        (
            lambda: models.ReLUDUFM(
                [torch.zeros(2, 2)], -torch.ones(2, 2), torch.tensor([0, 1]), (LAM,), LAM, True
            ),
            r"`features` must be >= 0 when `nonnegative_features` is True",
        ),
        (
            lambda: models.ReLUDUFM(
                [torch.zeros(2, 2)], torch.ones(2, 2), torch.tensor([0, 1]), (LAM,), LAM, 1
            ),
            r"`nonnegative_features` must be True or False, got 1",
        ),
    ],
)
def test_bad_input_raises(call, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        call()
