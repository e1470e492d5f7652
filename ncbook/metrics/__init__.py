"""Neural-collapse metrics: exact, float64, streaming (see ``NCAccumulator``) or in memory.

Which entry point:

* ``nc1(features, labels)``: NC1 of in-memory features, exact (float64), two passes, O(N d K) for
  K - 1 <= 0.6 d (a projection), else a float64 syrk of S_W; buffers reused, memory flat in N.
* ``NCAccumulator(K)``: ``update`` batches (CPU/CUDA, any order), ``merge`` workers, ``compute``
  every metric (``METRIC_KEYS``: NC1, CDNV, NC2 equinorm/equiangle and ETF/OF/GOF distances,
  NC3, NC4, ranks); ``nc_metrics(features, labels)`` is its in-memory functional twin.
* ``NCMetric(K, d)``: the same metrics as a ``torchmetrics.Metric`` whose sum-reducible states
  sync in DDP / Lightning (imported on first use, so ``import ncbook`` does not load torchmetrics).
* ``collect(model, loader, layers, K)``: one accumulator per tapped layer of any ``nn.Module``.
* Building blocks: ``class_means``, ``cdnv``, ``nc2_equinorm``, ``nc2_equiangle``,
  ``nc2_maxangle``, ``nc3_self_duality``, ``numerical_rank``, ``gram_distance`` (and the ETF, OF
  and GOF targets in ``ncbook.geometry``).

Conventions (default first; Papyan, Han, Donoho, PNAS 2020, and paper A's code): global mean
sample-weighted | class-averaged (``weighting``); Sigma_B around the global mean | raw means
(``center``); NC1 divided by K | not (``divide_by_k``); Sigma_B^+ truncated at the known rank,
never at a default cutoff; ``rank`` counts singular values above 1e-3 s_max (paper B).
The modules: ``functional`` (in memory), ``moments`` (shifted, scaled, sum-reducible streaming
moments; ``gram`` its blocked syrk), ``report`` (every metric from the moments), ``accumulator``
(``NCAccumulator``, ``nc_metrics``), ``torchmetric`` (``NCMetric``), ``layerwise`` (forward hooks).
Used in chapters 11-15 and 31 (``nc1``, ``nc3_self_duality``, through ``ncbook.models``), 21-22
(``ncbook.experiments.synthetic``), 23, 24 and 33 (the accumulator, through ``ncbook.train``).

>>> import torch
>>> etf = torch.eye(3) - 1 / 3  # three class means forming a simplex ETF, two samples each
>>> m = nc_metrics(etf.repeat_interleave(2, 0), torch.tensor([0, 0, 1, 1, 2, 2]))
>>> m["nc1"], round(m["nc2_etf"], 12), round(m["nc2_of"], 6)  # OF distance sqrt(2 - 2 sqrt(2/3))
(0.0, 0.0, 0.605811)
"""

from __future__ import annotations

from typing import Any

from ncbook.geometry import gram_distance
from ncbook.metrics.accumulator import *  # noqa: F403
from ncbook.metrics.accumulator import __all__ as _accumulator_all
from ncbook.metrics.functional import *  # noqa: F403
from ncbook.metrics.functional import __all__ as _functional_all
from ncbook.metrics.layerwise import TAPS, collect

__all__ = [
    *_accumulator_all,
    "NCMetric",  # noqa: F405  (provided by __getattr__ below)
    "TAPS",
    "collect",
    *_functional_all,
    "gram_distance",
]


def __getattr__(name: str) -> Any:
    if name == "NCMetric":  # torchmetrics is imported only by those who use it
        from ncbook.metrics.torchmetric import NCMetric

        return NCMetric
    raise AttributeError(f"module 'ncbook.metrics' has no attribute {name!r}")
