"""Storage URLs → Optuna storages: SQLite and PostgreSQL through ``RDBStorage``, journal files
through ``JournalStorage``; heartbeats so the trials of a killed process are retried."""

from __future__ import annotations

import logging
import os
import sqlite3
import time
import warnings
from pathlib import Path
from typing import Any

import optuna

from bnsearch.errors import StudyError
from bnsearch.storages._locks import file_lock
from bnsearch.storages._urls import check_url, journal_path, sqlite_path
from bnsearch.urls import mask_url

logger = logging.getLogger(__name__)

HEARTBEAT_INTERVAL_S = 20  # a running trial writes a heartbeat this often
GRACE_PERIOD_S = 60  # a trial silent this long is failed (its process died) and retried
SQLITE_TIMEOUT_S = 60  # wait this long for a lock before "database is locked"
PG_CONNECT_TIMEOUT_S = 10  # give up connecting to a PostgreSQL server after this long
MAX_RETRY = 2  # times a trial whose process died is re-queued
# Environment overrides of the two heartbeat settings (whole seconds), for tests and for sites
# whose trials may stall longer than a minute without their process having died.
ENV_HEARTBEAT_INTERVAL = "BNSEARCH_HEARTBEAT_INTERVAL_S"
ENV_GRACE_PERIOD = "BNSEARCH_GRACE_PERIOD_S"


def heartbeat_settings() -> tuple[int, int]:
    """``(interval_s, grace_period_s)``: the defaults or the ``BNSEARCH_*_S`` environment overrides.

    Raises:
        StudyError: an override is not a positive whole number, or the grace period is not
            longer than the interval.
    """
    values = []
    defaults = ((ENV_HEARTBEAT_INTERVAL, HEARTBEAT_INTERVAL_S), (ENV_GRACE_PERIOD, GRACE_PERIOD_S))
    for var, default in defaults:
        raw = os.environ.get(var, "").strip()
        if not raw:
            values.append(default)
            continue
        if not raw.isdigit() or int(raw) < 1:
            raise StudyError(f"{var} must be a whole number of seconds ≥ 1, got {raw!r}")
        values.append(int(raw))
    interval, grace = values
    if grace <= interval:
        raise StudyError(
            f"the heartbeat grace period ({grace} s) must be longer than the interval ({interval} s); "
            f"check {ENV_GRACE_PERIOD} and {ENV_HEARTBEAT_INTERVAL}"
        )
    return interval, grace


def _check_file(path: Path, *, create: bool, magic: bytes | None, kind: tuple[str, str]) -> None:
    """Refuse a folder or a file of another kind; a missing file is an error unless ``create``
    (then its folder is made). ``kind``: ("database", "a SQLite database") for the messages.
    ``magic``: the first bytes a file of this kind starts with; None for SQLite, which is
    asked itself (see `_is_sqlite`)."""
    if path.exists():
        if path.is_dir():
            raise StudyError(f"storage {path} is a folder, not {kind[1]} file")
        if magic is None:
            ours = _is_sqlite(path)
        else:
            with path.open("rb") as f:
                head = f.read(len(magic))
            ours = not head or head == magic
        if not ours:
            raise StudyError(f"storage {path} exists but is not {kind[1]}")
    elif not create:
        raise StudyError(f"no study {kind[0]} at {path}; run `bnsearch run` first or pass --storage")
    else:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise StudyError(f"cannot create the folder for {path}: {e.strerror or e}") from None


def _is_sqlite(path: Path) -> bool:
    """Whether ``path`` (an existing file) is empty or a SQLite database, asked through SQLite.

    Not by reading its header with ``open()``: closing any file descriptor of a database file
    drops every POSIX lock this process's SQLite connections hold on it, so a process that keeps
    a storage open while it opens the same file again (the findings and confirm drivers, between
    their rounds of worker processes) would lose its shared lock; the next worker to close its
    connection then believes itself the last, checkpoints and deletes the WAL under the open
    connections, which answer "disk I/O error" or "database disk image is malformed". SQLite
    keeps the descriptors of a file it has locks on open until the last connection closes.
    """
    size = path.stat().st_size
    if size == 0:
        return True
    if size < 512:  # the smallest page; SQLite would read a shorter file as an empty database
        return False
    try:
        con = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True, timeout=SQLITE_TIMEOUT_S)
        try:
            con.execute("PRAGMA schema_version").fetchone()
        finally:
            con.close()
    except sqlite3.DatabaseError as e:
        if "not a database" in str(e):
            return False
        raise StudyError(f"cannot read SQLite database {path}: {e}") from None
    return True


def _check_optuna_tables(path: Path) -> None:
    try:
        con = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True, timeout=SQLITE_TIMEOUT_S)
        try:
            found = con.execute("SELECT 1 FROM sqlite_master WHERE type='table' AND name='studies'").fetchone()
        finally:
            con.close()
    except sqlite3.Error as e:
        raise StudyError(f"cannot read SQLite database {path}: {e}") from None
    if found is None:
        raise StudyError(f"{path} is a SQLite database but holds no Optuna studies; check --storage")


def open_storage(url: str, *, create: bool = True, heartbeat: bool = True) -> optuna.storages.BaseStorage:
    """Open the study storage at ``url``: a SQLAlchemy URL Optuna supports, or a journal file.

    Args:
        url: e.g. ``sqlite:///studies/bnsearch.db``, ``postgresql+psycopg://u:p@host/db`` or
            ``journal:///studies/bnsearch.log`` (Optuna's ``JournalStorage`` on a file).
        create: Create a missing SQLite or journal file; False for read-only commands (report,
            export).
        heartbeat: Enable Optuna heartbeats so trials of killed processes are failed and retried
            (database storages; Optuna's journal storage has no heartbeats).

    Raises:
        StudyError: unknown scheme, not a database, or the database cannot be reached.
    """
    check_url(url)
    journal = journal_path(url)
    if journal is not None:
        return _open_journal(journal, create=create)
    path = sqlite_path(url)
    if path is None:
        return _open_rdb(url, create=create, heartbeat=heartbeat)
    _check_file(path, create=create, magic=None, kind=("database", "a SQLite database"))
    if not create:
        _check_optuna_tables(path)  # read-only commands leave the file exactly as it is
        return _open_rdb(url, create=False, heartbeat=heartbeat)
    # Processes that open a fresh file at the same instant would all create Optuna's tables
    # and all but one fail ("table ... already exists", a duplicate alembic version): the
    # first creates them under the lock, the others wait and find them.
    with file_lock(f"{path}.schema"):
        _use_wal(path)
        storage = _open_rdb(url, create=True, heartbeat=heartbeat)
    _begin_immediate(storage)
    return storage


def _use_wal(path: Path) -> None:
    # WAL lets readers (dashboard, report) and several writers (workers) share the file;
    # the setting is stored in the database file itself.
    try:
        con = sqlite3.connect(path, timeout=SQLITE_TIMEOUT_S)
        try:
            con.execute("PRAGMA journal_mode=WAL")
        finally:
            con.close()
    except sqlite3.Error as e:
        raise StudyError(f"cannot open SQLite database {path}: {e}") from None


def _open_rdb(url: str, *, create: bool, heartbeat: bool) -> optuna.storages.RDBStorage:
    """Optuna's ``RDBStorage`` on ``url`` with bnsearch's engine settings and heartbeats."""
    interval_s, grace_s = heartbeat_settings() if heartbeat else (0, 0)
    engine_kwargs: dict[str, Any] = {}
    if sqlite_path(url) is not None:
        engine_kwargs["connect_args"] = {"timeout": SQLITE_TIMEOUT_S}
    else:
        engine_kwargs["pool_pre_ping"] = True
        if url.startswith("postgresql"):
            # An unreachable server should fail in seconds, not after the OS's TCP timeout.
            engine_kwargs["connect_args"] = {"connect_timeout": PG_CONNECT_TIMEOUT_S}
    try:
        with warnings.catch_warnings():
            # Heartbeats are "experimental" in Optuna's terms but are its documented way to
            # recover trials of killed processes.
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            hb: dict[str, Any] = {}
            if heartbeat:
                hb = {
                    "heartbeat_interval": interval_s,
                    "grace_period": grace_s,
                    "heartbeat_stale_trial_callback": optuna.storages.RetryHeartbeatStaleTrialCallback(
                        max_retry=MAX_RETRY
                    ),
                }
            return _rdb_storage(url, engine_kwargs=engine_kwargs, skip_table_creation=not create, **hb)
    except ImportError as e:
        raise StudyError(f"storage '{mask_url(url)}' needs a database driver that is not installed: {e}") from None
    except Exception as e:  # SQLAlchemy raises many kinds; all mean "cannot use this storage"
        refused = None if sqlite_path(url) else _connection_problem(e)
        if refused is not None:
            raise StudyError(f"cannot connect to {mask_url(url)}: {refused}") from None
        msg = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise StudyError(f"cannot open storage '{mask_url(url)}': {msg}") from None


def _connection_problem(error: BaseException) -> str | None:
    """Why the database server could not be reached or used, if that is what ``error`` (or an
    error behind it: Optuna wraps them in its own "exception during the commit") comes down to:
    the driver's own words, without its "connection failed: ..." preamble."""
    from sqlalchemy.exc import OperationalError

    seen: set[int] = set()
    e: BaseException | None = error
    while e is not None and id(e) not in seen:
        seen.add(id(e))
        if isinstance(e, OperationalError):
            text = str(e.orig).strip().splitlines()[0]
            reason = text.rsplit("failed: ", 1)[-1].strip() or text
            return reason[:1].lower() + reason[1:] if reason[1:2].islower() else reason
        e = e.__cause__ or e.__context__
    return None


def _rdb_storage(url: str, **kwargs: Any) -> optuna.storages.RDBStorage:
    """Optuna's ``RDBStorage``, once more if another process created the tables meanwhile.

    Processes that open an empty PostgreSQL database at the same moment (the tasks of a job
    array) all create Optuna's tables; all but one can fail on a unique constraint of the
    catalog (``pg_type_typname_nsp_index``) or on a table that now exists. The schema is then
    in place, and a second open finds it.
    """
    from sqlalchemy.exc import IntegrityError, ProgrammingError

    for attempt in range(3):
        try:
            return optuna.storages.RDBStorage(url, **kwargs)
        except (IntegrityError, ProgrammingError) as e:
            if attempt == 2 or not ("already exists" in str(e) or "duplicate key" in str(e)):
                raise
            time.sleep(0.5 * (attempt + 1))
    raise AssertionError("unreachable")


def _open_journal(path: Path, *, create: bool) -> optuna.storages.JournalStorage:
    """Optuna's ``JournalStorage`` on the append-only log file ``path``."""
    from optuna.storages.journal import JournalFileBackend

    # Every journal line is one JSON object.
    _check_file(path, create=create, magic=b"{", kind=("journal", "an Optuna journal"))
    try:
        return optuna.storages.JournalStorage(JournalFileBackend(str(path)))
    except OSError as e:
        raise StudyError(f"cannot open journal {path}: {e.strerror or e}") from None
    except ValueError as e:  # a line that is not JSON
        raise StudyError(f"journal {path} is damaged: {e}") from None


def _begin_immediate(storage: optuna.storages.RDBStorage) -> None:
    """Make every SQLite transaction take the write lock when it begins.

    Python's sqlite3 begins a transaction lazily, so an Optuna session that reads and then
    writes must upgrade its lock mid-transaction; in WAL mode, when another process committed
    in between, SQLite answers "database is locked" at once instead of waiting for the busy
    timeout (seen when three interrupted workers closed their trials together). ``BEGIN
    IMMEDIATE`` queues for the lock up front, where the busy timeout applies. This is
    SQLAlchemy's documented recipe for pysqlite transactions.
    """
    from sqlalchemy import event

    engine = storage.engine

    @event.listens_for(engine, "connect")
    def _no_implicit_begin(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None

    @event.listens_for(engine, "begin")
    def _begin(conn: Any) -> None:
        conn.exec_driver_sql("BEGIN IMMEDIATE")

    engine.dispose()  # connections opened while Optuna set up its tables lack the hooks
