"""R^T R accumulated as a blocked syrk (upper block rows only), for ``moments`` and ``nc1``
(used in chapters 23, 24 and 33 through the accumulator).

On CPU, torch exposes no syrk; computing the block rows [a, b) x [a, d) of R^T R and reading the
upper triangle saves (n - 1) / (2 n) of a GEMM's flops for n blocks.
"""

from __future__ import annotations

import torch

__all__ = ["add_gram", "symmetric"]

# Column blocks of the symmetric product on CPU: computing only the upper block rows saves
# (1 - (n+1)/(2n)) of the flops of one GEMM for n blocks. On 1 thread, 128 was fastest at d = 512;
# at d >= 1024, 128-column panels run at half speed and 256 is fastest (d = 2048: 0.68x the GEMM).
_SYRK_BLOCKS = ((1024, 128), (1 << 62, 256))  # (d below, block)


def add_gram(gram: torch.Tensor, r: torch.Tensor) -> None:
    """gram += R^T R; on CPU only the upper block rows (read through ``symmetric``)."""
    d = r.shape[1]
    block = next(size for below, size in _SYRK_BLOCKS if d < below)
    if r.is_cuda or d < 2 * block:
        gram += r.T @ r
        return
    for start in range(0, d, block):
        stop = min(start + block, d)
        gram[start:stop, start:] += r[:, start:stop].T @ r[:, start:]


def symmetric(gram: torch.Tensor) -> torch.Tensor:
    """The full symmetric matrix from its upper triangle (the lower one may be partial)."""
    return torch.triu(gram) + torch.triu(gram, 1).T
