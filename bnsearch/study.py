"""Storage URLs → Optuna storages; create or resume a study; check a resumed study's identity."""

from __future__ import annotations

import logging
import os
import platform
import sqlite3
import time
import warnings
from importlib import metadata
from pathlib import Path
from typing import Any

import optuna

from bnsearch import keys
from bnsearch.errors import StudyError
from bnsearch.urls import mask_url

logger = logging.getLogger(__name__)

JOURNAL_SCHEME = "journal"  # journal:///path.log: Optuna's JournalStorage on a file
_SCHEMES = ("sqlite", JOURNAL_SCHEME, "postgresql", "mysql")
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


def _file_url_path(url: str, scheme: str) -> Path | None:
    """The file of a ``<scheme>:///relative`` or ``<scheme>:////absolute`` URL, else None."""
    if not url.startswith(f"{scheme}:"):
        return None
    rest = url[len(scheme) + 1 :]
    if not rest.startswith("///") or rest[3:] in ("", ":memory:"):
        return None
    return Path(rest[3:])


def sqlite_path(url: str) -> Path | None:
    """The file of a ``sqlite:///`` URL, or None for other schemes and in-memory SQLite."""
    return _file_url_path(url, "sqlite")


def journal_path(url: str) -> Path | None:
    """The file of a ``journal:///`` URL (an Optuna journal file), or None for other schemes."""
    return _file_url_path(url, JOURNAL_SCHEME)


def storage_file(url: str) -> Path | None:
    """The local file behind a SQLite or journal URL; None for a database server."""
    return sqlite_path(url) or journal_path(url)


def _check_url(url: str) -> None:
    scheme = url.split(":", 1)[0].split("+", 1)[0].lower() if ":" in url else ""
    if scheme not in _SCHEMES:
        raise StudyError(
            f"unsupported storage URL '{mask_url(url)}'; use sqlite:///path/to/file.db, "
            "journal:///path/to/file.log or postgresql+psycopg://user:password@host/dbname"
        )
    # sqlite:/// alone is in-memory SQLite (Optuna accepts it); a journal needs a file.
    if scheme == "sqlite" and not url.startswith("sqlite:///"):
        raise StudyError(
            f"bad SQLite URL '{mask_url(url)}'; write it as sqlite:///relative/path.db or sqlite:////abs/path.db"
        )
    if scheme == JOURNAL_SCHEME and journal_path(url) is None:
        raise StudyError(
            f"bad journal URL '{mask_url(url)}'; write it as journal:///relative/path.log or journal:////abs/path.log"
        )


def _check_file(path: Path, *, create: bool, magic: bytes, kind: tuple[str, str]) -> None:
    """Refuse a folder or a file of another kind; a missing file is an error unless ``create``
    (then its folder is made). ``kind``: ("database", "a SQLite database") for the messages."""
    if path.exists():
        if path.is_dir():
            raise StudyError(f"storage {path} is a folder, not {kind[1]} file")
        with path.open("rb") as f:
            head = f.read(len(magic))
        if head and head != magic:
            raise StudyError(f"storage {path} exists but is not {kind[1]}")
    elif not create:
        raise StudyError(f"no study {kind[0]} at {path}; run `bnsearch run` first or pass --storage")
    else:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise StudyError(f"cannot create the folder for {path}: {e.strerror or e}") from None


def _prepare_sqlite(path: Path, *, create: bool) -> None:
    _check_file(path, create=create, magic=b"SQLite format 3\x00", kind=("database", "a SQLite database"))
    if not create:
        _check_optuna_tables(path)
        return  # read-only commands leave the file exactly as it is
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
    _check_url(url)
    journal = journal_path(url)
    if journal is not None:
        return _open_journal(journal, create=create)
    path = sqlite_path(url)
    interval_s, grace_s = heartbeat_settings() if heartbeat else (0, 0)
    engine_kwargs: dict[str, Any] = {}
    if path is not None:
        _prepare_sqlite(path, create=create)
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
            storage = _rdb_storage(url, engine_kwargs=engine_kwargs, skip_table_creation=not create, **hb)
        if path is not None and create:
            _begin_immediate(storage)
        return storage
    except ImportError as e:
        raise StudyError(f"storage '{mask_url(url)}' needs a database driver that is not installed: {e}") from None
    except Exception as e:  # SQLAlchemy raises many kinds; all mean "cannot use this storage"
        msg = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise StudyError(f"cannot open storage '{mask_url(url)}': {msg}") from None


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


def library_versions() -> dict[str, str]:
    """Versions of Python and the libraries a result depends on (stored with studies and models)."""
    out = {"python": platform.python_version()}
    for pkg in ("bnsearch", "optuna", "torch", "numpy", "scikit-learn"):
        try:
            out[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            out[pkg] = "unknown"
    return out


def study_names(storage: optuna.storages.BaseStorage) -> list[str]:
    return sorted(s.study_name for s in storage.get_all_studies())


def load_existing(storage: optuna.storages.BaseStorage, name: str) -> optuna.Study:
    """Load a study that must exist; raise ``StudyError`` listing the existing ones otherwise."""
    names = study_names(storage)
    if name not in names:
        listing = ", ".join(names) if names else "none"
        raise StudyError(f"no study named '{name}' in this storage; existing studies: {listing}")
    return optuna.load_study(study_name=name, storage=storage)


def identity_mismatches(stored: dict[str, Any], wanted: dict[str, Any]) -> list[str]:
    """Keys whose values differ between a study's stored identity and this run's."""
    return sorted(k for k in set(stored) | set(wanted) if stored.get(k) != wanted.get(k))


# Space params that a ``bnsearch run`` option fixes, for the hint in a mismatch message.
_SPACE_OPTIONS = {"batch_size": "--batch-size", "epochs": "--epochs"}


def describe_mismatch(key: str, stored: Any, wanted: Any) -> str:
    """One clause of a resume refusal; for the space, only the params that differ."""
    if key != "space" or not isinstance(stored, dict) or not isinstance(wanted, dict):
        return f"{key}: study has {stored!r}, this run has {wanted!r}"
    parts = []
    for name in sorted(set(stored) | set(wanted)):
        old, new = stored.get(name), wanted.get(name)
        if old == new:
            continue
        clause = f"space.{name}: study has {old!r}, this run has {new!r}"
        if name in _SPACE_OPTIONS and isinstance(old, dict) and "value" in old:
            clause += f" (pass {_SPACE_OPTIONS[name]} {old['value']})"
        parts.append(clause)
    return "; ".join(parts)


def check_identity(study: optuna.Study, identity: dict[str, Any], *, rerun: str, option: str) -> None:
    """Refuse to add trials to ``study`` unless bnsearch created it with this ``identity``.

    Args:
        identity: What makes trials comparable (dataset, space, split seed, widths ...).
        rerun: The command to repeat with the original settings, for the message ("rerun").
        option: The option that names another study instead, for the message ("--study-name").

    Raises:
        StudyError: the study has no stored identity, minimizes, or was created with another
            identity (the message names each difference).
    """
    name = study.study_name
    stored = study.user_attrs.get(keys.STUDY_CONFIG)
    if stored is None:
        raise StudyError(f"study '{name}' was not created by bnsearch; choose another {option}")
    if study.direction != optuna.study.StudyDirection.MAXIMIZE:
        raise StudyError(
            f"study '{name}' minimizes; bnsearch studies maximize validation accuracy; choose another {option}"
        )
    diff = identity_mismatches(stored, identity)
    if diff:
        details = "; ".join(describe_mismatch(k, stored.get(k), identity.get(k)) for k in diff)
        raise StudyError(
            f"study '{name}' was created with different settings ({details}); "
            f"{rerun} with the original settings or choose a new {option}"
        )


def create_or_resume(
    storage: optuna.storages.BaseStorage,
    name: str,
    *,
    identity: dict[str, Any],
    attrs: dict[str, Any],
    sampler: optuna.samplers.BaseSampler,
    pruner: optuna.pruners.BasePruner,
) -> tuple[optuna.Study, bool]:
    """Create study ``name`` or resume it, refusing to mix runs of different identity.

    Args:
        identity: What makes trials comparable (dataset, space, split seed, widths ...). A
            resumed study must have been created with the same identity.
        attrs: Extra study attributes written at creation (versions, strategy, ...).

    Returns:
        The study and whether it already existed.

    Raises:
        StudyError: the study exists with another identity or direction.
    """
    if name in study_names(storage):
        study = optuna.load_study(study_name=name, storage=storage, sampler=sampler, pruner=pruner)
        check_identity(study, identity, rerun="rerun", option="--study-name")
        return study, True
    study = optuna.create_study(
        study_name=name,
        storage=storage,
        sampler=sampler,
        pruner=pruner,
        direction="maximize",
        load_if_exists=True,
    )
    if keys.STUDY_CONFIG not in study.user_attrs:
        study.set_user_attr(keys.STUDY_CONFIG, identity)
        for k in sorted(attrs):
            study.set_user_attr(k, attrs[k])
    return study, False
