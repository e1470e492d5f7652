"""``NCAccumulator`` (update / merge / compute) and ``nc_metrics``: exact streaming NC statistics
with memory independent of N (used in chapters 23, 24 and 33 through ``ncbook.train``).

S_W = sum_i (h_i - mu_{y_i})(h_i - mu_{y_i})^T is accumulated as shifted, scaled moments whose
sum over batches, workers or processes is a plain sum (``ncbook.metrics.moments``); ``compute``
turns them into every metric (``ncbook.metrics.report``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch

from ncbook._checks import check_choice, check_float, check_int
from ncbook.geometry import GOFTargets, as_float64
from ncbook.metrics import moments
from ncbook.metrics.functional import WEIGHTINGS
from ncbook.metrics.inputs import (
    as_tensor,
    check_counts,
    check_features,
    check_finite,
    check_labels,
    infer_num_classes,
)
from ncbook.metrics.report import METRIC_KEYS, metrics_from_moments

__all__ = ["METRIC_KEYS", "NCAccumulator", "NCOptions", "nc_metrics"]

_GEMM_DTYPES = (None, torch.float32, torch.float64)


@dataclass(frozen=True)
class NCOptions:
    """Metric conventions; the defaults are Papyan, Han, Donoho (2020) and paper A's code."""

    weighting: str = "sample"  # mu_G = sum_k n_k mu_k / N ("sample") or (1/K) sum_k mu_k ("class")
    center: bool = True  # Sigma_B around mu_G (rank K-1); False: raw means (rank K). NC1 only
    divide_by_k: bool = True  # NC1 = Tr(Sigma_W Sigma_B^+) / K; False drops the 1/K
    rank_rtol: float = 1e-3  # `rank`: singular values > rank_rtol * s_max (paper B); not NC1's
    gemm_dtype: torch.dtype | None = None  # scatter GEMM dtype; None: feature dtype, >= float32

    def __post_init__(self) -> None:
        check_choice("weighting", self.weighting, WEIGHTINGS)
        check_choice("center", self.center, (True, False))
        check_choice("divide_by_k", self.divide_by_k, (True, False))
        check_float("rank_rtol", self.rank_rtol, low=0.0, high=1.0, low_open=True)
        check_choice("gemm_dtype", self.gemm_dtype, _GEMM_DTYPES)

    def gemm_dtype_for(self, features: torch.Tensor) -> torch.dtype:
        """The dtype of the block products: the option, else float64 for float64 features, else float32."""
        return self.gemm_dtype or (torch.float64 if features.dtype == torch.float64 else torch.float32)


class NCAccumulator:
    """Exact streaming neural-collapse metrics over any number of batches, devices or processes.

    ``update(features, labels)`` adds a batch ((B, d) floating, (B,) ints in [0, K)), on CPU or
    CUDA, any batch size and order; ``merge(other)`` adds another accumulator's data;
    ``compute(classifier=None, gof=None, *, bias=None)`` returns a dict keyed by ``METRIC_KEYS``:

    * nc1: Tr(Sigma_W Sigma_B^+)/K, Sigma_B^+ truncated at the known rank (see ``metrics.nc1``);
    * cdnv: mean over k < j of (Var_k + Var_j) / (2 ||mu_k - mu_j||^2) (Galanti et al. 2022);
    * nc2_equinorm / nc2_equiangle / nc2_maxangle: Papyan's std/avg of ||mu_k - mu_G||, std of
      their cosines, avg |cos + 1/(K-1)|; the ``_w`` twins use the classifier rows w_k;
    * nc2_etf = ||nrm(Mc Mc^T) - nrm(ETF)||_F with centred means Mc (paper A's NC2_ETF_H),
      nc2_of / nc2_gof: the raw-means Gram M M^T against the OF / GOF (NC2_Identity_H, NC2_H_GOF);
      nc2_etf_w / nc2_of_w / nc2_gof_w: the same for W W^T (NC2_ETF_W, NC2_Identity_W, NC2_W_GOF);
    * nc3 = ||W/||W|| - Mc/||Mc|| ||_F^2 (Papyan); nc3_etf = ||nrm(W Mc^T) - nrm(ETF)||,
      nc3_of / nc3_gof: W M^T against I / diag(gof.inner) (NC3_ETF_WH, NC3_Identity_WH, NC3_WH);
      nc3_sub = ||nrm(W) - nrm(M)|| and nc3_gof_sub = ||nrm(W) - nrm(diag(a) M)||,
      a_k = sqrt(classifier_sq_k / means_sq_k) (NC3_W_sub_H, GOF version);
    * rank / rank_centered: numerical rank of M / Mc at ``rank_rtol``;
    * nc4: share of samples where argmax of the logits differs from the nearest-class-mean (NCC)
      decision; ncc_error: share where the NCC decision differs from the label. Both need a
      second pass with ``update_ncc`` against ``reference_means`` (``collect`` does this);
    * means_error: share of class means the classifier (W, b) does not assign to their own class.

    Args:
        num_classes: K >= 2.
        weighting, center, divide_by_k, rank_rtol, gemm_dtype: see ``NCOptions`` (defaults:
            sample-weighted mu_G, centred Sigma_B, divide by K, rtol 1e-3, GEMM in the feature
            dtype on shifted residuals, float64 state).
        reference_means: (K, d) class means for ``update_ncc``; settable later.

    Cost: rows are buffered into blocks of ``moments.BLOCK_ROWS`` (one R^T R product per block),
    so 128-row batches cost what 4096-row batches do; the class sums use index_add_, never a
    one-hot product, so K = 1000 costs what K = 10 does. Nothing is read before ``compute``,
    ``class_means``, ``within_covariance`` or ``merge``, which flush the buffer.

    Precision: the state is float64 (see ``ncbook.metrics.moments``). With float32 features the
    block product R^T R runs in float32 on residuals r = 2^e h - c around per-class shifts, so no
    offset cancels and no square underflows; by the standard bound for a float32 inner product of
    m terms, every entry of S_W is within gamma_m = m u / (1 - m u) (u = 2^-24, m <= N + 2) of
    the exact one, relative to sum_i |r_i| |r_i|^T, and NC1 within
    gamma_m sum_j || |R| |p_j| ||^2 / N, p_j the columns of the projector with Sigma_B^+ = K P P^T
    (tested against a float64 oracle). ``gemm_dtype=torch.float64`` makes every step float64
    (then the error is of the order 1e-15) at about twice the cost.

    >>> acc = NCAccumulator(2)
    >>> acc.update(torch.tensor([[1.0, 0.0], [3.0, 0.0]]), torch.tensor([0, 0]))
    >>> acc.update(torch.tensor([[0.0, 1.0], [0.0, 3.0]]), torch.tensor([1, 1]))
    >>> acc.compute()["nc1"]  # same data as the ``metrics.nc1`` example
    0.125
    """

    def __init__(
        self,
        num_classes: int,
        *,
        weighting: str = "sample",
        center: bool = True,
        divide_by_k: bool = True,
        rank_rtol: float = 1e-3,
        gemm_dtype: torch.dtype | None = None,
        reference_means: Any = None,
    ) -> None:
        self.num_classes = check_int("num_classes", num_classes, low=2)
        self.options = NCOptions(weighting, center, divide_by_k, rank_rtol, gemm_dtype)
        self.reference_means = (
            None if reference_means is None else as_float64("reference_means", reference_means)
        )
        self.reset()

    def reset(self) -> None:
        """Forget all data (keeps options and reference means)."""
        self.dim: int | None = None
        self._buffer: moments.RowBuffer | None = None
        self.counts = torch.zeros(self.num_classes, dtype=torch.float64)  # n_k (flushed rows)
        self.ncc_seen = 0  # samples seen by update_ncc
        self.ncc_wrong = 0  # NCC decision != label
        self.logits_seen = 0  # samples with logits
        self.ncc_mismatch = 0  # NCC decision != argmax logits

    def _init_state(self, dim: int, device: torch.device, dtype: torch.dtype) -> None:
        self.dim = dim
        moments.empty_state(self, self.num_classes, dim, device)
        self._buffer = moments.RowBuffer(dim, dtype, device)

    def update(self, features: Any, labels: Any) -> None:
        """Add a batch: ``features`` (B, d) floating, ``labels`` (B,) integers in [0, K)."""
        x = check_features(features, self.dim)
        y = check_labels(labels, x.shape[0], self.num_classes, x.device)
        if x.shape[0] == 0:
            return
        if self.dim is None:
            self._init_state(x.shape[1], x.device, self.options.gemm_dtype_for(x))
        moments.push(self, self._buffer, x, y)

    def _flush(self) -> None:
        if self._buffer is not None:
            moments.flush(self, self._buffer)

    def merge(self, other: NCAccumulator) -> NCAccumulator:
        """Add ``other``'s data (same K, options and d) to this accumulator; returns self."""
        if not isinstance(other, NCAccumulator):
            raise ValueError(f"`other` must be an NCAccumulator, got {type(other).__name__}")
        if other.num_classes != self.num_classes or other.options != self.options:
            raise ValueError("`other` has a different number of classes or different options")
        if other.dim is not None:
            if self.dim is None:
                self._init_state(other.dim, other.counts.device, other._buffer.rows.dtype)
            elif other.dim != self.dim:
                raise ValueError(f"`other` has dimension {other.dim}, expected {self.dim}")
            self._flush()
            other._flush()
            device = self.counts.device
            incoming = _Moments(**{f: getattr(other, f).to(device).clone() for f in _Moments.FIELDS})
            moments.add_state(self, incoming)
        self.ncc_seen += other.ncc_seen
        self.ncc_wrong += other.ncc_wrong
        self.logits_seen += other.logits_seen
        self.ncc_mismatch += other.ncc_mismatch
        return self

    def update_ncc(self, features: Any, labels: Any, logits: Any = None) -> None:
        """Count nearest-class-mean decisions against ``reference_means`` (K, d): errors against
        ``labels`` and, with ``logits`` (B, K), disagreements with argmax logits (NC4)."""
        if self.reference_means is None:
            raise ValueError("`reference_means` must be set before `update_ncc` (e.g. acc.class_means())")
        ref = self.reference_means
        if ref.shape != (self.num_classes, ref.shape[1]) or (
            self.dim is not None and ref.shape[1] != self.dim
        ):
            raise ValueError(f"`reference_means` must have shape (K, d), got {tuple(ref.shape)}")
        x = check_features(features, ref.shape[1])
        y = check_labels(labels, x.shape[0], self.num_classes, x.device)
        ref = ref.to(x.device)
        centre = ref.mean(0)  # argmin_k ||h - mu_k|| is shift-invariant; centring keeps precision
        # and scale-invariant: a power of two keeps the products of tiny or huge features normal
        factor = 2.0 ** moments.exponent_of(float((ref - centre).abs().max()))
        refc = (ref - centre) * factor
        score = ((x.to(torch.float64) - centre) * factor) @ refc.T - 0.5 * refc.square().sum(1)  # (B, K)
        check_finite("features", score)
        decision = score.argmax(1)
        self.ncc_seen += x.shape[0]
        self.ncc_wrong += int((decision != y).sum())
        if logits is not None:
            z = as_tensor("logits", logits)
            if z.shape != (x.shape[0], self.num_classes):
                raise ValueError(
                    f"`logits` must have shape ({x.shape[0]}, {self.num_classes}), got {tuple(z.shape)}"
                )
            self.logits_seen += x.shape[0]
            self.ncc_mismatch += int((z.to(x.device).argmax(1) != decision).sum())

    def class_means(self) -> torch.Tensor:
        """mu_k, (K, d) float64 on the CPU (a copy). Raises if a class has no sample."""
        self._check_ready()
        return moments.means_at_scale(self).to("cpu") * 2.0 ** -int(self.exponent)

    def within_covariance(self) -> torch.Tensor:
        """Sigma_W = S_W / N, (d, d) float64 on the CPU (underflows for features below about 1e-154)."""
        counts, _, scatter, _, exponent = self._moments()
        return scatter / counts.sum() * 2.0 ** (-2 * exponent)

    def _check_ready(self) -> None:
        if self.dim is None:
            raise ValueError("the accumulator has seen no data; call `update` first")
        self._flush()
        check_counts(self.counts)

    def _moments(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, int]:
        self._check_ready()
        return tuple(t.to("cpu") if isinstance(t, torch.Tensor) else t for t in moments.centred(self))

    def compute(
        self,
        classifier: Any = None,
        gof: GOFTargets | None = None,
        *,
        bias: Any = None,
        keys: Sequence[str] = METRIC_KEYS,
    ) -> dict[str, float]:
        """The metrics of the class docstring as floats: ``keys``, by default all (``METRIC_KEYS``).

        Args:
            classifier: (K, d) end-to-end classifier W acting on these features (for deep NC,
                W_M ... W_m on layer m's input); None leaves the W metrics NaN.
            gof: GOF targets; default ``geometry.gof_targets_from_counts(counts)`` (depth 1,
                small-regularisation limit; the OF for balanced counts).
            bias: (K,) last-layer bias b of the classifier (needs ``classifier``). It only enters
                ``means_error``, the share of classes c whose mean the classifier does not assign
                to c, argmax_k (W mu_c + b)_k != c (without it b = 0). The Gram metrics ignore b,
                and NC4 needs per-sample logits, which already carry b (``update_ncc``).
            keys: the metrics to compute (a subset of ``METRIC_KEYS``), e.g. what a per-step
                monitor records: the others are never evaluated, and each value is bit-identical
                to the one of the full set.
        """
        counts, means, scatter, spread, exponent = self._moments()
        out = metrics_from_moments(
            counts, means, scatter, spread, self.options, raw_means=means * 2.0**-exponent,
            classifier=classifier, gof=gof, bias=bias, keys=keys,
        )  # fmt: skip
        if self.logits_seen and "nc4" in out:
            out["nc4"] = self.ncc_mismatch / self.logits_seen
        if self.ncc_seen and "ncc_error" in out:
            out["ncc_error"] = self.ncc_wrong / self.ncc_seen
        return out


class _Moments:
    """A detached copy of a state's moment fields (``merge`` rebases it, not the other accumulator)."""

    FIELDS = ("counts", "shift", "sums", "gram", "sq", "exponent")

    def __init__(self, **fields: torch.Tensor) -> None:
        self.__dict__.update(fields)


def nc_metrics(
    features: Any,
    labels: Any,
    num_classes: int | None = None,
    *,
    classifier: Any = None,
    gof: GOFTargets | None = None,
    **options: Any,
) -> dict[str, float]:
    """Functional twin of ``NCAccumulator``: every metric of in-memory ``features`` (N, d).

    ``options`` are ``NCOptions`` fields. NC4 needs logits and two passes: use the accumulator.

    >>> h = torch.tensor([[1.0, 0.0], [3.0, 0.0], [0.0, 1.0], [0.0, 3.0]])
    >>> nc_metrics(h, torch.tensor([0, 0, 1, 1]))["nc2_etf"]  # two centred means are antipodal
    0.0
    """
    y = as_tensor("labels", labels)
    acc = NCAccumulator(infer_num_classes(y, num_classes), **options)
    acc.update(features, y)
    return acc.compute(classifier, gof)
