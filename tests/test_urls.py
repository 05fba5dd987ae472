"""Passwords in storage and tracking URLs never reach the terminal, the logs or the study."""

from __future__ import annotations

import json
from pathlib import Path

import optuna
import pytest
from _synth import run_bnsearch as bnsearch

from bnsearch.urls import mask_url

SECRET = "Sup3rS3cretPW"
FAST = ["--dataset", "digits", "--epochs", "2", "--batch-size", "32", "--threads", "1", "--workers", "1"]


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        (
            f"postgresql+psycopg://bob:{SECRET}@db.example:5432/optuna",
            "postgresql+psycopg://bob:***@db.example:5432/optuna",
        ),
        (f"mysql+pymysql://bob:{SECRET}@db/optuna?charset=utf8", "mysql+pymysql://bob:***@db/optuna?charset=utf8"),
        (f"http://alice:{SECRET}@127.0.0.1:5000", "http://alice:***@127.0.0.1:5000"),
        (f"postgresql://bob:{SECRET}@x@db/optuna", "postgresql://bob:***@db/optuna"),  # unencoded "@"
        ("postgresql://bob@db/optuna", "postgresql://bob@db/optuna"),
        ("sqlite:///studies/bnsearch.db", "sqlite:///studies/bnsearch.db"),
        ("studies/artifacts", "studies/artifacts"),
    ],
    ids=["postgresql", "mysql-query", "http", "at-in-password", "no-password", "sqlite", "path"],
)
def test_mask_url(url: str, shown: str) -> None:
    assert mask_url(url) == shown


def test_unreachable_storage_error_hides_the_password(tmp_path: Path) -> None:
    url = f"postgresql+psycopg://bob:{SECRET}@127.0.0.1:9/nodb"  # port 9 (discard): refused at once
    # Read-only commands too: Optuna wraps their connection error in a message about a commit.
    commands = (["run", *FAST, "--trials", "1"], ["studies"], ["report", "--study", "s"], ["export", "--study", "s"])
    for args in commands:
        res = bnsearch(*args, "--storage", url, cwd=tmp_path)
        assert res.returncode == 2, res.stderr
        assert (
            res.stderr == "error: cannot connect to postgresql+psycopg://bob:***@127.0.0.1:9/nodb: connection refused\n"
        )
        assert SECRET not in res.stdout + res.stderr


def _stored_text(url: str) -> str:
    """Every study and trial attribute of every study in ``url``, as one string."""
    storage = optuna.storages.RDBStorage(url)
    parts = []
    for s in storage.get_all_studies():
        parts += [s.study_name, json.dumps(s.user_attrs, default=str), json.dumps(s.system_attrs, default=str)]
        for t in storage.get_all_trials(s._study_id):
            parts += [json.dumps(t.user_attrs, default=str), json.dumps(t.system_attrs, default=str), str(t.params)]
    return "\n".join(parts)


@pytest.mark.slow
def test_run_with_a_password_in_the_storage_url_shows_and_stores_none(tmp_path: Path, postgres_url: str) -> None:
    head, tail = postgres_url.split("://", 1)
    user, rest = tail.split("@", 1)
    url = f"{head}://{user.split(':', 1)[0]}:{SECRET}@{rest}"  # the test server trusts local logins
    name = f"secret-{tmp_path.name}"[:60]
    common = ["--storage", url, "--study-name", name, *FAST, "--trials", "2", "--strategy", "random"]
    outputs = [bnsearch("-v", "run", *common, cwd=tmp_path), bnsearch("run", *common, "--workers", "2", cwd=tmp_path)]
    outputs += [bnsearch("studies", "--storage", url, cwd=tmp_path)]
    outputs += [bnsearch("report", "--storage", url, "--study", name, "--out", str(tmp_path / "r.html"), cwd=tmp_path)]
    for res in outputs:
        assert res.returncode == 0, res.stderr
        assert SECRET not in res.stdout + res.stderr
    assert f"{user.split(':', 1)[0]}:***@" in outputs[0].stdout
    assert SECRET not in (tmp_path / "r.html").read_text(encoding="utf-8")
    assert SECRET not in _stored_text(url)
    assert name in _stored_text(url)  # the check above read the study
