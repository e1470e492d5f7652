"""The deep linear UFM and its solvers (ncbook.models.linear_ufm), and the closed forms of paper A
checked against an independent oracle: float64 L-BFGS on the full objective from random starts.

Two facts of the landscape shape these tests (../shared/theory/paper-a.md, 2.5): for M >= 2
every class at zero and every code-rule point is a strict local minimum, so a single start
may stop above the global value. Hence each case checks (a) no start ever goes below the
closed form (it is a lower bound) and (b) the best start reaches it.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import torch
from reference import assert_matches_reference

from ncbook.metrics.layerwise import layer_table
from ncbook.models import LBFGS, DeepLinearUFM, classifier_tails, make_deep_linear_ufm, solve
from ncbook.optimize import MinimizeConfig, minimize
from ncbook.spec import UFMSpec
from ncbook.theory import beta_star, ce_minimizer, mse_minimizer

REGIMES = {"below": 0.5, "near": 0.95, "window": 1.05, "above": 1.5}  # beta_min / beta*_M


def random_case(seed: int, k: int, depth: int, regime: str, bias: bool, narrow: bool, balanced: bool):
    """Class sizes, unequal lambdas and widths with the smallest class at beta = ratio * beta*_M."""
    rng = np.random.default_rng(seed)
    counts = (
        np.full(k, int(rng.integers(3, 10))) if balanced else np.sort(rng.integers(3, 13, size=k))[::-1]
    )
    spread = rng.uniform(0.5, 2.0, size=depth + 1)  # lambda_W[m] = s u_m, lambda_H = s u_M
    n = counts.sum()
    # beta_K = M N c / n_K with c = (N s^(M+1) prod u)^(1/M): solve for the common scale s.
    c = REGIMES[regime] * beta_star(depth) * counts[-1] / (depth * n)
    s = (c**depth / (n * spread.prod())) ** (1 / (depth + 1))
    widths = [k - 1 if narrow else k + 1] * depth
    return [int(v) for v in counts], depth, tuple(s * spread[:depth]), float(s * spread[depth]), bias, widths


def measured(model: DeepLinearUFM) -> dict[str, np.ndarray]:
    """Spectra of W W^T and Hbar^T Hbar and singular values of each W_m, from a model."""
    k = model.num_classes
    w = model.end_to_end().detach()
    means = torch.stack([model.features.detach()[:, model.labels == c].mean(1) for c in range(k)], 1)
    return {
        "w": np.linalg.eigvalsh((w @ w.T).numpy()),
        "h": np.linalg.eigvalsh((means.T @ means).numpy()),
        "layers": np.stack([_top(torch.linalg.svdvals(wm.detach()).numpy(), k) for wm in model.weights]),
    }


def _top(values: np.ndarray, k: int) -> np.ndarray:
    return np.sort(np.pad(values, (0, max(0, k - len(values)))))[::-1][:k]


def assert_matches_closed_form(case: tuple, starts: int, scales: tuple[float, ...] = (0.5,)) -> None:
    counts, depth, lam_w, lam_h, bias, widths = case
    theory = mse_minimizer(counts, depth, lambda_W=lam_w, lambda_H=lam_h, bias=bias, widths=widths)
    result = solve(UFMSpec(counts, depth, widths, lambda_W=lam_w, lambda_H=lam_h, bias=bias), starts=starts,
                   init_std=scales, track=False)
    assert min(result.final_losses) >= theory.loss * (1 - 1e-12)  # never below the closed form
    assert result.loss == pytest.approx(theory.loss, rel=1e-9)
    got = measured(result.model)
    # Scales for the absolute tolerances; an all-zero minimizer leaves ~1e-60 in L-BFGS's output.
    scale_w, scale_h = max(theory.w_gram.trace(), 1e-12), max(theory.h_gram.trace(), 1e-12)
    np.testing.assert_allclose(got["w"], np.linalg.eigvalsh(theory.w_gram), atol=1e-6 * scale_w)
    np.testing.assert_allclose(got["h"], np.linalg.eigvalsh(theory.h_gram), atol=1e-6 * scale_h)
    want = np.sort(theory.singular_values, axis=1)[:, ::-1]
    np.testing.assert_allclose(got["layers"], want, atol=1e-6 * max(want.max(), 1e-3))


# (seed, K, M, regime, bias, widths below K, balanced, starts). Deterministic; starts alternate
# plain random inits (which find collapsed minima) and continuation in lambda (which finds the
# non-zero minima near a threshold), see ncbook.models.solve.
FAST_CASES = [
    (0, 3, 1, "near", False, False, False, 1),
    (1, 4, 1, "above", False, True, False, 1),
    (2, 5, 1, "near", True, False, False, 1),
    (3, 6, 1, "below", False, False, True, 1),
    (4, 3, 2, "near", False, False, True, 2),
    (5, 4, 2, "window", False, False, False, 1),
    (6, 5, 2, "below", True, True, True, 2),
    (7, 6, 2, "near", False, True, False, 2),
    (21, 3, 2, "above", True, True, False, 1),
    (8, 4, 3, "window", False, False, True, 3),
    (11, 4, 3, "below", True, True, True, 2),
    (13, 4, 4, "near", False, False, True, 2),
]


@pytest.mark.parametrize("spec", FAST_CASES, ids=lambda s: "-".join(map(str, s[1:7])))
def test_lbfgs_reaches_closed_form(spec: tuple) -> None:
    seed, *shape, starts = spec
    assert_matches_closed_form(random_case(seed, *shape), starts)


SLOW_CASES = [
    (10, 5, 3, "below", False, False, False),
    (12, 3, 4, "below", False, False, False),
    (14, 5, 4, "window", False, True, False),
    (16, 6, 4, "below", True, False, False),
    (17, 3, 3, "window", True, False, False),
    (22, 5, 2, "near", False, False, False),
    (24, 6, 3, "near", True, False, True),
    (15, 6, 3, "above", False, False, False),
    (20, 6, 2, "window", False, False, False),
    (23, 4, 4, "below", False, True, False),
]


@pytest.mark.slow
@pytest.mark.parametrize("spec", SLOW_CASES, ids=lambda s: "-".join(map(str, s[1:])))
def test_lbfgs_reaches_closed_form_more_cases(spec: tuple) -> None:
    assert_matches_closed_form(random_case(*spec), 12, (0.5, 0.5, 1.0, 1.0, 2.0, 2.0))


@pytest.mark.parametrize("rule", ["global", "code"])
def test_window_points_are_strict_local_minima(rule: str) -> None:
    # 2.5: inside the window both the global point and the code-rule point are local minima.
    theory = mse_minimizer([40, 20, 10, 5], 2, lambda_W=0.04, lambda_H=0.04, widths=6, rule=rule)
    model = DeepLinearUFM.from_point(theory.point(), noise=1e-3)
    assert float(model.objective().detach()) > theory.loss * (1 + 1e-9)  # the kick moved it
    minimize(model, method="lbfgs", steps=20, lr=1.0)
    assert float(model.objective().detach()) == pytest.approx(theory.loss, rel=1e-10)
    assert DeepLinearUFM.from_point(theory.point()).gradient_norm() < 1e-12


def test_solve_reaches_spec_window_value_and_code_point_is_higher() -> None:
    # Spec 2.5, M = 2, lambda = 0.04: global 0.4190671084 < code-rule point 0.4216311318.
    result = solve(UFMSpec([40, 20, 10, 5], 2, 6, lambda_W=0.04, lambda_H=0.04), starts=3, init_std=0.5,
                   track=False)
    assert result.loss == pytest.approx(0.4190671084, abs=1e-10)
    assert mse_minimizer([40, 20, 10, 5], 2, lambda_W=0.04, lambda_H=0.04,
                         rule="code").loss > result.loss + 2e-3


def test_ce_m1_lbfgs_reaches_etf() -> None:
    # Section 2.3: for M = 1 the simplex ETF is the global minimizer (K = 4, n = 10).
    etf = ce_minimizer(10, 4, 1, lambda_W=5e-3, lambda_H=5e-3)
    result = solve(UFMSpec([10] * 4, 1, 5, lambda_W=5e-3, lambda_H=5e-3, loss="ce"), starts=2, init_std=0.5,
                   track=False)
    assert result.loss == pytest.approx(etf.loss, rel=1e-8)
    logits = result.model.end_to_end().detach() @ result.model.features.detach()[:, ::10]
    np.testing.assert_allclose(logits.numpy(), etf.logits, atol=1e-4)


@pytest.mark.slow
def test_ce_m3_lbfgs_beats_etf_with_orthoplex() -> None:
    # Section 2.3 (our finding): K = 4, M = 3, lambda = 1e-3: the orthoplex (0.0284359616) is
    # below the ETF (0.0308518264), and L-BFGS finds it.
    orth = ce_minimizer(10, 4, 3, lambda_W=1e-3, lambda_H=1e-3, geometry="orthoplex")
    spec = UFMSpec([10] * 4, 3, 5, lambda_W=1e-3, lambda_H=1e-3, loss="ce")
    result = solve(spec, starts=4, init_std=(0.5, 1.0), track=False)
    assert result.loss == pytest.approx(orth.loss, rel=1e-6)
    assert result.loss < ce_minimizer(10, 4, 3, lambda_W=1e-3, lambda_H=1e-3).loss


def test_ce_m3_etf_is_a_local_minimum() -> None:
    etf = ce_minimizer(10, 4, 3, lambda_W=1e-3, lambda_H=1e-3, widths=5)
    assert DeepLinearUFM.from_point(etf.point(), "ce").gradient_norm() < 1e-7
    model = DeepLinearUFM.from_point(etf.point(), "ce", noise=1e-3)
    minimize(model, method="lbfgs", steps=30, lr=1.0)
    assert float(model.objective().detach()) == pytest.approx(etf.loss, rel=1e-8)


def final_values(model: DeepLinearUFM, reference=None) -> dict[str, float]:
    """``model.layer_table`` as ``{"metric@layer": value}``."""
    table = model.layer_table(reference)
    return {f"{k}@{m}": v for m, k, v in zip(table["layer"], table["metric"], table["value"])}


def test_layer_table_on_exact_points() -> None:
    # Balanced bias-free: OF everywhere; with bias: ETF; imbalanced: the predicted GOF, not the OF.
    of = mse_minimizer([20] * 4, 2, lambda_W=0.01, lambda_H=0.01, widths=6)
    got = final_values(DeepLinearUFM.from_point(of.point()), of)
    for key in ("nc2_of@1", "nc2_of@2", "nc2_of_w@1", "nc2_of_w@2", "nc3_of@1", "nc2_pred_w@2", "nc2_pred@2",
                "nc3_pred@1", "nc3_pred_sub@2", "nc3_sub@1"):
        assert got[key] < 1e-12, key
    assert got["nc1@1"] < 1e-20 and got["nc2_etf_w@1"] == pytest.approx(math.sqrt(2 - 2 * math.sqrt(3 / 4)))
    etf = mse_minimizer([20] * 4, 3, lambda_W=0.01, lambda_H=0.01, bias=True)
    got = final_values(DeepLinearUFM.from_point(etf.point()), etf)
    assert max(got[f"nc2_etf{g}@{m}"] for g in ("", "_w") for m in (1, 2, 3)) < 1e-12
    gof = mse_minimizer([200, 100, 50, 50], 3, lambda_W=5e-4, lambda_H=5e-4)
    got = final_values(DeepLinearUFM.from_point(gof.point()), gof)
    assert max(got[f"nc2_pred{g}@{m}"] for g in ("", "_w") for m in (1, 2, 3)) < 1e-12
    assert got["nc2_of_w@1"] > 0.1  # the OF metric does not vanish under imbalance (Section 4)


def test_layer_table_nan_where_undefined() -> None:
    collapsed = mse_minimizer([40, 20, 10, 5], 2, lambda_W=0.04, lambda_H=0.04)  # three classes at zero
    got = final_values(DeepLinearUFM.from_point(collapsed.point()))
    assert math.isnan(got["nc1@1"]) and got["nc2_of_w@1"] == pytest.approx(1.0)
    zero = make_deep_linear_ufm(UFMSpec([3, 3], 1, 2, lambda_W=0.1, lambda_H=0.1))
    with torch.no_grad():
        zero.features.zero_()
    assert math.isnan(final_values(zero)["nc2_of@1"])


def test_solve_history_is_tidy_and_best_start_is_kept() -> None:
    theory = mse_minimizer([6, 4, 3], 2, lambda_W=0.01, lambda_H=0.02)
    config = MinimizeConfig("lbfgs", steps=4, lr=1.0, log_every=2)
    result = solve(UFMSpec([6, 4, 3], 2, 4, lambda_W=0.01, lambda_H=0.02), config=config, starts=2,
                   reference=theory)
    history = result.history
    assert list(history.columns) == ["start", "step", "layer", "metric", "value"]
    assert set(history["start"]) == {0, 1} and set(history["step"]) == {0, 2, 4}
    assert set(history["layer"]) == {0, 1, 2}
    assert {"loss", "nc1", "nc2_of", "nc2_etf", "nc2_of_w", "nc2_etf_w", "nc2_pred", "nc2_pred_w",
            "nc3_pred"} \
        <= set(history["metric"])
    assert result.loss == min(result.final_losses)
    assert float(result.model.objective()) == pytest.approx(result.loss, rel=1e-12)
    assert not any(p.requires_grad for p in result.model.parameters())
    assert set(result.final_metrics()) >= {"loss", "nc1@1", "nc2_pred_w@2", "nc3_of@1"}
    untracked = solve(UFMSpec([6, 4, 3], 1, 4, lambda_W=0.01, lambda_H=0.02), config=config, starts=1,
                      track=False).history
    assert set(untracked["metric"]) == {"loss", "grad_norm", "seconds"} and set(untracked["layer"]) == {0}


def test_continuation_finds_what_plain_starts_miss_and_hops_keep_the_best() -> None:
    # Spec 2.5 window (M = 2, lambda = 0.04): from a small init a plain start collapses classes,
    # the continuation start grows every direction and lands on the code-rule point.
    plain = solve(UFMSpec([40, 20, 10, 5], 2, 6, lambda_W=0.04, lambda_H=0.04), starts=1, init_std=0.5,
                  track=False)
    both = solve(UFMSpec([40, 20, 10, 5], 2, 6, lambda_W=0.04, lambda_H=0.04), starts=2, init_std=0.5,
                 track=False)
    code = mse_minimizer([40, 20, 10, 5], 2, lambda_W=0.04, lambda_H=0.04, rule="code").loss
    assert plain.final_losses[0] == pytest.approx(0.4190671084, abs=1e-10)
    assert both.final_losses[1] == pytest.approx(code, rel=1e-10)
    config = MinimizeConfig("lbfgs", steps=5, lr=1.0, log_every=5)
    hopped = solve(UFMSpec([6, 4, 3], 2, 4, lambda_W=0.05, lambda_H=0.05), config=config, starts=1, hops=2,
                   track=False)
    assert sorted(set(hopped.history["step"])) == [0, 5, 10, 15]
    losses = hopped.history.query("metric == 'loss'").set_index("step")["value"]
    assert hopped.loss <= losses[5] and hopped.loss == pytest.approx(losses.min())  # never worse


def test_authors_sgd_recipe_runs() -> None:
    config = MinimizeConfig("sgd", steps=200, lr=0.1, momentum=0.9, log_every=100)
    result = solve(UFMSpec([10] * 4, 1, 8, lambda_W=5e-4, lambda_H=5e-4), config=config, starts=1,
                   init_std=0.1, track=False)
    assert isinstance(result.history, pd.DataFrame)
    assert result.loss < 0.1  # from ~0.5 at the init; the closed form is 0.0098+


def test_from_point_matches_objective_and_make_validates() -> None:
    theory = mse_minimizer([5, 3], 1, lambda_W=0.05, lambda_H=0.05)
    model = DeepLinearUFM.from_point(theory.point())
    assert float(model.objective().detach()) == pytest.approx(theory.loss, rel=1e-13)
    assert model.depth == 1 and model.num_classes == 2


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda: solve(UFMSpec([3, 3], 1, 2, lambda_W=0.1, lambda_H=0.1), starts=0),
         "`starts` must be an integer >= 1"),
        (lambda: solve(UFMSpec([3, 3], 1, 2, lambda_W=0.1, lambda_H=0.1), init_std=-1.0),
         "`init_std` must be a number > 0"),
        (lambda: solve(UFMSpec([3, 3], 1, 2, lambda_W=0.1, lambda_H=0.1), hops=-1),
         "`hops` must be an integer >= 0"),
        (lambda: solve(UFMSpec([3, 3], 1, 2, lambda_W=0.1, lambda_H=0.1), kick=0.0),
         "`kick` must be a number > 0"),
        (
            lambda: solve(UFMSpec([3, 3], 1, 2, lambda_W=0.1, lambda_H=0.1), starts=2, continuation=(0.0,)),
            r"`continuation\[0\]` must be a number > 0",
        ),
        (
            lambda: DeepLinearUFM.from_point(mse_minimizer([3, 3], 1, lambda_W=0.1, lambda_H=0.1).point(),
                                             noise=-1),
            "`noise` must be a number >= 0",
        ),
        (lambda: make_deep_linear_ufm(UFMSpec([3, 0], 1, 2, lambda_W=0.1, lambda_H=0.1)),
         r"`n_per_class\[1\]`"),
        (lambda: make_deep_linear_ufm(UFMSpec([3], 1, 2, lambda_W=0.1, lambda_H=0.1)), "at least 2 classes"),
        (lambda: make_deep_linear_ufm(UFMSpec([3, 3], 0, 2, lambda_W=0.1, lambda_H=0.1)),
         "`depth` must be an integer >= 1"),
        (lambda: make_deep_linear_ufm(UFMSpec([3, 3], 2, [2], lambda_W=0.1, lambda_H=0.1)),
         "one entry per layer"),
        (lambda: make_deep_linear_ufm(UFMSpec([3, 3], 1, 2, lambda_W=-0.1, lambda_H=0.1)),
         "`lambda_W` must be a number >= 0"),
        (lambda: make_deep_linear_ufm(UFMSpec([3, 3], 1, 2, lambda_W=0.1, lambda_H=0.1, loss="hinge")),
         "`loss` must be one of"),
        (lambda: make_deep_linear_ufm(UFMSpec([3, 3], 1, activation="relu")), "activation='linear'"),
        (lambda: make_deep_linear_ufm(UFMSpec([3, 3], 1), init_std=0.0), "`init_std` must be a number > 0"),
        (
            lambda: DeepLinearUFM.from_point(mse_minimizer([3, 3], 1, lambda_W=0.1, lambda_H=0.1).point(),
                                             "l1"),
            "`loss` must be one of",
        ),
    ],
)
def test_bad_input_raises(call, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        call()


def test_default_solver_is_float64_lbfgs() -> None:
    assert LBFGS.method == "lbfgs"
    model = make_deep_linear_ufm(UFMSpec([3, 3], 1, 2, lambda_W=0.1, lambda_H=0.1))
    assert model.features.dtype == torch.float64


# ------------------------------------------------- the per-layer path against the float64 reference
def _as_numpy(model: DeepLinearUFM):
    with torch.no_grad():
        features = [h.T.double().numpy() for h in model.layer_features()]
        tails = [t.double().numpy() for t in classifier_tails(model.weights)]
    return features, tails, model.labels.numpy()


@pytest.mark.parametrize(("counts", "depth", "bias"), [([5, 4, 3], 3, False), ([6, 6, 6, 6], 2, True)])
def test_layer_table_matches_the_brute_force_reference_at_random_points(counts, depth, bias) -> None:
    spec = UFMSpec(counts, depth, [7, 6, 5][:depth], lambda_W=0.01, lambda_H=0.02, bias=bias)
    model = make_deep_linear_ufm(spec, init_std=0.7, seed=3)
    reference = mse_minimizer(counts, depth, lambda_W=0.01, lambda_H=0.02, bias=bias, widths=spec.widths)
    features, tails, labels = _as_numpy(model)
    table = model.layer_table(reference)
    compared = assert_matches_reference(table, features, labels, len(counts), tails, reference)
    assert compared == depth * 13  # nc1, 2 x nc2, 2 x nc2_w, 4 x nc3, 4 x pred per layer


COLLAPSED = mse_minimizer([40, 20, 10, 5], 2, lambda_W=0.04, lambda_H=0.04)  # three classes at zero


def test_layer_table_matches_the_reference_at_a_collapsed_minimizer() -> None:
    # Minority collapse: NaN where the reference has no direction (NC1 with rank < K-1), too.
    model = DeepLinearUFM.from_point(COLLAPSED.point())
    features, tails, labels = _as_numpy(model)
    compared = assert_matches_reference(model.layer_table(COLLAPSED), features, labels, 4, tails, COLLAPSED,
                                        atol=1e-10)
    assert compared == 2 * 13


def test_nc3_with_collapsed_classes_follows_its_formula() -> None:
    model = DeepLinearUFM.from_point(COLLAPSED.point())
    features, tails, labels = _as_numpy(model)
    table = model.layer_table(keys=["nc3", "nc3_sub"])
    assert assert_matches_reference(table, features, labels, 4, tails, atol=1e-10) == 4


def test_layer_table_of_a_key_subset_is_bit_identical_to_the_full_table() -> None:
    spec = UFMSpec([5, 4, 3], 3, [7, 6, 5], lambda_W=0.01, lambda_H=0.02, bias=True)
    model = make_deep_linear_ufm(spec, init_std=0.7, seed=3)
    reference = mse_minimizer([5, 4, 3], 3, lambda_W=0.01, lambda_H=0.02, bias=True, widths=spec.widths)
    keys = ["nc3_pred_sub", "nc1", "nc2_of_w", "nc3_sub", "nc2_pred", "means_error"]
    full = model.layer_table(reference).set_index(["layer", "metric"])["value"]
    subset = model.layer_table(reference, keys)
    assert list(subset["metric"]) == keys * 3
    assert subset["value"].tolist() == [full[(m, key)] for m, key in zip(subset["layer"], subset["metric"])]


def test_layer_table_rejects_bad_arguments() -> None:
    h = torch.randn(6, 3, dtype=torch.float64)
    labels = torch.tensor([0, 0, 1, 1, 2, 2])
    with pytest.raises(ValueError, match=r"`classifiers` needs one entry per layer \(1\), got 2"):
        layer_table([h], labels, 3, classifiers=[torch.eye(3), torch.eye(3)])
    with pytest.raises(ValueError, match=r"`keys` has unknown metric\(s\) \['nc2_pred'\]"):
        layer_table([h], labels, 3, keys=["nc1", "nc2_pred"])  # PRED_KEYS need a reference
