"""Phase maps (ncbook.theory.phase) against the point-wise closed forms they are built from, and
their optimisation spot checks (ncbook.experiments.phase) on small problems."""

from __future__ import annotations

import math

import numpy as np
import pytest

from ncbook.experiments import phase as checks
from ncbook.theory import (
    ce_minimizer,
    collapse_thresholds,
    dufm_comparison_table,
    mse_minimizer,
    phase,
)


# ----------------------------------------------------------------------------- class sizes
def test_exponential_counts_fall_from_n_max_to_n_max_over_ratio():
    counts = phase.imbalanced_counts(10, 100, 100.0)
    assert counts[0] == 100 and counts[-1] == 1
    assert all(a >= b for a, b in zip(counts, counts[1:]))
    assert phase.imbalanced_counts(6, 30, 1.0) == [30] * 6


def test_step_counts_split_the_classes_in_two():
    assert phase.imbalanced_counts(5, 40, 4.0, "step") == [40, 40, 40, 10, 10]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"ratio": 0.5}, "ratio"),
        ({"ratio": 200.0}, "ratio"),
        ({"shape": "linear"}, "shape"),
        ({"num_classes": 1}, "num_classes"),
        ({"n_max": 0}, "n_max"),
    ],
)
def test_bad_class_sizes_are_named(kwargs, message):
    args = {"num_classes": 4, "n_max": 100, "ratio": 10.0, "shape": "exponential"} | kwargs
    with pytest.raises(ValueError, match=message):
        phase.imbalanced_counts(**args)


# ---------------------------------------------------------------------------------- MSE map
@pytest.mark.parametrize("depth", [1, 2, 3, 6])
def test_collapse_map_matches_mse_minimizer_pointwise(depth):
    ratios, lambdas = [1.0, 3.0, 12.0, 40.0], np.geomspace(1e-3, 0.1, 9)
    grid = phase.mse_collapse_map(ratios, lambdas, depth, 6, 40)
    for row in grid.to_dict("records"):
        counts, lam = phase.imbalanced_counts(6, 40, row["ratio"]), row["lambda"]
        zeros = {rule: int((~mse_minimizer(counts, depth, lambda_W=lam, lambda_H=lam,
                                            rule=rule).active).sum()) for rule in ("global", "code")}
        assert (row["zero_global"], row["zero_code"]) == (zeros["global"], zeros["code"])


def test_collapse_map_counts_grow_with_lambda_and_the_window_is_empty_for_one_layer():
    for depth in (1, 2, 3):
        grid = phase.mse_collapse_map([1.0, 8.0, 40.0], np.geomspace(1e-4, 1.0, 50), depth, 6, 40)
        for _, part in grid.groupby("ratio"):
            assert np.all(np.diff(part.zero_global) >= 0) and np.all(np.diff(part.zero_code) >= 0)
            assert np.all(part.zero_code <= part.zero_global)
        assert grid.window.any() == (depth > 1)


def test_collapse_boundaries_bracket_the_first_and_last_class():
    bounds = phase.mse_collapse_boundaries([1.0, 10.0], 3, 6, 40)
    row = bounds.iloc[1]
    table = collapse_thresholds(phase.imbalanced_counts(6, 40, 10.0), 3)
    assert row.first_global == table.lambda_global.min() and row.all_code == table.lambda_code.max()
    assert row.first_global < row.all_global and row.first_global < row.first_code
    edge = [row.first_global * 0.999, row.first_global]
    below, above = phase.mse_collapse_map([10.0], edge, 3, 6, 40).zero_global
    assert (below, above) == (0, 1)
    balanced = bounds.iloc[0]
    assert balanced.first_global == pytest.approx(balanced.all_global, rel=1e-12)


def test_collapse_map_rejects_a_non_positive_lambda():
    with pytest.raises(ValueError, match="lambdas"):
        phase.mse_collapse_map([1.0], [0.0], 2, 4, 10)


# ----------------------------------------------------------------------------------- CE map
def test_ce_map_losses_are_the_ce_minimizer_values():
    grid = phase.ce_phase_map(5, 6, [1, 2], [1e-3, 0.2])
    for row in grid.to_dict("records"):
        for geometry in ("etf", "orthoplex"):
            lam = row["lambda"]
            best = ce_minimizer(5, 6, row["depth"], lambda_W=lam, lambda_H=lam, geometry=geometry)
            assert row[geometry] == best.loss
        assert row["zero"] == math.log(6)
        assert row["winner"] == min(("zero", "etf", "orthoplex"), key=lambda g: row[g])


def test_ce_map_without_orthoplex_for_odd_k():
    grid = phase.ce_phase_map(5, 5, [2], [1e-3])
    assert "orthoplex" not in grid and "gap" not in grid and grid.winner.iloc[0] == "etf"


@pytest.mark.parametrize("num_classes", [4, 6, 8, 10])
def test_small_lambda_winner_is_garrod_keating_scope(num_classes):
    # 1e-6: the smallest lambda of the chapter's map; 1e-8 and 1e-10 below it
    grid = phase.ce_phase_map(5, num_classes, range(1, 7), [1e-6, 1e-8, 1e-10])
    for row in grid.itertuples():
        assert (row.winner == "orthoplex") == phase.garrod_keating_scope(num_classes, row.depth)
        assert (row.winner == "orthoplex") == (2 ** (2 / (row.depth + 1) - 1) < 1 - 1 / num_classes)


def test_ce_boundaries_separate_the_winners():
    grid = phase.ce_phase_map(10, 4, [1, 2], np.geomspace(1e-5, 1.0, 15))
    edges = phase.ce_phase_boundaries(grid, 10)
    assert edges[["depth", "below", "above"]].values.tolist() == [
        [1, "etf", "zero"], [2, "etf", "orthoplex"], [2, "orthoplex", "zero"]]
    for row in edges.to_dict("records"):
        for factor, expected in ((1 - 1e-6, row["below"]), (1 + 1e-6, row["above"])):
            lam = row["lambda"] * factor
            assert phase.ce_phase_map(10, 4, [row["depth"]], [lam]).winner.iloc[0] == expected


def test_ce_map_rejects_bad_sizes():
    with pytest.raises(ValueError, match="`n`"):
        phase.ce_phase_map(0, 4, [1], [1e-3])
    with pytest.raises(ValueError, match="num_classes"):
        phase.garrod_keating_scope(1, 2)
    with pytest.raises(ValueError, match="rtol"):
        phase.ce_phase_boundaries(phase.ce_phase_map(5, 4, [1], [1e-3]), 5, rtol=0.0)


# ---------------------------------------------------------------------------------- DUFM map
def test_dufm_map_free_variant_matches_the_comparison_table():
    grid = phase.dufm_ratio_map([4, 5, 6], [2, 4], [0.004])
    table = dufm_comparison_table([4, 5, 6], [2, 4], [0.004])
    assert np.allclose(grid.dnc, table.dnc, rtol=0, atol=0)
    assert np.allclose(grid.low_rank, np.minimum(table.srg, table.naive), rtol=0, atol=0)


def test_dufm_map_reproduces_the_two_variants_of_the_sources():
    # K = 10, L = 4: 0.816 (free H1) -> 0.824 (H1 >= 0); K = 15, L = 2: 0.983 -> about 1.12.
    ratios = {flag: phase.dufm_ratio_map([5, 6], [4, 2], [0.004], nonnegative_features=flag)
              .set_index(["K", "depth"]).ratio for flag in (False, True)}
    assert round(ratios[False][10, 4], 3) == 0.816 and round(ratios[True][10, 4], 3) == 0.824
    assert round(ratios[False][15, 2], 3) == 0.983 and round(ratios[True][15, 2], 2) == 1.12
    assert np.all(ratios[True] >= ratios[False] - 1e-12)


def test_dufm_map_is_nan_where_dnc_loses_to_zero():
    assert np.isnan(phase.dufm_ratio_map([5], [4], [0.5]).ratio.iloc[0])


def test_dufm_map_rejects_bad_input():
    with pytest.raises(ValueError, match="rs"):
        phase.dufm_ratio_map([2], [2], [0.004])
    with pytest.raises(ValueError, match="nonnegative_features"):
        phase.dufm_ratio_map([4], [2], [0.004], nonnegative_features="yes")


# ---------------------------------------------------------------------------- spot checks
def test_search_config_rejects_bad_settings():
    for kwargs, message in [({"starts": 0}, "starts"), ({"init_std": (0.0,)}, "init_std"),
                            ({"zero_tol": 0.0}, "zero_tol"), ({"steps": 0}, "steps"), ({"hops": -1}, "hops")]:
        with pytest.raises(ValueError, match=message):
            checks.SearchConfig(**kwargs)


def test_verify_mse_reaches_a_one_layer_minimum():
    found = checks.verify_mse([(4.0, 0.03, 1)], 4, 12, search=checks.SearchConfig(starts=1, hops=0))
    row = found.iloc[0]
    assert row.loss_found == pytest.approx(row.loss_global, rel=1e-6)
    assert row.zero_found == row.zero_global


def test_verify_ce_finds_the_one_layer_etf():
    row = checks.verify_ce([(4, 1, 1e-3)], 3, checks.SearchConfig(starts=1, hops=0)).iloc[0]
    assert row["winner"] == "etf" and row["rank"] == 3
    assert row.found == pytest.approx(row.best, rel=1e-6)


def test_verify_dufm_reports_the_map_next_to_gradient_descent():
    found = checks.verify_dufm([(3, 2, 0.004)], width=6, seeds=1, steps=200)
    row = found.iloc[0]
    assert {"dnc", "low_rank", "found", "found_ratio", "kinds"} <= set(found)
    assert row.found_ratio == pytest.approx(row.found / row.dnc)
    with pytest.raises(ValueError, match="width"):
        checks.verify_dufm([(3, 2, 0.004)], width=0, seeds=1, steps=10)
