"""Every NC metric from centred class moments (counts, means, within-class scatter, spreads): the
``compute`` step shared by ``NCAccumulator``, ``NCMetric`` and ``nc_metrics`` (chapters 23, 24, 33).

NC1 = Tr(Sigma_W Sigma_B^+)/K with Sigma_W = S_W / N; the Gram distances are
||G/||G||_F - T/||T||_F||_F. The moments may carry a common power-of-two scale (see
``ncbook.metrics.moments``): every metric here except ``means_error`` is scale-free, and that one
receives the raw means.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch

from ncbook.geometry import (
    DegenerateError,
    GOFTargets,
    as_float64,
    general_orthogonal_frame,
    gof_targets_from_counts,
    gram_distance,
    normalized,
    orthogonal_frame,
    simplex_etf,
)
from ncbook.metrics.functional import (
    between_class,
    cdnv_from,
    nc1_from_scatter,
    nc2_equiangle,
    nc2_equinorm,
    nc2_maxangle,
    nc3_self_duality,
    numerical_rank,
)

__all__ = ["METRIC_KEYS", "metrics_from_moments"]

# Every key of ``NCAccumulator.compute``; classifier metrics are NaN without a classifier, NC4 and
# the NCC error are NaN until ``update_ncc`` has seen data.
METRIC_KEYS = (
    "num_samples", "nc1", "cdnv", "nc2_equinorm", "nc2_equiangle", "nc2_maxangle", "nc2_etf",
    "nc2_of", "nc2_gof", "rank", "rank_centered", "nc2_equinorm_w", "nc2_equiangle_w",
    "nc2_maxangle_w", "nc2_etf_w", "nc2_of_w", "nc2_gof_w", "nc3", "nc3_etf", "nc3_of", "nc3_gof",
    "nc3_sub", "nc3_gof_sub", "nc4", "ncc_error", "means_error",
)  # fmt: skip


def metrics_from_moments(
    counts: torch.Tensor,
    means: torch.Tensor,
    scatter: torch.Tensor,
    spread: torch.Tensor,
    options: Any,
    *,
    raw_means: torch.Tensor,
    classifier: Any = None,
    gof: GOFTargets | None = None,
    bias: Any = None,
    keys: Sequence[str] = METRIC_KEYS,
) -> dict[str, float]:
    """The metrics of ``NCAccumulator.compute`` (float64, CPU) from (n_k, mu_k, S_W, sum ||h-mu_k||^2)
    at any common scale; ``raw_means`` are mu_k at scale 1 (for ``means_error`` only).

    Only ``keys`` (a subset of ``METRIC_KEYS``) are evaluated and returned, each by the same
    arithmetic as in the full set, so a subset costs less and its values are bit-identical.
    """
    unknown = [key for key in keys if key not in METRIC_KEYS]
    if unknown:
        raise ValueError(f"`keys` has unknown metric(s) {unknown}; allowed: {', '.join(METRIC_KEYS)}")
    k = len(counts)
    targets = functools.cache(lambda: gof_targets_from_counts(counts) if gof is None else gof)
    centred = between_class(means, counts, options.weighting, center=True)
    raw_gram = means @ means.T
    scatter_args = dict(weighting=options.weighting, center=options.center, divide_by_k=options.divide_by_k)
    metrics: dict[str, Callable[[], float]] = dict(
        num_samples=lambda: float(counts.sum()),
        nc1=lambda: nc1_from_scatter(scatter, means, counts, **scatter_args),
        cdnv=lambda: cdnv_from(means, spread / counts),
        nc2_equinorm=lambda: nc2_equinorm(centred),
        nc2_equiangle=lambda: nc2_equiangle(centred),
        nc2_maxangle=lambda: nc2_maxangle(centred),
        nc2_etf=lambda: gram_distance(centred @ centred.T, simplex_etf(k)),
        nc2_of=lambda: gram_distance(raw_gram, orthogonal_frame(k)),
        nc2_gof=lambda: gram_distance(raw_gram, general_orthogonal_frame(targets().means_sq)),
        rank=lambda: float(numerical_rank(means, options.rank_rtol)),
        rank_centered=lambda: float(numerical_rank(centred, options.rank_rtol)),
    )
    if bias is not None and classifier is None:
        raise ValueError("`bias` needs `classifier`: pass the (K, d) classifier it belongs to")
    if classifier is not None:
        w = as_float64("classifier", classifier)
        if w.shape != means.shape:
            raise ValueError(
                f"`classifier` must have shape {tuple(means.shape)} (K, d), got {tuple(w.shape)}"
            )
        b = torch.zeros(k, dtype=torch.float64) if bias is None else as_float64("bias", bias)
        if b.shape != (k,):
            raise ValueError(f"`bias` must have shape ({k},), got {tuple(b.shape)}")
        metrics |= _classifier_metrics(w, means, centred, targets)
        # the class argmax_k (W mu_c + b)_k given to each class mean c
        metrics["means_error"] = lambda: float(
            ((raw_means @ w.T + b).argmax(dim=1) != torch.arange(k)).double().mean()
        )
    # classifier metrics without a classifier, and NC4 / the NCC error (the caller's), stay NaN
    return dict.fromkeys(keys, math.nan) | _defined({key: metrics[key] for key in keys if key in metrics})


def _classifier_metrics(
    w: torch.Tensor, means: torch.Tensor, centred: torch.Tensor, targets: Callable[[], GOFTargets]
) -> dict[str, Callable[[], float]]:
    """The metrics of the classifier ``w`` (K, d), unevaluated; ``targets`` gives the GOF targets."""
    k = len(means)

    def gof_sub() -> float:
        gof = targets()
        # w_k = a_k hbar_k at the GOF; a collapsed class (both lengths 0) targets a zero row
        ratio = gof.classifier_sq / gof.means_sq.clamp(min=torch.finfo(torch.float64).tiny)
        scale = torch.where(gof.means_sq > 0, ratio, 0.0).sqrt()
        return float(torch.linalg.matrix_norm(normalized(w) - normalized(scale[:, None] * means)))

    return dict(
        nc2_equinorm_w=lambda: nc2_equinorm(w),
        nc2_equiangle_w=lambda: nc2_equiangle(w),
        nc2_maxangle_w=lambda: nc2_maxangle(w),
        nc2_etf_w=lambda: gram_distance(w @ w.T, simplex_etf(k)),
        nc2_of_w=lambda: gram_distance(w @ w.T, orthogonal_frame(k)),
        nc2_gof_w=lambda: gram_distance(w @ w.T, general_orthogonal_frame(targets().classifier_sq)),
        nc3=lambda: nc3_self_duality(w, centred),
        nc3_etf=lambda: gram_distance(w @ centred.T, simplex_etf(k)),
        nc3_of=lambda: gram_distance(w @ means.T, orthogonal_frame(k)),
        nc3_gof=lambda: gram_distance(w @ means.T, torch.diag(targets().inner)),
        nc3_sub=lambda: nc3_self_duality(w, means, squared=False),
        nc3_gof_sub=gof_sub,
    )


def _defined(metrics: Mapping[str, Callable[[], float]]) -> dict[str, float]:
    """Evaluate each metric; one that is undefined here (``DegenerateError``: a zero classifier
    row of a collapsed minority class, class means of too low rank) becomes NaN, not an error."""
    out = {}
    for name, metric in metrics.items():
        try:
            out[name] = metric()
        except DegenerateError:
            out[name] = math.nan
    return out
