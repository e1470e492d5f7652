"""Data sets as in-memory tensors: the torchvision image sets of paper A, two offline sets for CPU
runs, and the imbalanced subsets the authors train on.

Every loader returns a :class:`DataBundle` of two :class:`Split` objects holding float32 inputs and
int64 labels in the order the files store them. Training then indexes tensors directly (no
``DataLoader`` workers), which keeps runs deterministic and resumable.

* ``cifar10``, ``mnist``, ``fashionmnist``, ``emnist_letters``: torchvision with ``download=True``
  (files under ``$NCBOOK_DATA``, else ``<checkout>/data``), transformed exactly as the authors do
  (``make_dataset`` in datasets.py of github.com/Fsoft-AIC/Neural-Collapse-in-Deep-Linear-Networks): CIFAR10
  normalised per channel; the grey sets as
  ``Grayscale(3), Resize(32), ToTensor, Normalize``, so every set is (3, 32, 32). EMNIST letters'
  labels 1..26 become 0..25.
* ``digits``: scikit-learn's 8x8 digits (1797 real images shipped with the package), 64 features.
* ``mnist1d``: MNIST-1D (Greydanus 2020) generated locally by the ``mnist1d`` package, 40 features.
"""

from __future__ import annotations

import math
import os
import random
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ncbook._checks import check_choice, check_float, check_int
from ncbook._runtime import repo_root

__all__ = [
    "AUTHORS_COUNTS",
    "DATASETS",
    "NUM_CLASSES",
    "DataBundle",
    "Split",
    "counts_by_ratio",
    "data_root",
    "first_per_class",
    "load",
    "load_digits",
    "load_mnist1d",
    "load_torchvision",
    "subset_by_counts",
]

TORCHVISION_SETS = ("cifar10", "mnist", "fashionmnist", "emnist_letters")
OFFLINE_SETS = ("digits", "mnist1d")
DATASETS = TORCHVISION_SETS + OFFLINE_SETS
NUM_CLASSES = {
    "cifar10": 10, "mnist": 10, "fashionmnist": 10, "emnist_letters": 26, "digits": 10,
    "mnist1d": 10,
}

# The authors' imbalanced training counts per class: the ``num_data`` their datasets_unbalance.py
# ``make_dataset`` receives; it keeps the first n_k samples of each class in stored order, as
# subset_by_counts does.
AUTHORS_COUNTS: dict[str, tuple[int, ...]] = {
    "cifar10": (100, 100, 200, 200, 300, 300, 400, 400, 500, 500),
    "emnist_letters": (1500, *[600] * 5, *[50] * 20),
}

# Per-set normalisation (mean, std) as in the authors' datasets.py; MNIST and FashionMNIST use
# their usual statistics with the same single-channel broadcast the authors apply to EMNIST.
_NORMALISE = {
    "cifar10": ((0.4914, 0.4822, 0.4465), (0.2023, 0.1994, 0.2010)),
    "mnist": ((0.1307,), (0.3081,)),
    "fashionmnist": ((0.2860,), (0.3530,)),
    "emnist_letters": ((0.1722,), (0.3309,)),
}

# What a user must place, and where (relative to the data root), when there is no network.
_WHERE = {
    "cifar10": ("cifar-10-python.tar.gz (or its extracted cifar-10-batches-py/)", "."),
    "mnist": ("the four MNIST idx files (train/t10k images/labels, .gz or not)", "MNIST/raw"),
    "fashionmnist": ("the four Fashion-MNIST idx files (.gz or not)", "FashionMNIST/raw"),
    "emnist_letters": ("gzip.zip or the emnist-letters-*-idx*-ubyte files", "EMNIST/raw"),
}


@dataclass(frozen=True)
class Split:
    x: torch.Tensor  # (N, *input_shape) float32 inputs
    y: torch.Tensor  # (N,) int64 labels in [0, num_classes)
    num_classes: int  # K

    def __post_init__(self) -> None:
        assert self.x.shape[0] == self.y.shape[0], "inputs and labels disagree in length"

    def __len__(self) -> int:
        return int(self.y.shape[0])

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(self.x.shape[1:])

    def counts(self) -> list[int]:
        """Samples per class, n_1..n_K."""
        return torch.bincount(self.y, minlength=self.num_classes).tolist()

    def subset(self, indices: torch.Tensor) -> Split:
        """The samples at ``indices``, in that order."""
        return Split(self.x[indices], self.y[indices], self.num_classes)


@dataclass(frozen=True)
class DataBundle:
    name: str  # one of DATASETS
    train: Split
    test: Split

    @property
    def num_classes(self) -> int:
        return self.train.num_classes


def data_root() -> Path:
    """Where torchvision files live: ``$NCBOOK_DATA``, else ``<checkout>/data``."""
    return Path(os.environ.get("NCBOOK_DATA", repo_root() / "data"))


def first_per_class(labels: torch.Tensor, counts: Sequence[int]) -> torch.Tensor:
    """Indices of the first ``counts[k]`` samples of each class k, in stored order.

    This is how the authors build their imbalanced sets (scan the training set in file order and
    keep a sample while its class is below its count). Raises when a class has too few samples.

    >>> first_per_class(torch.tensor([0, 1, 0, 1, 0, 2, 1]), [2, 1, 1]).tolist()
    [0, 1, 2, 5]
    """
    labels = torch.as_tensor(labels)
    num_classes = len(counts)
    wanted = torch.tensor([check_int(f"counts[{k}]", n, low=0) for k, n in enumerate(counts)])
    if labels.numel() and (labels.min() < 0 or labels.max() >= num_classes):
        raise ValueError(f"Expected `labels` in [0, {num_classes}), got {labels.max().item()}")
    available = torch.bincount(labels, minlength=num_classes)
    short = (available < wanted).nonzero().flatten().tolist()
    if short:
        k = short[0]
        raise ValueError(
            f"`counts[{k}]` asks for {wanted[k].item()} samples of class {k}, but only "
            f"{available[k].item()} exist"
        )
    one_hot = torch.nn.functional.one_hot(labels, num_classes)  # (N, K)
    rank = one_hot.cumsum(0).gather(1, labels[:, None]).squeeze(1)  # 1-based rank within class
    return (rank <= wanted[labels]).nonzero().flatten()


def counts_by_ratio(
    n_max: int, num_classes: int, ratio: float, profile: str = "long_tail", minority: float = 0.5
) -> tuple[int, ...]:
    """Class counts from a max/min ratio rho, largest class first.

    ``"long_tail"`` (exponential, Cao et al. 2019): n_k = floor(n_max * rho^(-k/(K-1))).
    ``"step"`` (Buda et al. 2018): the last round(minority * K) classes get floor(n_max / rho), the
    others n_max.

    >>> counts_by_ratio(500, 5, 10.0)
    (500, 281, 158, 88, 50)
    >>> counts_by_ratio(500, 4, 5.0, "step")
    (500, 500, 100, 100)
    """
    n_max = check_int("n_max", n_max, low=1)
    num_classes = check_int("num_classes", num_classes, low=2)
    ratio = check_float("ratio", ratio, low=1.0)
    check_choice("profile", profile, ("long_tail", "step"))
    minority = check_float("minority", minority, low=0.0, high=1.0)
    if profile == "long_tail":
        # The 1e-9 keeps exact powers (e.g. 500 / 10) from flooring one below after round-off.
        counts = [
            math.floor(n_max * ratio ** (-k / (num_classes - 1)) + 1e-9) for k in range(num_classes)
        ]
    else:
        n_small = round(minority * num_classes)
        counts = [n_max] * (num_classes - n_small) + [math.floor(n_max / ratio)] * n_small
    if min(counts) < 1:
        raise ValueError(f"`ratio` {ratio} leaves a class empty with `n_max` = {n_max}")
    return tuple(counts)


def subset_by_counts(split: Split, counts: Sequence[int]) -> Split:
    """The authors' imbalanced subset: the first ``counts[k]`` samples of class k, stored order."""
    if len(counts) != split.num_classes:
        raise ValueError(f"`counts` must have {split.num_classes} entries, got {len(counts)}")
    return split.subset(first_per_class(split.y, counts))


def load(name: str, **kwargs: Any) -> DataBundle:
    """Load data set ``name`` (one of :data:`DATASETS`); keyword arguments go to its loader."""
    check_choice("name", name, DATASETS)
    if name == "digits":
        return load_digits(**kwargs)
    if name == "mnist1d":
        return load_mnist1d(**kwargs)
    return load_torchvision(name, **kwargs)


def load_digits(test_fraction: float = 0.25, seed: int = 0) -> DataBundle:
    """scikit-learn's 8x8 digits, pixels scaled to [0, 1] then standardised with the training
    mean and std; a random split of ``test_fraction`` (drawn from ``seed``) is held out."""
    from sklearn.datasets import load_digits as sk_load_digits

    test_fraction = check_float("test_fraction", test_fraction, low=0.0, high=0.9, low_open=True)
    seed = check_int("seed", seed, low=0)
    digits = sk_load_digits()
    x = torch.tensor(digits.data, dtype=torch.float32) / 16.0  # (1797, 64)
    y = torch.tensor(digits.target, dtype=torch.int64)
    order = torch.randperm(len(y), generator=torch.Generator().manual_seed(seed))
    n_test = round(test_fraction * len(y))
    test, train = order[:n_test].sort().values, order[n_test:].sort().values
    mean, std = x[train].mean(), x[train].std()
    x = (x - mean) / std
    return DataBundle("digits", Split(x[train], y[train], 10), Split(x[test], y[test], 10))


def load_mnist1d(num_samples: int = 5000, seed: int = 42) -> DataBundle:
    """MNIST-1D generated locally (no download): 40-sample 1-D signals of 10 digit templates.

    The package's defaults (5000 samples, 80/20 split, seed 42) give its reference data set. The
    generator seeds Python's and NumPy's global RNGs; their states are restored afterwards so
    loading data never changes a caller's random stream.
    """
    from mnist1d.data import get_dataset_args, make_dataset

    args = get_dataset_args()
    args.num_samples = check_int("num_samples", num_samples, low=100)
    args.seed = check_int("seed", seed, low=0)
    py_state, np_state = random.getstate(), np.random.get_state()
    try:
        raw = make_dataset(args)
    finally:
        random.setstate(py_state)
        np.random.set_state(np_state)

    def split(x: np.ndarray, y: np.ndarray) -> Split:
        return Split(torch.tensor(x, dtype=torch.float32), torch.tensor(y, dtype=torch.int64), 10)

    return DataBundle("mnist1d", split(raw["x"], raw["y"]), split(raw["x_test"], raw["y_test"]))


def load_torchvision(
    name: str, root: str | os.PathLike | None = None, download: bool = True, batch_size: int = 2048
) -> DataBundle:
    """One of the torchvision image sets, both splits, transformed once into tensors (3, 32, 32).

    Raises ``FileNotFoundError`` (one line, naming the folder to fill) when the files are missing
    and cannot be downloaded.
    """
    check_choice("name", name, TORCHVISION_SETS)
    root = Path(root) if root is not None else data_root()
    splits = [_to_split(_torchvision_dataset(name, root, t, download), name, batch_size)
              for t in (True, False)]
    return DataBundle(name, *splits)


def _torchvision_dataset(name: str, root: Path, train: bool, download: bool) -> Any:
    import torchvision.datasets as tvd
    import torchvision.transforms as T

    mean, std = _NORMALISE[name]
    steps = [] if name == "cifar10" else [T.Grayscale(3), T.Resize(32)]
    transform = T.Compose([*steps, T.ToTensor(), T.Normalize(mean, std)])
    kwargs: dict[str, Any] = {"root": root, "train": train, "download": download, "transform": transform}
    try:
        if name == "cifar10":
            return tvd.CIFAR10(**kwargs)
        if name == "mnist":
            return tvd.MNIST(**kwargs)
        if name == "fashionmnist":
            return tvd.FashionMNIST(**kwargs)
        # EMNIST letters are labelled 1..26 in the files; the authors shift them to 0..25.
        return tvd.EMNIST(split="letters", target_transform=lambda t: t - 1, **kwargs)
    except (OSError, RuntimeError) as err:  # URLError is an OSError; a missing file a RuntimeError
        what, folder = _WHERE[name]
        first = (str(err).strip().splitlines() or [type(err).__name__])[0].rstrip(":")
        reason = f"download failed: {first}" if download else "files missing, download=False"
        raise FileNotFoundError(
            f"{name} is not available under {root} ({reason}); with no network, put {what} in "
            f"{(root / folder).resolve()}"
        ) from None
    except (AssertionError, ValueError, EOFError, IndexError) as err:  # the files exist but are damaged
        folder = (root / _WHERE[name][1]).resolve()
        damaged = _damaged_idx_file(folder) if name != "cifar10" else None
        where = f"the file {damaged}" if damaged else f"a file under {folder}"
        raise ValueError(
            f"{name}: {where} is damaged ({type(err).__name__}{': ' + str(err) if str(err) else ''}); "
            f"delete it and run again to download it afresh (or put an intact copy there)"
        ) from None


def _damaged_idx_file(folder: Path) -> Path | None:
    """The first idx file under ``folder`` that torchvision cannot read, if any."""
    from torchvision.datasets.mnist import read_sn3_pascalvincent_tensor

    for path in sorted(folder.glob("*-ubyte")):
        try:
            read_sn3_pascalvincent_tensor(str(path), strict=False)
        except Exception:  # any failure to parse is what we are looking for
            return path
    return None


def _to_split(dataset: Any, name: str, batch_size: int) -> Split:
    """Apply the data set's own transform to every sample once and stack the results."""
    loader = torch.utils.data.DataLoader(dataset, batch_size=batch_size, shuffle=False)
    xs, ys = zip(*loader, strict=True)
    return Split(torch.cat(xs), torch.cat(ys).long(), NUM_CLASSES[name])
