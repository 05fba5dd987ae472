"""Where studies live: storage URLs → Optuna storages, and the locks shared by their processes."""

from bnsearch.storages._locks import PG_BUDGET_LOCK, creation_lock, file_lock, pg_advisory_lock
from bnsearch.storages._open import (
    ENV_GRACE_PERIOD,
    ENV_HEARTBEAT_INTERVAL,
    GRACE_PERIOD_S,
    HEARTBEAT_INTERVAL_S,
    MAX_RETRY,
    heartbeat_settings,
    open_storage,
)
from bnsearch.storages._urls import JOURNAL_SCHEME, journal_path, sqlite_path, storage_file

__all__ = [
    "ENV_GRACE_PERIOD",
    "ENV_HEARTBEAT_INTERVAL",
    "GRACE_PERIOD_S",
    "HEARTBEAT_INTERVAL_S",
    "JOURNAL_SCHEME",
    "MAX_RETRY",
    "PG_BUDGET_LOCK",
    "creation_lock",
    "file_lock",
    "heartbeat_settings",
    "journal_path",
    "open_storage",
    "pg_advisory_lock",
    "sqlite_path",
    "storage_file",
]
