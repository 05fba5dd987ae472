"""A study-wide trial budget (``run --max-trials N``), exact however many processes join.

Optuna's ``MaxTrialsCallback`` compares the trial count with N after each trial, so processes
that ask at the same moment all see N - 1 and each creates one more (optuna#1883, #2907,
#3518). Here the count and the creation are one step: every bnsearch process with a budget
takes the same lock, counts the study's trials and creates the next one (or stops) before it
lets go. The sampler then suggests parameters outside the lock, as usual.

The lock, per storage (``bnsearch.storages``): a PostgreSQL advisory lock keyed by the study,
or a lock file next to a SQLite or journal file.

What counts: every trial in the study, in any state (finished, running, waiting in Optuna's
queue), except that a heartbeat retry takes the place of the trial it retries (Optuna records
the original's number as ``failed_trial``), so a killed trial and its retry count once. Trials
already waiting in the queue (retries) are always run: they are counted already.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from contextlib import AbstractContextManager
from functools import partial
from typing import TYPE_CHECKING

import optuna

from bnsearch._optuna import AskHookStudy, storage_of, study_id_of
from bnsearch.errors import ConfigError
from bnsearch.storages import PG_BUDGET_LOCK, file_lock, pg_advisory_lock, storage_file

if TYPE_CHECKING:
    from optuna.trial import FrozenTrial

logger = logging.getLogger(__name__)

BudgetLock = Callable[[], AbstractContextManager[object]]


class BudgetReached(Exception):  # noqa: N818 — a stop signal, not an error
    """The study holds ``--max-trials`` trials: this process stops asking (control flow)."""


def counted_trials(trials: Iterable[FrozenTrial]) -> int:
    """Trials that use up the budget: all of them, a retry counting once with its original."""
    return len({t.system_attrs.get("failed_trial", t.number) for t in trials})


class BudgetedStudy(AskHookStudy):
    """An ``optuna.Study`` whose ``ask`` never makes the study hold more than ``max_trials``.

    ``Study.ask`` first pops a waiting trial, then creates one; this class takes both steps
    under the budget lock (``AskHookStudy``: Optuna's one hook between the two), and raises
    ``BudgetReached`` out of ``ask`` (hence out of ``optimize``) when there is nothing left.
    """

    def __init__(
        self,
        study: optuna.Study,
        *,
        max_trials: int,
        lock: BudgetLock,
    ) -> None:
        super().__init__(study)
        self.max_trials = max_trials
        self._budget_lock = lock

    def next_trial_id(self, pop_waiting: Callable[[], int | None]) -> int | None:
        with self._budget_lock():
            trial_id = pop_waiting()
            if trial_id is not None:
                return trial_id
            if counted_trials(self.get_trials(deepcopy=False)) >= self.max_trials:
                raise BudgetReached
            # Created RUNNING, as ``ask`` would; returned as if popped from the queue.
            return storage_of(self).create_new_trial(study_id_of(self))


def budget_lock(url: str, storage: optuna.storages.BaseStorage, study_name: str) -> BudgetLock:
    """The lock every budgeted process of study ``study_name`` in ``url`` takes to count and create.

    Returns:
        A function that returns a context manager holding the lock (one per use).

    Raises:
        ConfigError: the storage has no lock bnsearch knows how to take (MySQL, in-memory).
    """
    path = storage_file(url)
    if path is not None:
        return partial(file_lock, f"{path}.budget")
    if url.startswith("postgresql") and isinstance(storage, optuna.storages.RDBStorage):
        return partial(pg_advisory_lock, storage, PG_BUDGET_LOCK, storage.get_study_id_from_name(study_name))
    raise ConfigError(
        "--max-trials needs a SQLite, journal or PostgreSQL storage (it counts and creates trials "
        f"under a lock those provide); got '{url.split(':', 1)[0]}'"
    )
