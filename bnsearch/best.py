"""``bnsearch best`` and ``bnsearch predict``: the best trial, retrained once, saved, and used.

``retrain_best`` trains the best trial's configuration (its ``resolved_params``) on the
training and validation splits of the search (the same split: the study's dataset and root
seed), evaluates once on the held-out test split, and writes a model folder::

    model.pt      the state_dict (torch.load(..., weights_only=True) reads it)
    config.json   what rebuilds the network and its preprocessing: params, in_shape,
                  num_classes, widths, normalisation mean/std, class labels
    metrics.json  search val_acc, test_acc, epochs, device, seed, library versions

Load it with ``bnsearch.best.load_model(DIR)``; predict with ``bnsearch.best.predict(DIR, x)``
on raw images shaped (N, H, W), (N, C, H, W) or (N, H, W, C).
"""

from __future__ import annotations

import csv
import json
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from bnsearch import keys
from bnsearch.errors import ModelError, StudyError
from bnsearch.saved_models import CONFIG_FILE, MODEL_FORMAT, WEIGHTS_FILE

if TYPE_CHECKING:
    import torch

    from bnsearch.core.model import BNCNN

# Format 1 flattened the feature map channel-first; format 2 channel-last (model.FlattenHWC).
_FEATURE_ORDER = {"bnsearch-model/1": "chw", MODEL_FORMAT: "hwc"}
METRICS_FILE = "metrics.json"


@dataclass(frozen=True, slots=True)
class BestTrial:
    """The best complete trial of a study, with what it needs to be retrained."""

    study_name: str
    number: int
    val_acc: float  # the search's objective (validation accuracy, 0..1)
    params: dict[str, Any]  # every setting it trained with (resolved_params)
    wall_time_s: float | None  # training seconds in the search
    seed: int | None  # the trial's init and batch-order seed
    identity: dict[str, Any]  # the study's stored bnsearch_config (dataset, seed, widths, ...)
    n_complete: int  # complete trials in the study
    saved_model: dict[str, str] | None = None  # artifact ids of its saved model.pt / config.json


def find_best(storage_url: str, study_name: str) -> BestTrial:
    """The best complete trial of ``study_name``; reads the storage, writes nothing.

    Raises:
        StudyError: no such storage or study, not a bnsearch study, or no complete trial.
    """
    from optuna.trial import TrialState

    from bnsearch.storages import open_storage
    from bnsearch.study import load_existing

    storage = open_storage(storage_url, create=False, heartbeat=False)
    study = load_existing(storage, study_name)
    identity = study.user_attrs.get(keys.STUDY_CONFIG)
    if not isinstance(identity, dict) or "dataset" not in identity or "seed" not in identity:
        raise StudyError(f"study '{study_name}' was not created by bnsearch; it has no stored dataset and seed")
    trials = study.get_trials(deepcopy=False)
    complete = [t for t in trials if t.state == TrialState.COMPLETE]
    if not complete:
        raise StudyError(
            f"study '{study_name}' has no complete trial yet ({len(trials)} trials, none "
            f"complete); run more with: bnsearch run --study-name {study_name}"
        )
    best = study.best_trial
    params = best.user_attrs.get(keys.RESOLVED_PARAMS)
    if params is None and "space" not in identity:
        raise StudyError(f"trial #{best.number} of '{study_name}' has no stored settings to retrain")
    if params is None:
        from bnsearch.core.space import SearchSpace

        params = SearchSpace.from_dict(identity["space"]).fixed_params(**best.params).to_dict()
    from bnsearch.saved_models import saved_model_ids

    return BestTrial(
        study_name=study_name,
        number=best.number,
        val_acc=float(best.value),  # type: ignore[arg-type]
        params=dict(params),
        wall_time_s=best.user_attrs.get(keys.WALL_TIME_S),
        seed=best.user_attrs.get(keys.TRIAL_SEED),
        identity=identity,
        n_complete=len(complete),
        saved_model=saved_model_ids(best),
    )


@dataclass(frozen=True, slots=True)
class RetrainResult:
    out_dir: Path
    test_acc: float  # accuracy (0..1) on the held-out test split, measured once
    metrics: dict[str, Any]  # what metrics.json holds


def retrain_best(best: BestTrial, out_dir: str | Path, *, device: str = "auto") -> RetrainResult:
    """Train ``best``'s configuration on train+validation, test once, write the model folder.

    The split is the search's (the study's dataset, root seed and fractions); pixels are
    normalised with the training split's mean/std as in the search. The seed is the trial's.

    Raises:
        BnsearchError: the dataset cannot be loaded, the stored split cannot be reproduced,
            training diverges, or the folder cannot be written.
    """
    from bnsearch.config import resolve_device, resolve_precision
    from bnsearch.core.model import ModelConfig, build_model
    from bnsearch.core.seeding import derive_seed
    from bnsearch.core.space import TrialParams
    from bnsearch.core.train import TrainConfig, evaluate, train
    from bnsearch.saved_models import model_config
    from bnsearch.study import library_versions

    ident = best.identity
    dev = resolve_device(device)
    out = Path(out_dir)
    split_seed, splits = _search_splits(best)
    params = TrialParams(**best.params)
    widths = tuple(ident.get("widths", (32, 64)))
    seed = best.seed if best.seed is not None else derive_seed(int(ident["seed"]), "trial", best.number)
    data = _train_val_test(splits, dev)
    # Retrain in the search's precision; bf16 where this device cannot run it natively would
    # only be slower, so auto falls back to fp32 there (metrics.json records which ran).
    precision = resolve_precision("auto", [dev], study_precision=ident.get("precision", "fp32"))
    model = build_model(
        params,
        in_shape=splits.in_shape,
        num_classes=splits.num_classes,
        seed=seed,
        cfg=ModelConfig(widths=widths),
        device=dev,
    )
    t0 = time.perf_counter()
    result = train(
        model,
        data,
        params,
        seed=seed,
        cfg=TrainConfig(decay_bn_params=bool(ident.get("decay_bn_params")), precision=precision),
    )
    if result.diverged:
        raise ModelError(f"retraining trial #{best.number} of '{best.study_name}' failed: {result.reason}")
    test_acc = evaluate(model, data.test_x, data.test_y)  # fp32, as ``predict`` runs it
    config = model_config(
        params.to_dict(),
        in_shape=splits.in_shape,
        num_classes=splits.num_classes,
        widths=widths,
        mean=splits.mean,
        std=splits.std,
        classes=class_labels(str(ident["dataset"]), splits.num_classes),
        dataset=ident["dataset"],
        split_seed=split_seed,
    )
    metrics = {
        "study": best.study_name,
        "trial": best.number,
        "val_acc": best.val_acc,
        "test_acc": test_acc,
        "test_examples": len(splits.test_y),
        "train_examples": len(data.train_y),
        "epochs": params.epochs,
        "device": str(dev),
        "precision": precision,
        "seed": seed,
        "retrain_time_s": round(time.perf_counter() - t0, 3),
        "versions": library_versions(),
    }
    _write_folder(out, model, config, metrics)
    return RetrainResult(out_dir=out, test_acc=test_acc, metrics=metrics)


def _search_splits(best: BestTrial) -> tuple[int, Any]:
    """The split seed and the splits of ``best``'s search (its dataset and root seed).

    Raises:
        StudyError: the study used split fractions this bnsearch does not.
    """
    from bnsearch.core.data import TEST_FRACTION, VAL_FRACTION, load_dataset, split_dataset
    from bnsearch.core.seeding import derive_seed

    ident = best.identity
    for key, now in (("val_fraction", VAL_FRACTION), ("test_fraction", TEST_FRACTION)):
        if ident.get(key, now) != now:
            raise StudyError(
                f"study '{best.study_name}' used {key} {ident.get(key)}, this bnsearch uses {now}; "
                "its test split cannot be reproduced"
            )
    split_seed = derive_seed(int(ident["seed"]), "split")
    return split_seed, split_dataset(load_dataset(str(ident["dataset"])), seed=split_seed)


@dataclass(frozen=True, slots=True)
class SavedModelResult:
    model_dir: Path  # where the saved model.pt and config.json were downloaded
    test_acc: float  # accuracy (0..1) on the held-out test split, measured once now


def evaluate_saved_model(
    best: BestTrial, artifacts: str | Path, out_dir: str | Path, *, device: str = "cpu"
) -> SavedModelResult:
    """Download the model ``best``'s trial saved in the search and evaluate it once on the
    test split (the model trained on the training split only; nothing is retrained).

    Raises:
        ModelError: the trial saved no model, or it is missing from the artifact store.
    """
    import torch

    from bnsearch.core.train import evaluate
    from bnsearch.saved_models import download_model

    if best.saved_model is None:
        raise ModelError(f"trial #{best.number} of '{best.study_name}' has no saved model")
    folder = download_model(best.saved_model, Path(artifacts), Path(out_dir), number=best.number)
    loaded = load_model(folder, device=device)
    _, splits = _search_splits(best)
    test_x = torch.from_numpy(np.ascontiguousarray(splits.test_x)).to(loaded.device)
    test_y = torch.from_numpy(np.ascontiguousarray(splits.test_y)).to(loaded.device)
    return SavedModelResult(model_dir=folder, test_acc=evaluate(loaded.model, test_x, test_y))


STUDY_MODEL_PREFIX = "study:"  # predict --model study:NAME[:TRIAL]: a model saved in the search


def saved_model_folder(ref: str, storage_url: str, artifacts: str | None, out_dir: str | Path) -> Path:
    """Download the saved model ``ref`` names (``study:NAME``: the best trial's; ``study:NAME:N``:
    trial N's) into ``out_dir`` and return it.

    Raises:
        StudyError: no such study or trial. ModelError: the trial saved no model, or the
            artifact store lacks it.
    """
    from bnsearch.saved_models import artifacts_dir, download_model, saved_model_ids
    from bnsearch.storages import open_storage
    from bnsearch.study import load_existing

    name = ref[len(STUDY_MODEL_PREFIX) :]
    head, _, tail = name.rpartition(":")
    number = int(tail) if head and tail.isdigit() else None
    name = head if number is not None else name
    if number is None:
        found = find_best(storage_url, name)
        ids, number = found.saved_model, found.number
    else:
        study = load_existing(open_storage(storage_url, create=False, heartbeat=False), name)
        trial = next((t for t in study.get_trials(deepcopy=False) if t.number == number), None)
        if trial is None:
            raise StudyError(f"study '{name}' has no trial #{number} ({len(study.trials)} trials)")
        ids = saved_model_ids(trial)
    if ids is None:
        raise ModelError(
            f"trial #{number} of '{name}' has no saved model; runs keep models with --save-models best|all, "
            f"or make one with: bnsearch best --study {name} --retrain"
        )
    return download_model(ids, artifacts_dir(storage_url, artifacts), Path(out_dir), number=number)


def _train_val_test(splits: Any, device: str) -> Any:
    """DeviceData whose training part is train+validation, with no validation to watch."""
    import torch

    from bnsearch.core.data import DeviceData

    dev = torch.device(device)

    def t(a: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(np.ascontiguousarray(a)).to(dev)

    # An empty validation split: the retrain has nothing held out but the test split, and
    # that is looked at once, after training.
    return DeviceData(
        train_x=t(np.concatenate([splits.train_x, splits.val_x])),
        train_y=t(np.concatenate([splits.train_y, splits.val_y])),
        val_x=t(splits.val_x[:0]),
        val_y=t(splits.val_y[:0]),
        test_x=t(splits.test_x),
        test_y=t(splits.test_y),
        in_shape=splits.in_shape,
        num_classes=splits.num_classes,
        device=dev,
    )


def class_labels(dataset: str, num_classes: int) -> list[Any]:
    """The original label of each class index (load_dataset maps labels to 0..K-1)."""
    if dataset in ("digits", "mnist5k"):
        return list(range(num_classes))
    from bnsearch.core.formats import read_path

    _, y = read_path(Path(dataset))
    return [v.item() for v in np.unique(y)]


def _write_folder(out: Path, model: BNCNN, config: dict[str, Any], metrics: dict[str, Any]) -> None:
    import torch

    try:
        out.mkdir(parents=True, exist_ok=True)
        torch.save({k: v.detach().cpu() for k, v in model.state_dict().items()}, out / WEIGHTS_FILE)
        (out / CONFIG_FILE).write_text(json.dumps(config, indent=2) + "\n", encoding="utf-8")
        (out / METRICS_FILE).write_text(json.dumps(metrics, indent=2) + "\n", encoding="utf-8")
    except OSError as e:
        raise ModelError(f"cannot write the model folder {out}: {e.strerror or e}") from None


@dataclass(frozen=True, slots=True)
class LoadedModel:
    """A saved model in eval mode, with the preprocessing it was trained with."""

    model: BNCNN
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
    """Rebuild the network saved by ``retrain_best`` and load its weights.

    Example::

        m = bnsearch.best.load_model("models/mnist5k-tpe")
        labels = m.predict(images)  # raw pixels, normalised as in training

    Raises:
        ModelError: the folder is missing, incomplete, or not a bnsearch model.
    """
    import torch

    from bnsearch.config import resolve_device
    from bnsearch.core.model import BNCNN, ModelConfig
    from bnsearch.core.space import TrialParams

    folder = Path(model_dir)
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
    dev = torch.device(resolve_device(device))
    try:
        model = BNCNN(
            TrialParams(**config["params"]),
            in_shape=tuple(config["in_shape"]),
            num_classes=int(config["num_classes"]),
            cfg=ModelConfig(widths=tuple(config["widths"]), feature_order=_FEATURE_ORDER[found]),
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
