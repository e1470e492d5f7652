"""ncbook.data: torchvision loaders run on tiny files in the real on-disk formats (written here),
the no-network error, imbalanced subsets against a plain-loop oracle, the offline data sets."""

from __future__ import annotations

import gzip
import hashlib
import pickle
import random
import struct
import urllib.error
from pathlib import Path

import numpy as np
import pytest
import torch
import torchvision.datasets as tvd

import ncbook as nc

CIFAR_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR_STD = (0.2023, 0.1994, 0.2010)


def _md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


def _write_cifar(root: Path, per_batch: int = 4) -> dict[str, tuple[np.ndarray, list[int]]]:
    """A CIFAR10 folder in the python-pickle format: 5 training batches, a test batch, the meta."""
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    written = {}
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        data = rng.integers(0, 256, size=(per_batch, 3072), dtype=np.uint8)
        labels = rng.integers(0, 10, size=per_batch).tolist()
        with open(folder / name, "wb") as handle:
            pickle.dump({"batch_label": name, "labels": labels, "data": data}, handle)
        written[name] = (data, labels)
    with open(folder / "batches.meta", "wb") as handle:
        pickle.dump({"label_names": [f"class{i}" for i in range(10)]}, handle)
    return written


def _trust_files(monkeypatch: pytest.MonkeyPatch, root: Path) -> None:
    """torchvision checks every CIFAR file against the real archive's MD5s; give it the MD5s of
    the files written here, so its own integrity check runs (and passes) on them."""
    folder = root / "cifar-10-batches-py"
    listed = lambda names: [[n, _md5(folder / n)] for n in names]  # noqa: E731
    monkeypatch.setattr(tvd.CIFAR10, "train_list", listed([f"data_batch_{i}" for i in range(1, 6)]))
    monkeypatch.setattr(tvd.CIFAR10, "test_list", listed(["test_batch"]))
    meta = {**tvd.CIFAR10.meta, "md5": _md5(folder / "batches.meta")}
    monkeypatch.setattr(tvd.CIFAR10, "meta", meta)


def test_cifar10_reads_the_pickle_format_and_normalises_per_channel(tmp_path, monkeypatch):
    written = _write_cifar(tmp_path)
    _trust_files(monkeypatch, tmp_path)
    bundle = nc.data.load("cifar10", root=tmp_path, download=False)
    assert bundle.train.x.shape == (20, 3, 32, 32) and bundle.test.x.shape == (4, 3, 32, 32)
    raw = np.concatenate([written[f"data_batch_{i}"][0] for i in range(1, 6)])
    labels = sum((written[f"data_batch_{i}"][1] for i in range(1, 6)), [])
    assert bundle.train.y.tolist() == labels  # stored order is kept
    # The row layout is channel-major: byte c*1024 + 32*row + col is pixel (c, row, col).
    for sample, c, row, col in [(0, 0, 0, 0), (7, 1, 5, 30), (19, 2, 31, 31)]:
        value = raw[sample, c * 1024 + 32 * row + col] / 255.0
        expected = (value - CIFAR_MEAN[c]) / CIFAR_STD[c]
        assert bundle.train.x[sample, c, row, col].item() == pytest.approx(expected, abs=1e-5)
    assert bundle.num_classes == 10 and bundle.train.x.dtype == torch.float32


def test_cifar10_integrity_check_rejects_files_with_other_checksums(tmp_path):
    _write_cifar(tmp_path)  # the real MD5s do not match these files
    with pytest.raises(FileNotFoundError, match="cifar-10-batches-py") as info:
        nc.data.load("cifar10", root=tmp_path, download=False)
    assert "\n" not in str(info.value) and str(tmp_path) in str(info.value)


def _idx(path: Path, array: np.ndarray, compress: bool = False) -> None:
    """The MNIST idx format: 0x0000 magic, dtype code 0x08 (uint8), rank, big-endian dims, data."""
    header = struct.pack(">HBB", 0, 0x08, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    payload = header + array.astype(np.uint8).tobytes()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(gzip.compress(payload) if compress else payload)


def _grey_images(n: int) -> tuple[np.ndarray, np.ndarray]:
    """Left half white, right half black, so orientation survives the resize."""
    images = np.zeros((n, 28, 28), dtype=np.uint8)
    images[:, :, :14] = 255
    return images, np.arange(n) % 10


@pytest.mark.parametrize(("name", "folder", "mean", "std"), [
    ("mnist", "MNIST", 0.1307, 0.3081), ("fashionmnist", "FashionMNIST", 0.2860, 0.3530)])
def test_mnist_like_sets_read_idx_files_as_three_channel_32x32(tmp_path, name, folder, mean, std):
    raw = tmp_path / folder / "raw"
    images, labels = _grey_images(6)
    for prefix, n in (("train", 6), ("t10k", 3)):
        _idx(raw / f"{prefix}-images-idx3-ubyte", images[:n])
        _idx(raw / f"{prefix}-labels-idx1-ubyte", labels[:n])
    bundle = nc.data.load(name, root=tmp_path, download=False)
    x = bundle.train.x
    assert x.shape == (6, 3, 32, 32) and bundle.test.x.shape == (3, 3, 32, 32)
    assert bundle.train.y.tolist() == labels.tolist()
    white, black = (1 - mean) / std, (0 - mean) / std
    assert torch.allclose(x[:, :, :, :14], torch.tensor(white), atol=1e-5)
    assert torch.allclose(x[:, :, :, 18:], torch.tensor(black), atol=1e-5)
    assert torch.equal(x[:, 0], x[:, 2])  # Grayscale(3) copies the channel


def test_mnist_gzipped_files_are_extracted_when_download_is_allowed(tmp_path, monkeypatch):
    raw = tmp_path / "MNIST" / "raw"
    images, labels = _grey_images(4)
    names = {}
    for prefix in ("train", "t10k"):
        for kind, array in (("images-idx3", images), ("labels-idx1", labels)):
            path = raw / f"{prefix}-{kind}-ubyte.gz"
            _idx(path, array, compress=True)
            names[path.name] = _md5(path)
    # torchvision finds an archive with the listed MD5 on disk and only extracts it.
    monkeypatch.setattr(tvd.MNIST, "resources", list(names.items()))
    monkeypatch.setattr("urllib.request.urlopen", _no_network)
    assert nc.data.load("mnist", root=tmp_path).train.y.tolist() == labels.tolist()


def test_emnist_letters_labels_shift_to_zero_based(tmp_path):
    raw = tmp_path / "EMNIST" / "raw"
    images = np.random.default_rng(1).integers(0, 256, size=(5, 28, 28), dtype=np.uint8)
    letters = np.array([1, 26, 3, 1, 2])
    for split in ("train", "test"):
        _idx(raw / f"emnist-letters-{split}-images-idx3-ubyte", images)
        _idx(raw / f"emnist-letters-{split}-labels-idx1-ubyte", letters)
    bundle = nc.data.load("emnist_letters", root=tmp_path, download=False)
    assert bundle.train.y.tolist() == [0, 25, 2, 0, 1] and bundle.num_classes == 26
    assert bundle.train.x.shape == (5, 3, 32, 32)


def _no_network(*args, **kwargs):
    raise urllib.error.URLError("no network")


@pytest.mark.parametrize(("name", "folder"), [
    ("cifar10", ""), ("mnist", "MNIST/raw"), ("emnist_letters", "EMNIST/raw")])
def test_no_network_and_no_files_is_a_one_line_error_naming_the_folder(tmp_path, monkeypatch, name, folder):
    monkeypatch.setattr("urllib.request.urlopen", _no_network)
    with pytest.raises(FileNotFoundError, match="download failed") as info:
        nc.data.load(name, root=tmp_path)
    message = str(info.value)
    assert "\n" not in message
    assert message.endswith(str((tmp_path / folder).resolve()))


def _first_per_class_loop(labels: list[int], counts: list[int]) -> list[int]:
    """The authors' scan, written as a plain loop (oracle)."""
    taken = [0] * len(counts)
    keep = []
    for i, label in enumerate(labels):
        if taken[label] < counts[label]:
            taken[label] += 1
            keep.append(i)
    return keep


@pytest.mark.parametrize("seed", range(5))
def test_first_per_class_matches_the_authors_scan(seed):
    rng = random.Random(seed)
    labels = [rng.randrange(4) for _ in range(200)]
    counts = [rng.randrange(0, 20) for _ in range(4)]
    got = nc.data.first_per_class(torch.tensor(labels), counts)
    assert got.tolist() == _first_per_class_loop(labels, counts)


def test_authors_counts_and_subsets():
    assert sum(nc.data.AUTHORS_COUNTS["cifar10"]) == 3000  # paper-a.md Section 5.1
    assert sum(nc.data.AUTHORS_COUNTS["emnist_letters"]) == 5500
    split = nc.data.Split(torch.zeros(12, 2), torch.tensor([2, 0, 1, 0, 2, 1, 0, 0, 1, 2, 2, 1]), 3)
    sub = nc.data.subset_by_counts(split, [3, 1, 2])
    assert sub.counts() == [3, 1, 2] and sub.y.tolist() == [2, 0, 1, 0, 2, 0]


def test_counts_by_ratio_profiles():
    tail = nc.data.counts_by_ratio(1000, 10, 100.0)
    assert tail[0] == 1000 and tail[-1] == 10  # max/min ratio exactly 100
    assert all(a > b for a, b in zip(tail, tail[1:], strict=False))
    # Geometric: each ratio is 100^(1/9) up to flooring.
    assert tail[1] == int(1000 * 100 ** (-1 / 9))
    assert nc.data.counts_by_ratio(300, 5, 3.0, "step", minority=0.4) == (300, 300, 300, 100, 100)


def test_digits_offline():
    bundle = nc.data.load("digits")
    assert len(bundle.train) + len(bundle.test) == 1797  # scikit-learn's digits
    assert bundle.train.input_shape == (64,) and bundle.num_classes == 10
    assert abs(bundle.train.x.mean().item()) < 1e-5
    assert bundle.train.x.std().item() == pytest.approx(1, abs=1e-4)
    again = nc.data.load_digits()
    assert torch.equal(bundle.test.y, again.test.y)


def test_mnist1d_generates_locally_and_leaves_global_rngs_alone():
    np.random.seed(123)
    random.seed(123)
    before = (np.random.random(), random.random())
    np.random.seed(123)
    random.seed(123)
    bundle = nc.data.load("mnist1d", num_samples=400)
    assert (np.random.random(), random.random()) == before
    assert bundle.train.x.shape == (320, 40) and bundle.test.x.shape == (80, 40)
    assert set(bundle.train.y.tolist()) == set(range(10))
    assert torch.equal(nc.data.load_mnist1d(400).train.x, bundle.train.x)  # deterministic


@pytest.mark.parametrize(("call", "message"), [
    (lambda: nc.data.load("imagenet"), r"`name` must be one of 'cifar10'"),
    (lambda: nc.data.first_per_class(torch.tensor([0, 1, 1]), [1, 3]),
     r"`counts\[1\]` asks for 3 samples of class 1, but only 2 exist"),
    (lambda: nc.data.first_per_class(torch.tensor([0, 2]), [1, 1]), r"Expected `labels` in \[0, 2\), got 2"),
    (lambda: nc.data.first_per_class(torch.tensor([0, 1]), [1, -1]),
     r"`counts\[1\]` must be an integer >= 0"),
    (lambda: nc.data.subset_by_counts(nc.data.Split(torch.zeros(2, 1), torch.tensor([0, 1]), 2), [1]),
     r"`counts` must have 2 entries, got 1"),
    (lambda: nc.data.counts_by_ratio(100, 4, 0.5), r"`ratio` must be a number >= 1.0"),
    (lambda: nc.data.counts_by_ratio(100, 4, 2.0, "linear"), r"`profile` must be one of 'long_tail', 'step'"),
    (lambda: nc.data.counts_by_ratio(10, 4, 20.0), r"`ratio` 20.0 leaves a class empty"),
    (lambda: nc.data.counts_by_ratio(0, 4, 2.0), r"`n_max` must be an integer >= 1"),
    (lambda: nc.data.counts_by_ratio(10, 1, 2.0), r"`num_classes` must be an integer >= 2"),
    (lambda: nc.data.counts_by_ratio(10, 4, 2.0, "step", 1.5), r"`minority` must be a number in"),
    (lambda: nc.data.load_digits(test_fraction=0.0), r"`test_fraction` must be a number in \(0.0, 0.9\]"),
    (lambda: nc.data.load_digits(seed=-1), r"`seed` must be an integer >= 0"),
    (lambda: nc.data.load_mnist1d(num_samples=10), r"`num_samples` must be an integer >= 100"),
    (lambda: nc.data.load_mnist1d(seed=-2), r"`seed` must be an integer >= 0"),
    (lambda: nc.data.load_torchvision("digits"), r"`name` must be one of 'cifar10', 'mnist'"),
])  # fmt: skip
def test_bad_parameters(call, message):
    with pytest.raises(ValueError, match=message):
        call()


def test_corrupted_mnist_files_are_named_with_what_to_do(tmp_path):
    raw = tmp_path / "MNIST" / "raw"
    raw.mkdir(parents=True)
    for stem in ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte",
                 "t10k-labels-idx1-ubyte"):
        (raw / stem).write_bytes(b"\x00\x00\x08\x03" + b"\x00" * 12)  # a header, then nothing
    (raw / "train-images-idx3-ubyte").write_bytes(b"garbage!")
    with pytest.raises(ValueError, match=r"mnist: the file .*MNIST/raw/t10k-images-idx3-ubyte is damaged "
                                         r".*delete it and run again"):
        nc.data.load_torchvision("mnist", root=tmp_path, download=False)
