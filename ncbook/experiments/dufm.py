"""Paper B's DUFM protocol (chapters 31-33): per-layer diagnostics of a ReLU DUFM point,
classification of end points (DNC, low-rank, stuck), gradient descent from random starts and
sweeps over (width, lambda), each as a tidy table.

Per-layer metrics come from :func:`ncbook.metrics.layerwise.layer_table` (the accumulator's vocabulary):
``rank`` (singular values of the class-mean matrix above 1e-3 of the largest, paper B's count),
``cdnv`` (within-class collapse; unlike Papyan's ``nc1`` it stays defined when the class means
have rank below K - 1, as in the low-rank solutions) and ``nc2_of`` (distance of the class-mean
Gram matrix from an orthogonal frame, DNC's geometry). Layer l holds H_l (the input of W_l, after
the ReLU) with ``tap="post"`` and H~_l (before it) with ``tap="pre"``.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace

import pandas as pd
import torch

from ncbook._checks import check_float, check_int
from ncbook.metrics import class_means, layerwise
from ncbook.models.relu_dufm import ReLUDUFM, check_relu_spec, make_relu_dufm
from ncbook.models.relu_head import ReLUHeadNet
from ncbook.optimize import minimize
from ncbook.spec import UFMSpec
from ncbook.theory.relu import dufm_dnc_loss

__all__ = [
    "DUFM_METRICS",
    "DUFMRuns",
    "classify_solution",
    "class_mean_layers",
    "dnc_loss_of",
    "head_monitor",
    "layer_spectra",
    "layer_metrics",
    "random_start_runs",
    "random_start_sweep",
    "summarize_solution",
]

DUFM_METRICS = ("rank", "cdnv", "nc2_of")  # the per-layer keys reported for DUFM points


def _layer_index(name: str) -> tuple[int, str]:
    """'H3' -> (3, 'post'), 'H~3' -> (3, 'pre'); H_1 has no ReLU and counts as 'post'."""
    return (int(name[2:]), "pre") if name.startswith("H~") else (int(name[1:]), "post")


def class_mean_layers(model: ReLUDUFM) -> dict[str, torch.Tensor]:
    """Class-mean matrices M (d_l x K, float64) of H_1, H~_2, H_2, ..., H~_L, H_L, keyed by name."""
    K = model.num_classes
    return {name: class_means(h.T, model.labels, K).T for name, h in model.named_layers().items()}


def layer_metrics(model: ReLUDUFM, metrics: Iterable[str] = DUFM_METRICS) -> pd.DataFrame:
    """``metrics`` (keys of ``ncbook.metrics.METRIC_KEYS``) of every layer through the one per-layer
    path, :func:`ncbook.metrics.layerwise.layer_table`: columns layer, tap, name, metric, value."""
    layers = model.named_layers()
    table = layerwise.layer_table(
        [h.T for h in layers.values()], model.labels, model.num_classes, keys=list(metrics)
    )
    names = list(layers)
    table["name"] = [names[m - 1] for m in table["layer"]]
    table["layer"], table["tap"] = zip(*(_layer_index(name) for name in table["name"]))
    return table[["layer", "tap", "name", "metric", "value"]]


def layer_spectra(model: ReLUDUFM) -> pd.DataFrame:
    """Singular values of every class-mean matrix, divided by the largest one of that layer:
    a long table with columns name, index (0 = largest), value."""
    rows = [
        {"name": name, "index": i, "value": float(v / sing[0]) if sing[0] > 0 else 0.0}
        for name, means in class_mean_layers(model).items()
        for sing in [torch.linalg.svdvals(means)]
        for i, v in enumerate(sing)
    ]
    return pd.DataFrame(rows)


def classify_solution(ratio: float, ranks: Iterable[int], num_classes: int, tol: float = 5e-3) -> str:
    """Label a GD end point by its loss / L_DNC ``ratio`` and its class-mean ranks (ours):

    "DNC" (every rank K, ratio within ``tol`` of 1), "low-rank" (some rank < K, ratio < 1),
    "stuck" (ratio above 1: dead or non-collapsed), or "other" (full rank, ratio < 1 - tol).

    >>> classify_solution(0.82, [5, 10], 10)
    'low-rank'
    """
    full = all(rank == num_classes for rank in ranks)
    if full and abs(ratio - 1) <= tol:
        return "DNC"
    if ratio < 1 and not full:
        return "low-rank"
    return "stuck" if ratio > 1 else "other"


def dnc_loss_of(spec: UFMSpec) -> float:
    """``ncbook.theory.dufm_dnc_loss`` of a balanced ReLU DUFM ``spec``."""
    spec = check_relu_spec(spec, balanced=True).require_positive_decay()
    return dufm_dnc_loss(
        spec.num_classes,
        spec.depth,
        spec.n_per_class[0],
        lambda_H=spec.lambda_H,
        lambda_W=spec.lambda_W,
        nonnegative_features=spec.nonnegative_features,
    )


def summarize_solution(model: ReLUDUFM, dnc_loss: float) -> dict[str, object]:
    """One row describing a point: loss, ratio = loss / ``dnc_loss``, its ``classify_solution``
    kind, the smallest class-mean rank, the largest ``cdnv`` over the layers, and
    ``rank <name>`` for every layer (H1, H~2, H2, ...)."""
    dnc_loss = check_float("dnc_loss", dnc_loss, low=0.0, low_open=True)
    loss = model.objective_value()
    table = layer_metrics(model, ("rank", "cdnv"))
    ranks = table[table.metric == "rank"].set_index("name")["value"].astype(int)
    ratio = loss / dnc_loss
    return {
        "loss": loss,
        "ratio": ratio,
        "kind": classify_solution(ratio, ranks, model.num_classes),
        "min rank": int(ranks.min()),
        "max cdnv": float(table[table.metric == "cdnv"]["value"].max()),
        **{f"rank {name}": int(rank) for name, rank in ranks.items()},
    }


@dataclass(frozen=True)
class DUFMRuns:
    summary: (
        pd.DataFrame
    )  # one row per seed: seed, lr, nonnegative_features, ``summarize_solution``'s columns
    histories: pd.DataFrame  # seed, step, loss, ratio (loss / L_DNC)
    models: dict[int, ReLUDUFM]  # final point of every seed


def random_start_runs(
    spec: UFMSpec, seeds: Iterable[int], *, steps: int, lr: float = 0.5, log_every: int = 1000
) -> DUFMRuns:
    """Paper B's protocol from ``make_relu_dufm(spec, seed=s)`` for every seed: plain gradient
    descent (``ncbook.optimize.minimize(method="gd")``), each end point compared with the DNC loss
    (see ``summarize_solution``)."""
    dnc = dnc_loss_of(spec)
    seeds = [check_int("seeds", s, low=0) for s in _as_iterable("seeds", seeds)]
    rows, histories, models = [], [], {}
    for seed in seeds:
        trace = minimize(
            make_relu_dufm(spec, seed=seed),
            method="gd",
            steps=steps,
            lr=lr,
            log_every=log_every,
            progress=False,
        )
        wide = trace.wide()
        models[seed] = trace.model
        rows.append(
            {
                "seed": seed,
                "lr": float(wide["lr"].iloc[-1]),
                "nonnegative_features": spec.nonnegative_features,
                **summarize_solution(trace.model, dnc),
            }
        )
        histories.append(
            pd.DataFrame(
                {"seed": seed, "step": wide["step"], "loss": wide["loss"], "ratio": wide["loss"] / dnc}
            )
        )
    return DUFMRuns(pd.DataFrame(rows), pd.concat(histories, ignore_index=True), models)


def _as_iterable(name: str, value: object) -> list:
    if isinstance(value, (str, bytes)) or not isinstance(value, Iterable):
        raise ValueError(f"`{name}` must be a list, got {value!r}")
    return list(value)


def random_start_sweep(
    spec: UFMSpec, grid: Iterable[tuple[int, float]], seeds: Iterable[int], *, steps: int, lr: float = 0.5
) -> pd.DataFrame:
    """``random_start_runs`` for every distinct (width, lambda) in ``grid`` (every width and every
    decay of ``spec`` replaced): the summaries stacked, with columns width and lambda added."""
    seeds = _as_iterable("seeds", seeds)
    frames = []
    points = _as_iterable("grid", grid)
    for i, point in enumerate(points):
        if not isinstance(point, tuple) or len(point) != 2:
            raise ValueError(f"`grid[{i}]` must be a (width, lambda) pair, got {point!r}")
    for width, lam in dict.fromkeys(points):
        point = replace(spec, widths=width, lambda_W=lam, lambda_H=lam)
        summary = random_start_runs(point, seeds, steps=steps, lr=lr).summary
        frames.append(summary.assign(width=width, **{"lambda": lam}))
    return pd.concat(frames, ignore_index=True)


def head_monitor(net: ReLUHeadNet, dnc_loss: float):  # noqa: ANN201
    """A ``monitor`` for :func:`ncbook.optimize.minimize` on a :class:`ReLUHeadNet`: the head's
    objective / ``dnc_loss`` (``ratio``), the smallest class-mean rank and the largest ``cdnv``
    over the head's layers, and the training accuracy (all at layer 0)."""
    dnc_loss = check_float("dnc_loss", dnc_loss, low=0.0, low_open=True)

    def monitor(_: object) -> dict[str, float]:
        summary = summarize_solution(net.head(), dnc_loss)
        keep = {key: float(summary[key]) for key in ("ratio", "min rank", "max cdnv")}
        return keep | {"train accuracy": net.accuracy()}

    return monitor
