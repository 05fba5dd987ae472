"""The Optuna objective: trial → params → model → train, with reports, pruning and attributes.

This is the only module that writes trial attributes (names in ``keys.py``).
"""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Callable
from dataclasses import dataclass

import optuna
import torch
from torch import nn

from bnsearch import keys
from bnsearch.core.data import DeviceData
from bnsearch.core.model import ModelConfig, build_model
from bnsearch.core.seeding import derive_seed
from bnsearch.core.space import SearchSpace, TrialParams
from bnsearch.core.train import EpochMetrics, TrainConfig, TrainResult, train
from bnsearch.model_folder import ModelSaver

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True, kw_only=True)
class Objective:
    """Callable for ``study.optimize``: returns the final validation accuracy of one trial.

    Pruned and diverged trials raise ``optuna.TrialPruned`` with the reason, which is also
    stored as the ``prune_reason`` attribute; any other exception is stored as
    ``fail_reason`` and re-raised so Optuna marks the trial FAIL and the search goes on.
    """

    space: SearchSpace
    data: DeviceData
    root_seed: int  # the run's --seed; each trial derives its own from it and its number
    model_cfg: ModelConfig = ModelConfig()
    train_cfg: TrainConfig = TrainConfig()
    threads: int | None = None  # torch CPU threads each trial trains with; None: leave as is
    saver: ModelSaver | None = None  # keeps trained models in the artifact store (--save-models)

    def __call__(self, trial: optuna.Trial) -> float:
        params, seed = self.begin(trial)
        history: list[EpochMetrics] = []
        on_epoch, reporting = self.reporter(trial, history)
        try:
            model = self.build(params, seed)
            result = train(model, self.data, params, seed=seed, cfg=self.train_cfg, on_epoch=on_epoch)
        except BaseException as e:
            self.record_failure(trial, history, reporting(), e)
            raise
        return self.conclude(trial, result, model)

    def begin(self, trial: optuna.Trial) -> tuple[TrialParams, int]:
        """Suggest the trial's params and write its identity attributes; return params and seed."""
        params = self.space.suggest(trial)
        self._restore_threads()
        seed = derive_seed(self.root_seed, "trial", trial.number)
        trial.set_user_attr(keys.TRIAL_SEED, seed)
        trial.set_user_attr(keys.DEVICE, str(self.data.device))
        trial.set_user_attr(keys.WORKER, f"{socket.gethostname()}:{os.getpid()}")
        trial.set_user_attr(keys.RESOLVED_PARAMS, params.to_dict())
        if keys.SAVED_MODEL in trial.user_attrs:
            # Optuna's retry of a trial whose worker died copies its attributes; the model it
            # names was trained with another seed (the failed trial's).
            trial.set_user_attr(keys.SAVED_MODEL, None)
        return params, seed

    def build(self, params: TrialParams, seed: int) -> nn.Module:
        """The trial's model with its seeded initial weights, on the data's device."""
        return build_model(
            params,
            in_shape=self.data.in_shape,
            num_classes=self.data.num_classes,
            seed=seed,
            cfg=self.model_cfg,
            device=self.data.device,
        )

    def reporter(
        self, trial: optuna.Trial, history: list[EpochMetrics]
    ) -> tuple[Callable[[EpochMetrics], bool], Callable[[], EpochMetrics | None]]:
        """``on_epoch`` for ``train()``: report to the trial, append to ``history``, ask the
        pruner. Also returns a getter for the epoch being reported right now, if any."""
        reporting: list[EpochMetrics] = []

        def on_epoch(m: EpochMetrics) -> bool:
            reporting.append(m)
            trial.report(m.val_acc, m.epoch)
            history.append(m)
            reporting.clear()
            return trial.should_prune()

        return on_epoch, lambda: reporting[0] if reporting else None

    def record_failure(
        self, trial: optuna.Trial, history: list[EpochMetrics], reporting: EpochMetrics | None, e: BaseException
    ) -> None:
        """Write the curves so far and ``fail_reason`` for a trial that training ended with ``e``."""
        # A Ctrl-C can land inside report() after the value reached the storage: keep the
        # curves equal to the intermediate values that are stored.
        if reporting is not None and reporting.epoch in _stored_steps(trial):
            history.append(reporting)
        _write_curves(trial, history, None)
        reason = "interrupted" if isinstance(e, KeyboardInterrupt) else f"{type(e).__name__}: {e}"
        trial.set_user_attr(keys.FAIL_REASON, reason[:2000])

    def conclude(self, trial: optuna.Trial, result: TrainResult, model: nn.Module | None = None) -> float:
        """Write the curves and return the value, or raise ``TrialPruned`` with the reason.

        A complete trial's trained ``model`` is kept in the artifact store when ``saver`` wants it."""
        _write_curves(trial, list(result.history), result)
        if result.diverged:
            trial.set_user_attr(keys.PRUNE_REASON, result.reason)
            raise optuna.TrialPruned(result.reason)
        if result.stopped:
            last = result.history[-1]
            pruner = type(trial.study.pruner).__name__
            reason = f"pruned by {pruner} after epoch {last.epoch} (val_acc {last.val_acc:.4f})"
            trial.set_user_attr(keys.PRUNE_REASON, reason)
            raise optuna.TrialPruned(reason)
        if model is not None and self.saver is not None and self.saver.wants(trial, result.val_acc):
            try:
                ids = self.saver.save(trial, model, trial.user_attrs[keys.RESOLVED_PARAMS])
            except OSError as e:  # a full or unwritable store costs the model, not the trial
                logger.warning("trial %d: model not saved: %s", trial.number, e)
            else:
                trial.set_user_attr(keys.SAVED_MODEL, ids)  # only now may a reader load it
        return result.val_acc

    def mark_packed(self, trial: optuna.Trial, numbers: list[int]) -> None:
        """Record the trials (numbers) that trained together with ``trial`` as one model."""
        trial.set_user_attr(keys.PACK_TRIALS, numbers)

    def _restore_threads(self) -> None:
        # Sampling (relative and independent) is over once suggest() returns. A sampler may
        # have changed torch's process-wide thread count (Optuna's GPSampler sets one thread
        # while it optimizes and restores it on exit; a sampler that does not would make every
        # later trial train on one core).
        if self.threads is not None and torch.get_num_threads() != self.threads:
            logger.warning(
                "torch threads were %d after sampling; restoring %d for training",
                torch.get_num_threads(),
                self.threads,
            )
            torch.set_num_threads(self.threads)


def _stored_steps(trial: optuna.Trial) -> set[int]:
    """Steps whose intermediate value this (running) trial has in the storage."""
    running = trial.study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,))
    return next((set(t.intermediate_values) for t in running if t.number == trial.number), set())


def _write_curves(trial: optuna.Trial, history: list[EpochMetrics], result: TrainResult | None) -> None:
    trial.set_user_attr(keys.VAL_ACC_CURVE, [m.val_acc for m in history])
    trial.set_user_attr(keys.TRAIN_LOSS_CURVE, [m.train_loss for m in history])
    trial.set_user_attr(keys.TRAIN_ACC_CURVE, [m.train_acc for m in history])
    trial.set_user_attr(keys.EPOCH_TIME_CURVE, [round(m.epoch_time_s, 4) for m in history])
    trial.set_user_attr(keys.EPOCHS_RUN, len(history))
    if result is not None:
        trial.set_user_attr(keys.WALL_TIME_S, round(result.wall_time_s, 4))
    else:
        trial.set_user_attr(keys.WALL_TIME_S, round(sum(m.epoch_time_s for m in history), 4))
