"""Set up and run one search: config → space → data → storage → study → optimize.

Everything that can fail on bad input (options, space file, dataset, storage, a mismatched
resume) is checked in ``prepare_search`` before a trial starts.
"""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any

import optuna
import torch

from bnsearch import keys
from bnsearch.config import SAVE_MODE_NONE, RunConfig, resolve_device, resolve_pack, resolve_precision
from bnsearch.core.data import TEST_FRACTION, VAL_FRACTION, DeviceData, load_dataset, split_dataset, to_device
from bnsearch.core.model import ModelConfig
from bnsearch.core.seeding import derive_seed
from bnsearch.core.space import SearchSpace, model_family
from bnsearch.core.train import TrainConfig
from bnsearch.model_folder import ModelSaver, artifacts_dir, check_store_folder, class_labels, model_config
from bnsearch.samplers import SamplerContext, get_strategy, make_sampler, n_startup_trials
from bnsearch.search.budget import BudgetedStudy, BudgetReached, budget_lock
from bnsearch.search.objective import Objective
from bnsearch.search.pruners import make_pruner
from bnsearch.storages import open_storage, sqlite_path
from bnsearch.study import create_or_resume, library_versions

logger = logging.getLogger(__name__)

StudyCallback = Callable[[optuna.Study, optuna.trial.FrozenTrial], None]


@dataclass(frozen=True, slots=True)
class SearchSetup:
    cfg: RunConfig
    space: SearchSpace
    data: DeviceData
    study: optuna.Study
    resumed: bool  # the study existed before this run
    n_existing: int  # trials in the study before this run
    saver: ModelSaver | None = None  # --save-models best/all: where and what to keep


def load_space(cfg: RunConfig) -> SearchSpace:
    """The ``--model``'s default space, or the ``--space`` file over it, with
    ``--epochs``/``--batch-size`` fixed."""
    family = model_family(cfg.model)
    space = SearchSpace.from_toml(cfg.space_path, family=family) if cfg.space_path else SearchSpace.default(family)
    return space.with_fixed(epochs=cfg.epochs, batch_size=cfg.batch_size)


def model_identity(model: str) -> dict[str, Any]:
    """The identity entries of ``--model``: its name, and a factory's source fingerprint.

    Raises:
        ConfigError: a user factory that cannot be imported (``core/factory.py``).
    """
    if model_family(model) != "user":
        return {"model": model}
    from bnsearch.core.factory import load_factory

    return {"model": model.strip(), "model_source": load_factory(model).fingerprint}


def study_identity(cfg: RunConfig, space: SearchSpace) -> dict[str, Any]:
    """What must match for a resumed study's trials to be comparable with this run's.

    A study made before ``--model`` existed has no ``model`` key; ``bnsearch.study`` reads it as
    ``bncnn`` (``IDENTITY_DEFAULTS``), so it resumes as it always did.
    """
    return {
        **model_identity(cfg.model),
        "dataset": cfg.dataset,
        "space": space.to_dict(),
        "seed": cfg.seed,
        "widths": list(cfg.widths),
        "val_fraction": VAL_FRACTION,
        "test_fraction": TEST_FRACTION,
        "decay_bn_params": TrainConfig().decay_bn_params,
        "precision": cfg.precision,
        "direction": "maximize",
    }


def prepare_search(cfg: RunConfig, *, worker_index: int = 0, train_devices: Sequence[str] | None = None) -> SearchSetup:
    """Validate everything and open (or create) the study; start no trial.

    ``train_devices`` are where trials will train (default: ``cfg.device``); ``--precision
    auto`` is resolved for them, and ``setup.cfg.precision`` is then ``fp32`` or ``bf16``.

    Raises:
        BnsearchError: any invalid option, space, dataset or storage; nothing is written then.
    """
    cfg.validate()
    if cfg.mlflow_uri:
        from bnsearch.tracking import check_tracking

        check_tracking(cfg.mlflow_uri)
    strategy = get_strategy(cfg.strategy)
    space = load_space(cfg)
    device = resolve_device(cfg.device)
    dataset = load_dataset(cfg.dataset)
    split_seed = derive_seed(cfg.seed, "split")
    splits = split_dataset(dataset, seed=split_seed)
    if model_family(cfg.model) == "user":
        from bnsearch.core.factory import check_factory, load_factory

        # Every way a factory can be wrong is an error now, before a study is created.
        check_factory(load_factory(cfg.model), space.probe_params(), splits.in_shape, splits.num_classes)
    data = to_device(splits, device)
    saver = None
    if cfg.save_models != SAVE_MODE_NONE:
        folder = artifacts_dir(cfg.storage, cfg.artifacts)
        check_store_folder(folder)  # a bad folder is an error before any trial runs; made at the first save
        info = model_config(
            {},
            in_shape=splits.in_shape,
            num_classes=splits.num_classes,
            widths=cfg.widths,
            mean=splits.mean,
            std=splits.std,
            classes=class_labels(cfg.dataset, splits.num_classes),
            dataset=cfg.dataset,
            split_seed=split_seed,
            model=cfg.model,
        )
        saver = ModelSaver(mode=cfg.save_models, folder=folder, model_info=info)
    if strategy.experimental:
        logger.warning("strategy '%s' is experimental", strategy.name)

    storage = open_storage(cfg.storage)
    name = cfg.resolved_study_name
    n_existing = 0
    study_precision = None
    if name in {s.study_name for s in storage.get_all_studies()}:
        existing = optuna.load_study(study_name=name, storage=storage)
        n_existing = len(existing.get_trials(deepcopy=False))
        study_precision = existing.user_attrs.get(keys.STUDY_CONFIG, {}).get("precision")
    precision = resolve_precision(
        cfg.precision, train_devices or (device,), study_precision=study_precision, follow_study=True
    )
    cfg = replace(cfg, precision=precision)
    # A resumed run must not replay the first run's random draws: the sampler seed also
    # depends on how many trials exist and on which worker this is. On a database server,
    # processes on other machines may join at the same moment with the same --seed and trial
    # count, so there the process (host:pid) is part of the seed too.
    joiner = () if sqlite_path(cfg.storage) else (f"{socket.gethostname()}:{os.getpid()}",)
    sampler = make_sampler(
        cfg.strategy,
        SamplerContext(
            seed=derive_seed(cfg.seed, "sampler", cfg.strategy, n_existing, worker_index, *joiner),
            space=space,
            n_startup_trials=n_startup_trials(cfg.trials),
            options=cfg.strategy_options,
        ),
    )
    pruner = make_pruner(cfg.pruner, max_epochs=space.max_epochs)
    attrs = {
        keys.STUDY_VERSIONS: library_versions(),
        keys.STUDY_STRATEGY: cfg.strategy,
        keys.STUDY_PRUNER: cfg.pruner,
        keys.STUDY_DATASET: cfg.dataset,
    }
    study, resumed = create_or_resume(
        storage,
        name,
        url=cfg.storage,
        identity=study_identity(cfg, space),
        attrs=attrs,
        sampler=sampler,
        pruner=pruner,
    )
    if cfg.max_trials is not None:
        study = BudgetedStudy(study, max_trials=cfg.max_trials, lock=budget_lock(cfg.storage, storage, name))
    return SearchSetup(
        cfg=cfg, space=space, data=data, study=study, resumed=resumed, n_existing=n_existing, saver=saver
    )


def make_objective(setup: SearchSetup) -> Objective:
    return Objective(
        space=setup.space,
        data=setup.data,
        root_seed=setup.cfg.seed,
        model_cfg=ModelConfig(model=setup.cfg.model, widths=setup.cfg.widths),
        train_cfg=TrainConfig(precision=setup.cfg.precision),
        # The entry point has set the threads by now; each trial trains with this many.
        threads=torch.get_num_threads() if setup.data.device.type == "cpu" else None,
        saver=setup.saver,
    )


def run_callbacks(setup: SearchSetup) -> list[StudyCallback]:
    """The Optuna callbacks every process running trials of this search adds (MLflow logging)."""
    if not setup.cfg.mlflow_uri:
        return []
    from bnsearch.tracking import MlflowLogger

    folder = setup.saver.folder if setup.saver is not None else None
    return [MlflowLogger(uri=setup.cfg.mlflow_uri, storage=setup.cfg.storage, artifacts=folder)]


def optimize(
    setup: SearchSetup,
    *,
    callbacks: Sequence[StudyCallback] = (),
    take_ticket: Callable[[], bool] | None = None,
) -> optuna.Study:
    """Run ``cfg.trials`` more trials (or until ``cfg.timeout_s``, or until the study holds
    ``cfg.max_trials``) on the prepared study.

    With ``--pack`` above 1 the trials are asked in packs and trained together
    (``bnsearch.search.packing``); then ``take_ticket`` (workers) is asked before every trial.
    """
    pack = resolve_pack(setup.cfg.pack, setup.data.device.type)
    try:
        if pack > 1:
            from bnsearch.search.packing import optimize_packed

            optimize_packed(
                setup.study,
                make_objective(setup),
                pack=pack,
                n_trials=setup.cfg.trials,
                timeout_s=setup.cfg.timeout_s,
                callbacks=[*run_callbacks(setup), *callbacks],
                take_ticket=take_ticket,
            )
        else:
            setup.study.optimize(
                make_objective(setup),
                n_trials=setup.cfg.trials,
                timeout=setup.cfg.timeout_s,
                callbacks=[*run_callbacks(setup), *callbacks],
                catch=(Exception,),
                gc_after_trial=False,
            )
    except BudgetReached:
        logger.info("study '%s' holds its --max-trials %s", setup.study.study_name, setup.cfg.max_trials)
    return setup.study


def run_search(cfg: RunConfig, *, callbacks: Sequence[StudyCallback] = ()) -> optuna.Study:
    """Prepare and run a search in this process; the notebook-friendly entry point.

    Returns:
        The study, holding every trial of this and earlier runs.
    """
    return optimize(prepare_search(cfg), callbacks=callbacks)
