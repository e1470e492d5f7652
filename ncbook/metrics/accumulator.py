"""Streaming NC statistics: ``NCAccumulator`` (update / merge / compute) and ``nc_metrics``.

State (float64, memory independent of N): class counts n_k, class means mu_k (K, d), the
within-class scatter S_W = sum_i (h_i - mu_{y_i})(h_i - mu_{y_i})^T (d, d) and per-class spreads
sum_{i in k} ||h_i - mu_k||^2 (K,). Each batch costs one product R^T R (d, d) of the residuals
R = h_i - c_{y_i} around a per-class shift c (the running means), so offsets never cancel (on CPU
only its upper block rows are computed: about 0.8 of a GEMM's time). The batch's centred moments
then join the state by Chan, Golub and LeVeque's parallel formula
S = S_a + S_b + sum_k (n_a n_b / n) (mu_b - mu_a)(mu_b - mu_a)^T, the same rule as ``merge``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

from ncbook._checks import check_choice, check_float, check_int
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
    WEIGHTINGS,
    between_class,
    cdnv_from,
    nc1_from_scatter,
    nc2_equiangle,
    nc2_equinorm,
    nc2_maxangle,
    nc3_self_duality,
    numerical_rank,
)
from ncbook.metrics.inputs import (
    CHUNK_ROWS,
    as_tensor,
    check_counts,
    check_features,
    check_finite,
    check_labels,
    infer_num_classes,
)

__all__ = ["METRIC_KEYS", "NCAccumulator", "NCOptions", "nc_metrics"]

# Every key of ``NCAccumulator.compute``; classifier metrics are NaN without a classifier, NC4 and
# the NCC error are NaN until ``update_ncc`` has seen data.
METRIC_KEYS = (
    "num_samples", "nc1", "cdnv", "nc2_equinorm", "nc2_equiangle", "nc2_maxangle", "nc2_etf",
    "nc2_of", "nc2_gof", "rank", "rank_centered", "nc2_equinorm_w", "nc2_equiangle_w",
    "nc2_maxangle_w", "nc2_etf_w", "nc2_of_w", "nc2_gof_w", "nc3", "nc3_etf", "nc3_of", "nc3_gof",
    "nc3_sub", "nc3_gof_sub", "nc4", "ncc_error", "means_error",
)  # fmt: skip

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

    Precision: the state is float64. With float32 features the per-batch GEMM runs in float32 on
    residuals around the running class means, so no offset cancels and the scatter carries a
    relative error of about 1e-7 of the within-class spread (tested <= 1e-6 against a float64
    oracle, also at offset 50 and spread 1e-3); ``gemm_dtype=torch.float64`` makes every step
    float64 at about twice the cost.

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
        self.counts = torch.zeros(self.num_classes, dtype=torch.float64)  # n_k
        self.means: torch.Tensor | None = None  # (K, d) mu_k
        self.scatter: torch.Tensor | None = None  # (d, d) within-class scatter S_W
        self.spread = torch.zeros(self.num_classes, dtype=torch.float64)  # sum_{i in k} ||h_i - mu_k||^2
        self.ncc_seen = 0  # samples seen by update_ncc
        self.ncc_wrong = 0  # NCC decision != label
        self.logits_seen = 0  # samples with logits
        self.ncc_mismatch = 0  # NCC decision != argmax logits

    def _init_state(self, dim: int, device: torch.device) -> None:
        self.dim = dim
        self.counts = self.counts.to(device)
        self.spread = self.spread.to(device)
        self.means = torch.zeros(self.num_classes, dim, dtype=torch.float64, device=device)
        self.scatter = torch.zeros(dim, dim, dtype=torch.float64, device=device)

    def update(self, features: Any, labels: Any) -> None:
        """Add a batch: ``features`` (B, d) floating, ``labels`` (B,) integers in [0, K)."""
        x = check_features(features, self.dim)
        y = check_labels(labels, x.shape[0], self.num_classes, x.device)
        if x.shape[0] == 0:
            return
        if self.dim is None:
            self._init_state(x.shape[1], x.device)
        for start in range(0, x.shape[0], CHUNK_ROWS):
            rows = slice(start, start + CHUNK_ROWS)
            self._update_chunk(x[rows].to(self.counts.device), y[rows].to(self.counts.device))

    def _update_chunk(self, x: torch.Tensor, y: torch.Tensor) -> None:
        k = self.num_classes
        dtype = self.options.gemm_dtype or (torch.float64 if x.dtype == torch.float64 else torch.float32)
        onehot = torch.nn.functional.one_hot(y, k).to(dtype)  # (B, K)
        n_b = onehot.sum(0).to(torch.float64)
        shift = self.means.clone()  # (K, d) float64
        new = (self.counts == 0) & (n_b > 0)
        if bool(new.any()):  # a first sighting: shift by the batch mean so offsets cancel exactly
            sums = torch.zeros_like(shift).index_add_(0, y, x.to(torch.float64))
            shift[new] = sums[new] / n_b[new, None]
        shift = shift.to(dtype)  # the shift actually subtracted, kept exactly in float64 below
        # h_i - c_{y_i} as x - onehot @ c: one fused pass, bitwise equal to a gather and subtract
        residual = torch.addmm(x.to(dtype), onehot, shift, alpha=-1)  # (B, d)
        gram = _symmetric_gram(residual).to(torch.float64)  # (d, d): the one large product
        sums = (onehot.T @ residual).to(torch.float64)  # (K, d)
        row_sq = torch.linalg.vector_norm(residual, dim=1).to(torch.float64).square()
        spread = torch.zeros(k, dtype=torch.float64, device=x.device).index_add_(0, y, row_sq)
        if not bool(torch.isfinite(gram.diagonal()).all()):
            check_finite("features", x)  # NaN or inf in the input itself
            raise ValueError(
                f"`features` are finite but their {dtype} products overflow (max |x| = "
                f"{float(x.abs().max()):.3g}); pass gemm_dtype=torch.float64 or rescale them"
            )
        seen = n_b > 0
        inv = torch.where(seen, 1 / n_b.clamp(min=1), 0.0)
        means_b = shift.to(torch.float64) + sums * inv[:, None]
        scatter_b = gram - sums.T @ (sums * inv[:, None])
        spread_b = spread - sums.square().sum(1) * inv
        self._join(n_b, means_b, scatter_b, spread_b)

    def _join(self, n_b: torch.Tensor, mu_b: torch.Tensor, s_b: torch.Tensor, q_b: torch.Tensor) -> None:
        """Chan's parallel update of the centred moments with another set (n_b, mu_b, S_b, q_b)."""
        n_a = self.counts
        n = n_a + n_b
        delta = mu_b - self.means  # (K, d)
        frac = torch.where(n > 0, n_b / n.clamp(min=1), 0.0)
        weight = n_a * frac  # n_a n_b / n, zero when either side is empty
        self.means = self.means + delta * frac[:, None]
        self.scatter = self.scatter + s_b + delta.T @ (delta * weight[:, None])
        self.spread = self.spread + q_b + weight * delta.square().sum(1)
        self.counts = n

    def merge(self, other: NCAccumulator) -> NCAccumulator:
        """Add ``other``'s data (same K, options and d) to this accumulator; returns self."""
        if not isinstance(other, NCAccumulator):
            raise ValueError(f"`other` must be an NCAccumulator, got {type(other).__name__}")
        if other.num_classes != self.num_classes or other.options != self.options:
            raise ValueError("`other` has a different number of classes or different options")
        if other.dim is not None:
            if self.dim is None:
                self._init_state(other.dim, other.counts.device)
            elif other.dim != self.dim:
                raise ValueError(f"`other` has dimension {other.dim}, expected {self.dim}")
            device = self.counts.device
            self._join(
                other.counts.to(device),
                other.means.to(device),
                other.scatter.to(device),
                other.spread.to(device),
            )
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
        refc = ref - centre
        score = (x.to(torch.float64) - centre) @ refc.T - 0.5 * refc.square().sum(1)  # (B, K)
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
        """mu_k, (K, d) float64 (a copy). Raises if a class has no sample."""
        self._check_ready()
        return self.means.clone()

    def within_covariance(self) -> torch.Tensor:
        """Sigma_W = S_W / N, (d, d) float64."""
        self._check_ready()
        return self.scatter / self.counts.sum()

    def _check_ready(self) -> None:
        if self.dim is None:
            raise ValueError("the accumulator has seen no data; call `update` first")
        check_counts(self.counts)

    def compute(
        self, classifier: Any = None, gof: GOFTargets | None = None, *, bias: Any = None
    ) -> dict[str, float]:
        """All metrics of the class docstring as floats (``METRIC_KEYS``).

        Args:
            classifier: (K, d) end-to-end classifier W acting on these features (for deep NC,
                W_M ... W_m on layer m's input); None leaves the W metrics NaN.
            gof: GOF targets; default ``geometry.gof_targets_from_counts(counts)`` (depth 1,
                small-regularisation limit; the OF for balanced counts).
            bias: (K,) last-layer bias b of the classifier (needs ``classifier``). It only enters
                ``means_error``, the share of classes c whose mean the classifier does not assign
                to c, argmax_k (W mu_c + b)_k != c (without it b = 0). The Gram metrics ignore b,
                and NC4 needs per-sample logits, which already carry b (``update_ncc``).
        """
        self._check_ready()
        opt = self.options
        counts, means, scatter = (t.to("cpu") for t in (self.counts, self.means, self.scatter))
        k = self.num_classes
        gof = gof_targets_from_counts(counts) if gof is None else gof
        centred = between_class(means, counts, opt.weighting, center=True)
        raw_gram = means @ means.T
        scatter_args = dict(weighting=opt.weighting, center=opt.center, divide_by_k=opt.divide_by_k)
        out = dict.fromkeys(METRIC_KEYS, math.nan)
        out["num_samples"] = float(counts.sum())
        out |= _defined(
            nc1=lambda: nc1_from_scatter(scatter, means, counts, **scatter_args),
            cdnv=lambda: cdnv_from(means, self.spread.to("cpu") / counts),
            nc2_equinorm=lambda: nc2_equinorm(centred),
            nc2_equiangle=lambda: nc2_equiangle(centred),
            nc2_maxangle=lambda: nc2_maxangle(centred),
            nc2_etf=lambda: gram_distance(centred @ centred.T, simplex_etf(k)),
            nc2_of=lambda: gram_distance(raw_gram, orthogonal_frame(k)),
            nc2_gof=lambda: gram_distance(raw_gram, general_orthogonal_frame(gof.means_sq)),
            rank=lambda: float(numerical_rank(means, opt.rank_rtol)),
            rank_centered=lambda: float(numerical_rank(centred, opt.rank_rtol)),
        )
        if self.logits_seen:
            out["nc4"] = self.ncc_mismatch / self.logits_seen
        if self.ncc_seen:
            out["ncc_error"] = self.ncc_wrong / self.ncc_seen
        if bias is not None and classifier is None:
            raise ValueError("`bias` needs `classifier`: pass the (K, d) classifier it belongs to")
        if classifier is not None:
            w = as_float64("classifier", classifier)
            out.update(_classifier_metrics(w, means, centred, gof))
            b = torch.zeros(k, dtype=torch.float64) if bias is None else as_float64("bias", bias)
            if b.shape != (k,):
                raise ValueError(f"`bias` must have shape ({k},), got {tuple(b.shape)}")
            decided = (means @ w.T + b).argmax(dim=1)  # (K,) class given to each class mean
            out["means_error"] = float((decided != torch.arange(k)).double().mean())
        return out


# Column block of the symmetric product on CPU: computing only the upper block rows saves
# (1 - (n+1)/(2n)) of the flops of one GEMM for n blocks; 128 was fastest on 1 thread at d = 512.
_SYRK_BLOCK = 128


def _symmetric_gram(r: torch.Tensor) -> torch.Tensor:
    """R^T R (d, d) for R (B, d), one GEMM per block row of the upper triangle, mirrored (a syrk,
    which torch does not expose). On CUDA, or for small d, a single GEMM is faster."""
    d = r.shape[1]
    if r.is_cuda or d < 2 * _SYRK_BLOCK:
        return r.T @ r
    out = torch.empty(d, d, dtype=r.dtype, device=r.device)
    for start in range(0, d, _SYRK_BLOCK):
        stop = min(start + _SYRK_BLOCK, d)
        row = r[:, start:stop].T @ r[:, start:]  # (b, d - start)
        out[start:stop, start:] = row
        out[stop:, start:stop] = row[:, stop - start :].T
    return out


def _classifier_metrics(
    w: torch.Tensor, means: torch.Tensor, centred: torch.Tensor, gof: GOFTargets
) -> dict[str, float]:
    k = len(means)
    if w.shape != means.shape:
        raise ValueError(f"`classifier` must have shape {tuple(means.shape)} (K, d), got {tuple(w.shape)}")
    # w_k = a_k hbar_k at the GOF; a collapsed class (both lengths 0) targets a zero row
    ratio = gof.classifier_sq / gof.means_sq.clamp(min=torch.finfo(torch.float64).tiny)
    scale = torch.where(gof.means_sq > 0, ratio, 0.0).sqrt()
    return _defined(
        nc2_equinorm_w=lambda: nc2_equinorm(w),
        nc2_equiangle_w=lambda: nc2_equiangle(w),
        nc2_maxangle_w=lambda: nc2_maxangle(w),
        nc2_etf_w=lambda: gram_distance(w @ w.T, simplex_etf(k)),
        nc2_of_w=lambda: gram_distance(w @ w.T, orthogonal_frame(k)),
        nc2_gof_w=lambda: gram_distance(w @ w.T, general_orthogonal_frame(gof.classifier_sq)),
        nc3=lambda: nc3_self_duality(w, centred),
        nc3_etf=lambda: gram_distance(w @ centred.T, simplex_etf(k)),
        nc3_of=lambda: gram_distance(w @ means.T, orthogonal_frame(k)),
        nc3_gof=lambda: gram_distance(w @ means.T, torch.diag(gof.inner)),
        nc3_sub=lambda: nc3_self_duality(w, means, squared=False),
        nc3_gof_sub=lambda: float(
            torch.linalg.matrix_norm(normalized(w) - normalized(scale[:, None] * means))
        ),
    )


def _defined(**metrics: Callable[[], float]) -> dict[str, float]:
    """Evaluate each metric; one that is undefined here (``DegenerateError``: a zero classifier
    row of a collapsed minority class, class means of too low rank) becomes NaN, not an error."""
    out = {}
    for name, metric in metrics.items():
        try:
            out[name] = metric()
        except DegenerateError:
            out[name] = math.nan
    return out


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
