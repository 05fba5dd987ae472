"""``--workers auto`` (the default of ``bnsearch run``): one 1-thread worker per idle core on a
CPU, decided from a simulated CPU load; one worker for a seeded run, which stays reproducible."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import optuna
import pytest
from typer.testing import CliRunner

import bnsearch.core.cpu as cpu
import bnsearch.search.workers as workers
from bnsearch.cli import app
from bnsearch.errors import ConfigError

REAL_AUTO = workers.auto_workers  # conftest makes in-process runs default to one worker


def load(monkeypatch: pytest.MonkeyPatch, *, cores: int, busy: float | None) -> None:
    monkeypatch.setattr(cpu, "usable_cores", lambda: cores)
    monkeypatch.setattr(cpu, "sample_others_busy", lambda *_a, **_k: busy)


@pytest.mark.parametrize(
    ("cores", "busy", "expected"),
    [(2, 0.0, 2), (2, 1.0, 1), (2, 2.0, 1), (2, 0.4, 2), (4, 1.0, 3), (8, None, 8)],
    ids=["idle", "one-busy", "two-busy", "a-little-busy", "4-cores-one-busy", "load-unknown"],
)
def test_auto_is_one_worker_per_idle_core(
    monkeypatch: pytest.MonkeyPatch, cores: int, busy: float | None, expected: int
) -> None:
    load(monkeypatch, cores=cores, busy=busy)
    assert REAL_AUTO("cpu", seeded=False) == expected


def test_a_seeded_run_gets_one_worker_and_gpus_one_each(monkeypatch: pytest.MonkeyPatch) -> None:
    load(monkeypatch, cores=2, busy=0.0)
    assert REAL_AUTO("cpu", seeded=True) == 1
    assert REAL_AUTO("cpu", seeded=False, devices=("cuda:0", "cuda:1", "cuda:2")) == 3


@pytest.mark.parametrize(("text", "expected"), [("auto", None), ("AUTO", None), ("3", 3)])
def test_parse_workers(text: str, expected: int | None) -> None:
    assert workers.parse_workers(text) == expected


@pytest.mark.parametrize(("text", "message"), [("0", "≥ 1, got 0"), ("two", "a count ≥ 1 or auto, got 'two'")])
def test_bad_workers_are_refused(text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        workers.parse_workers(text)


def _run(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, *extra: str) -> tuple[Any, list[int]]:
    """``bnsearch run`` with the default --workers and the real auto; multi-worker runs are
    recorded, not started."""
    started: list[int] = []
    monkeypatch.setattr(workers, "auto_workers", REAL_AUTO)
    monkeypatch.setattr("bnsearch.cli.run._run_workers", lambda cfg, _devices: started.append(cfg.workers))
    url = f"sqlite:///{tmp_path / 's.db'}"
    args = ["run", "--dataset", "digits", "--epochs", "1", "--trials", "2", "--strategy", "random"]
    res = CliRunner().invoke(app, [*args, "--storage", url, "--study-name", "a", "--device", "cpu", *extra])
    return res, started


@pytest.mark.parametrize(("busy", "expected"), [(0.0, [2]), (1.0, []), (2.0, [])], ids=["idle", "one-busy", "two-busy"])
def test_the_cli_default_follows_the_load(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, busy: float, expected: list[int]
) -> None:
    load(monkeypatch, cores=2, busy=busy)
    res, started = _run(monkeypatch, tmp_path)
    assert res.exit_code == 0, res.output
    assert started == expected  # [] : one in-process worker ran the trials


def test_a_seeded_run_is_reproducible_with_the_default(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    load(monkeypatch, cores=2, busy=0.0)  # an idle machine: unseeded, auto would start 2
    seen = []
    for i in range(2):
        res, started = _run(monkeypatch, tmp_path / str(i), "--seed", "3")
        assert res.exit_code == 0, res.output
        assert started == []
        study = optuna.load_study(study_name="a", storage=f"sqlite:///{tmp_path / str(i) / 's.db'}")
        seen.append([(t.params, t.value) for t in study.trials])
    assert seen[0] == seen[1]
