"""Paper A's practical experiments: real networks with a deep linear head (chapters 23 and 24).

The protocol is the authors' code (``train_1st_order.py``, ``train_1st_order_unbalanced.py`` of
Fsoft-AIC/Neural-Collapse-in-Deep-Linear-Networks): a backbone (MLP, VGG16 or ResNet18) feeds
features H_1 to M bias-free linear layers, the last optionally with a bias; training runs to zero
training error and the NC metrics are read at every head layer. This module builds the training
sets and the run grids of both chapters, and the checks that tell the candidate frames apart:

* balanced MSE: an orthogonal frame (OF) without a bias, a simplex ETF with one. The two normalised
  Grams are :func:`frame_separation` apart (0.32 at K = 10), so a check "close to the predicted frame"
  must also show "farther from the other one" (:func:`frame_margins`);
* imbalanced MSE (bias-free): a general orthogonal frame (GOF) with the closed-form lengths of
  :func:`ncbook.theory.mse_minimizer`, under the two readings of the authors' weight decays
  (:func:`imbalanced_theory`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import Any

import numpy as np
import pandas as pd
import torch

from ncbook._checks import check_choice, check_int, check_list
from ncbook.data import DataBundle, Split, subset_by_counts
from ncbook.geometry import gram_distance, orthogonal_frame, simplex_etf
from ncbook.metrics import NCAccumulator
from ncbook.models.nets import HeadedNet, NetConfig
from ncbook.spec import LOSSES
from ncbook.theory import MSEMinimizer, mse_minimizer
from ncbook.train import TrainConfig

__all__ = [
    "CONVENTIONS",
    "CONV_ARCHS",
    "balanced_runs",
    "balanced_training_set",
    "centred_ranks",
    "class_norm_table",
    "frame_margins",
    "frame_separation",
    "gof_summary",
    "imbalanced_runs",
    "imbalanced_theory",
    "imbalanced_training_set",
    "own_frame",
]

CONV_ARCHS = ("vgg16", "resnet18")  # the authors ran these with MSE and a last-layer bias only
CONVENTIONS = {"K-scaled": True, "raw": False}  # lambda = K wd (our reading) or wd (their validation)


def frame_separation(num_classes: int) -> float:
    """||nrm(OF) - nrm(ETF)||_F = sqrt(2 - 2 sqrt((K-1)/K)): how far apart the two balanced frames are.

    >>> round(frame_separation(10), 4)
    0.3204
    """
    k = check_int("num_classes", num_classes, low=2)
    return gram_distance(orthogonal_frame(k), simplex_etf(k))


def own_frame(bias: bool) -> str:
    """The frame paper A predicts for a balanced MSE head: ``"etf"`` with a last-layer bias, else ``"of"``."""
    return "etf" if check_choice("bias", bias, (True, False)) else "of"


def balanced_training_set(data: DataBundle, n_per_class: int) -> DataBundle:
    """``data`` with the first ``n_per_class`` training samples of each class in file order (the
    authors' subset rule), or the whole training set when ``n_per_class`` is 0."""
    n = check_int("n_per_class", n_per_class, low=0)
    counts = [n] * data.num_classes if n else data.train.counts()
    if n and min(data.train.counts()) < n:
        raise ValueError(f"`n_per_class` = {n} exceeds the smallest class of {data.name} "
                         f"({min(data.train.counts())} samples)")
    return replace(data, train=subset_by_counts(data.train, counts))


def imbalanced_training_set(data: DataBundle, counts: Sequence[int]) -> DataBundle:
    """``data`` with the first ``counts[k]`` training samples of class k, in file order."""
    counts = [check_int(f"counts[{k}]", n, low=1) for k, n in enumerate(check_list("counts", counts))]
    if len(counts) != data.num_classes:
        raise ValueError(f"`counts` needs {data.num_classes} entries for {data.name}, got {len(counts)}")
    return replace(data, train=subset_by_counts(data.train, counts))


def balanced_runs(
    net: NetConfig, config: TrainConfig, *, depths: Sequence[int], losses: Sequence[str]
) -> dict[str, tuple[NetConfig, TrainConfig]]:
    """The balanced grid, ``{name: (net, config)}``: for an MLP every loss x head depth, MSE with and
    without the last-layer bias, cross-entropy with it (a shared logit shift leaves balanced CE
    unchanged); for VGG16/ResNet18 only what the authors ran, MSE with the bias.

    >>> sorted(balanced_runs(NetConfig(), TrainConfig(), depths=[1], losses=["mse", "ce"]))
    ['mlp_M1_bias_ce', 'mlp_M1_bias_mse', 'mlp_M1_nobias_mse']
    """
    depths = [check_int(f"depths[{i}]", m, low=1) for i, m in enumerate(check_list("depths", depths))]
    losses = [check_choice(f"losses[{i}]", v, LOSSES) for i, v in enumerate(check_list("losses", losses))]
    conv = net.arch in CONV_ARCHS
    grid = [(loss, m, bias) for loss in losses for m in depths for bias in (False, True)
            if (loss == "mse" or bias) and (not conv or (loss == "mse" and bias))]
    if not grid:
        raise ValueError(f"`losses` = {losses} gives no {net.arch} run: the authors trained it with 'mse'")
    return {f"{net.arch}_M{m}_{'bias' if bias else 'nobias'}_{loss}":
            (replace(net, head_depth=m, bias=bias), replace(config, loss=loss)) for loss, m, bias in grid}


def imbalanced_runs(net: NetConfig, config: TrainConfig, *, depths: Sequence[int]) -> dict[str, tuple]:
    """One bias-free MSE run per head depth, ``{"mlp_M<m>": (net, config)}``."""
    depths = [check_int(f"depths[{i}]", m, low=1) for i, m in enumerate(check_list("depths", depths))]
    return {f"{net.arch}_M{m}": (replace(net, head_depth=m, bias=False), replace(config, loss="mse"))
            for m in depths}


def _class_means(model: HeadedNet, split: Split, device: Any, batch_size: int = 1024) -> torch.Tensor:
    """Uncentred class means of the features H_1, (K, d), float64 on the CPU."""
    model.eval()
    acc = NCAccumulator(split.num_classes)
    with torch.no_grad():
        for lo in range(0, len(split), batch_size):
            rows = slice(lo, lo + batch_size)
            acc.update(model.backbone(split.x[rows].to(device)), split.y[rows].to(device))
    return acc.class_means()


def frame_margins(history: pd.DataFrame, models: dict[str, HeadedNet], split: Split,
                  device: Any = "cpu") -> pd.DataFrame:
    """One row per MSE run at its last epoch: the distances of the end-to-end W W^T and of the raw
    class-mean Gram Hbar^T Hbar (features H_1) to the run's own frame and to the other one, the
    largest own-frame NC2 / NC3 over the head layers (``w_own_max``, ``h_own_max``, ``nc3_own_max``;
    means centred for the ETF) and ``margin``, half the frame separation.

    The raw means tell the frames apart: centring an OF gives an ETF, so the centred metric does not.
    """
    last = history[(history["epoch"] == history.groupby("run")["epoch"].transform("max"))
                   & (history["loss"] == "mse") & (history["layer"] >= 1)]
    separation = frame_separation(split.num_classes)
    targets = {"of": orthogonal_frame(split.num_classes), "etf": simplex_etf(split.num_classes)}
    rows = []
    for run, rows_of_run in last.groupby("run", sort=False):
        bias = bool(rows_of_run["bias"].iloc[0])
        own, other = own_frame(bias), own_frame(not bias)
        values = rows_of_run.groupby("metric")["value"]
        w = models[run].classifiers()[0].detach().to("cpu", torch.float64)
        means = _class_means(models[run], split, device)
        rows.append({
            "run": run, "depth": int(rows_of_run["depth"].iloc[0]), "bias": bias, "frame": own.upper(),
            "w_own": gram_distance(w @ w.T, targets[own]), "w_other": gram_distance(w @ w.T, targets[other]),
            "h_own": gram_distance(means @ means.T, targets[own]),
            "h_other": gram_distance(means @ means.T, targets[other]),
            "w_own_max": values.max()[f"nc2_{own}_w"], "h_own_max": values.max()[f"nc2_{own}"],
            "nc3_own_max": values.max()[f"nc3_{own}"], "margin": separation / 2,
        })
    return pd.DataFrame(rows)


def centred_ranks(models: dict[str, HeadedNet], rtol: float) -> pd.Series:
    """Numerical rank of each model's end-to-end classifier with its rows centred (cross-entropy
    ignores a shift shared by all logits): singular values above ``rtol`` x the largest."""
    from ncbook.metrics import numerical_rank

    ranks = {}
    for name, model in models.items():
        w = model.classifiers()[0].detach().cpu()
        ranks[name] = numerical_rank(w - w.mean(0), rtol)
    return pd.Series(ranks, name="rank", dtype=int)


def imbalanced_theory(counts: Sequence[int], depths: Sequence[int], *, weight_decay: float,
                      feature_decay: float, width: int) -> dict[tuple[int, str], MSEMinimizer]:
    """The bias-free closed-form minimizer per (depth, convention): ``"K-scaled"`` reads the
    authors' objective (1/(2NK))||Z - Y||^2 + wd/2 sum ||W_m||^2 + fd/2 ||H_1||^2 as paper A's with
    lambda_W = K wd, lambda_H = K fd; ``"raw"`` plugs in wd and fd as their validation script does."""
    k = len(check_list("counts", counts))
    return {(m, name): mse_minimizer(counts, m, lambda_W=(k if scaled else 1) * weight_decay,
                                     lambda_H=(k if scaled else 1) * feature_decay, widths=width)
            for m in check_list("depths", depths) for name, scaled in CONVENTIONS.items()}


def class_norm_table(models: dict[str, HeadedNet], split: Split, theory: dict[tuple[int, str], MSEMinimizer],
                     device: Any = "cpu") -> pd.DataFrame:
    """Per run and class: n_k, the measured ||w_k||^2, ||hbar_k||^2, w_k . hbar_k (W = W_M...W_1,
    uncentred means of H_1) and each convention's predictions ``w_pred_<convention>`` etc."""
    frames = []
    for name, model in models.items():
        w = model.classifiers()[0].detach().to("cpu", torch.float64)
        means = _class_means(model, split, device)
        frame = pd.DataFrame({"run": name, "depth": model.depth, "class": range(split.num_classes),
                              "count": split.counts(), "w_norm_sq": w.square().sum(1).numpy(),
                              "h_norm_sq": means.square().sum(1).numpy(), "wh": (w * means).sum(1).numpy()})
        for convention in CONVENTIONS:
            point = theory[(model.depth, convention)]
            frame[f"w_pred_{convention}"] = np.asarray(point.w_norm_sq)
            frame[f"h_pred_{convention}"] = np.asarray(point.h_norm_sq)
            frame[f"wh_pred_{convention}"] = np.asarray(point.wh)
        frames.append(frame)
    return pd.concat(frames, ignore_index=True)


def gof_summary(history: pd.DataFrame, theory: dict[tuple[int, str], MSEMinimizer],
                convention: str = "K-scaled") -> pd.DataFrame:
    """One row per imbalanced run at its last epoch: training accuracy, the largest NC1 and the
    largest GOF distance (W_M...W_m W^T, Hbar_m^T Hbar_m, W Hbar_m) over the head layers, the OF and
    GOF distances of the end-to-end W W^T, the predicted GOF-to-OF distance ``of_pred`` and
    ``margin``, half of it: a run at the GOF is nearer the GOF than the OF by more than ``margin``."""
    check_choice("convention", convention, tuple(CONVENTIONS))
    last = history[history["epoch"] == history.groupby("run")["epoch"].transform("max")]
    rows = []
    for run, frame in last.groupby("run", sort=False):
        depth = int(frame["depth"].iloc[0])
        value = frame.set_index(["layer", "metric"])["value"]
        head = frame[frame["layer"] >= 1]
        lengths = np.asarray(theory[(depth, convention)].w_norm_sq)
        of_pred = gram_distance(np.diag(lengths), orthogonal_frame(len(lengths)))
        rows.append({
            "run": run, "depth": depth, "train_acc": value[(0, "train_acc")],
            "nc1_max": head.loc[head["metric"] == "nc1", "value"].max(),
            "gof_max": head.loc[head["metric"].isin(["nc2_gof_w", "nc2_gof", "nc3_gof"]), "value"].max(),
            "w_gof": value[(1, "nc2_gof_w")], "w_of": value[(1, "nc2_of_w")], "of_pred": of_pred,
            "margin": of_pred / 2,
        })
    return pd.DataFrame(rows)
