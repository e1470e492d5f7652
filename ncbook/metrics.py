"""Neural-collapse metrics: exact, float64, streaming (see ``NCAccumulator``) or in memory.

Definitions follow Papyan, Han, Donoho (PNAS 2020) by default; the variants of other tools and of
paper A's code are explicit options (see each function). The private modules hold the code:
``_metrics_functional`` (in-memory), ``_metrics_accumulator`` (streaming), ``_metrics_collect``
(per-layer forward hooks); ``ncbook.geometry`` holds the targets and Gram distances.
"""

from __future__ import annotations

from ncbook._metrics_accumulator import METRIC_KEYS, NCAccumulator, NCOptions, nc_metrics
from ncbook._metrics_collect import TAPS, collect
from ncbook._metrics_functional import (
    WEIGHTINGS,
    cdnv,
    class_means,
    nc1,
    nc1_from_scatter,
    nc2_equiangle,
    nc2_equinorm,
    nc2_maxangle,
    nc3_self_duality,
    numerical_rank,
)
from ncbook.geometry import gram_distance

__all__ = [
    "METRIC_KEYS",
    "NCAccumulator",
    "NCOptions",
    "TAPS",
    "collect",
    "nc_metrics",
    "WEIGHTINGS",
    "cdnv",
    "class_means",
    "gram_distance",
    "nc1",
    "nc1_from_scatter",
    "nc2_equiangle",
    "nc2_equinorm",
    "nc2_maxangle",
    "nc3_self_duality",
    "numerical_rank",
]
