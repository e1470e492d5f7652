"""``NCMetric``: the accumulator's NC metrics as a ``torchmetrics.Metric`` whose states sync by
themselves in DDP and Lightning (for training loops outside the book; the book's chapters use
``NCAccumulator`` through ``ncbook.train``).

States (float64): n_k, s_k = sum_{i in k} r_i, T = sum_i r_i r_i^T, q_k = sum_{i in k} ||r_i||^2 with
r_i = 2^e h_i - c_{y_i} (``ncbook.metrics.moments``); they add across processes
(``dist_reduce_fx="sum"``) once every process uses the same scale 2^e and shifts c_k. Before the
sum, ``_sync_dist`` gathers (e, c, n) and moves each process to the smallest scale and, per class,
to the shift of the first process that saw it (exact rescaling, and a rank-K rebase
T' = T + S^T D + D^T S + D^T diag(n) D with D = c - c'). ``update`` and ``compute`` are the
accumulator's own functions.
"""

from __future__ import annotations

from typing import Any

import torch
from torchmetrics import Metric
from torchmetrics.utilities.distributed import gather_all_tensors

from ncbook._checks import check_int
from ncbook.geometry import GOFTargets
from ncbook.metrics import moments
from ncbook.metrics.accumulator import NCOptions
from ncbook.metrics.inputs import check_counts, check_features, check_labels
from ncbook.metrics.report import metrics_from_moments

__all__ = ["NCMetric"]


def _first(stacked: torch.Tensor) -> torch.Tensor:
    """Reduction of states that ``_sync_dist`` has made equal on every process (scale, shifts)."""
    return stacked[0]


class NCMetric(Metric):
    """Neural-collapse metrics (the keys of ``METRIC_KEYS``) as a ``torchmetrics.Metric``.

    NC1 = Tr(Sigma_W Sigma_B^+)/K and every other metric of ``NCAccumulator.compute``, from the
    same float64 moments; ``compute()`` returns {name: float}. Set ``classifier`` (K, d), ``bias``
    (K,) and ``gof`` as attributes before ``compute`` for the classifier metrics. NC4 (two passes)
    is not offered here: use ``NCAccumulator.update_ncc``.

    ``forward`` recomputes the metrics of the batch alone (``full_state_update = True``); the
    usual pattern is ``update`` per batch and ``compute`` per epoch.

    Args:
        num_classes: K >= 2.
        num_features: d >= 1 (states are allocated up front, as torchmetrics requires).
        weighting, center, divide_by_k, rank_rtol, gemm_dtype: see ``NCOptions``.
        kwargs: ``torchmetrics.Metric`` arguments (process_group, dist_sync_on_step, ...).

    >>> metric = NCMetric(2, 2)
    >>> metric.update(torch.tensor([[1.0, 0.0], [3.0, 0.0]]), torch.tensor([0, 0]))
    >>> metric.update(torch.tensor([[0.0, 1.0], [0.0, 3.0]]), torch.tensor([1, 1]))
    >>> metric.compute()["nc1"]  # Sigma_W = I/2, Sigma_B = 2 u u^T: Tr = 1/4, / K
    0.125
    """

    full_state_update = True  # the moment states add only after _sync_dist aligns them
    is_differentiable = False
    higher_is_better = None

    def __init__(
        self,
        num_classes: int,
        num_features: int,
        *,
        weighting: str = "sample",
        center: bool = True,
        divide_by_k: bool = True,
        rank_rtol: float = 1e-3,
        gemm_dtype: torch.dtype | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.num_classes = check_int("num_classes", num_classes, low=2)
        self.num_features = check_int("num_features", num_features, low=1)
        self.options = NCOptions(weighting, center, divide_by_k, rank_rtol, gemm_dtype)
        self.classifier: Any = None
        self.bias: Any = None
        self.gof: GOFTargets | None = None
        defaults = _Defaults()
        moments.empty_state(defaults, self.num_classes, self.num_features)
        for name in ("counts", "sums", "gram", "sq"):
            self.add_state(name, getattr(defaults, name), dist_reduce_fx="sum")
        self.add_state("shift", defaults.shift, dist_reduce_fx=_first)
        self.add_state("exponent", defaults.exponent, dist_reduce_fx=_first)
        self._buffer: moments.RowBuffer | None = None

    def update(self, features: Any, labels: Any) -> None:
        """Add a batch: ``features`` (B, d) floating, ``labels`` (B,) integers in [0, K)."""
        x = check_features(features, self.num_features)
        y = check_labels(labels, x.shape[0], self.num_classes, self.counts.device)
        if x.shape[0] == 0:
            return
        dtype = self.options.gemm_dtype_for(x)
        if self._buffer is None or (self._buffer.rows.dtype, self._buffer.rows.device) != (
            dtype,
            self.counts.device,
        ):
            self._flush()
            self._buffer = moments.RowBuffer(self.num_features, dtype, self.counts.device)
        moments.push(self, self._buffer, x.to(self.counts.device), y)

    def _flush(self) -> None:
        if self._buffer is not None:
            moments.flush(self, self._buffer)

    def _copy_state_dict(self) -> dict[str, Any]:
        # sync() and forward() snapshot the states through here: buffered rows must be in them
        self._flush()
        return super()._copy_state_dict()

    def reset(self) -> None:
        """Forget all data (also the rows waiting in the buffer)."""
        if self._buffer is not None:
            self._buffer.fill = 0
        super().reset()

    def _sync_dist(self, dist_sync_fn: Any = gather_all_tensors, process_group: Any = None) -> None:
        self._flush()
        group = process_group or self.process_group
        exponents = [int(e) for e in dist_sync_fn(self.exponent, group=group)]
        counts = dist_sync_fn(self.counts, group=group)
        shifts = dist_sync_fn(self.shift, group=group)
        common = min(exponents)
        if common != moments.UNSET:
            moments.rescale(self, common)
            shift = torch.zeros_like(self.shift)
            claimed = torch.zeros(self.num_classes, dtype=torch.bool, device=shift.device)
            for exponent, n, c in zip(exponents, counts, shifts, strict=True):
                take = (n > 0) & ~claimed  # per class: the first process that saw it
                if exponent != moments.UNSET:
                    shift[take] = c[take] * 2.0 ** (common - exponent)
                claimed |= take
            moments.rebase(self, shift)
        super()._sync_dist(dist_sync_fn, process_group)

    def compute(self) -> dict[str, float]:
        """Every metric of ``METRIC_KEYS`` (NaN where undefined; nc4 and ncc_error always NaN)."""
        self._flush()
        if int(self.exponent) == moments.UNSET:
            raise ValueError("the metric has seen no data; call `update` first")
        check_counts(self.counts)
        counts, means, scatter, spread, exponent = (
            t.to("cpu") if isinstance(t, torch.Tensor) else t for t in moments.centred(self)
        )
        return metrics_from_moments(
            counts, means, scatter, spread, self.options, raw_means=means * 2.0**-exponent,
            classifier=self.classifier, gof=self.gof, bias=self.bias,
        )  # fmt: skip


class _Defaults:
    """Holder for the default state tensors built by ``moments.empty_state``."""
