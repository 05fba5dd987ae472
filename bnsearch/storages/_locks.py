"""Locks that every bnsearch process on one storage can take, across processes and machines.

* SQLite and journal files: Optuna's own journal lock, a symbolic link created next to the
  file (atomic on local disks and on NFS); a holder that died is overridden after
  ``FILE_LOCK_GRACE_S``.
* PostgreSQL: a session advisory lock (``pg_advisory_lock``); the server drops it when the
  holder's connection dies, so a killed process never blocks the others.

Two locks are built on these: the study-creation lock (a study and its identity are written
as one step, ``study.create_or_resume``) and the budget lock (``search.budget``).
"""

from __future__ import annotations

import zlib
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext

import optuna

from bnsearch.storages._urls import storage_file

FILE_LOCK_GRACE_S = 60  # a file lock older than this was left by a dead process and is taken over
# First keys of the advisory locks ("bns", "bnt"); the second is the study id or a name hash.
PG_BUDGET_LOCK = 0x626E73
PG_CREATE_LOCK = 0x626E74


@contextmanager
def file_lock(target: str) -> Iterator[object]:
    """Hold the lock named ``target`` (a path; the lock is the link ``target + ".lock"``)."""
    from optuna.storages.journal import JournalFileSymlinkLock

    lock = JournalFileSymlinkLock(target, grace_period=FILE_LOCK_GRACE_S)
    lock.acquire()
    try:
        yield lock
    finally:
        lock.release()


@contextmanager
def pg_advisory_lock(storage: optuna.storages.RDBStorage, first: int, second: int) -> Iterator[object]:
    """Hold PostgreSQL's session advisory lock ``(first, second)`` on a connection of its own."""
    from sqlalchemy import text

    with storage.engine.connect() as conn:
        conn.execute(text("SELECT pg_advisory_lock(:a, :b)"), {"a": first, "b": second})
        conn.commit()
        try:
            yield conn
        finally:
            conn.execute(text("SELECT pg_advisory_unlock(:a, :b)"), {"a": first, "b": second})
            conn.commit()


def _int4(text: str) -> int:
    """A stable signed 32-bit key for ``text`` (advisory locks take two int4 keys)."""
    value = zlib.crc32(text.encode())
    return value - (1 << 32) if value >= 1 << 31 else value


def creation_lock(url: str, storage: optuna.storages.BaseStorage, study_name: str) -> AbstractContextManager[object]:
    """The lock under which study ``study_name`` is looked up, created and given its identity.

    A storage without a lock bnsearch knows how to take (MySQL, in-memory SQLite) gets none;
    there, processes that create one study at the same instant may still race.
    """
    path = storage_file(url)
    if path is not None:
        return file_lock(f"{path}.create")
    if url.startswith("postgresql") and isinstance(storage, optuna.storages.RDBStorage):
        return pg_advisory_lock(storage, PG_CREATE_LOCK, _int4(study_name))
    return nullcontext()
