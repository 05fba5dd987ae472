"""A process that keeps a SQLite storage open and opens the same file again (the findings and
confirm drivers do, between their rounds of worker processes) must keep its SQLite locks, or
the next worker to close believes itself the last connection and deletes the WAL under it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import optuna

from bnsearch.storages import open_storage

OTHER_PROCESS = """
import sqlite3, sys
con = sqlite3.connect(sys.argv[1], isolation_level=None, timeout=60)
con.execute("SELECT count(*) FROM trials").fetchone()
con.close()
"""


def test_opening_a_storage_again_keeps_the_open_ones_working(tmp_path: Path) -> None:
    db = tmp_path / "s.db"
    url = f"sqlite:///{db}"
    study = optuna.create_study(storage=open_storage(url), study_name="s")
    study.optimize(lambda t: t.suggest_float("x", 0, 1), n_trials=1)  # the engine now holds a connection

    open_storage(url)  # the driver's next round opens the file again
    subprocess.run([sys.executable, "-c", OTHER_PROCESS, str(db)], check=True, timeout=120)

    assert Path(f"{db}-wal").exists(), "another process's close deleted the WAL the open storage is using"
    study.optimize(lambda t: t.suggest_float("x", 0, 1), n_trials=1)  # "disk I/O error" when the WAL was lost
    fresh = optuna.load_study(study_name="s", storage=open_storage(url, create=False))
    assert len(fresh.trials) == 2
