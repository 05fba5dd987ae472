"""The model folder's format, in one place: file names, ``config.json``'s fields, the one writer
of the ``model.pt`` + ``config.json`` pair and the reader that checks it.

A model folder::

    model.pt      the state_dict (torch.load(..., weights_only=True) reads it)
    config.json   what rebuilds the network and its preprocessing: params, in_shape,
                  num_classes, widths, normalisation mean/std, class labels
    metrics.json  (a retrained model only) search val_acc, test_acc, epochs, device, seed, versions

A trial's model saved in the search is the same pair, uploaded to the artifact store.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from bnsearch.errors import ModelError

if TYPE_CHECKING:
    from torch import nn

MODEL_FORMAT = "bnsearch-model/2"  # config.json "format"; bump when the folder layout changes
WEIGHTS_FILE = "model.pt"  # a model folder's state_dict
CONFIG_FILE = "config.json"  # a model folder's network and preprocessing description
METRICS_FILE = "metrics.json"  # a retrained model's test accuracy and how it was trained
# Format 1 flattened the feature map channel-first; format 2 channel-last (model.FlattenHWC).
_FEATURE_ORDER = {"bnsearch-model/1": "chw", MODEL_FORMAT: "hwc"}


def model_config(
    params: dict[str, Any],
    *,
    in_shape: tuple[int, int, int],
    num_classes: int,
    widths: tuple[int, int],
    mean: tuple[float, ...],
    std: tuple[float, ...],
    classes: list[Any],
    dataset: str,
    split_seed: int,
    model: str = "bncnn",
) -> dict[str, Any]:
    """The ``config.json`` of a model folder: what rebuilds the network and its preprocessing."""
    return {
        "format": MODEL_FORMAT,
        "model": model,  # --model: a folder without it (saved before there was a choice) is bncnn
        "params": params,
        "in_shape": list(in_shape),
        "num_classes": num_classes,
        "widths": list(widths),
        "mean": list(mean),
        "std": list(std),
        "classes": classes,
        "dataset": dataset,
        "split_seed": split_seed,
    }


def class_labels(dataset: str, num_classes: int) -> list[Any]:
    """The original label of each class index (load_dataset maps labels to 0..K-1)."""
    if dataset in ("digits", "mnist5k"):
        return list(range(num_classes))
    from bnsearch.core.formats import read_path

    _, y = read_path(Path(dataset))
    return [v.item() for v in np.unique(y)]


def write_model_files(
    folder: Path, model: nn.Module, config: dict[str, Any], metrics: dict[str, Any] | None = None
) -> None:
    """Write ``model.pt`` and ``config.json`` (and ``metrics.json`` when given) into ``folder``.

    Raises:
        ModelError: the folder cannot be written.
    """
    import torch

    files = {CONFIG_FILE: config} | ({METRICS_FILE: metrics} if metrics is not None else {})
    try:
        folder.mkdir(parents=True, exist_ok=True)
        torch.save({k: v.detach().cpu() for k, v in model.state_dict().items()}, folder / WEIGHTS_FILE)
        for name, content in files.items():
            (folder / name).write_text(json.dumps(content, indent=2) + "\n", encoding="utf-8")
    except OSError as e:
        raise ModelError(f"cannot write the model folder {folder}: {e.strerror or e}") from None


def read_model_config(folder: Path) -> tuple[dict[str, Any], str]:
    """``config.json`` of the model folder ``folder`` and the feature order its format implies.

    Raises:
        ModelError: the folder is missing, incomplete, or not a bnsearch model.
    """
    for name in (CONFIG_FILE, WEIGHTS_FILE):
        if not (folder / name).is_file():
            raise ModelError(
                f"{folder} is not a bnsearch model folder (no {name}); "
                "make one with: bnsearch best --study NAME --retrain --out DIR"
            )
    try:
        config = json.loads((folder / CONFIG_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise ModelError(f"{folder / CONFIG_FILE}: not readable JSON ({e})") from None
    found = config.get("format") if isinstance(config, dict) else None
    if found not in _FEATURE_ORDER:
        raise ModelError(f"{folder / CONFIG_FILE}: format is {found!r}, expected {MODEL_FORMAT!r}")
    return config, _FEATURE_ORDER[found]
