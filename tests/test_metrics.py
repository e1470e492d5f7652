"""ncbook.metrics against a float64 in-memory oracle written here (numpy, loops, eigh), plus
invariances, known geometries and every error path."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from ncbook import geometry as geo
from ncbook import metrics as ncm

SETTINGS = settings(max_examples=25, deadline=None)


# ---------------------------------------------------------------------------------------------
# the oracle: direct transcriptions of the definitions, float64, everything in memory


def oracle(x, y, k, w=None, weighting="sample", center=True, divide_by_k=True, gof=None):
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y)
    n, d = x.shape
    counts = np.array([np.sum(y == c) for c in range(k)], dtype=float)
    mu = np.stack([x[y == c].mean(0) for c in range(k)])
    mu_g = x.mean(0) if weighting == "sample" else mu.mean(0)
    sigma_w = sum(np.outer(x[i] - mu[y[i]], x[i] - mu[y[i]]) for i in range(n)) / n
    between = mu - mu_g if center else mu
    sigma_b = sum(np.outer(b, b) for b in between) / k
    evals, evecs = np.linalg.eigh(sigma_b)
    r = min(k - 1 if center else k, d)
    evals, evecs = evals[-r:], evecs[:, -r:]  # pseudo-inverse truncated at the known rank
    nc1 = np.trace(sigma_w @ evecs @ np.diag(1 / evals) @ evecs.T) / (k if divide_by_k else 1)
    var = np.array([np.mean(np.sum((x[y == c] - mu[c]) ** 2, 1)) for c in range(k)])
    pairs = [(a, b) for a in range(k) for b in range(a + 1, k)]
    cdnv = np.mean([(var[a] + var[b]) / (2 * np.sum((mu[a] - mu[b]) ** 2)) for a, b in pairs])
    mc = mu - mu_g

    def cosines(v):
        return [
            v[a] @ v[b] / np.linalg.norm(v[a]) / np.linalg.norm(v[b])
            for a in range(k)
            for b in range(k)
            if a != b
        ]

    def dist(g, t):
        return np.linalg.norm(g / np.linalg.norm(g) - t / np.linalg.norm(t))

    def norms(v):
        return np.linalg.norm(v, axis=1)

    etf, of = np.eye(k) - 1 / k, np.eye(k)
    if gof is None:
        gof = (counts**-0.5, counts**0.5, np.ones(k))
    out = {
        "num_samples": n,
        "nc1": nc1,
        "cdnv": cdnv,
        "nc2_equinorm": norms(mc).std() / norms(mc).mean(),
        "nc2_equiangle": np.std(cosines(mc)),
        "nc2_maxangle": np.mean(np.abs(np.array(cosines(mc)) + 1 / (k - 1))),
        "nc2_etf": dist(mc @ mc.T, etf),
        "nc2_of": dist(mu @ mu.T, of),
        "nc2_gof": dist(mu @ mu.T, np.diag(gof[0])),
        "rank": np.sum(np.linalg.svd(mu, compute_uv=False) > 1e-3 * np.linalg.norm(mu, 2)),
        "rank_centered": np.sum(np.linalg.svd(mc, compute_uv=False) > 1e-3 * np.linalg.norm(mc, 2)),
    }
    if w is not None:
        w = np.asarray(w, dtype=np.float64)
        out |= {
            "nc2_equinorm_w": norms(w).std() / norms(w).mean(),
            "nc2_equiangle_w": np.std(cosines(w)),
            "nc2_maxangle_w": np.mean(np.abs(np.array(cosines(w)) + 1 / (k - 1))),
            "nc2_etf_w": dist(w @ w.T, etf),
            "nc2_of_w": dist(w @ w.T, of),
            "nc2_gof_w": dist(w @ w.T, np.diag(gof[1])),
            "nc3": np.linalg.norm(w / np.linalg.norm(w) - mc / np.linalg.norm(mc)) ** 2,
            "nc3_etf": dist(w @ mc.T, etf),
            "nc3_of": dist(w @ mu.T, of),
            "nc3_gof": dist(w @ mu.T, np.diag(gof[2])),
            "nc3_sub": np.linalg.norm(w / np.linalg.norm(w) - mu / np.linalg.norm(mu)),
            "nc3_gof_sub": dist(w, np.sqrt(gof[1] / gof[0])[:, None] * mu),
        }
    return out


def make_data(counts, d, offset=0.0, spread=1.0, seed=0, dtype=np.float32):
    """Gaussian classes around random means, shuffled; returned as float32 (the data under test)."""
    rng = np.random.default_rng(seed)
    means = rng.normal(size=(len(counts), d))
    x = np.concatenate([offset + means[c] + spread * rng.normal(size=(n, d)) for c, n in enumerate(counts)])
    y = np.concatenate([np.full(n, c) for c, n in enumerate(counts)])
    perm = rng.permutation(len(y))
    return x[perm].astype(dtype), y[perm]


DATASETS = {
    "balanced": dict(counts=[60] * 5, d=12),
    "imbalanced": dict(counts=[150, 80, 40, 20, 10], d=12),
    "adversarial": dict(counts=[150, 80, 40, 20, 10], d=12, offset=50.0, spread=1e-3),
    "wide": dict(counts=[30, 20, 10], d=40),  # d > N/K: Sigma_W is singular, Sigma_B rank K-1
    "many_classes": dict(counts=[20] * 8, d=6),  # r = 6 > 0.6 d: nc1 sums S_W by a syrk
}


def rel_err(a: float, b: float) -> float:
    return abs(a - b) / max(abs(b), 1e-300)


def batches(x, y, size):
    return [
        (torch.as_tensor(x[i : i + size]), torch.as_tensor(y[i : i + size])) for i in range(0, len(y), size)
    ]


def nc1_tolerance(x, y, k, acc) -> float:
    """Derived bound on |NC1 - exact| for the accumulator's arithmetic (absolute).

    float64 features: every step is float64, so 1e-12 relative is a round-off allowance. float32
    features: the block product runs in float32 on residuals r_i = 2^e h_i - c_{y_i} around the
    accumulator's shifts c; a float32 inner product of m terms errs by at most gamma_m |r|^T |r|
    (gamma_m = m u / (1 - m u), u = 2^-24; Higham, Accuracy and Stability, eq. 3.5), forming r by
    at most u |r|, and the float32 class sums s_k by gamma_n sum |r|, which enters s s^T / n
    twice (Cauchy-Schwarz bounds its quadratic form by that of |r|^T |r|). With NC1 =
    sum_j p_j^T S_W p_j / N this gives |error| <= (gamma_{N+2} + 2 gamma_N) sum_j || |R| |p_j| ||^2 / N.
    """
    x64 = np.asarray(x, dtype=np.float64)
    y = np.asarray(y)
    n = len(y)
    mu = np.stack([x64[y == c].mean(0) for c in range(k)])
    between = mu - x64.mean(0)
    _, s, vh = np.linalg.svd(between, full_matrices=False)
    p = (vh[: k - 1].T / s[: k - 1])  # (d, K-1): Sigma_B^+ = K P P^T
    exact = np.sum((( x64 - mu[y]) @ p) ** 2) / n
    if np.asarray(x).dtype == np.float64:
        return 1e-12 * exact
    shift = (acc.shift * 2.0 ** -int(acc.exponent)).numpy()
    r = np.abs(x64 - shift[y])
    u = 2.0**-24
    gamma = lambda m: m * u / (1 - m * u)  # noqa: E731
    return (gamma(n + 2) + 2 * gamma(n)) * np.sum((r @ np.abs(p)) ** 2) / n


# ---------------------------------------------------------------------------------------------
# against the oracle


@pytest.mark.parametrize("name", DATASETS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_nc1_matches_oracle(name: str, dtype) -> None:
    x, y = make_data(**DATASETS[name], dtype=dtype)
    k = len(DATASETS[name]["counts"])
    expected = oracle(x, y, k)["nc1"]
    assert rel_err(ncm.nc1(torch.as_tensor(x), torch.as_tensor(y)), expected) <= 1e-6
    assert rel_err(ncm.nc1(x, y, k), expected) <= 1e-6  # numpy input
    acc = ncm.NCAccumulator(k)
    for xb, yb in batches(x, y, 37):
        acc.update(xb, yb)
    assert abs(acc.compute()["nc1"] - expected) <= nc1_tolerance(x, y, k, acc)


@pytest.mark.parametrize("name", DATASETS)
def test_every_metric_matches_oracle(name: str) -> None:
    x, y = make_data(**DATASETS[name])
    k, d = len(DATASETS[name]["counts"]), DATASETS[name]["d"]
    w = np.random.default_rng(1).normal(size=(k, d))
    expected = oracle(x, y, k, w=w)
    acc = ncm.NCAccumulator(k)
    for xb, yb in batches(x, y, 64):
        acc.update(xb, yb)
    got = acc.compute(classifier=torch.as_tensor(w))
    assert set(got) == set(ncm.METRIC_KEYS)
    # NC1 projects S_W on the class-mean span, where the adversarial case (offset 50, spread 1e-3)
    # has little within-class mass: its float32 round-off is checked against the derived bound
    bound = nc1_tolerance(x, y, k, acc)
    assert abs(got["nc1"] - expected["nc1"]) <= bound
    for key, value in expected.items():
        assert key == "nc1" or rel_err(got[key], value) <= 1e-6, key
    assert math.isnan(got["nc4"]) and math.isnan(got["ncc_error"])
    functional = ncm.nc_metrics(x, y, k, classifier=w)
    assert abs(functional["nc1"] - expected["nc1"]) <= bound  # one block: the same arithmetic
    for key, value in expected.items():
        assert key == "nc1" or rel_err(functional[key], value) <= 1e-6, key
    assert rel_err(ncm.cdnv(x, y), expected["cdnv"]) <= 1e-6
    np.testing.assert_allclose(ncm.class_means(x, y).numpy(), acc.class_means().numpy(), rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize(
    "options",
    [
        dict(weighting="class"),
        dict(center=False),
        dict(divide_by_k=False),
        dict(weighting="class", center=False),
    ],
)
def test_nc1_options_match_oracle(options) -> None:
    x, y = make_data(**DATASETS["imbalanced"], dtype=np.float64)
    expected = oracle(x, y, 5, **options)["nc1"]
    assert rel_err(ncm.nc1(x, y, **options), expected) <= 1e-9
    assert rel_err(ncm.nc_metrics(x, y, **options)["nc1"], expected) <= 1e-9
    # the two weightings agree on balanced data and differ on imbalanced data
    xb, yb = make_data(**DATASETS["balanced"], dtype=np.float64)
    assert ncm.nc1(xb, yb, weighting="class") == pytest.approx(ncm.nc1(xb, yb), rel=1e-12)
    assert abs(ncm.nc1(x, y, weighting="class") / ncm.nc1(x, y) - 1) > 1e-3


def test_float64_gemm_option_is_exact() -> None:
    x, y = make_data(**DATASETS["adversarial"])
    expected = oracle(x, y, 5)["nc1"]
    acc = ncm.NCAccumulator(5, gemm_dtype=torch.float64)
    acc.update(x, y)
    assert rel_err(acc.compute()["nc1"], expected) <= 1e-10


def test_given_gof_targets_are_used() -> None:
    x, y = make_data(**DATASETS["imbalanced"])
    w = np.random.default_rng(2).normal(size=(5, 12))
    targets = geo.GOFTargets(
        means_sq=torch.arange(1.0, 6.0), classifier_sq=torch.arange(5.0, 0.0, -1), inner=torch.ones(5) * 2
    )
    gof = (targets.means_sq.numpy(), targets.classifier_sq.numpy(), targets.inner.numpy())
    expected = oracle(x, y, 5, w=w, gof=gof)
    got = ncm.nc_metrics(x, y, classifier=w, gof=targets)
    for key in ("nc2_gof", "nc2_gof_w", "nc3_gof", "nc3_gof_sub"):
        assert rel_err(got[key], expected[key]) <= 1e-6, key


# ---------------------------------------------------------------------------------------------
# invariances (hypothesis)


def _small_data(seed: int, k: int, d: int):
    rng = np.random.default_rng(seed)
    counts = rng.integers(3, 12, size=k)
    return make_data(list(counts), d, offset=float(rng.normal()), seed=seed, dtype=np.float64)


data_args = dict(seed=st.integers(0, 10_000), k=st.integers(2, 5), d=st.integers(2, 9))
SCALE_FREE = ("nc1", "cdnv", "nc2_equinorm", "nc2_equiangle", "nc2_maxangle", "nc2_etf", "nc2_of", "nc2_gof")


@SETTINGS
@given(**data_args)
def test_rotation_invariance(seed: int, k: int, d: int) -> None:
    x, y = _small_data(seed, k, d)
    q, _ = np.linalg.qr(np.random.default_rng(seed + 1).normal(size=(d, d)))
    w = np.random.default_rng(seed + 2).normal(size=(k, d))
    a = ncm.nc_metrics(x, y, k, classifier=w)
    b = ncm.nc_metrics(x @ q, y, k, classifier=w @ q)
    for key in METRICS_WITH_W:
        assert b[key] == pytest.approx(a[key], rel=1e-7, abs=1e-10), key


METRICS_WITH_W = [key for key in ncm.METRIC_KEYS if key not in ("nc4", "ncc_error")]


@SETTINGS
@given(**data_args, scale=st.floats(1e-3, 1e3))
def test_global_scaling_invariance(seed: int, k: int, d: int, scale: float) -> None:
    x, y = _small_data(seed, k, d)
    a, b = ncm.nc_metrics(x, y, k), ncm.nc_metrics(scale * x, y, k)
    for key in SCALE_FREE:
        assert b[key] == pytest.approx(a[key], rel=1e-7, abs=1e-12), key


@SETTINGS
@given(**data_args)
def test_relabelling_invariance(seed: int, k: int, d: int) -> None:
    x, y = _small_data(seed, k, d)
    perm = np.random.default_rng(seed).permutation(k)  # class c becomes perm[c]
    w = np.random.default_rng(seed + 2).normal(size=(k, d))
    w_relabelled = np.empty_like(w)
    w_relabelled[perm] = w
    counts = np.bincount(y, minlength=k)
    a = ncm.nc_metrics(x, y, k, classifier=w)
    b = ncm.nc_metrics(x, perm[y], k, classifier=w_relabelled)
    assert np.array_equal(np.bincount(perm[y], minlength=k)[perm], counts)
    for key in METRICS_WITH_W:
        assert b[key] == pytest.approx(a[key], rel=1e-7, abs=1e-10), key


@SETTINGS
@given(**data_args, size=st.integers(1, 40), order=st.integers(0, 1000))
def test_batch_order_and_size_invariance(seed: int, k: int, d: int, size: int, order: int) -> None:
    x, y = _small_data(seed, k, d)
    reference = ncm.nc_metrics(x, y, k)
    perm = np.random.default_rng(order).permutation(len(y))
    acc = ncm.NCAccumulator(k)
    for xb, yb in batches(x[perm], y[perm], size):
        acc.update(xb, yb)
    got = acc.compute()
    for key in SCALE_FREE:
        assert got[key] == pytest.approx(reference[key], rel=1e-8, abs=1e-12), key


@SETTINGS
@given(**data_args, cut=st.floats(0.0, 1.0), size=st.integers(1, 30))
def test_split_and_merge_equals_one_stream(seed: int, k: int, d: int, cut: float, size: int) -> None:
    x, y = _small_data(seed, k, d)
    split = int(cut * len(y))  # one part may be empty, or miss whole classes
    parts = [ncm.NCAccumulator(k), ncm.NCAccumulator(k)]
    for acc, rows in zip(parts, (slice(0, split), slice(split, None)), strict=True):
        for xb, yb in batches(x[rows], y[rows], size):
            acc.update(xb, yb)
    merged = parts[0].merge(parts[1])
    whole = ncm.NCAccumulator(k)
    whole.update(x, y)
    np.testing.assert_allclose(
        merged.within_covariance().numpy(), whole.within_covariance().numpy(), rtol=1e-9, atol=1e-9
    )
    np.testing.assert_allclose(
        merged.class_means().numpy(), whole.class_means().numpy(), rtol=1e-10, atol=1e-12
    )
    a, b = merged.compute(), whole.compute()
    for key in SCALE_FREE:
        assert a[key] == pytest.approx(b[key], rel=1e-8, abs=1e-12), key


# ---------------------------------------------------------------------------------------------
# known geometries


def _frame_features(means: np.ndarray, counts, spread: float = 0.0, seed: int = 0):
    rng = np.random.default_rng(seed)
    x = np.concatenate(
        [means[c] + spread * rng.normal(size=(n, means.shape[1])) for c, n in enumerate(counts)]
    )
    return x, np.concatenate([np.full(n, c) for c, n in enumerate(counts)])


def _embed(rows: np.ndarray, d: int, seed: int = 0) -> np.ndarray:
    """Place K x K rows isometrically in R^d by a random orthonormal map."""
    q, _ = np.linalg.qr(np.random.default_rng(seed).normal(size=(d, rows.shape[1])))
    return rows @ q.T


def _of_etf(k: int) -> float:
    return math.sqrt(2 - 2 * math.sqrt((k - 1) / k))


@pytest.mark.parametrize("k", [3, 4, 10])
def test_exact_etf(k: int) -> None:
    means = _embed(np.eye(k) - 1 / k, d=k + 3)  # a simplex ETF, centred at the origin
    x, y = _frame_features(means, [5] * k)
    got = ncm.nc_metrics(x, y, k, classifier=2 * means)
    for key in ("nc1", "cdnv", "nc2_equinorm", "nc2_equiangle", "nc2_maxangle", "nc2_etf", "nc2_etf_w"):
        assert got[key] == pytest.approx(0, abs=1e-12), key
    for key in ("nc2_equinorm_w", "nc2_equiangle_w", "nc2_maxangle_w", "nc3", "nc3_etf", "nc3_sub"):
        assert got[key] == pytest.approx(0, abs=1e-12), key
    # an ETF is not an orthogonal frame: the predicted distance, for means, classifier and W Hbar
    for key in ("nc2_of", "nc2_gof", "nc2_of_w", "nc2_gof_w", "nc3_of", "nc3_gof"):
        assert got[key] == pytest.approx(_of_etf(k), rel=1e-10), key
    assert got["rank"] == k - 1 and got["rank_centered"] == k - 1


@pytest.mark.parametrize("k", [3, 4, 10])
def test_exact_orthogonal_frame(k: int) -> None:
    means = _embed(3 * np.eye(k), d=k + 2)
    x, y = _frame_features(means, [4] * k)
    got = ncm.nc_metrics(x, y, k, classifier=means / 3)
    for key in (
        "nc1",
        "nc2_of",
        "nc2_gof",
        "nc2_of_w",
        "nc2_gof_w",
        "nc3_of",
        "nc3_gof",
        "nc3_sub",
        "nc3_gof_sub",
    ):
        assert got[key] == pytest.approx(0, abs=1e-12), key
    # the centred OF is a simplex ETF (Section 2.2 vs 2.1 of paper A)
    assert got["nc2_etf"] == pytest.approx(0, abs=1e-12)
    assert got["nc2_etf_w"] == pytest.approx(_of_etf(k), rel=1e-10)
    assert got["rank"] == k and got["rank_centered"] == k - 1


def test_exact_general_orthogonal_frame() -> None:
    counts = [200, 100, 50, 50]  # paper A's imbalanced synthetic setting
    targets = geo.gof_targets_from_counts(counts, depth=3)
    means = _embed(np.diag(targets.means_sq.sqrt().numpy()), d=6)
    w = _embed(np.diag(targets.classifier_sq.sqrt().numpy()), d=6)
    x, y = _frame_features(means, counts)
    got = ncm.nc_metrics(x, y, classifier=w, gof=targets)
    for key in ("nc1", "nc2_gof", "nc2_gof_w", "nc3_gof", "nc3_gof_sub"):
        assert got[key] == pytest.approx(0, abs=1e-12), key
    lengths = targets.classifier_sq.numpy()
    of = math.sqrt(2 - 2 * lengths.sum() / (2 * np.linalg.norm(lengths)))  # closed form, K = 4
    assert got["nc2_of_w"] == pytest.approx(of, rel=1e-10)
    assert got["nc2_of"] > 0.05 and got["nc3_of"] == pytest.approx(0, abs=1e-12)  # inner = 1 for all


def test_collapsed_features_have_zero_nc1_in_float32_with_offset() -> None:
    means = 50 + np.random.default_rng(3).normal(size=(4, 8))
    x, y = _frame_features(means, [7, 3, 9, 5])
    got = ncm.nc_metrics(x.astype(np.float32), y)
    assert got["nc1"] == 0.0 and got["cdnv"] == 0.0
    assert ncm.nc1(x.astype(np.float32), y) == 0.0


def test_nc1_is_robust_where_a_default_pinv_is_not() -> None:
    """Why the known rank: the textbook float32 route (Sigma_B = E[mu mu^T] - mu_G mu_G^T, default
    pinv cutoff) keeps round-off eigenvalues of Sigma_B on offset data, and NC1 is far off."""
    x, y = make_data(**DATASETS["adversarial"])
    xs, ys = torch.as_tensor(x), torch.as_tensor(y)
    mu = torch.stack([xs[ys == c].mean(0) for c in range(5)])
    mu_g = xs.mean(0)
    sigma_b = mu.T @ mu / 5 - torch.outer(mu_g, mu_g)
    residual = xs - mu[ys]
    naive = float(torch.trace(residual.T @ residual / len(y) @ torch.linalg.pinv(sigma_b)) / 5)
    expected = oracle(x, y, 5)["nc1"]
    assert ncm.nc1(x, y) == pytest.approx(expected, rel=1e-6)
    assert abs(naive / expected - 1) > 1.0


# ---------------------------------------------------------------------------------------------
# NC4 and per-layer collection


def _net() -> torch.nn.Sequential:
    torch.manual_seed(0)
    return torch.nn.Sequential(
        torch.nn.Linear(6, 16), torch.nn.ReLU(), torch.nn.Linear(16, 8, bias=False), torch.nn.Linear(8, 3)
    ).double()


def _loader(seed: int = 0, n: int = 300):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 3, size=n)
    x = rng.normal(size=(n, 6)) + 2 * np.eye(3, 6)[y]
    return [(torch.as_tensor(x[i : i + 50]), torch.as_tensor(y[i : i + 50])) for i in range(0, n, 50)]


def test_collect_taps_inputs_outputs_and_nc4_against_oracle() -> None:
    model, loader = _net(), _loader()
    model.train()
    accs = ncm.collect(model, loader, {"h1": model[2], "h2": model[3]}, 3, nc4=True)
    assert model.training and not model[2]._forward_pre_hooks and not model[3]._forward_pre_hooks
    x = torch.cat([b[0] for b in loader])
    y = torch.cat([b[1] for b in loader]).numpy()
    with torch.no_grad():
        h1 = model[1](model[0](x)).numpy()
        h2 = model[2](torch.as_tensor(h1)).numpy()
        logits = model(x).numpy()
    w = model[3].weight.detach()
    for name, h, classifier in (("h1", h1, w @ model[2].weight.detach()), ("h2", h2, w)):
        expected = oracle(h, y, 3, w=classifier.numpy())
        got = accs[name].compute(classifier=classifier)
        for key, value in expected.items():
            assert rel_err(got[key], value) <= 1e-9, (name, key)
        mu = np.stack([h[y == c].mean(0) for c in range(3)])
        ncc = np.argmin(((h[:, None, :] - mu[None]) ** 2).sum(-1), axis=1)
        assert got["nc4"] == pytest.approx(np.mean(ncc != logits.argmax(1)), abs=1e-15)
        assert got["ncc_error"] == pytest.approx(np.mean(ncc != y), abs=1e-15)
    outputs = ncm.collect(model, loader, {"out": model[2]}, 3, tap="output", device="cpu")
    np.testing.assert_allclose(
        outputs["out"].class_means().numpy(), accs["h2"].class_means().numpy(), rtol=1e-12
    )
    assert math.isnan(outputs["out"].compute()["nc4"])


def test_nc4_is_zero_when_the_classifier_is_the_ncc() -> None:
    x, y = make_data(**DATASETS["balanced"], dtype=np.float64)
    acc = ncm.NCAccumulator(5)
    acc.update(x, y)
    mu = acc.class_means()
    acc.reference_means = mu
    xt = torch.as_tensor(x)
    logits = xt @ mu.T - 0.5 * mu.square().sum(1)  # the NCC as a linear classifier
    acc.update_ncc(xt, y, logits)
    got = acc.compute()
    assert got["nc4"] == 0.0
    other = ncm.NCAccumulator(5, reference_means=mu)
    other.update_ncc(xt, y, -logits)
    # argmax(-logits) = argmin(logits) never equals the NCC decision: half of the merged data disagrees
    assert acc.merge(other).compute()["nc4"] == 0.5


def test_state_is_float64_and_independent_of_n() -> None:
    acc = ncm.NCAccumulator(3)
    for _ in range(3):
        acc.update(torch.randn(500, 7), torch.arange(500) % 3)
        acc.class_means()  # flushes the buffer
        assert acc.gram.shape == (7, 7) and acc.sums.shape == acc.shift.shape == (3, 7)
        assert acc.gram.dtype == acc.sums.dtype == acc.counts.dtype == torch.float64
    acc.reset()
    assert acc.dim is None


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_matches_cpu() -> None:
    x, y = make_data(**DATASETS["adversarial"])
    expected = oracle(x, y, 5)["nc1"]
    gpu = ncm.NCAccumulator(5)
    gpu.update(torch.as_tensor(x).cuda(), torch.as_tensor(y).cuda())
    assert rel_err(gpu.compute()["nc1"], expected) <= 1e-6
    assert rel_err(ncm.nc1(torch.as_tensor(x).cuda(), torch.as_tensor(y).cuda()), expected) <= 1e-6
    cpu = ncm.NCAccumulator(5)
    cpu.update(x, y)
    assert rel_err(cpu.merge(gpu).compute()["nc1"], expected) <= 1e-6


def test_numerical_rank() -> None:
    rng = np.random.default_rng(0)
    low = rng.normal(size=(10, 3)) @ rng.normal(size=(3, 20))
    assert ncm.numerical_rank(low) == 3
    assert ncm.numerical_rank(torch.as_tensor(low), rtol=1e-20) > 3  # round-off counts at a tiny rtol
    assert ncm.numerical_rank(np.zeros((3, 3))) == 0
    assert ncm.numerical_rank(np.zeros((0, 3))) == 0
    assert ncm.numerical_rank(np.diag([1.0, 2e-3, 5e-4])) == 2


# ---------------------------------------------------------------------------------------------
# errors


X3, Y3 = make_data([5, 5, 5], 4)


def _fresh(**kw):
    acc = ncm.NCAccumulator(3, **kw)
    acc.update(X3, Y3)
    return acc


ERRORS = [
    (lambda: ncm.nc1(X3, object()), r"`labels` must be array-like, got object"),
    (lambda: ncm.NCAccumulator(1), r"`num_classes` must be an integer >= 2, got 1"),
    (lambda: ncm.NCAccumulator(3, center=2), r"`center` must be one of True, False"),
    (lambda: ncm.NCAccumulator(3, divide_by_k=None), r"`divide_by_k` must be one of True, False"),
    (lambda: _fresh().update(X3, Y3.astype(float)), r"`labels` must be integers"),
    (
        lambda: _fresh(reference_means=np.eye(3, 4)).update_ncc(np.full((2, 4), np.nan), [0, 1]),
        r"`features` contains NaN",
    ),
    (lambda: ncm.nc1(X3, np.where(Y3 == 2, 3, Y3), 3), r"Expected `labels` in \[0, 3\), got 3"),
    (lambda: ncm.nc1(X3, Y3 - 1, 3), r"Expected `labels` in \[0, 3\), got -1"),
    (lambda: ncm.nc1(X3, np.where(Y3 == 1, 0, Y3), 3), r"class\(es\) \[1\] have no samples"),
    (lambda: ncm.nc1(np.where(Y3[:, None] == 0, np.nan, X3), Y3), r"`features` contains NaN"),
    (lambda: ncm.nc1(X3[:, 0], Y3), r"`features` must have shape \(N, d\)"),
    (lambda: ncm.nc1(X3.astype(int), Y3), r"`features` must be floating point"),
    (lambda: ncm.nc1(X3, Y3[:-1]), r"`labels` must have shape \(15,\)"),
    (lambda: ncm.nc1(X3, Y3.astype(float)), r"`labels` must be integers"),
    (lambda: ncm.nc1(X3, np.zeros(15, dtype=int)), r"Expected at least 2 classes"),
    (lambda: ncm.nc1(X3[:0], Y3[:0]), r"`num_classes` is needed when `labels` is empty"),
    (lambda: ncm.nc1(X3, Y3, 1), r"`num_classes` must be an integer >= 2, got 1"),
    (lambda: ncm.nc1(object(), Y3), r"`features` must be array-like"),
    (lambda: ncm.nc1(X3, Y3, weighting="median"), r"`weighting` must be one of 'sample', 'class'"),
    (lambda: ncm.nc1(X3, Y3, center="yes"), r"`center` must be one of True, False"),
    (lambda: ncm.nc1(X3, Y3, divide_by_k=1.5), r"`divide_by_k` must be one of True, False"),
    (lambda: ncm.nc1(np.ones((15, 4)), Y3), r"class means span rank < 2"),
    (lambda: ncm.cdnv(X3, Y3 + 1, 3), r"Expected `labels` in \[0, 3\), got 3"),
    (lambda: ncm.class_means(X3, np.where(Y3 == 0, 1, Y3), 3), r"class\(es\) \[0\] have no samples"),
    (lambda: ncm.NCAccumulator(3, rank_rtol=0), r"`rank_rtol` must be a number in \(0.0, 1.0\]"),
    (lambda: ncm.NCAccumulator(3, gemm_dtype=torch.float16), r"`gemm_dtype` must be one of None"),
    (lambda: ncm.NCAccumulator(3, weighting="x"), r"`weighting` must be one of"),
    (lambda: ncm.NCAccumulator(3, reference_means=[[np.inf]]), r"`reference_means` contains NaN"),
    (lambda: _fresh().update(X3[:, :3], Y3), r"`features` has dimension 3, expected 4"),
    (lambda: _fresh().update(X3, Y3 + 5), r"Expected `labels` in \[0, 3\), got 7"),
    (
        lambda: _fresh().update(np.where(Y3[:, None] == 1, np.inf, X3), Y3),
        r"`features` contains NaN or infinite",
    ),
    (lambda: ncm.NCAccumulator(3).compute(), r"has seen no data; call `update` first"),
    (lambda: ncm.NCAccumulator(3).class_means(), r"has seen no data"),
    (lambda: _single_class().compute(), r"class\(es\) \[1, 2\] have no samples"),
    (lambda: _fresh().compute(classifier=np.ones((3, 5))), r"`classifier` must have shape \(3, 4\)"),
    (lambda: _fresh().merge("acc"), r"`other` must be an NCAccumulator, got str"),
    (lambda: _fresh().merge(ncm.NCAccumulator(4)), r"different number of classes or different options"),
    (lambda: _fresh().merge(_fresh(weighting="class")), r"different number of classes or different options"),
    (lambda: _fresh().merge(_other_dim()), r"`other` has dimension 2, expected 4"),
    (lambda: _fresh().update_ncc(X3, Y3), r"`reference_means` must be set before `update_ncc`"),
    (
        lambda: _fresh(reference_means=np.ones((2, 4))).update_ncc(X3, Y3),
        r"`reference_means` must have shape",
    ),
    (
        lambda: _fresh(reference_means=np.eye(3, 4)).update_ncc(X3, Y3, np.ones((15, 2))),
        r"`logits` must have shape",
    ),
    (lambda: ncm.numerical_rank(np.ones(3)), r"`matrix` must be 2-D"),
    (lambda: ncm.numerical_rank([[np.nan]]), r"`matrix` contains NaN"),
    (lambda: ncm.numerical_rank(np.eye(2), rtol=2.0), r"`rtol` must be a number in \(0.0, 1.0\]"),
    (lambda: ncm.nc2_equinorm(np.ones((1, 3))), r"`vectors` must have shape \(K, d\) with K >= 2"),
    (lambda: ncm.nc2_equiangle([[1.0, 0.0], [0.0, 0.0]]), r"`vectors` has a zero row"),
    (
        lambda: ncm.nc3_self_duality(np.eye(2), np.eye(3)),
        r"`classifier` \(2, 2\) and `vectors` \(3, 3\) differ",
    ),
    (lambda: ncm.collect(_net(), _loader(), {"a": _net()[0]}, 3, tap="middle"), r"`tap` must be one of"),
    (lambda: ncm.collect(_net(), _loader(), {}, 3), r"`layers` must name at least one module"),
    (lambda: ncm.collect(_net(), _loader(), {"a": "fc"}, 3), r"`layers\['a'\]` must be an nn.Module"),
    (lambda: ncm.collect(_net(), _loader(), {"a": _net()[0]}, 3), r"layer 'a' was not called"),
    (lambda: ncm.collect(_net(), _loader(), {"a": _net()[0]}, 3, nc4="no"), r"`nc4` must be one of"),
]


def _single_class():
    acc = ncm.NCAccumulator(3)
    acc.update(X3, np.zeros(15, dtype=int))
    return acc


def _other_dim():
    acc = ncm.NCAccumulator(3)
    acc.update(X3[:, :2], Y3)
    return acc


@pytest.mark.parametrize(("call", "match"), ERRORS)
def test_bad_input_raises(call, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        call()


def test_empty_batch_is_a_no_op() -> None:
    acc = _fresh()
    before = acc.compute()
    acc.update(X3[:0], Y3[:0])
    assert acc.compute() == before


@pytest.mark.parametrize("d", [7, 256, 300, 515])
def test_blocked_symmetric_gram_equals_gemm(d: int) -> None:
    from ncbook.metrics.gram import add_gram as _add_gram
    from ncbook.metrics.gram import symmetric as _symmetric

    r = torch.randn(50, d, dtype=torch.float64)
    gram = torch.zeros(d, d, dtype=torch.float64)
    _add_gram(gram, r)
    np.testing.assert_allclose(_symmetric(gram).numpy(), (r.T @ r).numpy(), rtol=1e-12, atol=1e-12)
    x, y = make_data([40, 30, 20], d, seed=d)
    expected = oracle(x, y, 3)["nc1"]
    assert rel_err(ncm.nc_metrics(x, y)["nc1"], expected) <= 1e-6


def test_undefined_metrics_are_nan_in_compute_and_raise_in_functions() -> None:
    got = _fresh().compute(classifier=np.zeros((3, 4)))  # a zero classifier has no direction
    assert math.isnan(got["nc2_etf_w"]) and math.isnan(got["nc3"]) and math.isfinite(got["nc1"])
    equal_means = ncm.nc_metrics(np.ones((6, 2)) + np.arange(6)[:, None] % 2, np.arange(6) // 2)
    assert math.isnan(equal_means["nc1"]) and math.isnan(equal_means["nc2_equinorm"])
    with pytest.raises(geo.DegenerateError, match="class means span rank < 2"):
        ncm.nc1(np.ones((6, 2)) + np.arange(6)[:, None] % 2, np.arange(6) // 2)
    with pytest.raises(geo.DegenerateError, match="`classifier` is zero"):
        ncm.nc3_self_duality(np.zeros((2, 2)), np.eye(2))


def test_minority_collapse_gof_point_has_zero_gof_distances() -> None:
    """A collapsed minority class (paper A Section 2.4): w_k = hbar_k = 0 for the last class."""
    targets = geo.GOFTargets(
        means_sq=torch.tensor([0.10186388, 0.1111068, 0.09122777, 0.0]),
        classifier_sq=torch.tensor([4.07455532, 2.22213595, 0.91227766, 0.0]),
        inner=torch.tensor([0.64424376, 0.49688471, 0.28848753, 0.0]),
    )
    means = np.diag(targets.means_sq.sqrt().numpy())
    w = np.diag(targets.classifier_sq.sqrt().numpy())
    x, y = _frame_features(means, [40, 20, 10, 5])
    got = ncm.nc_metrics(x, y, classifier=w, gof=targets)
    for key in ("nc2_gof", "nc2_gof_w", "nc3_gof", "nc3_gof_sub"):
        assert got[key] == pytest.approx(0, abs=1e-6), key  # the spec's numbers carry 8 digits
    assert math.isnan(got["nc2_equinorm_w"])  # the zero row has no direction


def test_compute_takes_the_classifier_bias_for_the_class_mean_decisions():
    means = torch.eye(3, dtype=torch.float64) * 2.0
    features = torch.cat([means + 0.01 * torch.randn(5, 3, 3, dtype=torch.float64)[i] for i in range(5)])
    labels = torch.arange(3).repeat(5)
    acc = ncm.NCAccumulator(3)
    acc.update(features, labels)
    w = torch.eye(3, dtype=torch.float64)
    assert acc.compute(classifier=w, bias=torch.zeros(3))["means_error"] == 0.0
    # a large bias on class 0 sends every class mean to class 0: two of three classes wrong
    shifted = acc.compute(classifier=w, bias=torch.tensor([10.0, 0.0, 0.0]))
    assert shifted["means_error"] == pytest.approx(2 / 3)
    assert shifted["nc2_of_w"] == acc.compute(classifier=w)["nc2_of_w"]
    with pytest.raises(ValueError, match=r"`bias` must have shape \(3,\), got \(2,\)"):
        acc.compute(classifier=w, bias=torch.zeros(2))
    with pytest.raises(ValueError, match="`bias` needs `classifier`"):
        acc.compute(bias=torch.zeros(3))


def test_compute_of_a_key_subset_is_bit_identical_to_the_full_set():
    w = torch.randn(3, 4, generator=torch.Generator().manual_seed(5), dtype=torch.float64)
    acc = _fresh()
    full = acc.compute(classifier=w, bias=torch.tensor([0.1, 0.0, -0.1]))
    for keys in (["nc3_gof_sub", "nc1"], ["means_error"], ["nc2_gof"], ["num_samples", "cdnv", "rank"]):
        subset = acc.compute(classifier=w, bias=torch.tensor([0.1, 0.0, -0.1]), keys=keys)
        assert list(subset) == keys
        assert [subset[key] for key in keys] == [full[key] for key in keys]  # exact, not approx
    assert math.isnan(acc.compute(keys=["nc3"])["nc3"])  # no classifier
    with pytest.raises(ValueError, match=r"`keys` has unknown metric\(s\) \['nc5'\]"):
        acc.compute(keys=["nc1", "nc5"])


def test_huge_float32_features_are_rescaled_not_overflowed():
    # within-class spread 2^66 (7e19): without the power-of-two scale the float32 squares overflow.
    # Means (2, 0) and (0, 2) times 2^66, Var_k = 2^132, ||mu_0 - mu_1||^2 = 8 * 2^132: CDNV = 1/8
    huge = torch.tensor([[3.0, 0.0], [1.0, 0.0], [0.0, 3.0], [0.0, 1.0]]) * 2.0**66
    labels = torch.tensor([0, 0, 1, 1])
    single, wide = ncm.NCAccumulator(2), ncm.NCAccumulator(2, gemm_dtype=torch.float64)
    single.update(huge, labels)
    wide.update(huge, labels)
    assert single.compute()["cdnv"] == wide.compute()["cdnv"] == 0.125
    with pytest.raises(ValueError, match="contains NaN or infinite entries"):
        ncm.NCAccumulator(2).update(torch.tensor([[float("nan"), 0.0]] * 2), torch.tensor([0, 1]))


# ---------------------------------------------------------------------------------------------
# scale invariance over 1e-30..1e30 (issue 15 item 8)

SCALE_FREE_ALL = [key for key in METRICS_WITH_W if key != "means_error"]


@SETTINGS
@given(**data_args, power=st.integers(-99, 99), dtype=st.sampled_from([np.float32, np.float64]))
def test_power_of_two_scales_give_identical_metrics(seed, k, d, power, dtype) -> None:
    """x -> 2^p x is exact in floating point, so every scale-free metric must not move at all:
    the accumulator's own power-of-two scale maps both inputs onto the same numbers."""
    x, y = _small_data(seed, k, d)
    x = x.astype(dtype)
    w = np.random.default_rng(seed + 2).normal(size=(k, d))
    a = ncm.nc_metrics(x, y, k, classifier=w)
    acc = ncm.NCAccumulator(k)
    for xb, yb in batches(x * dtype(2.0) ** power, y, 7):
        acc.update(xb, yb)
    b = acc.compute(classifier=w)
    for key in SCALE_FREE_ALL:
        assert b[key] == pytest.approx(a[key], rel=1e-12, abs=1e-300, nan_ok=True), key


@SETTINGS
@given(**data_args, log_scale=st.floats(-30, 30))
def test_any_scale_gives_the_same_metrics_in_float64(seed, k, d, log_scale) -> None:
    """A non-binary scale rounds every entry by at most 2^-53 relative; the metrics move by that
    times their conditioning, far below 1e-7 on these well-separated classes."""
    x, y = _small_data(seed, k, d)
    a, b = ncm.nc_metrics(x, y, k), ncm.nc_metrics(x * 10.0**log_scale, y, k)
    for key in SCALE_FREE:
        assert b[key] == pytest.approx(a[key], rel=1e-7, abs=1e-12), key


@pytest.mark.parametrize(("dtype", "power"), [(np.float32, -73), (np.float32, -83), (np.float64, -565)])
def test_tiny_features_regression(dtype, power) -> None:
    """Issue 15 item 8: NC1 was 14 % low at 1e-22 (2^-73) in float32, negative at 1e-25 (2^-83),
    0 at 1e-170 (2^-565) in float64."""
    x, y = make_data(**DATASETS["imbalanced"], dtype=dtype)
    expected = oracle(x, y, 5)["nc1"]
    acc = ncm.NCAccumulator(5)
    for xb, yb in batches(x * dtype(2.0) ** power, y, 64):
        acc.update(xb, yb)
    reference = ncm.NCAccumulator(5)
    for xb, yb in batches(x, y, 64):
        reference.update(xb, yb)
    assert acc.compute()["nc1"] == reference.compute()["nc1"]
    assert abs(acc.compute()["nc1"] - expected) <= nc1_tolerance(x, y, 5, reference)


def test_a_much_larger_later_batch_rescales_the_state() -> None:
    """Classes 0-1 first at scale 1 (state scale 2^-e from them), then classes 2-4 at 2^50: the
    state is rescaled (exactly) before the large rows can overflow, and nothing is lost."""
    x, y = make_data(**DATASETS["imbalanced"], dtype=np.float64)
    x = np.where((y >= 2)[:, None], x * 2.0**50, x)
    order = np.argsort(y, kind="stable")
    acc = ncm.NCAccumulator(5, gemm_dtype=torch.float64)
    for xb, yb in batches(x[order], y[order], 50):
        acc.update(xb, yb)
    assert int(acc.exponent) < -50  # rescaled to the large rows
    shuffled = ncm.NCAccumulator(5, gemm_dtype=torch.float64)  # large rows first: never rescaled
    shuffled.update(x[order[::-1]], y[order[::-1]])
    # (the metrics are ill-posed here: class distances span 2^50, so compare the moments)
    np.testing.assert_allclose(acc.class_means().numpy(), shuffled.class_means().numpy(), rtol=1e-12)
    np.testing.assert_allclose(
        acc.within_covariance().numpy(), shuffled.within_covariance().numpy(), rtol=1e-9, atol=1e-6
    )
