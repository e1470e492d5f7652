"""Tests of ncbook.experiments.theorem_checks: the tables chapters 11-15 turn into claims."""

import numpy as np
import pytest

import ncbook.theory as theory
from ncbook.experiments import theorem_checks as tc

SMALL = dict(lambda_W=0.01, lambda_H=0.01)


@pytest.fixture(scope="module")
def balanced():
    return tc.solve_depths([3, 3, 3], [1, 2], 4, starts=2, init_std=(0.5, 1.0), seed=0, **SMALL)


def test_check_depths_accepts_a_list():
    assert tc.check_depths([1, 3]) == (1, 3)


@pytest.mark.parametrize("bad, message", [
    (3, r"`depths` must be a non-empty list of depths"),
    ([], r"`depths` must be a non-empty list of depths"),
    ("12", r"`depths` must be a non-empty list of depths"),
    ([1, 0], r"`depths\[1\]` must be an integer >= 1"),
])
def test_check_depths_rejects(bad, message):
    with pytest.raises(ValueError, match=message):
        tc.check_depths(bad)


def test_check_list_and_check_width():
    assert tc.check_list("lambda_W", (0.1, 0.2)) == [0.1, 0.2]
    assert tc.check_list("seeds", (s for s in range(2))) == [0, 1]  # any iterable but a string
    assert tc.check_width("width", 4, 4) == 4
    for bad in (0.4, [], "ab", b"ab", iter(())):
        with pytest.raises(ValueError, match=r"`sweep_ratios` must be a non-empty list"):
            tc.check_list("sweep_ratios", bad)
    with pytest.raises(ValueError, match=r"`width` must be an integer >= 4, got 3"):
        tc.check_width("width", 3, 4)
    with pytest.raises(ValueError, match=r"`sweep_depths` must be a non-empty list of depths"):
        tc.check_depths(2, name="sweep_depths")


def test_solve_depths_rejects_a_zero_minimizer():
    with pytest.raises(ValueError, match=r"make the minimizer zero at depths \[2\]; lower them"):
        tc.solve_depths([3, 3, 3], [2], 4, lambda_W=1.0, lambda_H=1.0, starts=1)


def test_statement_table_matches_the_closed_form(balanced):
    predictions, runs = balanced
    table = tc.statement_table(predictions, runs, frame="of")
    assert list(table["M"]) == [1, 2]
    np.testing.assert_allclose(table["loss"], table["f_star"], rtol=1e-9)
    assert (table[["nc1", "frame", "nc3", "error", "spectrum_error"]].to_numpy() < 1e-6).all()
    assert table["bias_error"].isna().all()
    # NC3 constant of the balanced bias-free minimizer: ||W|| / ||Hbar|| = N lambda_H (1 + x^M)
    expected = [9 * 0.01 * (1 + p.x[0] ** m) for m, p in predictions.items()]
    np.testing.assert_allclose(table["nc3_ratio"], expected, rtol=1e-6)


def test_statement_table_rejects_an_unknown_frame(balanced):
    with pytest.raises(ValueError, match=r"`frame` must be one of"):
        tc.statement_table(*balanced, frame="simplex")


def test_closed_form_errors_cover_every_layer(balanced):
    errors = tc.closed_form_errors(*balanced)
    assert set(errors.query("M == 2 and quantity == 'W W^T'")["layer"]) == {1, 2}
    assert errors["matrix_error"].max() < 1e-6


def test_class_table_of_an_imbalanced_problem():
    predictions, runs = tc.solve_depths([8, 4, 1], [1], 4, starts=2, init_std=0.5, seed=0, lambda_W=0.1,
                                        lambda_H=0.1)
    classes = tc.class_table(predictions[1], runs[1])
    assert list(classes["active"]) == [True, True, False]  # n_3 = 1 <= N^2 lambda_W lambda_H = 1.69 < n_2
    np.testing.assert_allclose(classes["w_sq"], classes["w_sq_star"], atol=1e-7)
    np.testing.assert_allclose(classes["wh"][:2], classes["wh_star"][:2], atol=1e-7)
    assert np.isnan(classes["ratio"][2])


def test_norm_sweep_rows_and_bad_lambda():
    sweep = tc.norm_sweep([3, 3], 1, [0.01, 1.0], 2, starts=1, seed=0)
    assert len(sweep) == 4
    np.testing.assert_allclose(sweep["w_sq"], sweep["w_sq_star"], atol=1e-7)
    with pytest.raises(ValueError, match=r"`lambdas\[1\]` must be a number > 0.0"):
        tc.norm_sweep([3, 3], 1, [0.01, -1.0], 2)


def test_local_check_of_the_window_points():
    for rule in theory.RULES:  # both are strict local minima inside the window (chapter 15)
        point = theory.mse_minimizer([40, 20, 10, 5], 2, widths=6, rule=rule, lambda_W=0.04, lambda_H=0.04)
        result = tc.local_check(point.point(), seed=1)
        assert result["grad"] < 1e-10
        assert result["after"] == pytest.approx(point.loss, rel=1e-9)


def test_window_gap_is_positive_exactly_inside_the_windows():
    gaps = tc.window_gap([40, 20, 10, 5], 2, np.geomspace(0.005, 0.2, 40), 6)
    assert gaps["in_window"].any() and (~gaps["in_window"]).any()
    assert (gaps.loc[gaps["in_window"], "gap"] > 0).all()
    assert (gaps.loc[~gaps["in_window"], "gap"].abs() < 1e-12).all()


def test_ce_scope_and_summary():
    scope = tc.ce_scope(10, 4, 3, np.geomspace(1e-5, 1.0, 12))
    summary = tc.ce_scope_summary(scope)
    assert summary.loc[0, "below_everywhere"]
    assert summary.loc[0, "advantage_min"] > 0.05
    assert summary.loc[0, "lambda_etf_max"] < 1.0  # the largest lambdas give the zero point
    with pytest.raises(ValueError, match=r"`lambdas\[0\]` must be a number > 0.0"):
        tc.ce_scope(10, 4, 3, [0.0])


@pytest.mark.parametrize("n, k, m, lam, etf, orth", [
    (10, 4, 1, 1e-3, 0.0640522905, None),
    (10, 4, 2, 2e-2, 0.5336693180, 0.5240018997),
    (10, 4, 3, 1e-3, 0.0308518264, 0.0284359616),
    (5, 6, 2, 1e-2, 0.4036132445, 0.3759927156),
])
def test_ce_minima_match_values_derived_without_the_library(n, k, m, lam, etf, orth):
    assert theory.ce_minimizer(n, k, m, lambda_W=lam, lambda_H=lam).loss == pytest.approx(etf, abs=1e-9)
    if orth is not None:
        got = theory.ce_minimizer(n, k, m, lambda_W=lam, lambda_H=lam, geometry="orthoplex").loss
        assert got == pytest.approx(orth, abs=1e-9)


def test_imbalanced_minima_match_values_derived_without_the_library():
    plain = theory.mse_minimizer([40, 20, 10, 5], 1, widths=6, lambda_W=0.03, lambda_H=0.03)
    assert plain.loss == pytest.approx(0.3508524014, abs=1e-10)
    np.testing.assert_allclose(plain.w_norm_sq, [4.07455532, 2.22213595, 0.91227766, 0], atol=1e-8)
    deep = theory.mse_minimizer([40, 20, 10, 5], 3, widths=6, lambda_W=[0.004, 0.008, 0.002], lambda_H=0.006)
    assert deep.loss == pytest.approx(0.069099728941, abs=1e-12)
    np.testing.assert_allclose(deep.tau, [0.01101457, 0.00919253, 0.00762839, 0.00626251], atol=1e-8)


@pytest.mark.parametrize("depth", [1, 2, 3])
@pytest.mark.parametrize("ratio", [0.5, 0.95, 1.1, 1.2, 2.0])
def test_global_minimum_is_a_branch_point(depth, ratio):
    counts = [8, 8, 4, 2]
    lam = tc.lambda_at_ratio(depth, ratio, n_per_class=4, num_samples=sum(counts))
    losses = tc.branch_losses(counts, depth, lam)
    assert 0.5 in losses  # every direction at zero
    assert np.all(np.diff(losses) >= 0) and len(losses) <= 2 ** len(counts)
    f_star = theory.mse_minimizer(counts, depth, lambda_W=lam, lambda_H=lam).loss
    assert np.abs(losses - f_star).min() <= 1e-12
    # The global minimum is the lowest branch point.
    assert losses[0] == pytest.approx(f_star, rel=1e-12, abs=1e-15)


def test_norm_sweep_places_a_stuck_start_on_a_branch_point():
    # M = 2 just above the threshold: zero is the global minimum, yet large random starts stop
    # with some classes on their upper branch (the window's local minima).
    lam = tc.lambda_at_ratio(2, 1.1, n_per_class=6, num_samples=24)
    sweep = tc.norm_sweep([6] * 4, 2, [lam], 6, starts=4, init_std=(0.05, 2.0), seed=0)
    assert (sweep["f_star"] == 0.5).all() and sweep["f"].iloc[0] == pytest.approx(0.5, abs=1e-12)
    assert sweep["stuck"].iloc[0] >= 1
    assert sweep["branch_gap"].max() <= 1e-9
