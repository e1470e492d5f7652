"""Shifted, scaled, sum-reducible class moments: the arithmetic behind ``NCAccumulator`` and
``NCMetric`` (used in chapters 23, 24 and 33 through ``ncbook.train``).

For features h_i with labels y_i, a power-of-two scale 2^e and a per-class shift c_k (the first
batch's class mean, rounded to the GEMM dtype), the state is, in float64,

    n_k = #{i: y_i = k},  s_k = sum_{i in k} r_i,  T = sum_i r_i r_i^T,  q_k = sum_{i in k} ||r_i||^2,
    with r_i = 2^e h_i - c_{y_i},

so two states with the same (e, c) add term by term (``dist_reduce_fx="sum"``), and the centred
moments follow once, at the end: mu_k = 2^-e (c_k + s_k / n_k),
S_W = 2^-2e (T - sum_k s_k s_k^T / n_k), sum_{i in k} ||h_i - mu_k||^2 = 2^-2e (q_k - ||s_k||^2 / n_k).
The shift keeps offsets out of the products (|r| is of the order of the within-class spread); the
scale keeps float32 squares away from underflow and overflow (features from 1e-30 to 1e30 give
the same numbers); both are exact operations or cancel exactly. Rows are buffered into blocks of
``BLOCK_ROWS`` so that the fixed cost of one product R^T R is paid once per block, whatever the
batch size; on CPU only the upper block rows of R^T R are computed (a blocked syrk).
"""

from __future__ import annotations

import math
from typing import Any

import torch

from ncbook.metrics.gram import add_gram, symmetric
from ncbook.metrics.inputs import check_finite

__all__ = [
    "BLOCK_ROWS",
    "RowBuffer",
    "add_state",
    "centred",
    "means_at_scale",
    "empty_state",
    "exponent_of",
    "flush",
    "push",
    "rebase",
    "rescale",
]

BLOCK_ROWS = 4096  # rows per R^T R product: amortises its fixed cost and runs the GEMM at full speed
UNSET = 1 << 40  # exponent of a state that has seen no data (larger than any real exponent)
# Rescale when |2^e h| leaves [2^-LIMIT, 2^LIMIT]: float32 squares of 4096 rows stay normal and finite.
_LIMIT = 40
_SUB_ROWS = 512  # rows per gather of shifts (bounds the gather buffer to 512 x d)


def empty_state(state: Any, k: int, d: int, device: torch.device | str = "cpu") -> None:
    """Set the float64 fields counts (K,), shift (K, d), sums (K, d), gram (d, d), sq (K,) and the
    int64 exponent (UNSET) on ``state`` (an accumulator or a torchmetrics Metric)."""
    zeros = lambda *shape: torch.zeros(*shape, dtype=torch.float64, device=device)  # noqa: E731
    state.counts, state.shift, state.sums = zeros(k), zeros(k, d), zeros(k, d)
    state.gram, state.sq = zeros(d, d), zeros(k)
    state.exponent = torch.tensor(UNSET, dtype=torch.int64, device=device)


class RowBuffer:
    """A (BLOCK_ROWS, d) block of scaled features (GEMM dtype) and their labels, reused."""

    def __init__(self, d: int, dtype: torch.dtype, device: torch.device) -> None:
        self.rows = torch.empty(BLOCK_ROWS, d, dtype=dtype, device=device)
        self.labels = torch.empty(BLOCK_ROWS, dtype=torch.long, device=device)
        self.gather = torch.empty(min(_SUB_ROWS, BLOCK_ROWS), d, dtype=dtype, device=device)
        self.fill = 0


def exponent_of(amax: float) -> int:
    """e with 2^e * amax in [1/2, 1) (0 for a zero batch): a scale that is exact in any float."""
    return 0 if amax == 0 else -math.frexp(amax)[1]


def push(state: Any, buffer: RowBuffer, x: torch.Tensor, y: torch.Tensor) -> None:
    """Add a batch (checked shapes and labels) to ``buffer``, flushing every full block."""
    low, high = torch.aminmax(x)  # one vectorised pass (the inf-norm kernel is 8x slower)
    amax = max(-float(low), float(high))
    if not math.isfinite(amax):
        check_finite("features", x)  # NaN or inf: one clear message
    exponent = int(state.exponent)
    if exponent == UNSET:
        state.exponent.fill_(exponent_of(amax))
    elif amax * 2.0**exponent > 2.0**_LIMIT:  # a much larger batch: rescale before it can overflow
        flush(state, buffer)
        rescale(state, exponent_of(amax))
    factor = 2.0 ** int(state.exponent)
    pos = 0
    while pos < x.shape[0]:
        if buffer.fill == BLOCK_ROWS:
            flush(state, buffer)
        take = min(x.shape[0] - pos, BLOCK_ROWS - buffer.fill)
        block = slice(buffer.fill, buffer.fill + take)
        part = x[pos : pos + take].to(buffer.rows.device)
        torch.mul(part, factor, out=buffer.rows[block])  # exact: a power of two (and a cast)
        buffer.labels[block] = y[pos : pos + take]
        buffer.fill += take
        pos += take
    if buffer.fill == BLOCK_ROWS:
        flush(state, buffer)


def flush(state: Any, buffer: RowBuffer) -> None:
    """Fold the buffered rows into ``state``: one R^T R, index_add_ for the class sums."""
    if buffer.fill == 0:
        return
    r, y = buffer.rows[: buffer.fill], buffer.labels[: buffer.fill]
    buffer.fill = 0
    n_b = torch.bincount(y, minlength=len(state.counts)).to(torch.float64)
    new = (state.counts == 0) & (n_b > 0)
    if bool(new.any()):  # first sighting: shift by this block's class mean, rounded to the GEMM dtype
        # (float64 sums, once per class: a collapsed class then gets its exact point as shift)
        first = torch.zeros(len(n_b), r.shape[1], dtype=torch.float64, device=r.device)
        for start in range(0, len(y), _SUB_ROWS):  # small float64 copies, not one of the whole block
            first.index_add_(0, y[start : start + _SUB_ROWS], r[start : start + _SUB_ROWS].to(torch.float64))
        mean = (first / n_b.clamp(min=1)[:, None]).to(r.dtype).to(torch.float64)
        state.shift[new] = mean[new]
    shift = state.shift.to(r.dtype)  # exactly state.shift: it was rounded to this dtype when set
    for start in range(0, len(y), len(buffer.gather)):  # r_i = 2^e h_i - c_{y_i}, in place
        rows = slice(start, start + len(buffer.gather))
        gathered = buffer.gather[: len(y[rows])]
        torch.index_select(shift, 0, y[rows], out=gathered)
        r[rows].sub_(gathered)
    add_gram(state.gram, r)
    state.sums += _sum_rows(r, y, len(n_b))
    norms = torch.linalg.vector_norm(r, dim=1).to(torch.float64)
    state.sq.index_add_(0, y, norms.square())
    state.counts += n_b


def _sum_rows(r: torch.Tensor, y: torch.Tensor, k: int) -> torch.Tensor:
    """Per-class sums of the rows of r in its own dtype, then float64 (no (B, d) float64 copy)."""
    sums = torch.zeros(k, r.shape[1], dtype=r.dtype, device=r.device).index_add_(0, y, r)
    return sums.to(torch.float64)


def rescale(state: Any, exponent: int) -> None:
    """Express ``state`` at scale 2^exponent (exact: multiplication by a power of two)."""
    old = int(state.exponent)
    if old == UNSET or old == exponent:
        state.exponent.fill_(exponent)
        return
    factor = 2.0 ** (exponent - old)
    state.shift.mul_(factor)
    state.sums.mul_(factor)
    state.gram.mul_(factor * factor)
    state.sq.mul_(factor * factor)
    state.exponent.fill_(exponent)


def rebase(state: Any, shift: torch.Tensor) -> None:
    """Re-express ``state`` around a new shift c' (K, d): with D = c - c', s' = s + n D,
    T' = T + S^T D + D^T S + D^T diag(n) D, q' = q + 2 s.D + n ||D||^2."""
    delta = state.shift - shift
    n = state.counts
    sums = state.sums
    cross = sums.T @ delta
    state.gram += cross + cross.T + delta.T @ (delta * n[:, None])
    state.sq += 2 * (sums * delta).sum(1) + n * delta.square().sum(1)
    state.sums = sums + delta * n[:, None]
    state.shift = shift.clone()


def add_state(state: Any, other: Any) -> None:
    """state += other (same K and d), after bringing ``other`` to state's scale and shifts."""
    if int(other.exponent) == UNSET:
        return
    if int(state.exponent) != UNSET and int(other.exponent) > int(state.exponent):
        rescale(other, int(state.exponent))  # the smaller scale of the two cannot overflow
    else:
        rescale(state, int(other.exponent))
    seen = (state.counts > 0)[:, None]
    rebase(other, torch.where(seen, state.shift, other.shift))
    state.shift = other.shift.clone()  # equal where this state has data; other's elsewhere
    state.counts += other.counts
    state.sums += other.sums
    state.gram += other.gram
    state.sq += other.sq


def means_at_scale(state: Any) -> torch.Tensor:
    """mu_k at scale 2^e, (K, d): c_k + s_k / n_k (O(K d), no second moment)."""
    n = state.counts
    return state.shift + state.sums * torch.where(n > 0, 1 / n.clamp(min=1), 0.0)[:, None]


def centred(state: Any) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, int]:
    """(counts, mu_k, S_W, per-class sum ||h - mu_k||^2, e), all at scale 2^e (multiply the means
    by 2^-e, the second moments by 2^-2e for the raw values; scale-free metrics need neither)."""
    n = state.counts
    inv = torch.where(n > 0, 1 / n.clamp(min=1), 0.0)
    mean_r = state.sums * inv[:, None]
    scatter = symmetric(state.gram) - state.sums.T @ mean_r
    spread = (state.sq - (state.sums * mean_r).sum(1)).clamp(min=0)
    return n, state.shift + mean_r, scatter, spread, int(state.exponent)
