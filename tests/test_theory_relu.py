"""Paper B closed forms (ncbook.theory.relu, relu_srg) against values computed independently when
they were derived, and against brute-force oracles written here independently of the library;
both H_1 variants (free sign, H_1 >= 0)."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

from ncbook import theory

LAM = 0.004


# ------------------------ values computed independently when the formulas were derived
@pytest.mark.parametrize(
    ("K", "depth", "n", "expected"),
    [
        (2, 3, 1, 0.0159678710),
        (2, 4, 5, 0.0275332677),
        (10, 4, 1, 0.0991798746),
        (10, 4, 5, 0.1363961766),
        (15, 5, 5, 0.2321222630),
        (15, 2, 1, 0.088162),  # the L = 2 caveat, Section 2.4
    ],
)
def test_dnc_loss_matches_reference_table(K: int, depth: int, n: int, expected: float) -> None:
    digits = len(str(expected).split(".")[1])
    assert theory.dufm_dnc_loss(K, depth, n, lambda_H=LAM, lambda_W=LAM) == pytest.approx(
        expected, abs=10**-digits
    )


@pytest.mark.parametrize(("r", "depth", "expected"), [(5, 4, 0.0903502056), (6, 5, 0.1356451963)])
def test_naive_srg_loss_matches_reference_table(r: int, depth: int, expected: float) -> None:
    assert theory.dufm_srg_naive_loss(r, depth, 1, lambda_H=LAM, lambda_W=LAM) == pytest.approx(
        expected, abs=1e-10
    )


@pytest.mark.parametrize(
    ("r", "s", "depth", "expected"),
    [(5, 3, 4, 0.0809113322), (6, 3, 2, 0.0866844560), (5, 3, 3, 0.072894), (6, 3, 3, 0.101936)],
)
def test_clique_srg_loss_matches_reference_table(r: int, s: int, depth: int, expected: float) -> None:
    digits = len(str(expected).split(".")[1])
    got = theory.dufm_srg_loss(r, s, depth, 1, lambda_H=LAM, lambda_W=LAM)
    assert got == pytest.approx(expected, abs=10**-digits)


@pytest.mark.parametrize(
    ("n", "naive", "triangle"),
    [(1, 0.911, 0.816), (5, 0.911, 0.815), (50, 0.912, 0.815), (100, 0.912, 0.814)],
)
def test_srg_to_dnc_ratio_vs_n(n: int, naive: float, triangle: float) -> None:
    dnc = theory.dufm_dnc_loss(10, 4, n, lambda_H=LAM, lambda_W=LAM)
    assert theory.dufm_srg_naive_loss(5, 4, n, lambda_H=LAM, lambda_W=LAM) / dnc == pytest.approx(
        naive, abs=6e-4
    )
    assert theory.dufm_srg_loss(5, 3, 4, n, lambda_H=LAM, lambda_W=LAM) / dnc == pytest.approx(
        triangle, abs=6e-4
    )


# C_SRG / K for the best s (rows r = 4..9, columns L = 2, 3, 4, 5, 6, 8, 12).
REFERENCE_CONSTANTS = {
    4: ([1.000, 1.056, 0.963, 0.906, 0.867, 0.818, 0.768], 2),
    5: ([1.062, 0.923, 0.817, 0.753, 0.710, 0.657, 0.604], 3),
    6: ([0.987, 0.864, 0.740, 0.668, 0.621, 0.563, 0.507], 3),
    7: ([1.051, 0.819, 0.684, 0.607, 0.557, 0.497, 0.440], 4),
    8: ([0.986, 0.772, 0.633, 0.554, 0.504, 0.444, 0.388], 4),
    9: ([1.019, 0.740, 0.596, 0.515, 0.465, 0.405, 0.349], 5),
}
DEPTHS = [2, 3, 4, 5, 6, 8, 12]


def test_constant_table_matches_reference() -> None:
    table = theory.srg_constant_table(REFERENCE_CONSTANTS, DEPTHS)
    for r, (ratios, best_s) in REFERENCE_CONSTANTS.items():
        rows = table[table.r == r].sort_values("depth")
        assert rows.K.tolist() == [r * (r - 1) // 2] * len(DEPTHS)
        np.testing.assert_allclose(rows.ratio, ratios, atol=6e-4)
        assert set(rows.s) == {best_s}


# ------------------------------------------------------------ independent numerical oracles
def _incidence(r: int) -> np.ndarray:
    edges = [(v, w) for v in range(r) for w in range(v + 1, r)]
    return np.array([[float(v in e) for e in edges] for v in range(r)])


def _readout(r: int, s: int) -> np.ndarray:
    subsets = itertools.combinations(range(r), s)
    return np.array([[0.5 if v in S else -0.5 for v in range(r)] for S in subsets])


@pytest.mark.parametrize(("r", "s"), [(3, 2), (4, 2), (4, 3), (5, 2), (5, 3), (6, 3), (6, 4), (7, 4), (8, 5)])
@pytest.mark.parametrize("depth", [2, 3, 5])
def test_srg_constant_equals_numeric_spectra(r: int, s: int, depth: int) -> None:
    B, Fr = _incidence(r), _readout(r, s)
    C = np.maximum(Fr @ B, 0)
    eig = np.linalg.eigvalsh(C.T @ C)
    trace = math.inf if eig.min() < 1e-9 else float(np.sum(1 / eig))
    if depth == 2:
        upstream = np.linalg.svd(Fr @ B, compute_uv=False).sum() ** 2
    else:
        nuclear = np.linalg.svd(B, compute_uv=False).sum()
        upstream = nuclear**2 * r ** (depth - 3) * Fr.shape[0] * r / 4
    expected = (upstream * trace) ** (1 / (depth + 1))
    got = theory.srg_constant(r, s, depth)
    assert got == pytest.approx(expected, rel=1e-12) if math.isfinite(expected) else got == math.inf


def test_incidence_and_readout_structure() -> None:
    for r in (3, 5, 7):
        B = theory.srg_incidence(r)
        np.testing.assert_array_equal(B, _incidence(r))
        # B^T B = 2 I + A, A the adjacency of the triangular graph T(r) = srg(K, 2(r-2), r-2, 4).
        adjacency = B.T @ B - 2 * np.eye(B.shape[1])
        assert set(adjacency.sum(1)) == {2 * (r - 2)}
    readout, inclusion = theory.srg_readout(5, 3)
    pre = readout @ theory.srg_incidence(5)
    assert set(np.unique(pre)) == {-1.0, 0.0, 1.0}
    np.testing.assert_array_equal(inclusion, np.maximum(pre, 0))
    assert inclusion.shape == (10, 10) and set(inclusion.sum(1)) == {3.0}


def _brute_dnc(K: int, depth: int, n: int, lam_h: float, lam_w: list[float]) -> float:
    lbar = (n * lam_h * np.prod(lam_w)) ** (1 / (depth + 1))
    c = np.linspace(0, 1, 2_000_001)
    values = 0.5 * (1 - c) ** 2 + (depth + 1) / 2 * K * lbar * c ** (2 / (depth + 1))
    return float(values.min())


@pytest.mark.parametrize(
    ("K", "depth", "n", "lam_h", "lam_w"),
    [
        (2, 1, 1, 0.01, [0.02]),
        (3, 2, 4, 0.001, [0.01, 0.002]),
        (10, 4, 1, 0.02, [0.02] * 4),
        (10, 4, 1, 0.03, [0.03] * 4),
        (6, 6, 2, 1e-4, [1e-3, 1e-2, 1e-3, 1e-3, 1e-2, 1e-3]),
    ],
)
def test_dnc_loss_equals_grid_minimum(K, depth, n, lam_h, lam_w) -> None:
    assert theory.dufm_dnc_loss(K, depth, n, lambda_H=lam_h, lambda_W=lam_w) == pytest.approx(
        _brute_dnc(K, depth, n, lam_h, lam_w), abs=1e-10
    )


def test_dnc_only_depends_on_geometric_mean() -> None:
    per_layer = theory.dufm_dnc_loss(6, 3, 2, lambda_H=0.001, lambda_W=[0.01, 0.002, 0.004])
    lbar = theory.dufm_lambda_bar(3, 2, lambda_H=0.001, lambda_W=[0.01, 0.002, 0.004])
    assert per_layer == pytest.approx(theory.dufm_dnc_loss(6, 3, 1, lambda_H=lbar, lambda_W=lbar), rel=1e-13)


@pytest.mark.parametrize(("K", "depth", "expected"), [(10, 4, 0.02104), (2, 4, 0.10518)])
def test_dnc_threshold_and_jump(K: int, depth: int, expected: float) -> None:
    crit = theory.dufm_dnc_threshold(K, depth)
    assert crit == pytest.approx(expected, abs=1e-5)
    below = theory.dufm_dnc_optimum(K, depth, 1, lambda_H=crit * 0.999, lambda_W=crit * 0.999)
    above = theory.dufm_dnc_optimum(K, depth, 1, lambda_H=crit * 1.001, lambda_W=crit * 1.001)
    p = 2 / (depth + 1)
    assert below.loss < 0.5 and below.scale == pytest.approx(2 * (1 - p) / (2 - p), abs=0.01)
    assert above.loss == 0.5 and above.scale == 0.0


def test_factors_multiply_to_scale() -> None:
    dnc = theory.dufm_dnc_optimum(10, 4, 3, lambda_H=LAM, lambda_W=[0.001, 0.002, 0.004, 0.008])
    assert math.prod(dnc.factors) == pytest.approx(dnc.scale, rel=1e-13)
    srg = theory.dufm_srg_optimum(5, 3, 4, 3, lambda_H=LAM, lambda_W=[0.001, 0.002, 0.004, 0.008])
    assert len(srg.factors) == 4 and math.prod(srg.factors) == pytest.approx(srg.scale, rel=1e-13)


def test_small_lambda_ratio_tends_to_constant() -> None:
    for r, s, depth in [(5, 3, 4), (6, 3, 2), (4, 2, 5)]:
        K = r * (r - 1) // 2
        ratio = theory.dufm_srg_loss(r, s, depth, 1, lambda_H=1e-6, lambda_W=1e-6) / theory.dufm_dnc_loss(
            K, depth, 1, lambda_H=1e-6, lambda_W=1e-6
        )
        assert ratio == pytest.approx(theory.srg_constant(r, s, depth) / K, abs=1e-4)


def test_naive_constant_rule() -> None:
    for r in range(3, 10):
        for depth in range(2, 9):
            K = r * (r - 1) // 2
            beats = theory.srg_naive_constant(r, depth) < K
            assert beats == (2 ** (depth - 3) * r < (r - 1) ** (depth - 2))
    assert not any(theory.srg_naive_constant(r, 3) < r * (r - 1) / 2 for r in range(3, 20))


def test_zero_solution_wins_for_large_lambda() -> None:
    assert theory.dufm_dnc_loss(10, 4, 1, lambda_H=0.05, lambda_W=0.05) == 0.5
    assert theory.dufm_srg_loss(5, 3, 4, 1, lambda_H=1.0, lambda_W=1.0) == 0.5
    assert theory.dufm_srg_optimum(5, 3, 4, 1, lambda_H=1.0, lambda_W=1.0).factors == (0.0,) * 4
    # Above DNC's threshold SRG can still be non-trivial (K = 15, L = 4, lambda = 0.016).
    assert theory.dufm_dnc_loss(15, 4, 1, lambda_H=0.016, lambda_W=0.016) == 0.5
    assert theory.dufm_srg_loss(6, 3, 4, 1, lambda_H=0.016, lambda_W=0.016) == pytest.approx(0.422, abs=1e-3)


# ------------------------------------------------------------------------------- bad input
@pytest.mark.parametrize(
    ("call", "match"),
    [
        (
            lambda: theory.dufm_dnc_loss(1, 4, 1, lambda_H=LAM, lambda_W=LAM),
            r"`num_classes` must be an integer >= 2",
        ),
        (
            lambda: theory.dufm_dnc_loss(10, 0, 1, lambda_H=LAM, lambda_W=LAM),
            r"`depth` must be an integer >= 1",
        ),
        (
            lambda: theory.dufm_dnc_loss(10, 4, 0, lambda_H=LAM, lambda_W=LAM),
            r"`n_per_class` must be an integer >= 1",
        ),
        (
            lambda: theory.dufm_dnc_loss(10, 4, 1, lambda_H=0.0, lambda_W=LAM),
            r"`lambda_H` must be a number > 0",
        ),
        (
            lambda: theory.dufm_dnc_loss(10, 4, 1, lambda_H=LAM, lambda_W=[LAM] * 3),
            r"`lambda_W` must be a number or 4",
        ),
        (
            lambda: theory.dufm_dnc_loss(10, 2, 1, lambda_H=LAM, lambda_W=[LAM, -1.0]),
            r"`lambda_W\[1\]` must be",
        ),
        (
            lambda: theory.dufm_srg_loss(2, 2, 4, 1, lambda_H=LAM, lambda_W=LAM),
            r"`r` must be an integer >= 3",
        ),
        (
            lambda: theory.dufm_srg_loss(5, 5, 4, 1, lambda_H=LAM, lambda_W=LAM),
            r"`s` must be an integer in \[2, 4\]",
        ),
        (
            lambda: theory.dufm_srg_loss(5, 3, 1, 1, lambda_H=LAM, lambda_W=LAM),
            r"`depth` must be an integer >= 2",
        ),
        (
            lambda: theory.dufm_srg_naive_loss(5, 1, 1, lambda_H=LAM, lambda_W=LAM),
            r"`depth` must be an integer >= 2",
        ),
        (lambda: theory.dufm_dnc_threshold(10, 0), r"`depth` must be an integer >= 1"),
        (lambda: theory.dufm_dnc_threshold(1, 3), r"`num_classes` must be an integer >= 2"),
        (lambda: theory.srg_constant(5, 1, 4), r"`s` must be an integer in \[2, 4\]"),
        (lambda: theory.srg_constant(5, 3, 1), r"`depth` must be an integer >= 2"),
        (lambda: theory.srg_naive_constant(5, 1), r"`depth` must be an integer >= 2"),
        (lambda: theory.srg_naive_constant(2, 3), r"`r` must be an integer >= 3"),
        (lambda: theory.srg_incidence(2), r"`r` must be an integer >= 3"),
        (lambda: theory.srg_readout(4, 4), r"`s` must be an integer in \[2, 3\]"),
        (lambda: theory.srg_constant_table([2], [3]), r"`rs\[0\]` must be an integer >= 3"),
        (
            lambda: theory.dufm_lambda_bar(3, 1, lambda_H=LAM, lambda_W=[LAM]),
            r"`lambda_W` must be a number or 3",
        ),
    ],
)
def test_bad_input_raises(call, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        call()


# ------------------------------------------------------------------- H_1 >= 0 (ReLU backbone)
def test_nonnegative_features_leave_dnc_and_naive_unchanged() -> None:
    for nonneg in (False, True):
        kw = {"lambda_H": LAM, "lambda_W": LAM, "nonnegative_features": nonneg}
        assert theory.dufm_dnc_loss(10, 4, 1, **kw) == pytest.approx(0.0991798746, abs=1e-10)
        assert theory.dufm_srg_naive_loss(5, 4, 1, **kw) == pytest.approx(0.0903502056, abs=1e-10)


@pytest.mark.parametrize(
    ("r", "s", "depth", "free", "nonneg"),
    [(6, 3, 2, 0.98324, 1.12132), (5, 3, 4, 0.81580, 0.82380)],
)
def test_nonnegative_srg_ratios(r: int, s: int, depth: int, free: float, nonneg: float) -> None:
    # K = 15, L = 2 (Finding 1) needs a mixed-sign H_1; at L >= 3 the sign barely matters.
    K = r * (r - 1) // 2
    dnc = theory.dufm_dnc_loss(K, depth, 1, lambda_H=LAM, lambda_W=LAM)
    for flag, expected in ((False, free), (True, nonneg)):
        got = theory.dufm_srg_loss(r, s, depth, 1, lambda_H=LAM, lambda_W=LAM, nonnegative_features=flag)
        assert got / dnc == pytest.approx(expected, abs=1e-5)


@pytest.mark.parametrize(("r", "s"), [(4, 2), (5, 3), (6, 3), (7, 4)])
@pytest.mark.parametrize("depth", [2, 3, 5])
def test_nonnegative_srg_constant_equals_numeric_norms(r: int, s: int, depth: int) -> None:
    # H_1 = B (||B||_F^2) with W_1 = I_r (r), or W_1 = F at L = 2; then I_r (r each) and F.
    B, Fr = _incidence(r), _readout(r, s)
    C = np.maximum(Fr @ B, 0)
    trace = float(np.sum(1 / np.linalg.eigvalsh(C.T @ C)))
    readout = np.sum(Fr**2)
    upstream = np.sum(B**2) * (readout if depth == 2 else r ** (depth - 2) * readout)
    expected = (upstream * trace) ** (1 / (depth + 1))
    assert theory.srg_constant(r, s, depth, nonnegative_features=True) == pytest.approx(expected, rel=1e-12)
    assert theory.srg_constant(r, s, depth, nonnegative_features=True) >= theory.srg_constant(r, s, depth)


def test_comparison_table_both_variants() -> None:
    table = theory.dufm_comparison_table([5, 6], [2, 4], [LAM], nonnegative_features=[False, True])
    assert table.groupby("nonnegative_features").size().tolist() == [4, 4]
    both = table.pivot_table(index=["r", "depth"], columns="nonnegative_features", values="ratio")
    assert (both[True] >= both[False] - 1e-12).all()
    assert both.loc[(6, 2), False] < 1 < both.loc[(6, 2), True]
    constants = theory.srg_constant_table([5], [4], nonnegative_features=[False, True])
    assert constants["nonnegative_features"].tolist() == [False, True]


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda: theory.dufm_srg_loss(5, 3, 4, 1, lambda_H=LAM, lambda_W=LAM, nonnegative_features="yes"),
         r"`nonnegative_features` must be True or False, got 'yes'"),
        (lambda: theory.dufm_comparison_table([5], [4], [LAM], nonnegative_features=[]),
         r"`nonnegative_features` must be True, False or a list of them"),
        (lambda: theory.dufm_comparison_table([5], [4], [LAM], nonnegative_features=[True, 2]),
         r"`nonnegative_features\[1\]` must be True or False"),
        (lambda: theory.dufm_comparison_table(5, [4], [LAM]), r"`rs` must be a list of integers >= 3"),
        (lambda: theory.dufm_comparison_table([5], [4], 0.004), r"`lambdas` must be a list of numbers > 0"),
        (lambda: theory.dufm_dnc_loss(10, 4, 1, 0.004, 0.004), r"takes 3 positional arguments"),
    ],
)  # fmt: skip
def test_bad_variant_input_raises(call, match: str) -> None:
    with pytest.raises((ValueError, TypeError), match=match):
        call()
