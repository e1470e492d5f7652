"""Seaborn figures shared by the notebooks. Each helper takes a tidy frame (one observation per
row) and returns the seaborn grid, so a notebook can still add titles or save the figure.

* :func:`theme`: the book's look: a colour-blind-safe palette, fonts readable at the text column's
  width, figures no wider than :data:`TEXT_WIDTH`; call it once at the top of a chapter;
* :data:`METRIC_LABELS` / :func:`label`: metric keys (``nc1``, ``w_of``, ...) as math labels;
* :func:`facet_lines`: curves over iterations on a grid of panels, with predicted values drawn
  as dashed reference lines in the colour of the curve they belong to;
* :func:`measured_vs_predicted`: measured and predicted values as side-by-side bars;
* :func:`layer_gram_heatmaps`: normalised Gram matrices of classifier and class means per layer.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import matplotlib.pyplot as plt
import pandas as pd
import seaborn as sns

from ncbook.geometry import normalized

__all__ = ["METRIC_LABELS", "PALETTE", "TEXT_WIDTH", "facet_lines", "hue_palette", "label",
           "layer_gram_heatmaps", "measured_vs_predicted", "theme"]

# Width of the book's text column in inches: a figure drawn at this width is shown unscaled on a
# laptop, so its fonts keep their size; wider figures would be shrunk and their labels with them.
TEXT_WIDTH = 6.5
# At most this many panels side by side: on a 390 px phone screen each is still ~190 px wide.
MAX_COLUMNS = 2
# Okabe & Ito's colour-blind-safe palette (blue, orange, green, vermillion, purple, sky, yellow, black).
PALETTE = ["#0072B2", "#E69F00", "#009E73", "#D55E00", "#CC79A7", "#56B4E9", "#F0E442", "#000000"]

# Axis and panel labels for the keys the metrics and experiments use. d(G, T) is the distance
# ||nrm(G) - nrm(T)||_F between a Gram matrix and its target (see the Notation page).
METRIC_LABELS: dict[str, str] = {
    "nc1": r"NC1 $=\frac{1}{K}\mathrm{tr}(\Sigma_W\Sigma_B^{+})$",
    "nc2_etf": r"NC2: $d(\tilde M^\top\tilde M,\,$ETF$)$",
    "nc2_etf_w": r"NC2: $d(WW^\top,\,$ETF$)$",
    "nc2_of": r"NC2: $d(\bar H^\top\bar H,\,I_K)$",
    "nc2_of_w": r"NC2: $d(WW^\top,\,I_K)$",
    "nc2_gof": r"NC2: $d(\bar H^\top\bar H,\,$GOF$)$",
    "nc2_gof_w": r"NC2: $d(WW^\top,\,$GOF$)$",
    "nc3": r"NC3: $\|W/\|W\| - \tilde M^\top/\|\tilde M\|\|_F$",
    "nc4": r"NC4: disagreement with nearest class mean",
    "w_of": r"NC2: $d(WW^\top,\,I_K)$",
    "h_of": r"NC2: $d(\bar H^\top\bar H,\,I_K)$",
    "w_etf": r"NC2: $d(WW^\top,\,$ETF$)$",
    "h_etf": r"NC2: $d(\tilde H^\top\tilde H,\,$ETF$)$",
    "w_pred": r"NC2: $d(WW^\top,\,$closed form$)$",
    "h_pred": r"NC2: $d(\bar H^\top\bar H,\,$closed form$)$",
    "nc3_pred": r"NC3: $d(W,\,$closed form$)$",
    "w_norm_sq": r"$\|w_k\|^2$",
    "h_norm_sq": r"$\|\bar h_k\|^2$",
    "loss": r"loss $f$",
    "step": "iteration",
}


def label(key: Any) -> Any:
    """The math label of a metric key, or the key itself when it has none.

    >>> label("step"), label("my column")
    ('iteration', 'my column')
    """
    return METRIC_LABELS.get(key, key) if isinstance(key, str) else key


def theme(font_scale: float = 1.0) -> None:
    """Set the book's plotting style for every later figure: seaborn's ``ticks`` style with
    :data:`PALETTE`, figures :data:`TEXT_WIDTH` inches wide, fonts scaled by ``font_scale``.

    Raises:
        ValueError: if ``font_scale`` is not a positive number.
    """
    if not (isinstance(font_scale, (int, float)) and math.isfinite(font_scale) and font_scale > 0):
        raise ValueError(f"`font_scale` must be a positive number, got {font_scale!r}")
    sns.set_theme(context="notebook", style="ticks", palette=PALETTE, font_scale=font_scale, rc={
        "figure.figsize": (TEXT_WIDTH, 0.55 * TEXT_WIDTH),
        "figure.dpi": 110,
        "savefig.dpi": 150,
        "savefig.bbox": "tight",
        "axes.spines.top": False,
        "axes.spines.right": False,
        "legend.frameon": False,
    })


def _require(data: pd.DataFrame, name: str, columns: Sequence[str | None]) -> None:
    missing = [c for c in columns if c is not None and c not in data.columns]
    if missing:
        raise ValueError(f"`{name}` lacks the column(s) {missing}; it has {list(data.columns)}")


def _panel(grid: sns.FacetGrid, row_value: Any, col_value: Any) -> Any:
    """The axes of one (row, col) panel, or None if the grid has no such panel."""
    if row_value is not None and col_value is not None:
        return grid.axes_dict.get((row_value, col_value))
    if row_value is not None or col_value is not None:
        return grid.axes_dict.get(row_value if row_value is not None else col_value)
    return grid.ax


def hue_palette(levels: Sequence[Any], palette: str = "viridis") -> dict[Any, Any]:
    """One colour per level, in order (a dark-to-light ramp suits ordered levels like layers).

    >>> list(hue_palette([1, 2, 3]))
    [1, 2, 3]
    """
    return dict(zip(levels, sns.color_palette(palette, len(levels))))


def facet_lines(
    data: pd.DataFrame,
    *,
    x: str = "step",
    y: str = "value",
    row: str | None = None,
    col: str | None = None,
    hue: str | None = None,
    reference: pd.DataFrame | None = None,
    log_y: bool = True,
    floor: float = 1e-16,
    palette: str = "viridis",
    height: float = 2.0,
    aspect: float = 1.35,
    row_order: Sequence[Any] | None = None,
    col_order: Sequence[Any] | None = None,
    labels: Mapping[Any, str] | None = None,
) -> sns.FacetGrid:
    """Line plots of ``y`` against ``x``, one panel per (``row``, ``col``), one curve per ``hue``.

    With ``log_y`` values below ``floor`` are drawn at ``floor`` (a metric that reached 0 exactly
    stays visible) and rows share their y-axis. ``reference`` holds predicted values: rows with
    the same ``row``/``col``/``hue`` columns as ``data`` and a ``y`` column; each becomes a dashed
    horizontal line in its panel, in its curve's colour (black without ``hue``). Predicted values
    at or below ``floor`` are not drawn on a log axis. ``labels`` renames ``row`` values (e.g.
    metric keys to readable titles), in ``data``, ``reference`` and ``row_order`` alike; by default
    :data:`METRIC_LABELS` (pass ``{}`` to keep the keys). The x axis is labelled with :func:`label`.

    The figure fits the text column: with more than :data:`MAX_COLUMNS` values of ``col`` and no
    ``row``, the panels wrap onto further rows; with a ``row`` facet too, the panels narrow until
    the figure is :data:`TEXT_WIDTH` wide (put the facet with fewer values on ``col``).

    Raises:
        ValueError: if ``data`` or ``reference`` lacks a named column, or ``floor`` <= 0.
    """
    _require(data, "data", [x, y, row, col, hue])
    if reference is not None:
        _require(reference, "reference", [y, row, col, hue])
    if log_y and not floor > 0:
        raise ValueError(f"`floor` must be > 0 on a log axis, got {floor!r}")
    frame = data.copy()
    labels = METRIC_LABELS if labels is None else labels
    if labels and row is not None:
        rename = lambda v: labels.get(v, v)  # noqa: E731
        frame[row] = frame[row].map(rename)
        row_order = None if row_order is None else [rename(v) for v in row_order]
        if reference is not None:
            reference = reference.assign(**{row: reference[row].map(rename)})
    if log_y:
        frame[y] = frame[y].clip(lower=floor)
    levels = sorted(frame[hue].unique()) if hue is not None else []
    colours = hue_palette(levels, palette) if hue is not None else None
    columns = len(col_order) if col_order is not None else (frame[col].nunique() if col else 1)
    wrap = MAX_COLUMNS if row is None and columns > MAX_COLUMNS else None
    aspect = min(aspect, TEXT_WIDTH / (min(columns, wrap or columns) * height))
    grid = sns.relplot(
        data=frame, x=x, y=y, row=row, col=col, hue=hue, hue_order=levels or None,
        palette=colours, kind="line", height=height, aspect=aspect,
        row_order=row_order, col_order=col_order, col_wrap=wrap,
        facet_kws={"sharey": "row" if row is not None else True, "margin_titles": wrap is None},
    )
    grid.set_xlabels(label(x))
    if log_y:
        grid.set(yscale="log")
    if reference is not None:
        for _, line in reference.iterrows():
            value = float(line[y])
            if not math.isfinite(value) or (log_y and value <= floor):
                continue
            ax = _panel(grid, line[row] if row else None, line[col] if col else None)
            if ax is None:
                continue
            colour = colours.get(line[hue], "k") if colours is not None else "k"
            ax.axhline(value, ls="--", lw=1.0, color=colour, alpha=0.8)
    return grid


def measured_vs_predicted(
    data: pd.DataFrame,
    *,
    x: str,
    measured: str = "value",
    predicted: str = "predicted",
    col: str | None = None,
    row: str | None = None,
    labels: tuple[str, str] = ("gradient descent", "closed form"),
    height: float = 2.4,
    aspect: float = 1.2,
    sharey: bool = False,
) -> sns.FacetGrid:
    """Side-by-side bars of ``measured`` and ``predicted`` per ``x``, one panel per (``row``,
    ``col``); ``labels`` name the two bars in the legend.

    Raises:
        ValueError: if ``data`` lacks a named column.
    """
    _require(data, "data", [x, measured, predicted, col, row])
    keep = [c for c in (x, col, row) if c is not None]
    long = data.melt(id_vars=keep, value_vars=[measured, predicted], var_name="source",
                     value_name="_value")
    long["source"] = long["source"].map({measured: labels[0], predicted: labels[1]})
    grid = sns.catplot(
        data=long, x=x, y="_value", hue="source", hue_order=list(labels), col=col, row=row,
        kind="bar", height=height, aspect=aspect, sharey=sharey, errorbar=None,
        palette=[PALETTE[0], "0.35"],
    )
    grid.set_ylabels("")
    return grid


def layer_gram_heatmaps(
    w_grams: Sequence[Any], h_grams: Sequence[Any], *, fmt: str = ".2f", vmax: float = 0.6
) -> plt.Figure:
    """An M x 2 grid of annotated heatmaps of the normalised Gram matrices at every layer m (one
    row per layer, so the figure fits a phone): the classifier acting on layer m, W_M ... W_m (left),
    and the class means of H_m (right).

    ``w_grams`` and ``h_grams`` hold one K x K matrix per layer (e.g. ``ncbook.models.snapshot``'s
    ``w_grams`` / ``h_grams``); each is shown as nrm(G) = G / ||G||_F on a diverging scale.
    """
    if len(w_grams) != len(h_grams) or not w_grams:
        raise ValueError(
            f"`w_grams` and `h_grams` need one matrix per layer each, got {len(w_grams)} and {len(h_grams)}"
        )
    depth = len(w_grams)
    side = min(2.6, TEXT_WIDTH / 2)
    fig, axes = plt.subplots(depth, 2, figsize=(2 * side, side * depth), squeeze=False)
    for column, (grams, name) in enumerate([(w_grams, "W"), (h_grams, "H")]):
        for m, gram in enumerate(grams):
            sns.heatmap(normalized(gram).numpy(), ax=axes[m, column], annot=True, fmt=fmt, cmap="vlag",
                        center=0, vmin=-vmax, vmax=vmax, cbar=False)
            axes[m, column].set_title(f"{name}, layer {m + 1}")
    fig.tight_layout()
    return fig
