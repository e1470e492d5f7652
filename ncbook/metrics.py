"""Neural-collapse metrics: exact, float64, streaming (see ``NCAccumulator``) or in memory.

Definitions follow Papyan, Han, Donoho (PNAS 2020) by default; the variants of other tools and of
paper A's code are explicit options (see each function). The private modules hold the code:
``_metrics_functional`` (in-memory functions), ``ncbook.geometry`` (targets and Gram distances).
"""

from __future__ import annotations

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
