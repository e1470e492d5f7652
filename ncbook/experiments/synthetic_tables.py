"""Tables of paper A's synthetic runs (:mod:`ncbook.experiments.synthetic`): what is measured at
each logged step (:func:`measure`), and how runs are read against closed-form candidates
(:func:`final`, :func:`attach`, :func:`closest_candidate`). Chapters: 21, 22.

A run's table is an :class:`ncbook.optimize.Trace` table (``step, layer, metric, value``).
Per-class values are named ``metric[k]`` there; :func:`split_class` turns them into a ``metric``
and a ``k`` column (k = -1 for every other row), the form the stacked tables use.
"""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd
import torch
import torch.nn.functional as F

from ncbook.metrics.layerwise import PRED_KEYS, LayerPrediction
from ncbook.models import DeepLinearUFM

__all__ = ["CLASS_METRICS", "LAYER_METRICS", "RUN_KEYS", "attach", "closest_candidate", "final", "measure",
           "split_class"]

RUN_KEYS = ("run", "metric", "layer", "k")  # identify one logged quantity of one run
# per layer, in the vocabulary of ncbook.metrics (NCAccumulator's METRIC_KEYS)
LAYER_METRICS = ("nc1", "nc2_of", "nc2_etf", "nc2_of_w", "nc2_etf_w", "nc3_sub", "nc3_of", "nc3_etf")
CLASS_METRICS = ("w_norm_sq", "h_norm_sq", "wh", "sv", "bias")  # per class k, at layer 1


def measure(model: DeepLinearUFM, reference: LayerPrediction | None = None) -> pd.DataFrame:
    """NC metrics of ``model`` as rows ``layer, metric, value`` (all distances scale-free,
    ||nrm(A) - nrm(B)||_F as in paper A's code; NaN where a side is zero).

    Per layer m (features H_m, class means Hbar_m, classifier V = W_M ... W_m), ``LAYER_METRICS``
    from :func:`ncbook.metrics.layerwise.layer_table`: ``nc1``; ``nc2_of_w`` / ``nc2_etf_w`` (V V^T
    against the OF / ETF); ``nc2_of`` / ``nc2_etf`` (Hbar^T Hbar against the OF, centred means
    against the ETF); ``nc3_sub`` (||nrm(V) - nrm(Hbar^T)||, the ``NC3_W_sub_H`` of the authors'
    validation code); ``nc3_of`` / ``nc3_etf`` (the logits V Hbar against the OF / ETF). With a
    ``reference`` (a closed-form MSE minimizer) also the ``PRED_KEYS``: ``nc2_pred``,
    ``nc2_pred_w``, ``nc3_pred`` (against its Grams and logits: the GOF under imbalance) and
    ``nc3_pred_sub`` (V against A Hbar^T, A = L G^+; what the authors' synthetic scripts call
    ``NC3_W_sub_H``).

    Layer 1 also holds per class k (``metric[k]``): ``w_norm_sq`` (||w_k||^2, rows of
    W = W_M...W_1), ``h_norm_sq`` (||hbar_k||^2 of H_1), ``wh`` (w_k . hbar_k), ``sv`` (k-th
    singular value of W, descending) and ``bias`` (b_k, with a bias).
    """
    keys = LAYER_METRICS + (PRED_KEYS if reference is not None else ())
    table = model.layer_table(reference, keys)
    with torch.no_grad():
        onehot = F.one_hot(model.labels, model.num_classes).to(model.features.dtype)  # (N, K)
        means = (model.features @ onehot / onehot.sum(0)).double().cpu()  # (d_1, K)
        w = model.end_to_end().double().cpu()  # (K, d_1)
        per_class = {"w_norm_sq": w.square().sum(1), "h_norm_sq": means.square().sum(0),
                     "wh": (w @ means).diagonal(), "sv": torch.linalg.svdvals(w)}
        if model.bias is not None:
            per_class["bias"] = model.bias.detach().double().cpu()
    rows = [(1, f"{name}[{k}]", float(v)) for name, values in per_class.items() for k, v in enumerate(values)]
    return pd.concat([table, pd.DataFrame(rows, columns=table.columns)], ignore_index=True)


def split_class(table: pd.DataFrame) -> pd.DataFrame:
    """``metric[k]`` rows as ``metric`` and ``k``; every other row gets k = -1.

    >>> split_class(pd.DataFrame({"metric": ["nc1", "sv[2]"], "value": [0.5, 3.0]}))
      metric  value  k
    0    nc1    0.5 -1
    1     sv    3.0  2
    """
    parts = table["metric"].str.extract(r"^(?P<name>[^\[]+)(?:\[(?P<k>\d+)\])?$")
    k = pd.to_numeric(parts["k"], errors="coerce").fillna(-1).astype(int)
    return table.assign(metric=parts["name"], k=k)


def final(table: pd.DataFrame) -> pd.DataFrame:
    """The rows of each run's last logged step."""
    last = table.groupby("run")["step"].transform("max")
    return table[table["step"] == last].reset_index(drop=True)


def attach(
    table: pd.DataFrame, predicted: pd.DataFrame, candidate: str | pd.Series = "global"
) -> pd.DataFrame:
    """``table`` (from :func:`run_all` or :func:`final`) with a ``predicted`` column: the value of
    the same (run, metric, layer, k) at ``candidate``, a name or a Series mapping run -> name
    (e.g. ``closest_candidate(...)["candidate"]``). Rows without a prediction get NaN."""
    _require_columns(table, "table", RUN_KEYS)
    _require_columns(predicted, "predicted", [*RUN_KEYS, "candidate"])
    if isinstance(candidate, str):
        chosen = predicted[predicted["candidate"] == candidate]
    else:
        chosen = predicted[predicted["candidate"] == predicted["run"].map(candidate)]
    values = chosen[[*RUN_KEYS, "value"]].rename(columns={"value": "predicted"})
    return table.merge(values, on=list(RUN_KEYS), how="left")


def closest_candidate(table: pd.DataFrame, predicted: pd.DataFrame) -> pd.DataFrame:
    """One row per run: its final loss, the loss of every candidate (one column each), the
    candidate whose loss is nearest (``candidate``) and the relative gap to it (``gap``)."""
    _require_columns(table, "table", RUN_KEYS)
    _require_columns(predicted, "predicted", [*RUN_KEYS, "candidate"])
    end = final(table)
    reached = end[end["metric"] == "loss"].drop(columns=["metric", "layer", "k"])
    losses = predicted[predicted["metric"] == "loss"].pivot(index="run", columns="candidate",
                                                             values="value")
    out = reached.rename(columns={"value": "loss"}).merge(losses, left_on="run", right_index=True)
    at_run = losses.loc[out["run"]]
    gaps = at_run.sub(out["loss"].to_numpy(), axis=0).abs().div(at_run).reset_index(drop=True)
    out = out.reset_index(drop=True)
    out["candidate"] = gaps.idxmin(axis=1)
    out["gap"] = gaps.min(axis=1)
    return out.reset_index(drop=True)


def _require_columns(frame: pd.DataFrame, name: str, columns: Sequence[str]) -> None:
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise ValueError(
            f"`{name}` lacks the column(s) {missing}; pass a table from ncbook.experiments.synthetic"
        )
