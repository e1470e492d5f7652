"""Per-layer NC statistics of any ``nn.Module`` in one forward pass over a loader (forward hooks)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import torch
from torch import nn

from ncbook._checks import check_choice
from ncbook.metrics.accumulator import NCAccumulator

__all__ = ["TAPS", "collect"]

TAPS = ("input", "output")


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
