"""What a trained network has learned, measured: NC metrics of every head layer and the accuracies
(:func:`evaluate`), the per-class norms paper A's GOF predicts (:func:`class_norms`), and the GOF
targets of a closed-form minimizer layer by layer (:func:`layer_gof_targets`)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import pandas as pd
import torch

from ncbook.data import DataBundle, Split
from ncbook.geometry import GOFTargets
from ncbook.metrics import NCAccumulator
from ncbook.models.nets import HeadedNet


class TrainingDiverged(RuntimeError):
    """The loss became NaN/inf or exceeded ``TrainConfig.max_loss``."""


@torch.no_grad()
def evaluate(
    model: HeadedNet,
    data: DataBundle,
    device: str | torch.device = "cpu",
    batch_size: int = 1024,
    gof: Sequence[GOFTargets] | None = None,
) -> dict[int, dict[str, float]]:
    """NC metrics of every head layer on the training set, and the accuracies, in eval mode.

    Returns ``{0: {"train_acc", "test_acc"}, m: compute() of H_m with W_M...W_m}`` for m = 1..M
    (NaN entries dropped). Layer m's accumulator sees H_m; its classifier is W_M ... W_m.
    Raises ``TrainingDiverged`` when the outputs are NaN/inf or the features' squares overflow.
    """
    model.eval()
    accumulators = [NCAccumulator(data.num_classes) for _ in range(model.depth)]
    out: dict[int, dict[str, float]] = {0: {}}
    for name, split in (("train", data.train), ("test", data.test)):
        correct = 0
        for lo in range(0, len(split), batch_size):
            xb = split.x[lo : lo + batch_size].to(device)
            yb = split.y[lo : lo + batch_size].to(device)
            logits, features = model.head_features(xb)
            if not bool(torch.isfinite(logits).all()):
                raise TrainingDiverged(f"the outputs on the {name} set are not finite")
            correct += int((logits.argmax(1) == yb).sum())
            if name == "train":
                for m, (acc, h) in enumerate(zip(accumulators, features, strict=True)):
                    # Finite features whose squares overflow make every second moment meaningless.
                    if not bool(torch.isfinite(h.square().sum(0)).all()):
                        raise TrainingDiverged(f"the features H_{m + 1} overflow")
                    acc.update(h, yb)
        out[0][f"{name}_acc"] = correct / max(len(split), 1)
    classifiers = model.classifiers()
    for m, acc in enumerate(accumulators):
        values = acc.compute(classifiers[m], None if gof is None else gof[m])
        out[m + 1] = {k: v for k, v in values.items() if not math.isnan(v)}
    return out


def class_norms(model: HeadedNet, split: Split, device: str | torch.device = "cpu",
                batch_size: int = 1024) -> pd.DataFrame:  # fmt: skip
    """Per class k: n_k, ||w_k||^2 (rows of W = W_M...W_1), ||hbar_k||^2 (class means of H_1,
    uncentred) and w_k . hbar_k, as float64; the quantities paper A's GOF predicts."""
    model.eval()
    acc = NCAccumulator(split.num_classes)
    with torch.no_grad():
        for lo in range(0, len(split), batch_size):
            acc.update(model.backbone(split.x[lo : lo + batch_size].to(device)),
                       split.y[lo : lo + batch_size].to(device))  # fmt: skip
        w = model.classifiers()[0].detach().to("cpu", torch.float64)  # (K, d_1)
    means = acc.class_means()  # (K, d_1)
    return pd.DataFrame({
        "class": range(split.num_classes),
        "count": split.counts(),
        "w_norm_sq": w.square().sum(1).numpy(),
        "h_norm_sq": means.square().sum(1).numpy(),
        "wh": (w * means).sum(1).numpy(),
    })  # fmt: skip


def layer_gof_targets(minimizer: Any) -> list[GOFTargets]:
    """Per-layer GOF targets from a bias-free ``ncbook.theory.mse_minimizer`` result: for layer m,
    diag(Hbar_m^T Hbar_m), diag((W_M...W_m)(W_M...W_m)^T) and w_k.hbar_k (the same at every layer,
    chapter 24)."""
    if minimizer.bias:
        raise ValueError("`minimizer` must be bias-free: GOF targets are diagonal only without a bias")
    diag = lambda a: torch.tensor(a.diagonal().copy(), dtype=torch.float64)  # noqa: E731
    return [
        GOFTargets(diag(minimizer.layer_h_gram(m)), diag(minimizer.layer_w_gram(m)),
                   diag(minimizer.logits))  # fmt: skip
        for m in range(1, minimizer.depth + 1)
    ]
