"""Draw the introduction's picture of the three frames for K = 3 (book/figures/frames_k3.svg).

Each frame is drawn from its Gram matrix G in ncbook.geometry as the columns of G^(1/2), so all
three live in the same coordinates: the orthogonal frame (OF) is the standard basis, the simplex
ETF is the same basis with its mean removed (three vectors at 120 degrees in the plane normal to
(1, 1, 1)), and the general orthogonal frame (GOF) keeps the right angles but gives each class its
own length. Rerun after changing ncbook.geometry:

    python book/figures/make_frames.py
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402

from ncbook import geometry, plots  # noqa: E402

OUT = Path(__file__).resolve().parent / "frames_k3.svg"
COUNTS = [100, 40, 10]  # class sizes of the GOF panel: the classifier row of a larger class is longer


def frame_vectors(gram: torch.Tensor) -> torch.Tensor:
    """Columns of the symmetric square root G^(1/2): K vectors whose Gram matrix is G."""
    values, vectors = torch.linalg.eigh(gram)
    return vectors @ torch.diag(values.clamp(min=0).sqrt()) @ vectors.T


def frames() -> dict[str, torch.Tensor]:
    """Unit-scale Gram matrices of the three frames for K = 3 (only directions and ratios matter)."""
    gof = geometry.gof_targets_from_counts(COUNTS).classifier_sq
    grams = {"simplex ETF": geometry.simplex_etf(3), "OF": geometry.orthogonal_frame(3),
             "GOF": geometry.general_orthogonal_frame(gof)}
    return {name: gram / gram.diag().max() for name, gram in grams.items()}  # longest vector: 1


def _plane_coordinates(vectors: torch.Tensor) -> torch.Tensor:
    """2-D coordinates of vectors that span a plane (the ETF's, normal to (1, 1, 1))."""
    basis = torch.linalg.svd(vectors).U[:, :2]
    return basis.T @ vectors


def draw(path: Path = OUT) -> Path:
    plots.theme()
    colours = plots.PALETTE[:3]
    fig = plt.figure(figsize=(6.4, 2.4))
    for index, (name, gram) in enumerate(frames().items()):
        vectors = frame_vectors(gram)
        if name == "simplex ETF":  # rank K - 1 = 2: drawn in its own plane
            ax = fig.add_subplot(1, 3, 1)
            flat = _plane_coordinates(vectors).numpy()
            ax.add_patch(plt.Circle((0, 0), 1, fill=False, ls=":", color="0.6"))
            for k in range(3):
                ax.annotate("", xy=flat[:, k], xytext=(0, 0),
                            arrowprops={"arrowstyle": "-|>", "color": colours[k], "lw": 2.2})
                ax.text(*(1.2 * flat[:, k]), f"{k + 1}", color=colours[k], ha="center", va="center")
            ax.set(xlim=(-1.3, 1.3), ylim=(-1.3, 1.3), aspect="equal")
            ax.axis("off")
        else:
            ax = fig.add_subplot(1, 3, index + 1, projection="3d")
            array = vectors.numpy()
            for k in range(3):
                ax.quiver(0, 0, 0, *array[:, k], color=colours[k], linewidth=2.2, arrow_length_ratio=0.18)
                ax.text(*(1.08 * array[:, k]), f"{k + 1}", color=colours[k])
            ax.set(xlim=(0, 1.1), ylim=(0, 1.1), zlim=(0, 1.25), xticks=[], yticks=[], zticks=[])
            ax.view_init(elev=20, azim=30)
            ax.set_box_aspect((1, 1, 1))
        ax.set_title(name, pad=2)
    fig.subplots_adjust(left=0, right=1, bottom=0, top=0.9, wspace=0.05)
    plt.rcParams["svg.hashsalt"] = "ncbook"
    fig.savefig(path, metadata={"Date": None} if path.suffix == ".svg" else None)
    plt.close(fig)
    return path


if __name__ == "__main__":
    print(draw())
