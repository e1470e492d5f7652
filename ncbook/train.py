"""Training loop of paper A's practical experiments: the authors' objectives, optimisers and
schedules, NC metrics at every head layer after each epoch, checkpoints and exact resume.

Objective on a batch of B samples with logits Z (B, K), one-hot targets Y and features H_1 (B, d):

    mse:  mse_scale * ||Z - Y||_F^2 / (B K)  (+ wd/2 sum_m ||W_m||_F^2 + fd/2 ||H_1||_F^2 with sep_decay)
    ce:   mean_i CE(z_i, y_i)                (+ the same penalties with sep_decay)

``sep_decay`` penalises only the head weights and the features (the bias and the backbone are not
decayed); without it the optimiser's weight decay ``wd`` acts on every parameter. This is the
authors' ``train_1st_order*.py`` (Fsoft-AIC/Neural-Collapse-in-Deep-Linear-Networks);
``mse_scale`` is 1 in their
balanced runs and 1/2 in their imbalanced ones. With full batches and ``mse_scale = 1/2`` the
objective is K^-1 times the paper's f, so lambda_W = K wd and lambda_H = K fd in paper A's objective.

Every ``eval_every`` epochs one pass over the training set (eval mode) feeds an
``ncbook.metrics.NCAccumulator`` per head layer m with H_m and computes its metrics with the
classifier W_M ... W_m; train and test accuracy complete the row set. The result is a tidy table
``epoch, layer, metric, value`` (layer 0 holds network-level rows: loss, lr, accuracies).

A checkpoint (model, optimiser, scheduler, random states, configs, code hash, epoch, table) is
written atomically every ``checkpoint_every`` epochs (:mod:`ncbook.checkpoint`); calling :func:`fit`
again with the same arguments resumes from it and ends with the same numbers as an uninterrupted
run; an unreadable one is moved aside with a warning and training starts over.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import torch
import torch.nn.functional as F
from tqdm import tqdm

from ncbook import checkpoint as checkpoints
from ncbook._checks import check_choice, check_float, check_int
from ncbook._io import write_csv
from ncbook._runtime import progress_disabled, results_dir
from ncbook.data import DataBundle
from ncbook.evaluation import TrainingDiverged, class_norms, evaluate, layer_gof_targets
from ncbook.geometry import GOFTargets
from ncbook.models.nets import HeadedNet, NetConfig, build
from ncbook.spec import LOSSES

__all__ = [
    "AUTHORS_RECIPES",
    "LOSSES",
    "OPTIMIZERS",
    "TrainConfig",
    "TrainResult",
    "TrainingDiverged",
    "checkpoint_path",
    "class_norms",
    "evaluate",
    "fit",
    "layer_gof_targets",
    "run",
    "run_many",
]

OPTIMIZERS = ("sgd", "adam")


@dataclass(frozen=True)
class TrainConfig:
    epochs: int = 200  # passes over the training set
    batch_size: int = 128  # samples per step; 0 = full batch (the authors' imbalanced runs)
    shuffle: bool = True  # reshuffle each epoch; False feeds the stored order (imbalanced runs)
    optimizer: str = "sgd"  # "sgd" (with momentum) or "adam" (betas 0.9, 0.999, eps 1e-8)
    lr: float = 1e-3  # initial learning rate
    momentum: float = 0.9  # SGD momentum
    loss: str = "mse"  # "mse" (on one-hot targets) or "ce"
    mse_scale: float = 1.0  # factor on the mean squared error: 1 balanced, 1/2 imbalanced
    weight_decay: float = 1e-4  # wd: on head weights (sep_decay) or on every parameter
    sep_decay: bool = False  # penalise head weights and features in the loss, not in the optimiser
    feature_decay: float = 1e-4  # fd: on the features H_1 (sep_decay only)
    lr_step: int = 50  # StepLR: multiply the learning rate by lr_gamma every lr_step epochs
    lr_gamma: float = 0.1  # StepLR factor
    eval_every: int = 1  # NC metrics every eval_every epochs, and after the last
    checkpoint_every: int = 1  # checkpoint every checkpoint_every epochs, and after the last
    eval_batch_size: int = 1024  # batch size of the metric passes (no effect on the numbers)
    seed: int = 0  # model initialisation and shuffling
    max_loss: float = 1e4  # an epoch's mean loss above this counts as divergence

    def __post_init__(self) -> None:
        check_int("epochs", self.epochs, low=1)
        check_int("batch_size", self.batch_size, low=0)
        check_choice("shuffle", self.shuffle, (True, False))
        check_choice("optimizer", self.optimizer, OPTIMIZERS)
        check_float("lr", self.lr, low=0.0, low_open=True)
        check_float("momentum", self.momentum, low=0.0, high=1.0)
        check_choice("loss", self.loss, LOSSES)
        check_float("mse_scale", self.mse_scale, low=0.0, low_open=True)
        check_float("weight_decay", self.weight_decay, low=0.0)
        check_choice("sep_decay", self.sep_decay, (True, False))
        check_float("feature_decay", self.feature_decay, low=0.0)
        check_int("lr_step", self.lr_step, low=1)
        check_float("lr_gamma", self.lr_gamma, low=0.0, high=1.0, low_open=True)
        check_int("eval_every", self.eval_every, low=1)
        check_int("checkpoint_every", self.checkpoint_every, low=1)
        check_int("eval_batch_size", self.eval_batch_size, low=1)
        check_int("seed", self.seed, low=0, high=2**63 - 1)
        check_float("max_loss", self.max_loss, low=0.0, low_open=True)


# The authors' command lines with their argparse defaults, seed 1.
AUTHORS_RECIPES: dict[str, TrainConfig] = {
    # (A) balanced MLP: Adam 1e-4, sep_decay wd = fd = 1e-4, 200 epochs, LR x0.1 every 50, batch 128.
    "balanced_mlp": TrainConfig(epochs=200, batch_size=128, optimizer="adam", lr=1e-4, sep_decay=True,
                                weight_decay=1e-4, feature_decay=1e-4, lr_step=50, seed=1),
    # (B) balanced ResNet18 / VGG16: SGD 1e-3 momentum 0.9, weight decay 1e-4 on every parameter.
    "balanced_conv": TrainConfig(epochs=200, batch_size=128, optimizer="sgd", lr=1e-3,
                                 weight_decay=1e-4, lr_step=50, seed=1),
    # (C) imbalanced MLP: full batch in stored order, MSE/2, Adam 1e-4, wd = fd = 1e-5,
    # 12000 epochs with LR x0.1 at 6000; metrics and checkpoints every 100 epochs.
    "imbalanced_mlp": TrainConfig(epochs=12000, batch_size=0, shuffle=False, optimizer="adam", lr=1e-4,
                                  mse_scale=0.5, sep_decay=True, weight_decay=1e-5, feature_decay=1e-5,
                                  lr_step=6000, eval_every=100, checkpoint_every=100, seed=1),
}  # fmt: skip


@dataclass(frozen=True)
class TrainResult:
    model: HeadedNet  # the trained network (eval mode), on ``device``
    history: pd.DataFrame  # tidy: epoch, layer, metric, value
    device: str  # where it ran
    epochs_run: int  # epochs trained by this call (0 when the checkpoint was already complete)


def checkpoint_path(profile: str, notebook: str, name: str, data: DataBundle, net: NetConfig,
                    config: TrainConfig) -> Path:  # fmt: skip
    """Where :func:`run` keeps the checkpoint of this run (see :func:`ncbook.checkpoint.path_for`)."""
    return checkpoints.path_for(profile, notebook, name, checkpoints.identity(data, net, config))


def run(
    data: DataBundle,
    net: NetConfig,
    config: TrainConfig,
    *,
    profile: str,
    notebook: str,
    name: str,
    device: str | torch.device = "cpu",
    gof: Sequence[GOFTargets] | None = None,
) -> TrainResult:
    """:func:`fit` with the book's paths: the table goes to ``results/<profile>/<notebook>/<name>.csv``
    and the checkpoint to :func:`checkpoint_path`."""
    return fit(
        data, net, config,
        checkpoint=checkpoint_path(profile, notebook, name, data, net, config),
        table=results_dir(profile, notebook) / f"{name}.csv",
        device=device, gof=gof, description=name,
    )  # fmt: skip


def run_many(
    data: DataBundle,
    runs: dict[str, tuple[NetConfig, TrainConfig]],
    *,
    profile: str,
    notebook: str,
    device: str | torch.device = "cpu",
    gof: dict[str, Sequence[GOFTargets]] | None = None,
) -> tuple[pd.DataFrame, dict[str, HeadedNet]]:
    """:func:`run` for each ``{name: (net, config)}``; returns one tidy table with the columns
    ``run, arch, depth, bias, loss`` in front, and the trained models by name."""
    frames, models = [], {}
    for name, (net, config) in runs.items():
        result = run(data, net, config, profile=profile, notebook=notebook, name=name, device=device,
                     gof=None if gof is None else gof[name])  # fmt: skip
        labels = {"run": name, "arch": net.arch, "depth": net.head_depth, "bias": net.bias,
                  "loss": config.loss}  # fmt: skip
        frames.append(result.history.assign(**labels)[[*labels, *result.history.columns]])
        models[name] = result.model
    return pd.concat(frames, ignore_index=True), models


def fit(
    data: DataBundle,
    net: NetConfig,
    config: TrainConfig,
    *,
    checkpoint: str | os.PathLike | None = None,
    table: str | os.PathLike | None = None,
    device: str | torch.device = "cpu",
    gof: Sequence[GOFTargets] | None = None,
    description: str = "train",
) -> TrainResult:
    """Build ``net`` from ``config.seed``, train it on ``data.train`` and return it with its table.

    Args:
        checkpoint: file to write every ``checkpoint_every`` epochs; if it exists, training resumes
            from it (it must come from the same data and configs, else ``ValueError``).
        table: CSV file for the tidy table, rewritten atomically after each evaluation.
        gof: one ``GOFTargets`` per head layer (see :func:`layer_gof_targets`) for the GOF
            metrics; default: ``ncbook.metrics``' targets from the class counts.

    Raises:
        TrainingDiverged: an epoch's mean loss is NaN/inf or above ``config.max_loss``; the last
            checkpoint is kept.
    """
    if net.num_classes != data.num_classes:
        raise ValueError(f"`net.num_classes` is {net.num_classes} but the data have {data.num_classes}")
    if tuple(net.input_shape) != data.train.input_shape:
        raise ValueError(f"`net.input_shape` is {net.input_shape}, the data {data.train.input_shape}")
    if gof is not None and len(gof) != net.head_depth:
        raise ValueError(f"`gof` needs one target per head layer ({net.head_depth}), got {len(gof)}")
    device = torch.device(device)
    torch.manual_seed(config.seed)
    model = build(net).to(device)
    optimizer = _optimizer(model, config)
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, config.lr_step, config.lr_gamma)
    shuffler = torch.Generator().manual_seed(config.seed)
    identity = checkpoints.identity(data, net, config)
    rows: dict[str, list[Any]] = {"epoch": [], "layer": [], "metric": [], "value": []}
    start = 0
    path = Path(checkpoint) if checkpoint is not None else None
    restored = _restore(path, identity, model, optimizer, scheduler, shuffler, device) \
        if path is not None and path.exists() else None
    if restored is not None:
        start, rows = restored
    resumed_at = saved = start
    x, y = data.train.x.to(device), data.train.y.to(device)
    batch = config.batch_size or len(y)
    bar = tqdm(range(start, config.epochs), initial=start, total=config.epochs,
               desc=description, disable=progress_disabled())  # fmt: skip
    for epoch in bar:
        model.train()
        lr = scheduler.get_last_lr()[0]
        order = torch.randperm(len(y), generator=shuffler) if config.shuffle else torch.arange(len(y))
        total = torch.zeros((), dtype=torch.float64, device=device)
        for idx in order.to(device).split(batch):
            loss = _objective(model, x[idx], y[idx], config)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            total += loss.detach().double() * len(idx)
        scheduler.step()
        mean_loss = float(total) / len(y)
        # The loss is taken before each step, so a last step that blows up shows only in the weights.
        finite = all(bool(torch.isfinite(p).all()) for p in model.parameters())
        done = epoch + 1
        kept = f"; the checkpoint of epoch {saved} stays in {path}" if path else ""
        if not (finite and math.isfinite(mean_loss) and mean_loss <= config.max_loss):
            raise TrainingDiverged(
                f"training diverged in epoch {done}: mean loss {mean_loss:.4g} (limit "
                f"{config.max_loss:g}), finite weights: {finite}, lr {lr:g}; try a smaller `lr`{kept}"
            )
        _append(rows, done, 0, {"loss": mean_loss, "lr": lr})
        if done % config.eval_every == 0 or done == config.epochs:
            try:
                metrics = evaluate(model, data, device, config.eval_batch_size, gof)
            except TrainingDiverged as err:
                raise TrainingDiverged(
                    f"training diverged in epoch {done}: {err}, lr {lr:g}; try a smaller `lr`{kept}"
                ) from None
            for layer, values in metrics.items():
                _append(rows, done, layer, values)
            bar.set_postfix(loss=f"{mean_loss:.4g}", train_acc=f"{metrics[0]['train_acc']:.3f}")
            if table is not None:
                write_csv(table, pd.DataFrame(rows))
        if path is not None and (done % config.checkpoint_every == 0 or done == config.epochs):
            _save(path, identity, done, model, optimizer, scheduler, shuffler, rows)
            saved = done
    bar.close()
    history = pd.DataFrame(rows)
    if table is not None:
        write_csv(table, history)
    model.eval()
    return TrainResult(model, history, str(device), config.epochs - resumed_at)


def _optimizer(model: HeadedNet, config: TrainConfig) -> torch.optim.Optimizer:
    decay = 0.0 if config.sep_decay else config.weight_decay
    # The fused kernels apply the same update rule in one pass over all parameters (3x faster on
    # CPU for small nets); they round differently from the per-tensor loop, not less exactly.
    if config.optimizer == "sgd":
        return torch.optim.SGD(model.parameters(), lr=config.lr, momentum=config.momentum,
                               weight_decay=decay, fused=True)  # fmt: skip
    return torch.optim.Adam(model.parameters(), lr=config.lr, betas=(0.9, 0.999), eps=1e-8,
                            weight_decay=decay, fused=True)  # fmt: skip


def _objective(model: HeadedNet, x: torch.Tensor, y: torch.Tensor, config: TrainConfig) -> torch.Tensor:
    features = model.backbone(x)  # (B, d_1): H_1
    logits = model.head(features)  # (B, K)
    if config.loss == "mse":
        target = F.one_hot(y, logits.shape[1]).to(logits.dtype)
        loss = config.mse_scale * F.mse_loss(logits, target)
    else:
        loss = F.cross_entropy(logits, y)
    if config.sep_decay:
        weights = sum(layer.weight.square().sum() for layer in model.head)
        loss = loss + config.weight_decay / 2 * weights
        loss = loss + config.feature_decay / 2 * features.square().sum()
    return loss


def _append(rows: dict[str, list[Any]], epoch: int, layer: int, values: dict[str, float]) -> None:
    for metric, value in values.items():
        rows["epoch"].append(epoch)
        rows["layer"].append(layer)
        rows["metric"].append(metric)
        rows["value"].append(float(value))


def _save(path: Path, identity: dict[str, Any], epoch: int, model: HeadedNet,
          optimizer: torch.optim.Optimizer, scheduler: Any, shuffler: torch.Generator,
          rows: dict[str, list[Any]]) -> None:  # fmt: skip
    checkpoints.save(path, identity, {
        "epoch": epoch,
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "scheduler": scheduler.state_dict(),
        "rng": {
            "torch": torch.get_rng_state(),
            "shuffle": shuffler.get_state(),
            "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        },
        "history": rows,
    })


def _restore(path: Path, identity: dict[str, Any], model: HeadedNet,
             optimizer: torch.optim.Optimizer, scheduler: Any, shuffler: torch.Generator,
             device: torch.device) -> tuple[int, dict[str, list[Any]]] | None:  # fmt: skip
    """Load the training state of ``path`` into the objects; None when it was moved aside."""
    state = checkpoints.load(path, identity, device)
    if state is None:
        return None
    model.load_state_dict(state["model"])
    optimizer.load_state_dict(state["optimizer"])
    scheduler.load_state_dict(state["scheduler"])
    torch.set_rng_state(state["rng"]["torch"].cpu())
    shuffler.set_state(state["rng"]["shuffle"].cpu())
    if state["rng"]["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([s.cpu() for s in state["rng"]["cuda"]])
    return state["epoch"], state["history"]
