"""The recipe of the how-to chapter (notebooks/45_measure_your_network.py) on a small CNN: tapping
a layer's input with ``collect`` measures the features that layer receives, the per-epoch table has
every metric, ``NCMetric`` agrees with ``collect``, and the chapter's loop needs three lines."""

from __future__ import annotations

import re

import pytest
import torch
from conftest import ROOT
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import ncbook as nc

K = 4


def _cnn() -> nn.Sequential:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Unflatten(1, (1, 4, 4)),
        nn.Conv2d(1, 3, 3, padding=1), nn.ReLU(), nn.Flatten(),  # (B, 48)
        nn.Linear(48, 8), nn.ReLU(),
        nn.Linear(8, K),
    ).double()


def _loader(batch_size: int = 7) -> DataLoader:
    generator = torch.Generator().manual_seed(1)
    x = torch.randn(60, 16, generator=generator, dtype=torch.float64)
    y = torch.arange(60) % K
    return DataLoader(TensorDataset(x + y[:, None].double(), y), batch_size=batch_size)


def test_tapping_a_layer_input_measures_what_the_layer_receives():
    net, loader = _cnn(), _loader()
    stats = nc.metrics.collect(net, loader, {"conv": net[4], "hidden": net[6]}, K)
    x = torch.cat([b for b, _ in loader])
    y = torch.cat([t for _, t in loader])
    with torch.no_grad():
        for name, prefix in (("conv", net[:4]), ("hidden", net[:6])):
            direct = nc.metrics.nc_metrics(prefix(x), y, K)
            streamed = stats[name].compute()
            for key in ("nc1", "cdnv", "nc2_etf", "nc2_equinorm", "rank"):
                assert streamed[key] == pytest.approx(direct[key], rel=1e-9, abs=1e-12), (name, key)


def test_the_per_epoch_rows_carry_every_metric():
    net, loader = _cnn(), _loader()
    layers, classifiers = {"hidden": net[6]}, {"hidden": net[6].weight}
    stats = nc.metrics.collect(net, loader, layers, K, nc4=True)
    rows = [{"epoch": 1, "layer": n, **a.compute(classifiers.get(n))} for n, a in stats.items()]
    assert set(nc.metrics.METRIC_KEYS) <= set(rows[0])
    assert 0.0 <= rows[0]["nc4"] <= 1.0 and rows[0]["nc3"] == rows[0]["nc3"]  # NC3 defined (not NaN)


def test_ncmetric_agrees_with_collect():
    net, loader = _cnn(), _loader()
    collected = nc.metrics.collect(net, loader, {"hidden": net[6]}, K)["hidden"].compute(net[6].weight)
    metric = nc.metrics.NCMetric(K, num_features=8)
    with torch.no_grad():
        for x, y in loader:
            metric.update(net[:6](x), y)
    metric.classifier = net[6].weight.detach()
    streamed = metric.compute()
    for key in ("nc1", "nc2_etf", "nc3"):
        assert streamed[key] == pytest.approx(collected[key], rel=1e-9)


def test_the_chapter_adds_exactly_three_lines_to_the_loop():
    text = (ROOT / "notebooks" / "45_measure_your_network.py").read_text(encoding="utf-8")
    assert len(re.findall(r"  # NC$", text, re.MULTILINE)) == 3
