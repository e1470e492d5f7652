"""``NCMetric`` (torchmetrics): equal to ``NCAccumulator`` in one process, and synced across two
CPU processes (gloo, localhost) equal to one process on all the data."""

from __future__ import annotations

import math
import socket

import numpy as np
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from ncbook import metrics as ncm
from ncbook.metrics.torchmetric import NCMetric

K, D = 4, 6
# float64 block products: the two processes form different blocks and shifts than one process
# does, which moves a float32 result by its round-off (about 1e-8 here, within the bound of
# test_metrics.nc1_tolerance); in float64 the sync itself is what the 1e-12 comparison checks.
EXACT = dict(gemm_dtype=torch.float64)
METRICS = [key for key in ncm.METRIC_KEYS if key not in ("nc4", "ncc_error")]


def make_data(seed: int = 0):
    """Offset classes (offset 20, class 0 at 40, spread 0.1) in float32."""
    rng = np.random.default_rng(seed)
    means = 20 + rng.normal(size=(K, D))
    means[0] += 20
    y = rng.integers(0, K, size=700)
    x = (means[y] + 0.1 * rng.normal(size=(700, D))).astype(np.float32)
    w = rng.normal(size=(K, D))
    return torch.as_tensor(x), torch.as_tensor(y), torch.as_tensor(w)


def shard(x, y, rank):
    """Rank 0: the first 400 rows (its first batch holds class 0, |h| >= 32: scale 2^-6); rank 1:
    the rest without class 3, class 0 last (first batch |h| < 32: scale 2^-5), so the sync has
    to align both the scales and the shifts."""
    if rank == 0:
        return x[:400], y[:400]
    keep = y[400:] != 3
    order = torch.argsort(-y[400:][keep], stable=True)
    return x[400:][keep][order], y[400:][keep][order]


def one_process(x, y, w, rank_rows):
    metric = NCMetric(K, D, **EXACT)
    metric.classifier = w
    for xb, yb in rank_rows:
        for start in range(0, len(yb), 33):
            metric.update(xb[start : start + 33], yb[start : start + 33])
    return metric.compute()


def _worker(rank: int, port: int, queue) -> None:
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=2)
    try:
        torch.set_num_threads(1)
        x, y, w = make_data()
        metric = NCMetric(K, D, **EXACT)
        metric.classifier = w
        xs, ys = shard(x, y, rank)
        for start in range(0, len(ys), 33):
            metric.update(xs[start : start + 33], ys[start : start + 33])
        queue.put((rank, metric.compute()))
    finally:
        dist.destroy_process_group()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_gloo_processes_equal_one_process() -> None:
    x, y, w = make_data()
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    port = _free_port()
    procs = [ctx.Process(target=_worker, args=(rank, port, queue)) for rank in range(2)]
    for p in procs:
        p.start()
    results = dict(queue.get(timeout=120) for _ in procs)
    for p in procs:
        p.join(timeout=60)
        assert p.exitcode == 0
    single = one_process(x, y, w, [shard(x, y, 0), shard(x, y, 1)])
    local = one_process(x, y, w, [shard(x, y, 0)])
    for key in METRICS:
        for rank in range(2):
            assert results[rank][key] == pytest.approx(single[key], rel=1e-12, abs=1e-15), (rank, key)
    assert results[0]["num_samples"] == single["num_samples"] != local["num_samples"]
    assert abs(results[0]["nc1"] / local["nc1"] - 1) > 1e-3  # the sync changed the answer
    first = [NCMetric(K, D) for _ in range(2)]
    for rank, metric in enumerate(first):
        metric.update(*(t[:33] for t in shard(x, y, rank)))
    assert [int(m.exponent) for m in first] == [-6, -5]  # the case the sync must align


def test_ncmetric_equals_the_accumulator() -> None:
    x, y, w = make_data()
    metric = NCMetric(K, D)
    metric.classifier = w
    acc = ncm.NCAccumulator(K)
    for start in range(0, len(y), 50):
        metric.update(x[start : start + 50], y[start : start + 50])
        acc.update(x[start : start + 50], y[start : start + 50])
    got, expected = metric.compute(), acc.compute(classifier=w)
    for key in METRICS:
        assert got[key] == pytest.approx(expected[key], rel=1e-12, abs=1e-15), key
    assert math.isnan(got["nc4"])


def test_forward_gives_the_batch_and_keeps_the_epoch() -> None:
    x, y, _ = make_data()
    metric = NCMetric(K, D)
    metric.update(x[:300], y[:300])
    batch = metric(x[300:], y[300:])  # forward: metrics of this batch alone
    alone = NCMetric(K, D)
    alone.update(x[300:], y[300:])
    whole = NCMetric(K, D)
    whole.update(x, y)
    assert batch["nc1"] == pytest.approx(alone.compute()["nc1"], rel=1e-12)
    assert metric.compute()["nc1"] == pytest.approx(whole.compute()["nc1"], rel=1e-12)
    metric.reset()
    with (
        pytest.raises(ValueError, match="has seen no data; call `update` first"),
        pytest.warns(UserWarning, match="called before the ``update``"),  # torchmetrics' own
    ):
        metric.compute()


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda: NCMetric(3, 0), r"`num_features` must be an integer >= 1, got 0"),
        (lambda: NCMetric(1, 4), r"`num_classes` must be an integer >= 2, got 1"),
        (lambda: NCMetric(3, 4).update(torch.zeros(2, 5), torch.zeros(2, dtype=torch.long)), "dimension 5"),
    ],
)
def test_bad_input_raises(call, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        call()
