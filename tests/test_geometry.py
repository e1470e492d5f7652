"""ncbook.geometry against independent constructions and paper A's regression numbers."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from ncbook import geometry as geo


def _normalise(a: np.ndarray) -> np.ndarray:
    return a / np.linalg.norm(a)


@pytest.mark.parametrize("k", [2, 3, 4, 10])
def test_simplex_etf_is_the_gram_of_centred_basis_vectors(k: int) -> None:
    vectors = np.eye(k) - 1.0 / k  # rows e_k - 1/K: an explicit simplex ETF
    expected = _normalise(vectors @ vectors.T)
    etf = geo.simplex_etf(k)
    assert etf.dtype == torch.float64
    np.testing.assert_allclose(etf.numpy(), expected, atol=1e-15)
    unit = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
    cos = unit @ unit.T
    assert np.allclose(cos[~np.eye(k, dtype=bool)], -1 / (k - 1))


def test_orthogonal_and_general_frames() -> None:
    np.testing.assert_allclose(geo.orthogonal_frame(5).numpy(), np.eye(5) / math.sqrt(5))
    lengths = np.array([4.0, 1.0, 0.0, 2.0])
    np.testing.assert_allclose(
        geo.general_orthogonal_frame(lengths).numpy(), np.diag(lengths) / math.sqrt(21)
    )
    # a balanced GOF is the OF
    np.testing.assert_allclose(
        geo.general_orthogonal_frame([3.0] * 4).numpy(), geo.orthogonal_frame(4).numpy()
    )


@pytest.mark.parametrize("k", [2, 4, 10])
def test_distances_between_targets_match_closed_forms(k: int) -> None:
    # <I/sqrt K, E/sqrt(K-1)> = sqrt((K-1)/K), so ||OF - ETF||^2 = 2 - 2 sqrt((K-1)/K)
    expected = math.sqrt(2 - 2 * math.sqrt((k - 1) / k))
    assert geo.gram_distance(geo.orthogonal_frame(k), geo.simplex_etf(k)) == pytest.approx(
        expected, rel=1e-12
    )
    lengths = np.arange(1.0, k + 1)
    inner_of = lengths.sum() / (math.sqrt(k) * np.linalg.norm(lengths))
    gof = geo.general_orthogonal_frame(lengths)
    assert geo.gram_distance(gof, geo.orthogonal_frame(k)) == pytest.approx(
        math.sqrt(2 - 2 * inner_of), rel=1e-12
    )
    inner_etf = (1 - 1 / k) * lengths.sum() / (math.sqrt(k - 1) * np.linalg.norm(lengths))
    assert geo.gram_distance(gof, geo.simplex_etf(k)) == pytest.approx(
        math.sqrt(2 - 2 * inner_etf), rel=1e-12
    )
    for target in (geo.orthogonal_frame(k), geo.simplex_etf(k), gof):
        assert geo.gram_distance(target, target) == 0.0


@pytest.mark.parametrize(
    ("lengths", "nc2_of", "inner", "nc3_of"),
    [  # paper-a.md Section 4: imbalanced synthetic runs converge to these OF distances (M = 1, 3, 6)
        ([13.94214, 9.8, 6.87107, 6.87107], 0.298736, [0.985858, 0.98, 0.971716, 0.971716], 0.006115),
        (
            [52.88268, 31.3223, 18.50221, 18.50221],
            0.430704,
            [0.996232, 0.993655, 0.989306, 0.989306],
            0.002986,
        ),
        (
            [93.48034, 51.45141, 28.24929, 28.24929],
            0.481773,
            [0.997865, 0.996128, 0.99297, 0.99297],
            0.002115,
        ),
    ],
)
def test_gof_to_of_distance_reproduces_paper_a_regression_values(
    lengths: list[float], nc2_of: float, inner: list[float], nc3_of: float
) -> None:
    of = geo.orthogonal_frame(4)
    assert geo.gram_distance(np.diag(lengths), of) == pytest.approx(nc2_of, abs=2e-6)
    assert geo.gram_distance(np.diag(inner), of) == pytest.approx(nc3_of, abs=2e-6)


def test_gram_distance_is_scale_free_symmetric_and_accepts_any_array() -> None:
    rng = np.random.default_rng(0)
    a = rng.normal(size=(4, 6))
    gram = a @ a.T
    target = geo.simplex_etf(4)
    d = geo.gram_distance(gram, target)
    assert geo.gram_distance(7.5 * gram, 0.1 * target) == pytest.approx(d, rel=1e-14)
    assert geo.gram_distance(target, gram) == pytest.approx(d, rel=1e-14)
    assert geo.gram_distance(torch.tensor(gram, dtype=torch.float32), gram.tolist()) == pytest.approx(
        0, abs=1e-7
    )
    assert 0 <= d <= 2


def test_normalized_has_unit_norm_in_float64() -> None:
    out = geo.normalized(torch.tensor([[1.0, 2.0], [2.0, 5.0]], dtype=torch.float32))
    assert out.dtype == torch.float64
    assert float(torch.linalg.matrix_norm(out)) == pytest.approx(1.0, rel=1e-15)


@pytest.mark.parametrize("depth", [1, 3, 6])
def test_gof_targets_from_counts_follow_the_small_lambda_exponent(depth: int) -> None:
    targets = geo.gof_targets_from_counts([200, 100, 50], depth=depth)
    p = depth / (depth + 1)  # paper-a.md 2.0(f): ||w_k||^2 ∝ n_k^p, ||hbar_k||^2 ∝ n_k^-p
    assert float(targets.classifier_sq[0] / targets.classifier_sq[1]) == pytest.approx(2**p)
    assert float(targets.means_sq[0] / targets.means_sq[1]) == pytest.approx(2**-p)
    assert targets.inner.tolist() == [1.0, 1.0, 1.0]
    balanced = geo.gof_targets_from_counts([7, 7, 7], depth=depth)
    assert geo.gram_distance(torch.diag(balanced.means_sq), geo.orthogonal_frame(3)) == pytest.approx(
        0, abs=1e-15
    )


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda: geo.simplex_etf(1), r"`num_classes` must be an integer >= 2, got 1"),
        (lambda: geo.orthogonal_frame(0), r"`num_classes` must be an integer >= 1, got 0"),
        (lambda: geo.general_orthogonal_frame([1.0, -1.0]), r"`lengths_sq` must be >= 0"),
        (lambda: geo.general_orthogonal_frame([[1.0]]), r"`lengths_sq` must be a non-empty 1-D"),
        (lambda: geo.general_orthogonal_frame([0.0, 0.0]), r"`lengths_sq` is zero"),
        (lambda: geo.normalized(np.zeros((2, 2))), r"`gram` is zero"),
        (lambda: geo.normalized([[1.0, float("nan")]]), r"`gram` contains NaN"),
        (lambda: geo.normalized("abc"), r"`gram` must be numeric"),
        (lambda: geo.gram_distance(np.eye(3), np.eye(2)), r"`gram` \(3, 3\) and `target` \(2, 2\) differ"),
        (lambda: geo.gram_distance(np.ones((2, 3)), np.eye(2)), r"`gram` must be a non-empty square"),
        (lambda: geo.gram_distance(np.eye(2), np.ones(2)), r"`target` must be a non-empty square"),
        (
            lambda: geo.gof_targets_from_counts([3, 0]),
            r"`counts` must be a non-empty 1-D sequence of positive",
        ),
        (lambda: geo.gof_targets_from_counts([3, 2], depth=0), r"`depth` must be an integer >= 1, got 0"),
    ],
)
def test_bad_input_raises(call, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        call()
