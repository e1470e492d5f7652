"""Closed forms of paper A (ncbook.theory.linear_mse, linear_ce) against the spec's check numbers
(../shared/theory/paper-a.md) and against formulas re-derived here for M = 1.

The numerical oracle (L-BFGS from random starts) lives in tests/test_ufm_linear.py.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from ncbook.models import DeepLinearUFM
from ncbook.spec import UFMSpec
from ncbook.theory import (
    beta_star,
    ce_minimizer,
    ce_scalar_loss,
    collapse_thresholds,
    direction_objective,
    lambda_for_beta,
    lambda_sweep,
    linear_minimizer,
    mse_minimizer,
    phi,
    phi_max,
)

# Section 2.0(e): thresholds per depth M = 1 .. 9.
BETA_STAR = [1, 0.5, 0.529134, 0.569877, 0.606287, 0.637270, 0.663573, 0.686074, 0.705512]
PHI_MAX = [1, 0.649519, 0.839947, 1.065206, 1.301366, 1.542451, 1.786206, 2.031579, 2.278008]


@pytest.mark.parametrize("depth", range(1, 10))
def test_thresholds_match_spec_table(depth: int) -> None:
    assert beta_star(depth) == pytest.approx(BETA_STAR[depth - 1], abs=1e-6)
    assert phi_max(depth) == pytest.approx(PHI_MAX[depth - 1], abs=1e-6)


@pytest.mark.parametrize("depth", range(2, 8))
def test_thresholds_from_their_definitions(depth: int) -> None:
    # phi_max is the maximum of phi; beta* the largest beta with min_x>0 [1/(1+x^M) + beta x] <= 1.
    x = np.geomspace(1e-3, 1e3, 200_001)
    assert phi_max(depth) == pytest.approx(phi(x, depth).max(), rel=1e-8)
    assert beta_star(depth) == pytest.approx((x ** (depth - 1) / (1 + x**depth)).max(), rel=1e-8)
    below = direction_objective(x, beta_star(depth) * (1 - 1e-6), depth).min()
    above = direction_objective(x, beta_star(depth) * (1 + 1e-6), depth).min()
    assert below < 1 < above


# (n_per_class, depth, lambda_W, lambda_H, options, loss, ||w_k||^2, ||hbar_k||^2, w_k.hbar_k)
SPEC_CASES = [
    # 2.1 balanced, bias-free, d = 6
    ([20] * 4, 1, 0.01, 0.01, {}, 0.1628854382, 3.67213595, 0.1836068, 0.82111456),
    ([20] * 4, 2, 0.01, 0.01, {}, 0.1567368875, 6.2793565, 0.12529322, None),
    ([20] * 4, 3, (0.02, 0.01, 0.005), 0.01, {}, 0.1654359398, 8.22870606, None, None),
    # 2.2 balanced with bias: ||w_k||^2 = (1 - 1/K) times the eigenvalue
    ([20] * 4, 1, 0.01, 0.01, {"bias": True}, 0.122164078650, 0.75 * 3.67213595, None, None),
    ([20] * 4, 2, 0.01, 0.01, {"bias": True}, 0.117552665621, None, None, None),
    ([20] * 4, 3, 0.01, 0.01, {"bias": True}, 0.124076954847, None, None, None),
    ([20] * 4, 2, 0.03, 0.03, {"bias": True}, 0.320591470773, None, None, None),
    # 2.4 imbalanced, M = 1, minority collapse of class 4
    (
        [40, 20, 10, 5], 1, 0.03, 0.03, {}, 0.3508524014,
        [4.07455532, 2.22213595, 0.91227766, 0],
        [0.10186388, 0.1111068, 0.09122777, 0],
        [0.64424376, 0.49688471, 0.28848753, 0],
    ),
    # 2.5 imbalanced, deep
    ([40, 20, 10, 5], 2, 0.01, 0.01, {}, 0.1431464039, None, None, None),
    ([40, 20, 10, 5], 2, 0.04, 0.04, {}, 0.4190671084, None, None, None),
    ([40, 20, 10, 5], 2, 0.04, 0.04, {"rule": "code"}, 0.4216311318, None, None, None),
    ([40, 20, 10, 5], 3, 0.02, 0.02, {}, 0.2778299938, None, None, None),
    ([40, 20, 10, 5], 3, 0.035, 0.035, {}, 0.401383424547, None, None, None),
    ([40, 20, 10, 5], 3, 0.035, 0.035, {"rule": "code"}, 0.403724679424, None, None, None),
    ([40, 20, 10, 5], 3, (0.004, 0.008, 0.002), 0.006, {}, 0.069099728941, None, None, None),
    ([40, 20, 10, 5], 2, 0.01, 0.01, {"widths": 3}, 0.153263015335, None, None, None),
    ([20] * 4, 2, 0.01, 0.01, {"widths": 3}, 0.242552665621, None, None, None),
    # Section 4 table (N = 400, lambda = 5e-4)
    ([100] * 4, 1, 5e-4, 5e-4, {}, 0.0198, 9.8, 0.098, 0.98),
    ([100] * 4, 3, 5e-4, 5e-4, {}, 0.0126290469918, 31.3223, 0.0315223, 0.993655),
    ([100] * 4, 6, 5e-4, 5e-4, {}, 0.0135074082496, 51.4514, 0.0192856, 0.996128),
    ([100] * 4, 9, 5e-4, 5e-4, {}, 0.015843895, 62.7353, 0.0158388, 0.996822),
    ([100] * 4, 1, 5e-4, 5e-4, {"bias": True}, 0.01485, None, None, None),
    ([100] * 4, 3, 5e-4, 5e-4, {"bias": True}, 0.00947178524383, None, None, None),
    ([100] * 4, 6, 5e-4, 5e-4, {"bias": True}, 0.0101305561872, None, None, None),
    (
        [200, 100, 50, 50], 1, 5e-4, 5e-4, {}, 0.0189421356237,
        [13.94214, 9.8, 6.87107, 6.87107], [0.0697107, 0.098, 0.137421, 0.137421],
        [0.985858, 0.98, 0.971716, 0.971716],
    ),
    (
        [200, 100, 50, 50], 3, 5e-4, 5e-4, {}, 0.012218400372,
        [52.88268, 31.3223, 18.50221, 18.50221], [0.018768, 0.031522, 0.052898, 0.052898],
        [0.996232, 0.993655, 0.989306, 0.989306],
    ),
    (
        [200, 100, 50, 50], 6, 5e-4, 5e-4, {}, 0.013220353373,
        [93.48034, 51.45141, 28.24929, 28.24929], [0.010652, 0.019286, 0.034903, 0.034903],
        [0.997865, 0.996128, 0.99297, 0.99297],
    ),
    ([200, 100, 50, 50], 9, 5e-4, 5e-4, {}, 0.015596262, [117.381, 62.7353, 33.4513, 33.4513],
     None, None),
]


@pytest.mark.parametrize("case", SPEC_CASES, ids=lambda c: f"{c[0]}-M{c[1]}-{c[4]}")
def test_spec_check_numbers(case: tuple) -> None:
    counts, depth, lam_w, lam_h, options, loss, w_sq, h_sq, wh = case
    result = mse_minimizer(counts, depth, lambda_W=lam_w, lambda_H=lam_h, **options)
    digits = len(f"{loss:.15g}".split(".")[1].rstrip("0"))  # the spec's own precision
    assert result.loss == pytest.approx(loss, abs=0.6 * 10.0**-digits)
    for got, want in ((result.w_norm_sq, w_sq), (result.h_norm_sq, h_sq), (result.wh, wh)):
        if want is not None:
            np.testing.assert_allclose(got, np.broadcast_to(want, got.shape), rtol=5e-6, atol=1e-6)


def test_unequal_lambdas_balance_every_layer() -> None:
    # 2.5: lambda_W[m] sigma_k(W_m)^2 = tau_k for every layer, and W Hbar diagonal (deep NC3).
    result = mse_minimizer([40, 20, 10, 5], 3, lambda_W=(0.004, 0.008, 0.002), lambda_H=0.006)
    tau = [0.01101457, 0.00919253, 0.00762839, 0.00626251]
    np.testing.assert_allclose(result.tau, tau, rtol=1e-6)
    lam = np.array([0.004, 0.008, 0.002])[:, None]
    np.testing.assert_allclose(lam * result.singular_values**2, np.tile(tau, (3, 1)), rtol=1e-6)
    np.testing.assert_allclose(
        result.logits, np.diag([0.97890258, 0.96424994, 0.93907523, 0.89504731]), atol=1e-8
    )


def test_plain_ufm_matches_its_m1_formulas() -> None:
    # 2.4, re-derived: s_k^2 = (sqrt(n_k lam_H / lam_W) - N lam_H)_+ and f* per class.
    counts, lam_w, lam_h = np.array([31, 17, 9, 4, 2]), 0.02, 0.05
    n = counts.sum()
    result = mse_minimizer(counts.tolist(), 1, lambda_W=lam_w, lambda_H=lam_h, widths=7)
    s_sq = np.maximum(np.sqrt(counts * lam_h / lam_w) - n * lam_h, 0)
    np.testing.assert_allclose(result.w_norm_sq, s_sq, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(result.h_norm_sq, s_sq / (s_sq + n * lam_h) ** 2, rtol=1e-12)
    on = counts > n**2 * lam_w * lam_h
    np.testing.assert_array_equal(result.active, on)
    loss = np.where(on, np.sqrt(counts * lam_w * lam_h) - n * lam_w * lam_h / 2, counts / (2 * n))
    assert result.loss == pytest.approx(loss.sum(), rel=1e-13)


@pytest.mark.parametrize("depth", [2, 3, 5])
def test_deep_collapse_is_a_jump_at_beta_star(depth: int) -> None:
    # Choose the minority class's beta just below / just above beta*_M (two-class problem).
    def result(ratio: float, rule: str = "global"):
        counts = [40, 10]
        # beta_2 = M N c / n_2 with c = (N lam^(M+1))^(1/M): solve for lam.
        c = ratio * beta_star(depth) * counts[1] / (depth * 50)
        lam = (c**depth / 50) ** (1 / (depth + 1))
        return mse_minimizer(counts, depth, lambda_W=lam, lambda_H=lam, rule=rule)

    below, above = result(1 - 1e-9), result(1 + 1e-9)
    assert below.active.tolist() == [True, True] and above.active.tolist() == [True, False]
    assert below.wh[1] == pytest.approx((depth - 1) / depth, rel=1e-6)  # spec table, 2.0(e)
    assert below.loss == pytest.approx(above.loss, rel=1e-8)  # both global at equality
    in_window = result(1.05, rule="code")
    assert in_window.active[1] and in_window.loss > result(1.05).loss


def test_code_rule_keeps_window_classes_and_agrees_elsewhere() -> None:
    window = mse_minimizer([40, 20, 10, 5], 2, lambda_W=0.04, lambda_H=0.04)
    code = mse_minimizer([40, 20, 10, 5], 2, lambda_W=0.04, lambda_H=0.04, rule="code")
    assert window.active.tolist() == [True, False, False, False]
    assert code.active.tolist() == [True, True, False, False]
    assert beta_star(2) < code.beta[1] <= phi_max(2)
    same = [mse_minimizer([40, 20, 10, 5], 3, lambda_W=0.02, lambda_H=0.02, rule=r).loss for r in ("global",
                                                                                                   "code")]
    assert same[0] == same[1]


def test_width_below_k_keeps_largest_classes() -> None:
    result = mse_minimizer([40, 20, 10, 5], 2, lambda_W=0.01, lambda_H=0.01, widths=[3, 5])
    assert result.active.tolist() == [True, True, True, False]
    eig = np.linalg.eigvalsh(mse_minimizer([20] * 4, 2, lambda_W=0.01, lambda_H=0.01, widths=3).w_gram)
    np.testing.assert_allclose(eig, [0, 6.2793565, 6.2793565, 6.2793565], atol=1e-7)


def test_bias_gives_simplex_etf_and_mean_bias() -> None:
    result = mse_minimizer([20] * 4, 2, lambda_W=0.01, lambda_H=0.01, bias=True)
    centring = np.eye(4) - 1 / 4
    np.testing.assert_allclose(result.w_gram, 6.2793565 * centring, atol=1e-7)
    np.testing.assert_allclose(result.output_bias, [0.25] * 4)
    off = result.w_gram[0, 1] / result.w_gram[0, 0]
    assert off == pytest.approx(-1 / 3)


def _objective_and_gradient(point, loss: str = "mse") -> tuple[float, float]:
    model = DeepLinearUFM.from_point(point, loss)
    value = model.objective()
    value.backward()
    return float(value.detach()), max(float(p.grad.abs().max()) for p in model.parameters())


@pytest.mark.parametrize(
    ("counts", "depth", "lam_w", "lam_h", "options"),
    [
        ([40, 20, 10, 5], 3, (0.004, 0.008, 0.002), 0.006, {"widths": [6, 5, 4]}),
        ([40, 20, 10, 5], 2, 0.04, 0.04, {"rule": "code"}),
        ([40, 20, 10, 5], 1, 0.03, 0.03, {"widths": 2}),
        ([20] * 4, 2, 0.01, 0.01, {"bias": True, "widths": [5, 3]}),
        ([30, 20, 10, 5, 5], 3, 0.01, 0.02, {"bias": True}),
        ([7, 7, 7], 4, (0.01, 0.02, 0.03, 0.04), 0.02, {}),
    ],
)
def test_explicit_point_attains_loss_and_is_stationary(counts, depth, lam_w, lam_h, options):
    result = mse_minimizer(counts, depth, lambda_W=lam_w, lambda_H=lam_h, **options)
    value, grad = _objective_and_gradient(result.point())
    assert value == pytest.approx(result.loss, rel=1e-13)
    assert grad < 1e-12
    # The Grams of the point equal the closed forms the result reports.
    point = result.point()
    w = torch.linalg.multi_dot(point.weights[::-1]) if depth > 1 else point.weights[0]
    means = torch.stack([point.features[:, point.labels == k].mean(1) for k in range(len(counts))], 1)
    np.testing.assert_allclose((w @ w.T).numpy(), result.w_gram, atol=1e-12)
    np.testing.assert_allclose((means.T @ means).numpy(), result.h_gram, atol=1e-12)
    np.testing.assert_allclose((w @ means).numpy(), result.logits, atol=1e-12)
    for m in range(1, depth + 1):
        layer = means
        for weight in point.weights[: m - 1]:
            layer = weight @ layer
        tail = torch.linalg.multi_dot(point.weights[m - 1 :][::-1]) if m < depth else point.weights[-1]
        np.testing.assert_allclose((layer.T @ layer).numpy(), result.layer_h_gram(m), atol=1e-12)
        np.testing.assert_allclose((tail @ tail.T).numpy(), result.layer_w_gram(m), atol=1e-11)


# Section 2.3: (K, n, M, lambda, min F_ETF, min F_orth)
CE_CASES = [
    (4, 10, 1, 1e-3, 0.0640522905, 0.07666),
    (4, 10, 1, 5e-2, 1.2129474647, 1.24799),
    (4, 10, 2, 5e-3, 0.1617299449, 0.1618808453),
    (4, 10, 2, 2e-2, 0.5336693180, 0.5240018997),
    (4, 10, 3, 1e-3, 0.0308518264, 0.0284359616),
    (4, 10, 3, 5e-2, 1.0601338, 0.9528068),
    (6, 5, 2, 1e-4, 0.0061256441, 0.0057668598),
    (6, 5, 2, 1e-2, 0.4036132445, 0.3759927156),
]


@pytest.mark.parametrize(("k", "n", "depth", "lam", "etf", "orth"), CE_CASES)
def test_ce_scalar_minima_match_spec(k, n, depth, lam, etf, orth) -> None:
    got_etf = ce_minimizer(n, k, depth, lambda_W=lam, lambda_H=lam).loss
    got_orth = ce_minimizer(n, k, depth, lambda_W=lam, lambda_H=lam, geometry="orthoplex").loss
    assert got_etf == pytest.approx(etf, abs=1e-7 if etf > 0.1 else 1e-9)
    assert got_orth == pytest.approx(orth, abs=1e-5)
    # A brute-force grid cannot beat the reported minimum.
    grid = np.linspace(0, 30, 300_001)
    assert ce_scalar_loss(grid, n, k, depth, lambda_W=lam, lambda_H=lam).min() >= got_etf - 1e-12


def test_ce_small_lambda_order_follows_the_leading_term() -> None:
    # Orthoplex wins as lambda -> 0 iff 2^(p-1) < 1 - 1/K, p = 2/(M+1) (Section 2.3).
    for k, depth in [(4, 1), (4, 2), (6, 1), (6, 2), (4, 3), (8, 2)]:
        p = 2 / (depth + 1)
        wins = 2 ** (p - 1) < 1 - 1 / k
        etf, orth = (ce_minimizer(5, k, depth, lambda_W=1e-7, lambda_H=1e-7,
                                  geometry=g).loss for g in ("etf", "orthoplex"))
        assert (orth < etf) == wins, (k, depth)


@pytest.mark.parametrize(("geometry", "depth"), [("etf", 1), ("etf", 3), ("orthoplex", 2)])
def test_ce_points_attain_loss_and_are_stationary(geometry: str, depth: int) -> None:
    result = ce_minimizer(10, 4, depth, lambda_W=1e-3, lambda_H=2e-3, geometry=geometry, widths=5)
    value, grad = _objective_and_gradient(result.point(), "ce")
    assert value == pytest.approx(result.loss, rel=1e-12)
    assert grad < 1e-7
    assert result.rank == (3 if geometry == "etf" else 2)


def test_ce_zero_is_the_minimum_at_large_lambda() -> None:
    result = ce_minimizer(10, 4, 3, lambda_W=1.0, lambda_H=1.0)
    assert result.a == 0 and result.rank == 0 and result.loss == pytest.approx(math.log(4))


@pytest.mark.parametrize("depth", [1, 2, 3, 6, 9])
@pytest.mark.parametrize("k", [2, 3, 4, 10, 100])
def test_ce_minimizer_is_global_and_stationary_from_tiny_to_large_lambda(k: int, depth: int) -> None:
    # Independent of the search: a dense log grid of a (every minimiser here is below 1e3), and
    # the derivative re-derived from the docstring's formula. The penalty is proportional to a^p,
    # so its slope is p * penalty / a.
    p = 2 / (depth + 1)
    scan = np.concatenate([[0.0], np.geomspace(1e-8, 1e3, 200_001)])
    for geometry in ("etf", "orthoplex") if k % 2 == 0 else ("etf",):
        antipode = 1.0 if geometry == "orthoplex" else 0.0
        for lam in np.geomspace(1e-10, 1e-1, 10):
            where = (k, depth, geometry, lam)
            result = ce_minimizer(5, k, depth, lambda_W=lam, lambda_H=lam, geometry=geometry)
            values = ce_scalar_loss(scan, 5, k, depth, lambda_W=lam, lambda_H=lam, geometry=geometry)
            assert result.loss <= values.min() * (1 + 1e-12), where
            if result.a == 0:
                continue
            a = result.a
            tail = (k - 1 - antipode) * math.exp(-a) + antipode * math.exp(-2 * a)
            fit_slope = -((k - 1 - antipode) * math.exp(-a) + 2 * antipode * math.exp(-2 * a)) / (1 + tail)
            penalty_slope = p * (result.loss - math.log1p(tail)) / a
            assert abs(fit_slope + penalty_slope) <= 1e-6 * penalty_slope, where


@pytest.mark.parametrize(("k", "depth", "lam"), [(4, 2, 0.09354672), (10, 6, 0.05437822)])
def test_ce_minimizer_keeps_a_shallow_minimum_just_below_the_zero_point(k, depth, lam) -> None:
    # lam a relative 1e-7 below where the orthoplex's interior minimum rises to log K = loss(0):
    # it is lower by about 1e-7, less than a coarse grid of a resolves.
    result = ce_minimizer(5, k, depth, lambda_W=lam, lambda_H=lam, geometry="orthoplex")
    scan = np.geomspace(0.3, 30, 400_001)
    best = ce_scalar_loss(scan, 5, k, depth, lambda_W=lam, lambda_H=lam, geometry="orthoplex").min()
    assert best < math.log(k)
    assert result.a > 0 and result.loss <= best * (1 + 1e-12)


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda: mse_minimizer([3, 0, 2], 1, lambda_W=0.1, lambda_H=0.1),
         r"`n_per_class\[1\]` must be an integer >= 1"),
        (lambda: mse_minimizer([3], 1, lambda_W=0.1, lambda_H=0.1), "at least 2 classes"),
        (lambda: mse_minimizer("abc", 1, lambda_W=0.1, lambda_H=0.1), "sequence of class sizes"),
        (lambda: mse_minimizer([3, 2], 0, lambda_W=0.1, lambda_H=0.1),
         "`depth` must be an integer >= 1, got 0"),
        (lambda: mse_minimizer([3, 2], 1, lambda_W=-0.1, lambda_H=0.1),
         "`lambda_W` must be a number >= 0"),
        (lambda: mse_minimizer([3, 2], 1, lambda_W=0.0, lambda_H=0.1),
         r"`lambda_W\[0\]` must be a number > 0"),
        (lambda: mse_minimizer([3, 2], 1, lambda_W=0.1, lambda_H=0.0), "`lambda_H` must be a number > 0"),
        (lambda: linear_minimizer(UFMSpec([3, 2], 1, activation="relu")), "must be a linear UFM"),
        (lambda: linear_minimizer(UFMSpec([3, 2], 1, loss="ce")), "need balanced classes and no bias"),
        (lambda: mse_minimizer([3, 2], 2, lambda_W=(0.1, 0.0), lambda_H=0.1),
         r"`lambda_W\[1\]` must be a number > 0"),
        (lambda: mse_minimizer([3, 2], 2, lambda_W=(0.1,) * 3, lambda_H=0.1), "a number or 2 numbers"),
        (lambda: mse_minimizer([3, 2], 1, lambda_W=0.1, lambda_H=0.0), "`lambda_H` must be a number > 0"),
        (lambda: mse_minimizer([3, 2], 2, lambda_W=0.1, lambda_H=0.1, widths=[3]), "one entry per layer"),
        (lambda: mse_minimizer([3, 2], 1, lambda_W=0.1, lambda_H=0.1, widths=0),
         "`widths` must be an integer >= 1"),
        (lambda: mse_minimizer([3, 2], 1, lambda_W=0.1, lambda_H=0.1, rule="paper"), "`rule` must be one of"),
        (
            lambda: mse_minimizer([3, 2], 2, lambda_W=0.1, lambda_H=0.1).layer_h_gram(3),
            r"`layer` must be an integer in \[1, 2\]",
        ),
        (lambda: ce_minimizer(5, 3, 1, lambda_W=0.1, lambda_H=0.1, geometry="orthoplex"),
         "even `num_classes`"),
        (lambda: ce_minimizer(5, 4, 1, lambda_W=0.1, lambda_H=0.1, widths=2), "widths >= 3"),
        (lambda: ce_minimizer(0, 4, 1, lambda_W=0.1, lambda_H=0.1), "`n` must be an integer >= 1"),
        (lambda: ce_scalar_loss(1.0, 5, 4, 1, lambda_W=0.1, lambda_H=0.1, geometry="cube"),
         "`geometry` must be one of"),
        (lambda: ce_scalar_loss(1.0, 5, 1, 1, lambda_W=0.1, lambda_H=0.1),
         "`num_classes` must be an integer >= 2"),
        (lambda: phi(1.0, 0), "`depth` must be an integer >= 1"),
    ],
)
def test_bad_input_raises(call, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        call()


def test_point_rejects_rank_above_widths() -> None:
    from ncbook.spec import UFMSpec
    from ncbook.theory import balanced_point

    spec = UFMSpec([2, 2, 2], 1, 2, lambda_W=0.1, lambda_H=0.1)
    with pytest.raises(ValueError, match="needs rank 3 but the widths allow only 2"):
        balanced_point(spec, np.eye(3), np.ones(3), np.eye(3), None, torch.float64)


def test_collapse_thresholds_bracket_the_switch_of_each_rule() -> None:
    counts = [40, 20, 10, 5]
    for depth in (1, 2, 3):
        table = collapse_thresholds(counts, depth)
        for row in table.itertuples():
            for rule, lam in (("global", row.lambda_global), ("code", row.lambda_code)):
                before = mse_minimizer(counts, depth, lambda_W=lam * (1 - 1e-6), lambda_H=lam * (1 - 1e-6),
                                       rule=rule)
                after = mse_minimizer(counts, depth, lambda_W=lam * (1 + 1e-6), lambda_H=lam * (1 + 1e-6),
                                      rule=rule)
                assert before.active[row._1] and not after.active[row._1], (depth, rule, row)
        # The window is empty for M = 1 and opens for M >= 2 (beta* < phi_max).
        widths = table["lambda_code"] / table["lambda_global"]
        assert np.allclose(widths, 1.0) if depth == 1 else (widths > 1).all()


def test_lambda_sweep_is_tidy_and_rules_differ_only_in_the_window() -> None:
    table = lambda_sweep([40, 20, 10, 5], 2, [0.01, 0.04])
    columns = ["lambda", "rule", "class", "loss", "w_norm_sq", "h_norm_sq", "wh", "active"]
    assert list(table.columns) == columns
    assert len(table) == 2 * 2 * 4
    losses = table.drop_duplicates(["lambda", "rule"]).set_index(["lambda", "rule"])["loss"]
    assert losses[(0.01, "global")] == losses[(0.01, "code")] == pytest.approx(0.1431464039)
    assert losses[(0.04, "code")] - losses[(0.04, "global")] == pytest.approx(0.4216311318 - 0.4190671084)


def test_lambda_for_beta_inverts_beta() -> None:
    for depth in (1, 2, 4):
        lam = lambda_for_beta(0.3, 7, 31, depth)
        result = mse_minimizer([12, 7, 7, 5], depth, lambda_W=lam, lambda_H=lam)
        assert result.beta[1] == pytest.approx(0.3, rel=1e-12)
    with pytest.raises(ValueError, match="`n_total` must be an integer >= 7"):
        lambda_for_beta(0.3, 7, 6, 1)
    with pytest.raises(ValueError, match="`beta` must be a number > 0"):
        lambda_for_beta(0.0, 7, 31, 1)


def test_linear_minimizer_dispatches_on_the_spec() -> None:
    spec = UFMSpec([10] * 4, 3, 5, lambda_W=1e-3, lambda_H=1e-3, loss="ce")
    assert linear_minimizer(spec, geometry="orthoplex").loss == pytest.approx(0.0284359616, rel=1e-8)
    mse = linear_minimizer(UFMSpec([40, 20, 10, 5], 2, 6, lambda_W=0.04, lambda_H=0.04), rule="code")
    assert mse.loss == pytest.approx(0.4216311318, rel=1e-9) and mse.spec.widths == (6, 6)
