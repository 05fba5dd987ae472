"""A study-wide trial budget (``run --max-trials N``), exact however many processes join.

Optuna's ``MaxTrialsCallback`` compares the trial count with N after each trial, so processes
that ask at the same moment all see N - 1 and each creates one more (optuna#1883, #2907,
#3518). Here the count and the creation are one step: every bnsearch process with a budget
takes the same lock, counts the study's trials and creates the next one (or stops) before it
lets go. The sampler then suggests parameters outside the lock, as usual.

The lock, per storage:

* PostgreSQL: a session advisory lock keyed by the study (``pg_advisory_lock``); the server
  drops it when the holder's connection dies, so a killed process never blocks the others.
* SQLite and journal files: Optuna's own journal lock (a symbolic link created next to the
  file, atomic on local disks and on NFS); a holder that died is overridden after
  ``FILE_LOCK_GRACE_S``.

What counts: every trial in the study, in any state (finished, running, waiting in Optuna's
queue), except that a heartbeat retry takes the place of the trial it retries (Optuna records
the original's number as ``failed_trial``), so a killed trial and its retry count once. Trials
already waiting in the queue (retries) are always run: they are counted already.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator
from contextlib import AbstractContextManager, contextmanager
from functools import partial
from typing import TYPE_CHECKING

import optuna

from bnsearch.errors import ConfigError
from bnsearch.study import journal_path, sqlite_path

if TYPE_CHECKING:
    from optuna.trial import FrozenTrial

logger = logging.getLogger(__name__)

FILE_LOCK_GRACE_S = 60  # a file lock older than this was left by a dead process and is taken over
_PG_LOCK_CLASS = 0x626E73  # "bns": first key of the advisory lock; the study id is the second

BudgetLock = Callable[[], AbstractContextManager[object]]


class BudgetReached(Exception):  # noqa: N818 — a stop signal, not an error
    """The study holds ``--max-trials`` trials: this process stops asking (control flow)."""


def counted_trials(trials: Iterable[FrozenTrial]) -> int:
    """Trials that use up the budget: all of them, a retry counting once with its original."""
    return len({t.system_attrs.get("failed_trial", t.number) for t in trials})


class BudgetedStudy(optuna.Study):
    """An ``optuna.Study`` whose ``ask`` never makes the study hold more than ``max_trials``.

    ``Study.ask`` first pops a waiting trial, then creates one; this class overrides the pop
    (Optuna's one hook between the two) so that both happen under the budget lock, and raises
    ``BudgetReached`` out of ``ask`` (hence out of ``optimize``) when there is nothing left.
    """

    def __init__(
        self,
        study: optuna.Study,
        *,
        max_trials: int,
        lock: BudgetLock,
    ) -> None:
        super().__init__(
            study_name=study.study_name, storage=study._storage, sampler=study.sampler, pruner=study.pruner
        )
        self.max_trials = max_trials
        self._budget_lock = lock

    def _pop_waiting_trial_id(self) -> int | None:
        with self._budget_lock():
            trial_id = super()._pop_waiting_trial_id()
            if trial_id is not None:
                return trial_id
            if counted_trials(self.get_trials(deepcopy=False)) >= self.max_trials:
                raise BudgetReached
            # Created RUNNING, as ``ask`` would; returned as if popped from the queue.
            return self._storage.create_new_trial(self._study_id)


def budget_lock(url: str, storage: optuna.storages.BaseStorage, study_name: str) -> BudgetLock:
    """The lock every budgeted process of study ``study_name`` in ``url`` takes to count and create.

    Returns:
        A function that returns a context manager holding the lock (one per use).

    Raises:
        ConfigError: the storage has no lock bnsearch knows how to take (MySQL, in-memory).
    """
    path = sqlite_path(url) or journal_path(url)
    if path is not None:
        return partial(_file_lock, f"{path}.budget")
    if url.startswith("postgresql") and isinstance(storage, optuna.storages.RDBStorage):
        return partial(_pg_lock, storage, storage.get_study_id_from_name(study_name))
    raise ConfigError(
        "--max-trials needs a SQLite, journal or PostgreSQL storage (it counts and creates trials "
        f"under a lock those provide); got '{url.split(':', 1)[0]}'"
    )


@contextmanager
def _file_lock(target: str) -> Iterator[object]:
    from optuna.storages.journal import JournalFileSymlinkLock

    lock = JournalFileSymlinkLock(target, grace_period=FILE_LOCK_GRACE_S)
    lock.acquire()
    try:
        yield lock
    finally:
        lock.release()


@contextmanager
def _pg_lock(storage: optuna.storages.RDBStorage, study_id: int) -> Iterator[object]:
    from sqlalchemy import text

    with storage.engine.connect() as conn:
        conn.execute(text("SELECT pg_advisory_lock(:a, :b)"), {"a": _PG_LOCK_CLASS, "b": study_id})
        conn.commit()
        try:
            yield conn
        finally:
            conn.execute(text("SELECT pg_advisory_unlock(:a, :b)"), {"a": _PG_LOCK_CLASS, "b": study_id})
            conn.commit()
