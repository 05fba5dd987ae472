"""``bnsearch best``: the best trial of a study, its saved model tested, or retrained once.

``retrain_best`` trains the best trial's configuration (its ``resolved_params``) on the
training and validation splits of the search (the same split: the study's dataset and root
seed), evaluates once on the held-out test split, and writes a model folder (``_format``).
``evaluate_saved_model`` tests the model the trial saved in the search instead, retraining
nothing.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from bnsearch import keys
from bnsearch.errors import ModelError, StudyError
from bnsearch.model_folder._format import class_labels, model_config, write_model_files
from bnsearch.model_folder._predict import load_model
from bnsearch.model_folder._store import artifacts_dir, download_model, saved_model_ids


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
    confirmed: dict[str, Any] | None = None  # the study's latest ``best --confirm`` when it chose this trial


def find_best(storage_url: str, study_name: str) -> BestTrial:
    """The best complete trial of ``study_name``; reads the storage, writes nothing.

    After a ``bnsearch best --confirm``, the best trial is the confirmed leader (the
    configuration with the best mean validation accuracy over the fresh seeds, represented by
    its best trial), not the trial with the single highest validation accuracy.

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
    confirmed = study.user_attrs.get(keys.CONFIRM_RESULT)
    if isinstance(confirmed, dict):
        leader = next((t for t in complete if t.number == confirmed.get("leader_trial")), None)
        best, confirmed = (leader, confirmed) if leader is not None else (best, None)
    params = best.user_attrs.get(keys.RESOLVED_PARAMS)
    if params is None and "space" not in identity:
        raise StudyError(f"trial #{best.number} of '{study_name}' has no stored settings to retrain")
    if params is None:
        from bnsearch.core.space import SearchSpace, model_family

        family = model_family(str(identity.get("model", "bncnn")))
        params = SearchSpace.from_dict(identity["space"], family=family).fixed_params(**best.params).to_dict()
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
        confirmed=confirmed if isinstance(confirmed, dict) else None,
    )


@dataclass(frozen=True, slots=True)
class RetrainResult:
    out_dir: Path
    test_acc: float  # accuracy (0..1) on the held-out test split, measured once
    metrics: dict[str, Any]  # what metrics.json holds


def retrain_best(
    best: BestTrial, out_dir: str | Path, *, device: str = "auto", factory: str | None = None
) -> RetrainResult:
    """Train ``best``'s configuration on train+validation, test once, write the model folder.

    The split is the search's (the study's dataset, root seed and fractions); pixels are
    normalised with the training split's mean/std as in the search. The seed is the trial's.
    The network is the study's ``--model``; ``factory`` names where a user factory is now, when
    it has moved (its source must be the one the study trained).

    Raises:
        BnsearchError: the dataset cannot be loaded, the stored split cannot be reproduced,
            training diverges, or the folder cannot be written.
    """
    from bnsearch.config import resolve_device, resolve_precision
    from bnsearch.core.model import ModelConfig, build_model
    from bnsearch.core.seeding import derive_seed
    from bnsearch.core.space import TrialParams
    from bnsearch.core.train import TrainConfig, evaluate, train
    from bnsearch.study import library_versions

    ident = best.identity
    dev = resolve_device(device)
    out = Path(out_dir)
    split_seed, splits = _search_splits(best)
    params = TrialParams(**best.params)
    widths = tuple(ident.get("widths", (32, 64)))
    net = study_model(best.identity, best.study_name, factory)
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
        cfg=ModelConfig(model=net, widths=widths),
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
        model=net,
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
    write_model_files(out, model, config, metrics)
    return RetrainResult(out_dir=out, test_acc=test_acc, metrics=metrics)


def study_model(identity: dict[str, Any], study_name: str, factory: str | None = None) -> str:
    """The ``--model`` of the study whose stored identity is ``identity`` (``bncnn`` for a study
    made before there was a choice), or ``factory`` when it is that factory moved
    (``best --retrain``, ``best --confirm``).

    Raises:
        StudyError: another model than the study's, or a factory whose source changed since the search.
    """
    net = str(identity.get("model", "bncnn"))
    source = identity.get("model_source")
    if factory is not None and factory != net:
        if source is None:
            raise StudyError(f"study '{study_name}' trained --model {net}, not {factory}; leave --model out")
        net = factory
    if source is not None:
        from bnsearch.core.factory import load_factory

        if load_factory(net).fingerprint != source:
            raise StudyError(
                f"study '{study_name}' trained --model {net} with source {source}; its file has changed "
                f"since (now {load_factory(net).fingerprint}), so the retrained net would be another one"
            )
    return net


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
