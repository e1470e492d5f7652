"""Backbones with a deep linear head, as in paper A's practical experiments (the authors'
models/mlp.py, models/resnet.py and models/vgg.py in
github.com/Fsoft-AIC/Neural-Collapse-in-Deep-Linear-Networks). Chapters: 23, 24.

A :class:`HeadedNet` is ``backbone -> H_1 -> head -> logits``. The head is M linear layers
``W_1 .. W_M`` without bias, except optionally the last: H_{m+1} = W_m H_m and logits =
W_M H_M (+ b). The features H_1 are the backbone's output, the paper's "unconstrained features".
:meth:`HeadedNet.head_features` returns every H_m; :meth:`HeadedNet.tap` records the same inputs
with forward pre-hooks on the head layers, as the authors' validation code does.

Backbones (written here for 32x32 inputs; ``base_channels`` scales VGG/ResNet for quick CPU runs):

* ``mlp``: ``depth_relu`` blocks [Linear, ReLU, (BatchNorm1d)], then either a BatchNorm1d (the
  authors' balanced variant) or a biased Linear(d, d) (their imbalanced variant, ``batchnorm=False``).
* ``vgg16``: VGG16 with batch norm, flattened 512-d output, then BatchNorm1d(512).
* ``resnet18``: the CIFAR ResNet18 (3x3 stem, no max-pool, global 4x4 average pool), 512-d output,
  then BatchNorm1d(512).
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import torch
from torch import nn

from ncbook._checks import check_choice, check_int

__all__ = ["ARCHS", "HEAD_INITS", "HeadedNet", "NetConfig", "build", "mlp_orthogonal_layers"]

ARCHS = ("mlp", "vgg16", "resnet18")
HEAD_INITS = ("authors", "orthogonal", "default")
_VGG16 = (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M")


@dataclass(frozen=True)
class NetConfig:
    arch: str = "mlp"  # one of ARCHS
    num_classes: int = 10  # K, outputs of the last head layer
    input_shape: tuple[int, ...] = (3, 32, 32)  # one sample; the MLP flattens it
    width: int = 512  # d: MLP hidden width, and head width d_2..d_M when head_depth > 1
    depth_relu: int = 6  # MLP only: number of [Linear, ReLU, (BN)] blocks
    head_depth: int = 1  # M: linear layers in the head
    bias: bool = True  # bias on the last head layer (every other head layer is bias-free)
    batchnorm: bool = True  # MLP only: BN blocks + BN features (True) or ReLU blocks + Linear
    base_channels: int = 64  # VGG/ResNet: channels of the first stage (64 = the standard nets)
    head_init: str = "authors"  # "authors" (orthogonal for MLP, PyTorch default otherwise),
    #                             "orthogonal" or "default"

    def __post_init__(self) -> None:
        check_choice("arch", self.arch, ARCHS)
        check_int("num_classes", self.num_classes, low=2)
        for name in ("width", "depth_relu", "head_depth", "base_channels"):
            check_int(name, getattr(self, name), low=1)
        check_choice("head_init", self.head_init, HEAD_INITS)
        shape = tuple(self.input_shape)
        if not shape or any(not isinstance(s, int) or s < 1 for s in shape):
            raise ValueError(f"`input_shape` must be positive integers, got {self.input_shape!r}")
        if self.arch != "mlp" and shape != (3, 32, 32):
            raise ValueError(f"`input_shape` must be (3, 32, 32) for {self.arch}, got {shape}")
        object.__setattr__(self, "input_shape", shape)


class HeadedNet(nn.Module):
    """``backbone`` (inputs -> H_1) followed by ``head``, an ``nn.Sequential`` of M Linear layers."""

    def __init__(self, backbone: nn.Module, head: nn.Sequential) -> None:
        super().__init__()
        self.backbone = backbone
        self.head = head

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.backbone(x))  # (B, K)

    @property
    def depth(self) -> int:
        """M, the number of head layers."""
        return len(self.head)

    @property
    def bias(self) -> torch.Tensor | None:
        """The last head layer's bias b (K,), or None for a bias-free head."""
        return self.head[-1].bias

    def head_features(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """``(logits, [H_1, ..., H_M])``: the input of every head layer, each (B, d_m)."""
        features = [self.backbone(x)]
        for layer in list(self.head)[:-1]:
            features.append(layer(features[-1]))
        return self.head[-1](features[-1]), features

    def classifiers(self) -> list[torch.Tensor]:
        """``[W_M...W_1, W_M...W_2, ..., W_M]``: the linear map from H_m to the logits, for m = 1..M.

        Entry m-1 pairs with H_m; the product always gives the logits (minus the bias).
        """
        products = [self.head[-1].weight]
        for layer in reversed(list(self.head)[:-1]):
            products.append(products[-1] @ layer.weight)
        return products[::-1]

    @contextmanager
    def tap(self) -> Iterator[list[list[torch.Tensor]]]:
        """Record the input of every head layer during forward passes inside the ``with`` block.

        Yields ``taps`` with ``taps[m-1]`` the list of detached H_m batches, one per forward pass.
        """
        taps: list[list[torch.Tensor]] = [[] for _ in self.head]
        hooks = [
            layer.register_forward_pre_hook(lambda _, args, store=store: store.append(args[0].detach()))
            for layer, store in zip(self.head, taps, strict=True)
        ]
        try:
            yield taps
        finally:
            for hook in hooks:
                hook.remove()


def build(config: NetConfig) -> HeadedNet:
    """The network ``config`` describes, initialised from torch's current random state."""
    backbone, feature_dim = _backbone(config)
    widths = [feature_dim] + [config.width] * (config.head_depth - 1) + [config.num_classes]
    head = nn.Sequential(*(
        nn.Linear(widths[m], widths[m + 1], bias=config.bias and m == config.head_depth - 1)
        for m in range(config.head_depth)
    ))
    if config.head_init == "orthogonal" or (config.head_init == "authors" and config.arch == "mlp"):
        for layer in head:
            nn.init.orthogonal_(layer.weight)
    return HeadedNet(backbone, head)


def mlp_orthogonal_layers(depth_relu: int, batchnorm: bool) -> int:
    """How many of the MLP's first Linear layers get orthogonal init in the authors' code.

    Their loop visits the first ``depth_relu`` entries of the flat block list, where each block
    holds 3 entries with batch norm and 2 without, so only ceil(depth_relu / 3) (resp. / 2) of the
    Linear layers are orthogonal; the rest keep PyTorch's default (their models/mlp.py).

    >>> mlp_orthogonal_layers(6, True), mlp_orthogonal_layers(6, False)
    (2, 3)
    """
    return math.ceil(depth_relu / (3 if batchnorm else 2))


def _backbone(config: NetConfig) -> tuple[nn.Module, int]:
    if config.arch == "mlp":
        return _mlp(config), config.width
    if config.arch == "vgg16":
        return _vgg16(config.base_channels)
    return _resnet18(config.base_channels)


def _mlp(config: NetConfig) -> nn.Sequential:
    d = config.width
    layers: list[nn.Module] = [nn.Flatten()]
    linears = []
    for block in range(config.depth_relu):
        linear = nn.Linear(math.prod(config.input_shape) if block == 0 else d, d)
        linears.append(linear)
        layers += [linear, nn.ReLU()] + ([nn.BatchNorm1d(d)] if config.batchnorm else [])
    for linear in linears[: mlp_orthogonal_layers(config.depth_relu, config.batchnorm)]:
        nn.init.orthogonal_(linear.weight)
    layers.append(nn.BatchNorm1d(d) if config.batchnorm else nn.Linear(d, d))
    return nn.Sequential(*layers)  # (B, d) features H_1


def _conv_bn(c_in: int, c_out: int, stride: int = 1, bias: bool = False) -> list[nn.Module]:
    return [nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1, bias=bias), nn.BatchNorm2d(c_out)]


def _vgg16(base: int) -> tuple[nn.Sequential, int]:
    layers: list[nn.Module] = []
    c_in = 3
    for item in _VGG16:
        if item == "M":
            layers.append(nn.MaxPool2d(2))
        else:
            c_out = item * base // 64
            # The classic CIFAR VGG keeps conv biases before BN (they matter only to weight decay).
            layers += [*_conv_bn(c_in, c_out, bias=True), nn.ReLU(inplace=True)]
            c_in = c_out
    # Five 2x2 pools take 32x32 to 1x1, so flattening gives c_in features.
    return nn.Sequential(*layers, nn.Flatten(), nn.BatchNorm1d(c_in)), c_in


class _BasicBlock(nn.Module):
    """Two 3x3 conv-BN layers with an identity (or 1x1 conv-BN) shortcut: relu(F(x) + s(x))."""

    def __init__(self, c_in: int, c_out: int, stride: int) -> None:
        super().__init__()
        self.residual = nn.Sequential(
            *_conv_bn(c_in, c_out, stride), nn.ReLU(inplace=True), *_conv_bn(c_out, c_out)
        )
        self.shortcut = nn.Sequential()
        if stride != 1 or c_in != c_out:
            self.shortcut = nn.Sequential(
                nn.Conv2d(c_in, c_out, 1, stride=stride, bias=False), nn.BatchNorm2d(c_out)
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.residual(x) + self.shortcut(x))


def _resnet18(base: int) -> tuple[nn.Sequential, int]:
    layers: list[nn.Module] = [*_conv_bn(3, base), nn.ReLU(inplace=True)]
    c_in = base
    for stage, stride in enumerate((1, 2, 2, 2)):
        c_out = base * 2**stage
        layers += [_BasicBlock(c_in, c_out, stride), _BasicBlock(c_out, c_out, 1)]
        c_in = c_out
    # 32x32 inputs reach 4x4 after three stride-2 stages; averaging them gives (B, c_in).
    layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.BatchNorm1d(c_in)]
    return nn.Sequential(*layers), c_in
