"""``bnsearch predict`` and the notebook API: a model folder loaded, images checked, labels out.

Load a folder with ``load_model(DIR)``; predict with ``predict(DIR, x)`` on raw images shaped
(N, H, W), (N, C, H, W) or (N, H, W, C).
"""

from __future__ import annotations

import csv
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from bnsearch.errors import ModelError
from bnsearch.model_folder._format import WEIGHTS_FILE, read_model_config

if TYPE_CHECKING:
    import torch
    from torch import nn


@dataclass(frozen=True, slots=True)
class LoadedModel:
    """A saved model in eval mode, with the preprocessing it was trained with."""

    model: nn.Module
    config: dict[str, Any]  # config.json
    device: torch.device

    @property
    def in_shape(self) -> tuple[int, int, int]:
        c, h, w = self.config["in_shape"]
        return int(c), int(h), int(w)

    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        """Class probabilities (N, num_classes) for raw images (see ``as_model_input``)."""
        import torch

        from bnsearch.core.train import eval_batch_size

        images = as_model_input(x, self.in_shape)
        mean = np.asarray(self.config["mean"], dtype=np.float32)[None, :, None, None]
        std = np.asarray(self.config["std"], dtype=np.float32)[None, :, None, None]
        norm = ((images - mean) / std).astype(np.float32)
        step = eval_batch_size(self.device)
        out = []
        with torch.inference_mode():
            for i in range(0, len(norm), step):
                xb = torch.from_numpy(np.ascontiguousarray(norm[i : i + step])).to(self.device)
                out.append(torch.softmax(self.model(xb), dim=1).cpu().numpy())
        return np.concatenate(out) if out else np.zeros((0, len(self.config["classes"])), dtype=np.float32)

    def predict(self, x: np.ndarray) -> np.ndarray:
        """Predicted class labels (N,) for raw images, in the dataset's original labels."""
        classes = np.asarray(self.config["classes"])
        return classes[self.predict_proba(x).argmax(axis=1)]


def load_model(model_dir: str | Path, *, device: str = "cpu") -> LoadedModel:
    """Rebuild the network of a model folder and load its weights.

    The folder is one ``bnsearch best --retrain`` wrote, or a trial's model saved in the search.

    Example::

        m = bnsearch.model_folder.load_model("models/mnist5k-tpe")
        labels = m.predict(images)  # raw pixels, normalised as in training

    Raises:
        ModelError: the folder is missing, incomplete, or not a bnsearch model.
    """
    import torch

    from bnsearch.config import resolve_device
    from bnsearch.core.model import ModelConfig, make_net
    from bnsearch.core.space import TrialParams

    folder = Path(model_dir)
    config, feature_order = read_model_config(folder)
    dev = torch.device(resolve_device(device))
    try:
        model = make_net(
            TrialParams(**config["params"]),
            in_shape=tuple(config["in_shape"]),
            num_classes=int(config["num_classes"]),
            cfg=ModelConfig(
                model=config.get("model", "bncnn"), widths=tuple(config["widths"]), feature_order=feature_order
            ),
        )
        state = torch.load(folder / WEIGHTS_FILE, map_location="cpu", weights_only=True)
        model.load_state_dict(state)
    except Exception as e:  # a bad config or weights file fails in many ways; all mean "cannot load"
        msg = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise ModelError(f"cannot load the model in {folder}: {msg}") from None
    model.to(dev).eval()
    return LoadedModel(model=model, config=config, device=dev)


def as_model_input(x: np.ndarray, in_shape: Sequence[int]) -> np.ndarray:
    """Raw images as float32 (N, C, H, W): accepts (N, H, W), (N, C, H, W) and (N, H, W, C).

    Raises:
        ModelError: the images are not that shape, or not the size the model was trained on.
    """
    x = np.asarray(x)
    want = "×".join(map(str, in_shape))
    if x.ndim == 3:
        x = x[:, None]
    elif x.ndim == 4 and tuple(x.shape[1:]) != tuple(in_shape) and x.shape[3] in (1, 3):
        x = x.transpose(0, 3, 1, 2)
    if x.ndim != 4:
        raise ModelError(f"images must be (N, H, W) or (N, C, H, W), got shape {x.shape}; the model expects N×{want}")
    if tuple(x.shape[1:]) != tuple(in_shape):
        got = "×".join(map(str, x.shape[1:]))
        raise ModelError(f"images are {got} but the model expects {want} (C×H×W)")
    if not np.issubdtype(x.dtype, np.number) or np.issubdtype(x.dtype, np.complexfloating):
        raise ModelError(f"images must hold numbers, got dtype {x.dtype}")
    x = x.astype(np.float32)
    if not np.isfinite(x).all():
        raise ModelError("images contain NaN or infinite pixel values")
    return x


def read_images(path: str | Path) -> tuple[np.ndarray, np.ndarray | None]:
    """``x`` (and ``y`` if present) from an ``.npz`` file of images to predict.

    Raises:
        ModelError: the file is missing, unreadable, or has no ``x`` array.
    """
    p = Path(path)
    try:
        with np.load(p, allow_pickle=False) as f:
            if "x" not in f:
                raise ModelError(f"{p}: needs an array 'x' of images, found {sorted(f.files)}")
            x = f["x"]
            y = f["y"] if "y" in f else None
    except (OSError, ValueError) as e:
        raise ModelError(f"{p}: not a readable .npz file ({e})") from None
    if y is not None and (y.ndim != 1 or len(y) != len(x)):
        y = None  # labels that do not line up are not used for the accuracy line
    return x, y


def predict(model_dir: str | Path | LoadedModel, x: np.ndarray, *, device: str = "cpu") -> np.ndarray:
    """Predicted labels for raw images ``x`` with the saved model's preprocessing.

    Args:
        model_dir: A folder written by ``bnsearch best --retrain`` (or a ``LoadedModel``).
        x: Images shaped (N, H, W), (N, C, H, W) or (N, H, W, C), raw pixel scale.
        device: Where to run the network.

    Returns:
        (N,) labels, in the dataset's original label values.
    """
    loaded = model_dir if isinstance(model_dir, LoadedModel) else load_model(model_dir, device=device)
    return loaded.predict(x)


def write_predictions_csv(path: str | Path, labels: np.ndarray, proba: np.ndarray) -> Path:
    """CSV with ``index,label,confidence`` (confidence: the predicted class's probability)."""
    out = Path(path)
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        with out.open("w", newline="", encoding="utf-8") as f:
            w = csv.writer(f)
            w.writerow(["index", "label", "confidence"])
            for i, (lab, p) in enumerate(zip(labels.tolist(), proba.max(axis=1).tolist(), strict=True)):
                w.writerow([i, lab, f"{p:.6f}" if math.isfinite(p) else "nan"])
    except OSError as e:
        raise ModelError(f"cannot write predictions to {out}: {e.strerror or e}") from None
    return out
