"""Readers for dataset files in their standard formats: IDX (MNIST, Fashion-MNIST), CIFAR-10
python pickles, and ``.npz`` with ``x`` and ``y``. Each returns ``(x, y)`` as numpy arrays with
``x`` shaped ``(N, C, H, W)``, or raises ``DataError``."""

from __future__ import annotations

import gzip
import pickle
import struct
from pathlib import Path
from typing import Any

import numpy as np

from bnsearch.errors import DataError

_IDX_DTYPES: dict[int, Any] = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def _open_maybe_gzip(path: Path) -> bytes:
    raw = path.read_bytes()
    if raw[:2] == b"\x1f\x8b":
        try:
            return gzip.decompress(raw)
        except (OSError, EOFError) as e:
            raise DataError(f"{path}: broken gzip file ({e})") from None
    return raw


def read_idx(path: Path) -> np.ndarray:
    """Read one IDX file (optionally gzipped), as MNIST ships them."""
    data = _open_maybe_gzip(path)
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] not in _IDX_DTYPES:
        raise DataError(f"{path}: not an IDX file (bad magic number)")
    ndim = data[3]
    header = 4 + 4 * ndim
    if len(data) < header:
        raise DataError(f"{path}: truncated IDX header")
    shape = struct.unpack(f">{ndim}I", data[4:header])
    dtype = np.dtype(_IDX_DTYPES[data[2]])
    expected = int(np.prod(shape)) * dtype.itemsize
    if len(data) - header != expected:
        raise DataError(
            f"{path}: IDX header says {expected} bytes of data for shape {shape}, file has {len(data) - header}"
        )
    return np.frombuffer(data, dtype=dtype, offset=header).reshape(shape)


def _find(folder: Path, stem: str) -> Path | None:
    for name in (stem, stem + ".gz"):
        if (folder / name).is_file():
            return folder / name
    # Some mirrors write "train-images.idx3-ubyte".
    for name in (stem.replace("-idx", ".idx"), stem.replace("-idx", ".idx") + ".gz"):
        if (folder / name).is_file():
            return folder / name
    return None


def read_mnist_folder(folder: Path) -> tuple[np.ndarray, np.ndarray] | None:
    """MNIST / Fashion-MNIST: train and (if present) t10k IDX files, pooled. None if absent."""
    xs, ys = [], []
    for prefix in ("train", "t10k"):
        images = _find(folder, f"{prefix}-images-idx3-ubyte")
        labels = _find(folder, f"{prefix}-labels-idx1-ubyte")
        if images is None and labels is None:
            continue
        if images is None or labels is None:
            raise DataError(f"{folder}: found {prefix} images or labels but not both")
        x, y = read_idx(images), read_idx(labels)
        if x.ndim != 3 or y.ndim != 1:
            raise DataError(f"{images}: expected (N, H, W) images and (N,) labels")
        if len(x) != len(y):
            raise DataError(f"{folder}: {len(x)} {prefix} images but {len(y)} labels")
        xs.append(x[:, None, :, :])
        ys.append(y)
    if not xs:
        return None
    return np.concatenate(xs), np.concatenate(ys)


def read_cifar10_folder(folder: Path) -> tuple[np.ndarray, np.ndarray] | None:
    """CIFAR-10 python version: data_batch_1..5 and test_batch, pooled. None if absent."""
    batches = sorted(folder.glob("data_batch_*")) + sorted(folder.glob("test_batch"))
    if not batches:
        return None
    xs, ys = [], []
    for b in batches:
        try:
            with b.open("rb") as f:
                d = pickle.load(f, encoding="bytes")
            x = np.asarray(d[b"data"], dtype=np.uint8).reshape(-1, 3, 32, 32)
            y = np.asarray(d[b"labels"], dtype=np.int64)
        except Exception as e:  # a CIFAR batch that fails to unpickle is a bad file
            raise DataError(f"{b}: not a CIFAR-10 python batch ({type(e).__name__}: {e})") from None
        if len(x) != len(y):
            raise DataError(f"{b}: {len(x)} images but {len(y)} labels")
        xs.append(x)
        ys.append(y)
    return np.concatenate(xs), np.concatenate(ys)


def read_npz(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """An ``.npz`` with ``x`` (N, H, W), (N, C, H, W) or (N, H, W, C) for C in 1, 3, and ``y`` (N,)."""
    try:
        with np.load(path, allow_pickle=False) as f:
            if "x" not in f or "y" not in f:
                raise DataError(f"{path}: an .npz dataset needs arrays 'x' and 'y', found {sorted(f.files)}")
            x, y = f["x"], f["y"]
    except (OSError, ValueError) as e:
        raise DataError(f"{path}: not a readable .npz file ({e})") from None
    if y.ndim != 1:
        raise DataError(f"{path}: y must be one label per example, got shape {y.shape}")
    if len(x) != len(y):
        raise DataError(f"{path}: x has {len(x)} examples but y has {len(y)}")
    if x.ndim == 3:
        x = x[:, None]
    elif x.ndim == 4 and x.shape[1] not in (1, 3) and x.shape[3] in (1, 3):
        x = x.transpose(0, 3, 1, 2)
    elif x.ndim != 4:
        raise DataError(f"{path}: x must be (N, H, W) or (N, C, H, W) images, got shape {x.shape}")
    if not np.issubdtype(y.dtype, np.integer):
        raise DataError(f"{path}: y must hold integer class labels, got dtype {y.dtype}")
    return x, y


def read_path(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """Read a dataset file or folder in any supported format."""
    if path.is_dir():
        for reader in (read_mnist_folder, read_cifar10_folder):
            found = reader(path)
            if found is not None:
                return found
        raise DataError(
            f"{path}: no dataset found; expected MNIST IDX files (train-images-idx3-ubyte[.gz], ...) "
            "or CIFAR-10 batches (data_batch_1, ..., test_batch)"
        )
    if path.suffix == ".npz":
        return read_npz(path)
    if "idx3" in path.name:
        raise DataError(f"{path}: give the folder holding the IDX image and label files, not one file")
    raise DataError(f"{path}: unknown dataset format; use an .npz file, an MNIST IDX folder or a CIFAR-10 folder")
