"""Training and evaluation throughput of each backbone with a deep linear head (not a test).

    OMP_NUM_THREADS=1 .venv/bin/python bench/train.py [--device cpu] [--full]

Inputs are random tensors shaped like the real data (64 features for the smoke MLP on digits,
3x32x32 CIFAR images otherwise) with balanced random labels: enough for timing, never for results.
For each configuration it times ``ncbook.train.fit`` for one epoch (the authors' balanced recipe:
batch 128, sep_decay, MSE) and ``ncbook.train.evaluate`` (the per-layer NC metrics pass over the
training set plus the test accuracy), and prints samples/second for each as a markdown table.
``--full`` adds the paper-scale sizes (MLP width 2048 and depth 6, the standard 64-channel VGG16 and
ResNet18); on a CPU they take minutes.
"""

from __future__ import annotations

import argparse
import time

import pandas as pd
import torch

import ncbook as nc

# name, NetConfig overrides, training samples; head depth M = 3 everywhere.
SMOKE = [
    ("mlp (digits, smoke)", {"arch": "mlp", "input_shape": (64,), "width": 64, "depth_relu": 3,
                             "batchnorm": False}, 500),
    ("vgg16 (16 channels)", {"arch": "vgg16", "base_channels": 16, "width": 128}, 512),
    ("resnet18 (16 channels)", {"arch": "resnet18", "base_channels": 16, "width": 128}, 512),
]  # fmt: skip
FULL = [
    ("mlp (cifar10, full)", {"arch": "mlp", "width": 2048, "depth_relu": 6, "batchnorm": True}, 1024),
    ("vgg16 (64 channels)", {"arch": "vgg16", "width": 512}, 256),
    ("resnet18 (64 channels)", {"arch": "resnet18", "width": 512}, 256),
]


def _bundle(shape: tuple[int, ...], n: int, k: int = 10) -> nc.data.DataBundle:
    g = torch.Generator().manual_seed(0)
    y = torch.arange(n) % k
    train = nc.data.Split(torch.randn(n, *shape, generator=g), y, k)
    return nc.data.DataBundle("random", train, nc.data.Split(train.x[: n // 4], y[: n // 4], k))


def measure(name: str, overrides: dict, n: int, device: torch.device) -> dict[str, object]:
    net = nc.models.nets.NetConfig(num_classes=10, head_depth=3, **overrides)
    data = _bundle(net.input_shape, n)
    config = nc.train.TrainConfig(epochs=1, batch_size=128, optimizer="adam", lr=1e-4, sep_decay=True)
    started = time.perf_counter()
    result = nc.train.fit(data, net, config, device=device)
    if device.type == "cuda":
        torch.cuda.synchronize()
    total = time.perf_counter() - started
    started = time.perf_counter()
    nc.train.evaluate(result.model, data, device)
    if device.type == "cuda":
        torch.cuda.synchronize()
    evaluation = time.perf_counter() - started
    # fit's own time includes one evaluation after the epoch; take it out.
    training = max(total - evaluation, 1e-9)
    return {
        "backbone": name,
        "parameters": sum(p.numel() for p in result.model.parameters()),
        "samples": n,
        "train samples/s": round(n / training, 1),
        "eval samples/s": round((n + len(data.test)) / evaluation, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--full", action="store_true", help="also time the paper-scale sizes")
    args = parser.parse_args()
    device = nc.profiles.resolve_device(args.device)
    if device.type == "cpu":
        torch.set_num_threads(1)
    # The first optimiser step imports torch._dynamo (seconds): keep it out of the timings.
    measure("warm-up", {"input_shape": (8,), "width": 8, "depth_relu": 1}, 16, device)
    rows = [measure(*case, device) for case in SMOKE + (FULL if args.full else [])]
    print(f"device: {device}, torch threads: {torch.get_num_threads()}, head depth M = 3, batch 128")
    print(pd.DataFrame(rows).to_markdown(index=False))


if __name__ == "__main__":
    main()
