"""The one per-layer NC path: every layer's features go through an :class:`NCAccumulator`, so
per-layer tables use exactly its vocabulary (``METRIC_KEYS``).

* :func:`layer_table`: in-memory features of every layer (an unconstrained-feature model: paper A's
  deep linear UFM, paper B's ReLU DUFM) -> tidy ``layer, metric, value`` rows, ready to be a
  ``monitor`` of :func:`ncbook.optimize.minimize`.
* :func:`collect`: any ``nn.Module`` in one forward pass over a loader (forward hooks) -> one
  accumulator per tapped layer.

Besides ``METRIC_KEYS``, :func:`layer_table` knows the distances to a closed-form prediction
(``PRED_KEYS``): ``nc2_pred`` (Hbar^T Hbar against the predicted Gram), ``nc2_pred_w`` (W W^T),
``nc3_pred`` (the logits W Hbar against the predicted logits L) and ``nc3_pred_sub``
(||nrm(W) - nrm(A Hbar^T)|| with A = L G^+, G the predicted Hbar^T Hbar: at the minimum W = A Hbar^T;
this is what paper A's synthetic scripts call ``NC3_W_sub_H``, while their validation code's
``NC3_W_sub_H`` is the accumulator's ``nc3_sub``). Chapters: 00, 11-15, 21-24, 32-33.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Protocol

import pandas as pd
import torch
from torch import nn

from ncbook._checks import check_choice
from ncbook.geometry import DegenerateError, as_float64, gram_distance, normalized
from ncbook.metrics.accumulator import METRIC_KEYS, NCAccumulator

__all__ = ["PRED_KEYS", "TAPS", "LayerPrediction", "collect", "layer_table"]

TAPS = ("input", "output")
PRED_KEYS = ("nc2_pred", "nc2_pred_w", "nc3_pred", "nc3_pred_sub")


class LayerPrediction(Protocol):
    """What :func:`layer_table` reads off a closed form (e.g. ``ncbook.theory.mse_minimizer``)."""

    logits: Any  # (K, K) predicted W Hbar, column k the logits of class k (no bias)

    def layer_h_gram(self, layer: int) -> Any: ...  # (K, K) predicted Hbar_m^T Hbar_m

    def layer_w_gram(self, layer: int) -> Any: ...  # (K, K) predicted (W_M...W_m)(W_M...W_m)^T


def layer_table(
    features: Sequence[Any],
    labels: Any,
    num_classes: int,
    *,
    classifiers: Sequence[Any] | None = None,
    bias: Any = None,
    reference: LayerPrediction | None = None,
    keys: Sequence[str] | None = None,
) -> pd.DataFrame:
    """NC metrics of every layer m = 1 .. len(features) as rows ``layer, metric, value``.

    Args:
        features: per layer, the (N, d_m) features (the input of the m-th weight matrix).
        labels: (N,) classes in [0, K).
        num_classes: K.
        classifiers: per layer, the (K, d_m) classifier acting on it (W_M ... W_m); None leaves
            the classifier metrics NaN.
        bias: (K,) last-layer bias (only ``means_error`` uses it).
        reference: a closed form with ``layer_h_gram``, ``layer_w_gram`` and ``logits``; adds
            ``PRED_KEYS`` (NaN where a side is zero).
        keys: the metrics to keep (default: every ``METRIC_KEYS`` entry, plus ``PRED_KEYS`` with
            a reference).

    >>> h = torch.tensor([[1.0, 0.0], [3.0, 0.0], [0.0, 1.0], [0.0, 3.0]])
    >>> table = layer_table([h], torch.tensor([0, 0, 1, 1]), 2, keys=["nc1", "nc2_of"])
    >>> [round(v, 12) for v in table["value"]]  # the means (2, 0), (0, 2) form an OF
    [0.125, 0.0]
    """
    if classifiers is not None and len(classifiers) != len(features):
        raise ValueError(f"`classifiers` needs one entry per layer ({len(features)}), got {len(classifiers)}")
    known = (*METRIC_KEYS, *(PRED_KEYS if reference is not None else ()))
    keys = known if keys is None else tuple(keys)
    unknown = [k for k in keys if k not in known]
    if unknown:
        raise ValueError(f"`keys` has unknown metric(s) {unknown}; allowed: {', '.join(known)}")
    # only the asked-for metrics are evaluated: a per-step monitor records a few of them
    accumulator_keys = [key for key in keys if key in METRIC_KEYS]
    predicted_keys = [key for key in keys if key in PRED_KEYS]
    rows = []
    for m, layer in enumerate(features, start=1):
        acc = NCAccumulator(num_classes, gemm_dtype=torch.float64)
        acc.update(layer, labels)
        w = None if classifiers is None else classifiers[m - 1]
        out = acc.compute(w, bias=None if w is None else bias, keys=accumulator_keys)
        if predicted_keys:
            out |= _predicted(acc.class_means(), w, reference, m, predicted_keys)
        rows += [(m, key, out[key]) for key in keys]
    return pd.DataFrame(rows, columns=["layer", "metric", "value"])


def _predicted(
    means: torch.Tensor, classifier: Any, reference: LayerPrediction, m: int, keys: Sequence[str]
) -> dict[str, float]:
    """The PRED_KEYS ``keys`` of layer m: class means (K, d) and classifier (K, d) against the
    closed form (NaN without a classifier, except ``nc2_pred``)."""
    gram_h = as_float64("reference.layer_h_gram", reference.layer_h_gram(m))
    metrics = {"nc2_pred": lambda: gram_distance(means @ means.T, gram_h)}
    if classifier is not None:
        w = as_float64("classifier", classifier)
        logits = as_float64("reference.logits", reference.logits)

        def dual_sub() -> float:
            dual = logits @ torch.linalg.pinv(gram_h, rtol=1e-10, hermitian=True)  # A = L G^+
            # matrix-level, as nc3_sub: a collapsed class (zero row of W and of A Hbar^T) is allowed
            return float(torch.linalg.matrix_norm(normalized(w) - normalized(dual @ means)))

        metrics |= {
            "nc2_pred_w": lambda: gram_distance(w @ w.T, reference.layer_w_gram(m)),
            "nc3_pred": lambda: gram_distance(w @ means.T, logits),
            "nc3_pred_sub": dual_sub,
        }
    return {key: _or_nan(metrics[key]) if key in metrics else float("nan") for key in keys}


def _or_nan(metric: Any) -> float:
    """A metric that has no direction here (a zero matrix) is NaN, as in ``NCAccumulator``."""
    try:
        return metric()
    except DegenerateError:
        return float("nan")


def _first_tensor(value: Any) -> torch.Tensor:
    """A hook's payload or a model's output: the tensor itself or the first element of a tuple."""
    return value if isinstance(value, torch.Tensor) else value[0]


def collect(
    model: nn.Module,
    loader: Iterable[tuple[Any, Any]],
    layers: Mapping[str, nn.Module],
    num_classes: int,
    device: torch.device | str | None = None,
    *,
    tap: str = "input",
    nc4: bool = False,
    **options: Any,
) -> dict[str, NCAccumulator]:
    """Feed one ``NCAccumulator`` per tapped layer from one pass of ``model`` over ``loader``.

    ``tap="input"`` (default) records what each layer receives (a forward *pre*-hook, as paper A's
    code does on every Linear of the head: the input of the first head layer is H_1); ``"output"``
    records what it returns. Features are flattened to (B, -1). The model runs in eval mode under
    ``torch.no_grad()`` and its training flag is restored afterwards. With ``nc4=True`` a second
    pass counts, per layer, nearest-class-mean decisions (against that layer's means from the first
    pass) that differ from the model's argmax output (``nc4``) and from the label (``ncc_error``).

    Args:
        model: any module whose output (or first output) is the (B, K) logits.
        loader: yields (inputs, labels) batches.
        layers: {name: submodule of model} to tap.
        num_classes: K.
        device: where inputs and accumulators go; default: the model's first parameter's device.
        tap: "input" or "output".
        nc4: run the second pass for NC4 / the NCC error.
        options: ``NCOptions`` fields for every accumulator.

    Returns:
        {name: NCAccumulator}; call ``.compute(classifier=...)`` on each.
    """
    check_choice("tap", tap, TAPS)
    check_choice("nc4", nc4, (True, False))
    if not layers:
        raise ValueError("`layers` must name at least one module to tap")
    for name, module in layers.items():
        if not isinstance(module, nn.Module):
            raise ValueError(f"`layers[{name!r}]` must be an nn.Module, got {type(module).__name__}")
    if device is None:
        device = next(iter(model.parameters()), torch.empty(0)).device
    device = torch.device(device)
    accumulators = {name: NCAccumulator(num_classes, **options) for name in layers}
    taps: dict[str, torch.Tensor] = {}

    def recorder(name: str) -> Any:
        def store(module: nn.Module, args: Any, output: Any = None) -> None:
            taps[name] = _first_tensor(args if tap == "input" else output).flatten(1)

        return store

    handles = [
        module.register_forward_pre_hook(recorder(name))
        if tap == "input"
        else module.register_forward_hook(recorder(name))
        for name, module in layers.items()
    ]
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            for inputs, labels in loader:
                y = torch.as_tensor(labels).to(device)
                model(inputs.to(device))
                for name, acc in accumulators.items():
                    acc.update(_tapped(taps, name), y)
            if nc4:
                for acc in accumulators.values():
                    acc.reference_means = acc.class_means()
                for inputs, labels in loader:
                    y = torch.as_tensor(labels).to(device)
                    logits = _first_tensor(model(inputs.to(device)))
                    for name, acc in accumulators.items():
                        acc.update_ncc(_tapped(taps, name), y, logits)
    finally:
        for handle in handles:
            handle.remove()
        model.train(was_training)
    return accumulators


def _tapped(taps: dict[str, torch.Tensor], name: str) -> torch.Tensor:
    if name not in taps:
        raise ValueError(f"layer {name!r} was not called during the forward pass")
    return taps.pop(name)
