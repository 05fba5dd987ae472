"""Worker planning (threads, devices), signal handling, and real multi-process searches that
must add exactly the asked number of trials, against SQLite and PostgreSQL."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from collections import Counter
from pathlib import Path

import optuna
import pytest
import torch
from _synth import one_worker
from optuna.trial import TrialState

from bnsearch import keys
from bnsearch.config import RunConfig
from bnsearch.errors import ConfigError, StudyError
from bnsearch.processes import interrupts_raise
from bnsearch.search.interrupts import close_interrupted, track_running_trials, worker_id
from bnsearch.search.workers import parse_devices, plan_workers
from bnsearch.storages import ENV_GRACE_PERIOD, ENV_HEARTBEAT_INTERVAL, heartbeat_settings


def _cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "bnsearch", *one_worker(args)]


# --- planning ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("cores", "workers", "threads", "expected"),
    [(8, 4, None, 2), (8, 3, None, 2), (2, 4, None, 1), (16, 1, None, 16), (8, 4, 3, 3)],
    ids=[
        "8c-4w",
        "8c-3w-floor",
        "more-workers-than-cores",
        "one-worker-all-cores",
        "explicit-threads",
    ],
)
def test_plan_splits_cores_without_oversubscribing(
    monkeypatch: pytest.MonkeyPatch, cores: int, workers: int, threads: int | None, expected: int
) -> None:
    monkeypatch.setattr("bnsearch.core.cpu.usable_cores", lambda: cores)
    monkeypatch.setattr("bnsearch.core.cpu.sample_others_busy", lambda: 0.0)  # an idle machine
    slots = plan_workers(RunConfig(workers=workers, threads=threads, device="cpu"))
    assert [s.index for s in slots] == list(range(workers))
    assert {s.threads for s in slots} == {expected}
    if threads is None:
        assert sum(s.threads for s in slots) <= max(cores, workers)
    assert {s.device for s in slots} == {"cpu"}


@pytest.fixture
def three_gpus(monkeypatch: pytest.MonkeyPatch) -> None:
    """Pretend this machine has cuda:0..2 (only device bookkeeping is tested; nothing runs)."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 3)


@pytest.mark.usefixtures("three_gpus")
@pytest.mark.parametrize(
    ("device", "devices", "workers", "expected"),
    [
        ("auto", (), 4, ["cuda:0", "cuda:1", "cuda:2", "cuda:0"]),
        ("cuda", (), 2, ["cuda:0", "cuda:1"]),
        ("cuda:2", (), 2, ["cuda:2", "cuda:2"]),
        ("auto", ("cuda:1", "cuda:2"), 3, ["cuda:1", "cuda:2", "cuda:1"]),
        ("auto", ("cpu",), 2, ["cpu", "cpu"]),
    ],
    ids=["auto-round-robin", "cuda-round-robin", "one-gpu-pinned", "devices-list", "devices-cpu"],
)
def test_plan_gives_each_worker_a_device(
    device: str, devices: tuple[str, ...], workers: int, expected: list[str]
) -> None:
    slots = plan_workers(RunConfig(workers=workers, device=device), devices)
    assert [s.device for s in slots] == expected


def test_plan_starts_no_more_workers_than_trials(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("bnsearch.core.cpu.usable_cores", lambda: 8)
    monkeypatch.setattr("bnsearch.core.cpu.sample_others_busy", lambda: 0.0)  # an idle machine
    slots = plan_workers(RunConfig(workers=6, trials=2, device="cpu"))
    assert [(s.index, s.threads) for s in slots] == [(0, 4), (1, 4)]


@pytest.mark.usefixtures("three_gpus")
def test_plan_rejects_a_missing_gpu() -> None:
    with pytest.raises(ConfigError, match=r"--device cuda:7: no such GPU; this machine has 3"):
        plan_workers(RunConfig(workers=2), ("cuda:0", "cuda:7"))


@pytest.mark.parametrize("text", ["", " , ", "cuda:0,,cuda:1"], ids=["empty", "blanks", "hole"])
def test_parse_devices_rejects_empty_entries(text: str) -> None:
    with pytest.raises(ConfigError, match="--devices must be a comma-separated list"):
        parse_devices(text)


def test_parse_devices_strips() -> None:
    assert parse_devices(" cuda:0, cuda:1 ") == ("cuda:0", "cuda:1")
    assert parse_devices(None) == ()


# --- heartbeat settings and signals -----------------------------------------------------


def test_heartbeat_settings_default_and_override(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(ENV_HEARTBEAT_INTERVAL, raising=False)
    monkeypatch.delenv(ENV_GRACE_PERIOD, raising=False)
    assert heartbeat_settings() == (20, 60)
    monkeypatch.setenv(ENV_HEARTBEAT_INTERVAL, "1")
    monkeypatch.setenv(ENV_GRACE_PERIOD, "3")
    assert heartbeat_settings() == (1, 3)


@pytest.mark.parametrize(
    ("interval", "grace", "match"),
    [
        ("0", "3", "whole number of seconds"),
        ("1", "x", "whole number"),
        ("5", "5", "must be longer than"),
    ],
    ids=["zero", "not-a-number", "grace-not-longer"],
)
def test_heartbeat_settings_reject_bad_overrides(
    monkeypatch: pytest.MonkeyPatch, interval: str, grace: str, match: str
) -> None:
    monkeypatch.setenv(ENV_HEARTBEAT_INTERVAL, interval)
    monkeypatch.setenv(ENV_GRACE_PERIOD, grace)
    with pytest.raises(StudyError, match=match):
        heartbeat_settings()


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_interrupts_raise_turns_the_first_signal_into_keyboardinterrupt(
    sig: signal.Signals,
) -> None:
    before = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    with pytest.raises(KeyboardInterrupt), interrupts_raise(second="ignore") as intr:
        os.kill(os.getpid(), sig)
        time.sleep(5)  # the handler raises as soon as the signal arrives
    assert intr.signum == sig
    assert {s: signal.getsignal(s) for s in before} == before


# --- real multi-process searches --------------------------------------------------------


def _check_exact(url: str, study_name: str, expected: int) -> list[optuna.trial.FrozenTrial]:
    """All trials finished, numbered 0..expected-1 once each, curves consistent, none duplicated."""
    trials = optuna.load_study(study_name=study_name, storage=url).get_trials(deepcopy=False)
    assert sorted(t.number for t in trials) == list(range(expected))
    assert {t.state for t in trials} <= {TrialState.COMPLETE, TrialState.PRUNED}, Counter(t.state for t in trials)
    for t in trials:
        curve = t.user_attrs[keys.VAL_ACC_CURVE]
        assert [t.intermediate_values[e] for e in sorted(t.intermediate_values)] == curve
        if t.state == TrialState.COMPLETE:
            assert t.value == curve[-1]
    # Workers sample with different seeds: no configuration was drawn (or run) twice.
    lrs = [t.params["lr"] for t in trials]
    assert len(set(lrs)) == len(lrs)
    return trials


def _search(
    url: str, study_name: str, *, trials: int, workers: int, tmp_path: Path
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        _cmd(
            "run",
            "--dataset",
            "digits",
            "--epochs",
            "2",
            "--strategy",
            "random",
            "--pruner",
            "none",
            "--trials",
            str(trials),
            "--workers",
            str(workers),
            "--storage",
            url,
            "--study-name",
            study_name,
        ),
        capture_output=True,
        text=True,
        timeout=400,
        cwd=tmp_path,
    )


class _InterruptedWhileSampling(optuna.samplers.RandomSampler):
    """Ctrl-C after Optuna made the trial RUNNING, before the objective wrote the worker attribute."""

    def before_trial(self, study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        raise KeyboardInterrupt


def test_an_interrupt_before_the_objective_closes_the_trial_this_process_started(sqlite_url: str) -> None:
    study = optuna.create_study(storage=sqlite_url, study_name="s", sampler=_InterruptedWhileSampling())
    other_process = optuna.load_study(study_name="s", storage=sqlite_url)
    foreign = other_process.ask()  # RUNNING, no worker attribute yet: not ours to close
    started = track_running_trials(study)
    with pytest.raises(KeyboardInterrupt):
        study.optimize(lambda t: 0.0, n_trials=1)
    assert close_interrupted(study, worker_id(), started) == [1]
    trials = study.get_trials()
    # The interrupted trial is queued again (WAITING), as every interrupted trial is.
    assert [t.state for t in trials] == [TrialState.RUNNING, TrialState.FAIL, TrialState.WAITING]
    assert trials[1].user_attrs[keys.FAIL_REASON] == "interrupted"
    assert trials[2].system_attrs["failed_trial"] == 1
    assert trials[0].number == foreign.number


def test_two_workers_add_exactly_the_asked_trials_fast(tmp_path: Path) -> None:
    """The cheap version of the parallel test below, for the default run."""
    url = f"sqlite:///{tmp_path / 's.db'}"
    result = subprocess.run(
        _cmd(
            "run",
            "--dataset",
            "digits",
            "--epochs",
            "1",
            "--strategy",
            "random",
            "--trials",
            "3",
            "--workers",
            "2",
            "--storage",
            url,
            "--study-name",
            "fast",
        ),
        capture_output=True,
        text=True,
        timeout=300,
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    assert "2 workers on cpu" in result.stdout and "trial 3/3" in result.stdout
    trials = optuna.load_study(study_name="fast", storage=url).get_trials(deepcopy=False)
    assert sorted(t.number for t in trials) == [0, 1, 2]
    assert all(t.state in (TrialState.COMPLETE, TrialState.PRUNED) for t in trials)


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_parallel_workers_add_exactly_the_asked_trials(
    backend: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    url = f"sqlite:///{tmp_path / 's.db'}" if backend == "sqlite" else request.getfixturevalue("postgres_url")
    name = f"par-{uuid.uuid4().hex[:8]}"

    first = _search(url, name, trials=10, workers=3, tmp_path=tmp_path)
    assert first.returncode == 0, first.stderr
    assert "locked" not in first.stdout + first.stderr
    assert "3 workers on cpu" in first.stdout
    assert "trial 10/10" in first.stdout
    trials = _check_exact(url, name, 10)
    workers = Counter(t.user_attrs[keys.WORKER] for t in trials)
    assert len(workers) >= 2, workers  # the work really was shared

    second = _search(url, name, trials=7, workers=4, tmp_path=tmp_path)  # resume with more workers
    assert second.returncode == 0, second.stderr
    assert "resuming study" in second.stdout
    after = _check_exact(url, name, 17)
    by_number = {t.number: t for t in after}
    for t in trials:  # the first run's trials are untouched
        assert by_number[t.number].value == t.value
        assert by_number[t.number].intermediate_values == t.intermediate_values


# Each hammering process: open the storage the way bnsearch does (WAL, busy timeout,
# heartbeats), then write trials as fast as it can; any "database is locked" raises (catch=()).
_HAMMER = """
import sys, optuna
from bnsearch.storages import open_storage
optuna.logging.set_verbosity(optuna.logging.ERROR)
study = optuna.load_study(study_name="hammer", storage=open_storage(sys.argv[1]),
                          sampler=optuna.samplers.RandomSampler(seed=int(sys.argv[2])))
def objective(trial):
    x = trial.suggest_float("x", 0, 1)
    for step in range(3):
        trial.report(x * step, step)
    trial.set_user_attr("curve", [x] * 10)
    return x
study.optimize(objective, n_trials=int(sys.argv[3]), catch=())
"""


@pytest.mark.slow
def test_sqlite_holds_concurrent_writers_without_lock_errors(tmp_path: Path) -> None:
    from bnsearch.storages import open_storage

    url = f"sqlite:///{tmp_path / 's.db'}"
    optuna.create_study(study_name="hammer", storage=open_storage(url))
    n_procs, n_trials = 4, 100
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", _HAMMER, url, str(i), str(n_trials)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(n_procs)
    ]
    outputs = [p.communicate(timeout=500) for p in procs]
    for p, (_, err) in zip(procs, outputs, strict=True):
        assert p.returncode == 0, err
        assert "locked" not in err
    trials = optuna.load_study(study_name="hammer", storage=url).trials
    assert len(trials) == n_procs * n_trials
    assert {t.state for t in trials} == {TrialState.COMPLETE}
    assert sorted(t.number for t in trials) == list(range(n_procs * n_trials))
