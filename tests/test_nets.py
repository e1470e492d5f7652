"""ncbook.models.nets: architecture sizes against the published CIFAR nets, head structure and init,
feature taps, the per-layer classifiers, and bad configurations."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import ncbook as nc
from ncbook.models.nets import NetConfig, build


def _count(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


@pytest.mark.parametrize(("arch", "reference"), [("resnet18", 11_173_962), ("vgg16", 14_728_266)])
def test_backbones_have_the_standard_cifar_parameter_counts(arch, reference):
    # The widely used CIFAR-10 ResNet18 / VGG16 (Linear(512, 10) classifier) have these counts;
    # the authors add BatchNorm1d(512) on the features: 2 x 512 more parameters.
    assert _count(build(NetConfig(arch=arch))) == reference + 2 * 512


def test_mlp_parameter_count_by_hand():
    d, k, m = 16, 10, 3
    model = build(NetConfig(input_shape=(64,), width=d, depth_relu=2, head_depth=m, bias=True))
    backbone = (64 * d + d) + 2 * d + (d * d + d) + 2 * d + 2 * d  # two blocks + feature BN
    head = (m - 1) * d * d + d * k + k
    assert _count(model) == backbone + head
    plain = build(NetConfig(input_shape=(64,), width=d, depth_relu=2, batchnorm=False, bias=False))
    assert _count(plain) == (64 * d + d) + (d * d + d) + (d * d + d) + d * k
    assert isinstance(plain.backbone[-1], nn.Linear) and plain.backbone[-1].bias is not None


@pytest.mark.parametrize("arch", ["mlp", "vgg16", "resnet18"])
@pytest.mark.parametrize(("depth", "bias"), [(1, True), (3, False)])
def test_head_shapes_and_bias(arch, depth, bias):
    config = NetConfig(arch=arch, width=24, depth_relu=2, head_depth=depth, bias=bias, base_channels=8,
                       num_classes=7)  # fmt: skip
    model = build(config).eval()
    logits, features = model.head_features(torch.randn(3, 3, 32, 32))
    feature_dim = 24 if arch == "mlp" else {"vgg16": 64, "resnet18": 64}[arch]
    expected = [feature_dim] + [24] * (depth - 1)
    assert [tuple(h.shape) for h in features] == [(3, d) for d in expected]
    assert logits.shape == (3, 7) and model.depth == depth
    assert [layer.bias is not None for layer in model.head] == [False] * (depth - 1) + [bias]
    assert (model.bias is not None) == bias


def test_taps_record_the_input_of_every_head_layer():
    model = build(NetConfig(input_shape=(5,), width=6, depth_relu=1, head_depth=3, num_classes=4)).eval()
    x = torch.randn(8, 5)
    with model.tap() as taps:
        logits = model(x)
        model(x[:2])
    h1 = model.backbone(x)
    h2 = h1 @ model.head[0].weight.T
    h3 = h2 @ model.head[1].weight.T
    for recorded, expected in zip(taps, (h1, h2, h3), strict=True):
        assert len(recorded) == 2 and torch.allclose(recorded[0], expected, atol=1e-6)
    assert torch.allclose(logits, h3 @ model.head[2].weight.T + model.head[2].bias, atol=1e-6)
    model(x)
    assert len(taps[0]) == 2  # hooks are gone after the block


def test_classifiers_map_each_layer_to_the_logits():
    model = build(NetConfig(input_shape=(5,), width=6, depth_relu=1, head_depth=3, num_classes=4)).eval()
    logits, features = model.head_features(torch.randn(8, 5))
    products = model.classifiers()
    assert [tuple(w.shape) for w in products] == [(4, 6)] * 3
    for w, h in zip(products, features, strict=True):
        assert torch.allclose(h @ w.T + model.bias, logits, atol=1e-5)


def test_orthogonal_init_where_the_authors_use_it():
    torch.manual_seed(0)
    mlp = build(NetConfig(input_shape=(64,), width=32, depth_relu=6, head_depth=3, num_classes=10))
    eye = torch.eye(10)
    last = mlp.head[-1].weight  # (10, 32): orthonormal rows
    assert torch.allclose(last @ last.T, eye, atol=1e-5)
    square = mlp.head[0].weight
    assert torch.allclose(square @ square.T, torch.eye(32), atol=1e-5)
    linears = [m for m in mlp.backbone if isinstance(m, nn.Linear)]
    orthogonal = [torch.allclose(w.weight @ w.weight.T, torch.eye(32), atol=1e-4) for w in linears[1:]]
    # With batch norm only the first 2 backbone Linear layers are orthogonal (paper-a.md bug 7).
    assert orthogonal == [True, False, False, False, False]
    resnet = build(NetConfig(arch="resnet18", head_depth=2, width=16, base_channels=8))
    w = resnet.head[0].weight  # PyTorch default (uniform), not orthogonal
    assert not torch.allclose(w @ w.T, torch.eye(16), atol=1e-2)
    forced = build(
        NetConfig(arch="resnet18", head_depth=2, width=16, base_channels=8, head_init="orthogonal")
    )
    assert torch.allclose(forced.head[0].weight @ forced.head[0].weight.T, torch.eye(16), atol=1e-5)


def test_mlp_orthogonal_layer_count():
    assert nc.models.nets.mlp_orthogonal_layers(6, True) == 2
    assert nc.models.nets.mlp_orthogonal_layers(6, False) == 3
    assert nc.models.nets.mlp_orthogonal_layers(1, True) == 1


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"arch": "vit"}, r"`arch` must be one of 'mlp', 'vgg16', 'resnet18'; got 'vit'"),
    ({"num_classes": 1}, r"`num_classes` must be an integer >= 2, got 1"),
    ({"width": 0}, r"`width` must be an integer >= 1, got 0"),
    ({"head_depth": 0}, r"`head_depth` must be an integer >= 1, got 0"),
    ({"depth_relu": -1}, r"`depth_relu` must be an integer >= 1, got -1"),
    ({"base_channels": 0}, r"`base_channels` must be an integer >= 1, got 0"),
    ({"head_init": "xavier"}, r"`head_init` must be one of 'authors', 'orthogonal', 'default'"),
    ({"input_shape": (0, 4)}, r"`input_shape` must be positive integers"),
    ({"arch": "vgg16", "input_shape": (1, 28, 28)}, r"`input_shape` must be \(3, 32, 32\) for vgg16"),
])  # fmt: skip
def test_bad_configurations(kwargs, message):
    with pytest.raises(ValueError, match=message):
        NetConfig(**kwargs)
