"""The brute-force float64 reference every per-layer metrics path is checked against.

Deliberately naive: numpy only, class means by Python loops over samples, Sigma_B^+ by
``np.linalg.pinv``, every distance written out from its definition (paper A's code conventions:
mu_G sample-weighted, Sigma_B the unweighted class average around it, nrm(A) = A / ||A||_F).
It shares no code with ``ncbook.metrics``, so agreement is evidence, not a tautology.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest


def _nrm(a: np.ndarray) -> np.ndarray | None:
    norm = math.sqrt(sum(float(v) ** 2 for v in np.asarray(a).ravel()))
    return None if norm == 0 else np.asarray(a) / norm


def _dist(a: np.ndarray, b: np.ndarray) -> float:
    """||nrm(a) - nrm(b)||_F, NaN where a side is zero."""
    na, nb = _nrm(a), _nrm(b)
    return math.nan if na is None or nb is None else float(np.sqrt(((na - nb) ** 2).sum()))


def layer_reference(
    features: np.ndarray,
    labels: np.ndarray,
    num_classes: int,
    classifier: np.ndarray | None = None,
    predicted: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None,
) -> dict[str, float]:
    """Every metric of one layer: features (N, d), classifier (K, d), predicted = (G_h, G_w, L)."""
    h = np.asarray(features, dtype=np.float64)
    y = np.asarray(labels)
    k, (n, d) = num_classes, h.shape
    sums, counts = np.zeros((k, d)), np.zeros(k)
    for i in range(n):
        sums[y[i]] += h[i]
        counts[y[i]] += 1
    means = sums / counts[:, None]  # (K, d)
    global_mean = sum(counts[c] * means[c] for c in range(k)) / n
    centred = means - global_mean
    within = np.zeros((d, d))
    for i in range(n):
        r = h[i] - means[y[i]]
        within += np.outer(r, r) / n
    between = sum(np.outer(centred[c], centred[c]) for c in range(k)) / k
    etf, eye = np.eye(k) - 1.0 / k, np.eye(k)
    # NC1 is undefined (NaN) where the centred means span fewer than K-1 directions (collapsed classes)
    spans = np.linalg.matrix_rank(between, tol=1e-10 * max(np.abs(between).max(), 1e-300)) == k - 1
    out = {
        "nc1": float(np.trace(within @ np.linalg.pinv(between, rcond=1e-10))) / k if spans else math.nan,
        "nc2_etf": _dist(centred @ centred.T, etf),
        "nc2_of": _dist(means @ means.T, eye),
    }
    if classifier is not None:
        w = np.asarray(classifier, dtype=np.float64)
        sub = _dist(w, means)
        out |= {
            "nc2_etf_w": _dist(w @ w.T, etf),
            "nc2_of_w": _dist(w @ w.T, eye),
            "nc3": _dist(w, centred) ** 2,
            "nc3_sub": sub,
            "nc3_of": _dist(w @ means.T, eye),
            "nc3_etf": _dist(w @ centred.T, etf),
        }
        if predicted is not None:
            gram_h, gram_w, logits = (np.asarray(p, dtype=np.float64) for p in predicted)
            out |= {
                "nc2_pred": _dist(means @ means.T, gram_h),
                "nc2_pred_w": _dist(w @ w.T, gram_w),
                "nc3_pred": _dist(w @ means.T, logits),
                "nc3_pred_sub": _dist(w, logits @ np.linalg.pinv(gram_h, rcond=1e-10) @ means),
            }
    return out


def assert_matches_reference(
    table: pd.DataFrame,
    features: list[np.ndarray],
    labels: np.ndarray,
    num_classes: int,
    classifiers: list[np.ndarray] | None = None,
    reference=None,
    *,
    rtol: float = 1e-9,
    atol: float = 1e-12,
    skip: tuple[str, ...] = (),
) -> int:
    """Every (layer, metric) row of ``table`` that the reference knows (and ``skip`` does not name)
    equals it; returns how many rows were compared (so a caller can assert the check was not vacuous)."""
    compared = 0
    for m, h in enumerate(features, start=1):
        w = None if classifiers is None else classifiers[m - 1]
        predicted = None
        if reference is not None:
            predicted = (reference.layer_h_gram(m), reference.layer_w_gram(m), reference.logits)
        want = layer_reference(h, labels, num_classes, w, predicted)
        rows = table[table["layer"] == m]
        for metric, value in zip(rows["metric"], rows["value"]):
            if metric not in want or metric in skip:
                continue
            expected = want[metric]
            if math.isnan(expected):
                assert math.isnan(value), (m, metric, value)
            else:
                assert value == pytest.approx(expected, rel=rtol, abs=atol), (m, metric, value, expected)
            compared += 1
    return compared

