"""ncbook.plots: panel layout, floors, reference lines and bar heights, read back from the figures."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402

from ncbook import plots  # noqa: E402


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


def _curves() -> pd.DataFrame:
    rows = []
    for metric in ("nc1", "w_of"):
        for depth in (1, 3):
            for layer in range(1, depth + 1):
                for step in range(5):
                    value = 0.0 if step == 4 else 10.0 ** -step
                    rows.append({"metric": metric, "depth": depth, "layer": layer, "step": step,
                                 "value": value})
    return pd.DataFrame(rows)


def _dashed(ax) -> list[float]:
    return sorted(line.get_ydata()[0] for line in ax.get_lines() if line.get_linestyle() == "--")


def test_facet_lines_layout_floor_and_labels():
    grid = plots.facet_lines(_curves(), row="metric", col="depth", hue="layer", floor=1e-9,
                             labels={"nc1": "NC1", "w_of": "W vs OF"}, row_order=["w_of", "nc1"])
    assert grid.axes.shape == (2, 2)
    assert set(grid.axes_dict) == {("W vs OF", 1), ("W vs OF", 3), ("NC1", 1), ("NC1", 3)}
    ax = grid.axes_dict[("NC1", 3)]
    assert ax.get_yscale() == "log"
    assert len(ax.get_lines()) >= 3  # one curve per layer
    lowest = min(line.get_ydata().min() for line in ax.get_lines())
    assert lowest == pytest.approx(1e-9)  # the exact zero is drawn at the floor


def test_facet_lines_draws_references_in_their_panels_and_colours():
    reference = pd.DataFrame([
        {"metric": "w_of", "depth": 3, "layer": 2, "value": 0.3},
        {"metric": "w_of", "depth": 3, "layer": 3, "value": 0.1},
        {"metric": "nc1", "depth": 1, "layer": 1, "value": 0.0},  # at the floor: not drawn
        {"metric": "loss", "depth": 1, "layer": 1, "value": 0.5},  # no such panel: ignored
    ])
    grid = plots.facet_lines(_curves(), row="metric", col="depth", hue="layer", reference=reference,
                             labels={})
    assert _dashed(grid.axes_dict[("w_of", 3)]) == pytest.approx([0.1, 0.3])
    assert _dashed(grid.axes_dict[("nc1", 1)]) == []
    assert _dashed(grid.axes_dict[("w_of", 1)]) == []
    palette = plots.hue_palette([1, 2, 3])
    colours = {line.get_ydata()[0]: line.get_color() for line in grid.axes_dict[("w_of", 3)].get_lines()
               if line.get_linestyle() == "--"}
    assert np.allclose(matplotlib.colors.to_rgb(colours[0.3]), palette[2])


def test_facet_lines_without_facets_or_log():
    data = pd.DataFrame({"step": [0, 1, 2], "value": [3.0, 2.0, 1.0]})
    grid = plots.facet_lines(data, log_y=False, reference=pd.DataFrame({"value": [1.5]}))
    assert grid.ax.get_yscale() == "linear"
    assert _dashed(grid.ax) == [1.5]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"row": "layer_name"}, r"`data` lacks the column\(s\) \['layer_name'\]"),
        ({"reference": pd.DataFrame({"value": [1.0]}), "col": "depth"}, r"`reference` lacks the column\(s\)"),
        ({"floor": 0.0}, "`floor` must be > 0 on a log axis"),
    ],
)
def test_facet_lines_rejects_bad_input(kwargs, message):
    with pytest.raises(ValueError, match=message):
        plots.facet_lines(_curves(), **kwargs)


def test_measured_vs_predicted_bar_heights():
    data = pd.DataFrame({"k": [0, 1, 2, 0, 1, 2], "depth": [1, 1, 1, 3, 3, 3],
                         "value": [3.0, 2.0, 1.0, 6.0, 4.0, 2.0],
                         "predicted": [3.1, 2.1, 0.9, 6.0, 4.0, 2.5]})
    grid = plots.measured_vs_predicted(data, x="k", col="depth")
    ax = grid.axes_dict[3]
    heights = sorted(bar.get_height() for bar in ax.patches if bar.get_height() > 0)
    assert heights == pytest.approx(sorted([6.0, 4.0, 2.0, 6.0, 4.0, 2.5]))
    labels = [text.get_text() for text in grid.legend.get_texts()]
    assert labels == ["gradient descent", "closed form"]


def test_measured_vs_predicted_rejects_missing_columns():
    with pytest.raises(ValueError, match=r"`data` lacks the column\(s\) \['predicted'\]"):
        plots.measured_vs_predicted(pd.DataFrame({"k": [0], "value": [1.0]}), x="k")


def test_layer_gram_heatmaps_shows_each_normalised_gram():
    import torch

    w = [torch.eye(3) * 4.0, torch.eye(3)]
    h = [torch.eye(3), torch.ones(3, 3) + torch.eye(3)]
    fig = plots.layer_gram_heatmaps(w, h)
    axes = np.array(fig.axes).reshape(2, 2)  # one row per layer: W | H
    assert [ax.get_title() for ax in axes.ravel()] == ["W, layer 1", "H, layer 1", "W, layer 2", "H, layer 2"]
    # the annotation of the top-left diagonal entry is nrm(4 I)[0, 0] = 1/sqrt(3)
    assert axes[0, 0].texts[0].get_text() == f"{1 / np.sqrt(3):.2f}"
    with pytest.raises(ValueError, match="one matrix per layer each, got 2 and 1"):
        plots.layer_gram_heatmaps(w, h[:1])


def test_facet_lines_labels_metric_keys_with_math_by_default():
    grid = plots.facet_lines(_curves(), row="metric", col="depth", hue="layer")
    assert set(grid.axes_dict) == {(plots.METRIC_LABELS[m], d) for m in ("nc1", "w_of") for d in (1, 3)}
    assert grid.axes[-1, 0].get_xlabel() == "iteration"


def test_every_metric_label_is_valid_mathtext():
    from matplotlib.mathtext import MathTextParser

    parser = MathTextParser("path")
    for key, text in plots.METRIC_LABELS.items():
        for piece in text.split("$")[1::2]:
            parser.parse(f"${piece}$")  # raises ValueError on a TeX typo
        assert text.count("$") % 2 == 0, key


def test_facet_lines_wraps_or_narrows_to_the_text_column():
    rows = [{"depth": d, "step": s, "value": 1.0 / (s + 1), "metric": m}
            for d in (1, 2, 3, 4) for s in range(3) for m in ("nc1", "w_of")]
    data = pd.DataFrame(rows)
    wrapped = plots.facet_lines(data.query("metric == 'nc1'"), col="depth")
    assert len(wrapped.axes.ravel()) == 4
    assert len({round(ax.get_position().x0, 3) for ax in wrapped.axes.ravel()}) == plots.MAX_COLUMNS
    assert wrapped.figure.get_size_inches()[0] <= plots.TEXT_WIDTH + 0.5  # + the legend
    narrowed = plots.facet_lines(data, row="metric", col="depth")
    assert narrowed.axes.shape == (2, 4)
    assert narrowed.figure.get_size_inches()[0] <= plots.TEXT_WIDTH + 0.5


def test_theme_sets_the_palette_and_column_width_and_rejects_bad_scales():
    plots.theme()
    colours = [matplotlib.colors.to_hex(c) for c in plt.rcParams["axes.prop_cycle"].by_key()["color"]]
    assert colours[:3] == [c.lower() for c in plots.PALETTE[:3]]
    assert plt.rcParams["figure.figsize"][0] == plots.TEXT_WIDTH
    for bad in (0, -1.0, float("nan"), "big"):
        with pytest.raises(ValueError, match="`font_scale` must be a positive number"):
            plots.theme(bad)
    matplotlib.rcdefaults()
    matplotlib.use("Agg")
