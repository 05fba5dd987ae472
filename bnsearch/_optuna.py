"""The one place that touches Optuna's private API, each use with the reason it is needed.

Optuna's public ``Study`` and ``FrozenTrial`` do not expose what a few bnsearch features need
(closing another process's trial, an exact study-wide budget, packed trials with heartbeats).
Everything private goes through this module, so an Optuna release that renames something
breaks here, in one file, and the tests of the callers (budget, packing, interrupts,
samplers) run on the lowest and the newest Optuna the project declares.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Any

import optuna

if TYPE_CHECKING:
    from optuna.storages import BaseStorage
    from optuna.study._frozen import FrozenStudy
    from optuna.trial import FrozenTrial


def storage_of(study: optuna.Study) -> BaseStorage:
    """The study's storage: storage calls (fail a trial, set a system attribute) need it and
    ``Study`` keeps it private."""
    return study._storage


def study_id_of(study: optuna.Study | FrozenStudy) -> int:
    """The study's id in its storage: every storage call takes it; ``Study`` and the
    ``FrozenStudy`` of ``get_all_studies`` keep it private."""
    return study._study_id


def trial_id_of(trial: FrozenTrial | optuna.Trial) -> int:
    """A trial's id in its storage (not its number): storage calls and heartbeats take it;
    ``FrozenTrial`` and ``Trial`` keep it private."""
    return trial._trial_id


class AskHookStudy(optuna.Study):
    """An ``optuna.Study`` whose ``ask`` lets a subclass decide which trial it gets.

    ``Study.ask`` first pops a waiting trial, then creates one; ``_pop_waiting_trial_id`` is
    Optuna's one hook between the two (a private method), so an exact budget overrides it.
    Subclasses override ``next_trial_id`` instead.
    """

    def __init__(self, study: optuna.Study) -> None:
        super().__init__(
            study_name=study.study_name, storage=storage_of(study), sampler=study.sampler, pruner=study.pruner
        )

    def next_trial_id(self, pop_waiting: Callable[[], int | None]) -> int | None:
        """The id of the trial ``ask`` hands out (RUNNING), or None to let Optuna create one."""
        return pop_waiting()

    def _pop_waiting_trial_id(self) -> int | None:
        return self.next_trial_id(super()._pop_waiting_trial_id)


def begin_optimize_loop(study: optuna.Study) -> None:
    """Mark ``study`` as inside an optimize loop of ours (packed trials): ``study.stop()``
    (e.g. from ``MaxTrialsCallback``) is refused outside one, and the flag it sets is private."""
    study._thread_local.in_optimize_loop = True
    study._stop_flag = False


def end_optimize_loop(study: optuna.Study) -> None:
    study._thread_local.in_optimize_loop = False
    study._stop_flag = False


def stop_requested(study: optuna.Study) -> bool:
    """Whether ``study.stop()`` was called in this loop (Optuna keeps the flag private)."""
    return bool(study._stop_flag)


def request_stop(study: optuna.Study) -> None:
    """``study.stop()`` for our own loop, from code that is not a callback."""
    study._stop_flag = True


def heartbeats_enabled(storage: BaseStorage) -> bool:
    """Whether ``storage`` runs Optuna's heartbeats (its helper for this is private)."""
    from optuna.storages._heartbeat import is_heartbeat_enabled

    return bool(is_heartbeat_enabled(storage))


def heartbeat_thread(trial: optuna.Trial, storage: BaseStorage) -> AbstractContextManager[Any]:
    """A heartbeat for ``trial`` while the context is open: ``study.optimize`` starts one per
    trial, a packed loop that asks K trials must do the same (the thread class is private)."""
    from optuna.storages._heartbeat import get_heartbeat_thread

    return get_heartbeat_thread(trial_id_of(trial), storage)  # type: ignore[return-value]
