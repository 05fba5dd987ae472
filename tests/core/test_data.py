from __future__ import annotations

import gzip
import struct
from pathlib import Path

import numpy as np
import pytest

from bnsearch.core.data import Dataset, load_dataset, split_dataset, to_device
from bnsearch.errors import DataError


def test_digits_and_mnist5k_are_embedded() -> None:
    d = load_dataset("digits")
    assert d.x.shape == (1797, 1, 8, 8) and d.num_classes == 10
    m = load_dataset("mnist5k")
    assert m.x.shape == (5000, 1, 28, 28) and m.num_classes == 10 and m.x.dtype == np.float32


def test_splits_are_stratified_disjoint_normalised_and_seeded() -> None:
    ds = load_dataset("digits")
    s = split_dataset(ds, seed=3)
    n = len(s.train_y) + len(s.val_y) + len(s.test_y)
    assert n == 1797
    assert abs(len(s.val_y) / n - 0.15) < 0.01 and abs(len(s.test_y) / n - 0.15) < 0.01
    for part in (s.train_y, s.val_y, s.test_y):
        share = np.bincount(part, minlength=10) / len(part)
        assert np.all(np.abs(share - np.bincount(ds.y) / len(ds.y)) < 0.02)
    assert abs(float(s.train_x.mean())) < 1e-4 and abs(float(s.train_x.std()) - 1) < 1e-3
    # Disjoint: no training image appears in validation or test.
    train_rows = {r.tobytes() for r in s.train_x}
    assert not any(r.tobytes() in train_rows for r in s.test_x[:50])
    again, other = split_dataset(ds, seed=3), split_dataset(ds, seed=4)
    assert np.array_equal(again.val_y, s.val_y) and np.array_equal(again.val_x, s.val_x)
    assert not np.array_equal(other.val_x, s.val_x)


def test_to_device_keeps_shapes() -> None:
    s = split_dataset(load_dataset("digits"), seed=0)
    d = to_device(s, "cpu")
    assert d.in_shape == (1, 8, 8) and d.train_x.is_contiguous()
    assert d.train_y.dtype.is_floating_point is False and len(d.val_y) == len(s.val_y)


def _write_idx(path: Path, arr: np.ndarray, gz: bool) -> None:
    header = bytes([0, 0, 0x08, arr.ndim]) + struct.pack(f">{arr.ndim}I", *arr.shape)
    raw = header + arr.astype(np.uint8).tobytes()
    path.write_bytes(gzip.compress(raw) if gz else raw)


@pytest.mark.parametrize("gz", [False, True], ids=["plain", "gzip"])
def test_mnist_idx_folder(tmp_path: Path, gz: bool) -> None:
    rng = np.random.default_rng(0)
    x = rng.integers(0, 255, size=(60, 28, 28))
    y = np.repeat(np.arange(10), 6)
    suffix = ".gz" if gz else ""
    _write_idx(tmp_path / f"train-images-idx3-ubyte{suffix}", x, gz)
    _write_idx(tmp_path / f"train-labels-idx1-ubyte{suffix}", y, gz)
    d = load_dataset(str(tmp_path))
    assert d.x.shape == (60, 1, 28, 28) and d.num_classes == 10
    assert np.array_equal(d.x[:, 0], x.astype(np.float32))


def test_cifar_folder(tmp_path: Path) -> None:
    import pickle

    rng = np.random.default_rng(0)
    for name in ("data_batch_1", "test_batch"):
        with (tmp_path / name).open("wb") as f:
            pickle.dump(
                {b"data": rng.integers(0, 255, (20, 3072), dtype=np.uint8), b"labels": list(np.arange(20) % 10)}, f
            )
    d = load_dataset(str(tmp_path))
    assert d.x.shape == (40, 3, 32, 32) and d.num_classes == 10


def test_npz_channels_last_and_label_remap(tmp_path: Path) -> None:
    f = tmp_path / "d.npz"
    np.savez(f, x=np.zeros((12, 10, 10, 3)), y=np.array([5, 7] * 6))
    d = load_dataset(str(f))
    assert d.x.shape == (12, 3, 10, 10) and set(d.y.tolist()) == {0, 1}


BAD_FILES = [
    (
        "mismatched-lengths",
        lambda p: np.savez(p / "d.npz", x=np.zeros((10, 8, 8)), y=np.zeros(9, int)),
        "d.npz",
        "x has 10 examples but y has 9",
    ),
    (
        "missing-arrays",
        lambda p: np.savez(p / "d.npz", images=np.zeros((10, 8, 8))),
        "d.npz",
        "needs arrays 'x' and 'y'",
    ),
    ("not-npz", lambda p: (p / "d.npz").write_text("hello"), "d.npz", "not a readable .npz"),
    ("unknown-format", lambda p: (p / "d.csv").write_text("1,2"), "d.csv", "unknown dataset format"),
    ("empty-folder", lambda p: None, ".", "no dataset found"),
    (
        "bad-idx",
        lambda p: (
            (p / "train-images-idx3-ubyte").write_bytes(b"junkjunk"),
            (p / "train-labels-idx1-ubyte").write_bytes(b"junk"),
        ),
        ".",
        "not an IDX file",
    ),
    (
        "float-labels",
        lambda p: np.savez(p / "d.npz", x=np.zeros((4, 8, 8)), y=np.array([0.5, 1, 0, 1])),
        "d.npz",
        "integer class labels",
    ),
]


@pytest.mark.parametrize(("make", "name", "message"), [b[1:] for b in BAD_FILES], ids=[b[0] for b in BAD_FILES])
def test_bad_dataset_files(tmp_path: Path, make, name: str, message: str) -> None:  # type: ignore[no-untyped-def]
    make(tmp_path)
    with pytest.raises(DataError, match=message):
        load_dataset(str(tmp_path / name))


def test_unknown_dataset_name() -> None:
    with pytest.raises(DataError, match="unknown dataset 'mnist'; use one of: digits, mnist5k"):
        load_dataset("mnist")


def test_too_few_examples_per_class() -> None:
    ds = Dataset(name="tiny", x=np.zeros((4, 1, 2, 2), np.float32), y=np.array([0, 0, 1, 1]), num_classes=2)
    with pytest.raises(DataError, match="cannot make stratified splits"):
        split_dataset(ds, seed=0)
