"""Faults really produced: SIGKILL of a worker, SIGINT / SIGTERM, a trial that raises, a trial
that diverges, and a resume with other settings; the study is checked afterwards."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import optuna
import pytest
from _synth import one_worker
from optuna.trial import FrozenTrial, TrialState
from typer.testing import CliRunner

from bnsearch import keys
from bnsearch.cli import app
from bnsearch.core.data import DeviceData
from bnsearch.storages import ENV_GRACE_PERIOD, ENV_HEARTBEAT_INTERVAL

# Long enough (a few seconds per trial on digits) that a signal lands mid-trial.
EPOCHS = 16
LONG_TRIALS = ("--dataset", "digits", "--epochs", str(EPOCHS), "--strategy", "random", "--pruner", "none")
FINISHED = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)


def _cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "bnsearch", *one_worker(args)]


def _trials(url: str, name: str) -> list[FrozenTrial]:
    return optuna.load_study(study_name=name, storage=url).get_trials(deepcopy=False)


def _wait_for(
    url: str,
    name: str,
    proc: subprocess.Popen[str],
    ready: Callable[[list[FrozenTrial]], bool],
    timeout_s: float = 180,
) -> list[FrozenTrial]:
    """Poll the study until ``ready(trials)``; fail with the process output if it ends first."""
    end = time.monotonic() + timeout_s
    while time.monotonic() < end:
        if proc.poll() is not None:
            out, err = proc.communicate()
            pytest.fail(f"bnsearch ended early (rc {proc.returncode}):\n{out}\n{err}")
        try:
            trials = _trials(url, name)
        except Exception:  # the study or the file does not exist yet
            trials = []
        if trials and ready(trials):
            return trials
        time.sleep(0.1)
    proc.kill()
    pytest.fail(f"timed out waiting for the study to reach the wanted state:\n{proc.communicate()}")


def _mid_trial(t: FrozenTrial) -> bool:
    """Running, with at least one epoch reported and at least half its epochs still to go, so a
    signal sent now lands before the trial can finish."""
    # The worker attribute names the process to signal; it is written before training starts,
    # but a poll can read a trial's attributes and its intermediate values at different moments.
    return (
        t.state == TrialState.RUNNING and 1 <= len(t.intermediate_values) <= EPOCHS // 2 and keys.WORKER in t.user_attrs
    )


def _finished_and_running(trials: list[FrozenTrial]) -> bool:
    """At least one finished trial and one trial in the middle of its training."""
    return any(t.state in FINISHED for t in trials) and any(_mid_trial(t) for t in trials)


def _snapshot(trials: list[FrozenTrial]) -> dict[int, tuple[Any, ...]]:
    """What must survive a fault: finished trials' state, value, curves and params."""
    return {
        t.number: (
            t.state,
            t.value,
            dict(t.intermediate_values),
            dict(t.params),
            t.user_attrs.get(keys.VAL_ACC_CURVE),
        )
        for t in trials
        if t.state in FINISHED
    }


def _assert_intact(before: dict[int, tuple[Any, ...]], trials: list[FrozenTrial]) -> None:
    after = _snapshot(trials)
    for number, snap in before.items():
        assert after[number] == snap, f"finished trial #{number} changed"


# --- SIGINT / SIGTERM -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("sig", "workers", "target"),
    [
        pytest.param(signal.SIGINT, 1, "process", id="ctrl-c-one-process"),
        pytest.param(signal.SIGTERM, 1, "process", id="sigterm-one-process", marks=pytest.mark.slow),
        pytest.param(signal.SIGINT, 3, "group", id="ctrl-c-at-terminal-3-workers", marks=pytest.mark.slow),
        pytest.param(signal.SIGTERM, 2, "process", id="sigterm-parent-2-workers", marks=pytest.mark.slow),
    ],
)
def test_interrupt_closes_the_running_trial_exits_and_resumes(
    tmp_path: Path, sig: signal.Signals, workers: int, target: str
) -> None:
    url, name = f"sqlite:///{tmp_path / 's.db'}", "intr"
    args = (
        "run",
        *LONG_TRIALS,
        "--trials",
        "20",
        "--workers",
        str(workers),
        "--storage",
        url,
        "--study-name",
        name,
    )
    # A session of its own: "group" then signals every process, as Ctrl-C at a terminal does.
    proc = subprocess.Popen(
        _cmd(*args),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=tmp_path,
        start_new_session=True,
    )
    trials = _wait_for(url, name, proc, _finished_and_running)
    before = _snapshot(trials)
    running = [t.number for t in trials if _mid_trial(t)]

    t0 = time.monotonic()
    (os.killpg if target == "group" else os.kill)(proc.pid, sig)
    out, err = proc.communicate(timeout=120)
    stop_s = time.monotonic() - t0

    assert proc.returncode == 128 + sig, (out, err)
    assert stop_s < 30, f"took {stop_s:.1f}s to stop"
    assert "Traceback" not in err
    lines = [line for line in err.splitlines() if line.strip()]
    assert [line for line in lines if "interrupted" in line] == [lines[-1]]
    assert lines[-1].startswith(f"interrupted by {sig.name}: running trials were closed as failed")
    assert "rerun the same command to resume" in lines[-1]

    trials = _trials(url, name)
    _assert_intact(before, trials)
    by_number = {t.number: t for t in trials}
    assert not [t.number for t in trials if t.state == TrialState.RUNNING]
    for n in running:
        t = by_number[n]
        assert t.state == TrialState.FAIL
        assert t.user_attrs[keys.FAIL_REASON] == "interrupted"
        # The epochs it finished are kept, as intermediate values and as the curve.
        assert t.intermediate_values
        assert [t.intermediate_values[e] for e in sorted(t.intermediate_values)] == t.user_attrs[keys.VAL_ACC_CURVE]
    # Every interrupted trial is queued again with its parameters, as a heartbeat retry is.
    interrupted = {t.number: t for t in trials if t.user_attrs.get(keys.FAIL_REASON) == "interrupted"}
    queued = {t.system_attrs["failed_trial"]: t for t in trials if t.state == TrialState.WAITING}
    assert set(running) <= set(interrupted) and sorted(queued) == sorted(interrupted)
    assert all(queued[n].params == interrupted[n].params for n in queued)

    n_after = len(trials)
    resumed = subprocess.run(
        _cmd("run", *LONG_TRIALS, "--trials", "1", "--storage", url, "--study-name", name),
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=300,
    )
    assert resumed.returncode == 0, resumed.stderr
    assert f"resuming study {name} ({n_after} trials so far)" in resumed.stdout
    final = _trials(url, name)
    assert len(final) == n_after  # the one trial of the resumed run was a queued retry
    rerun = next(t for t in final if t.number == min(q.number for q in queued.values()))
    assert rerun.state in (TrialState.COMPLETE, TrialState.PRUNED)  # PRUNED: a random draw that diverged
    assert rerun.params == interrupted[rerun.system_attrs["failed_trial"]].params
    _assert_intact(_snapshot(trials), final)


# --- SIGKILL ----------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_sigkilled_worker_trial_is_failed_by_heartbeat_and_retried(
    tmp_path: Path, backend: str, request: pytest.FixtureRequest
) -> None:
    url = f"sqlite:///{tmp_path / 's.db'}" if backend == "sqlite" else request.getfixturevalue("postgres_url")
    name = f"kill-{os.getpid()}-{time.time_ns()}"
    env = {**os.environ, ENV_HEARTBEAT_INTERVAL: "1", ENV_GRACE_PERIOD: "3"}
    args = ("run", *LONG_TRIALS, "--storage", url, "--study-name", name)
    proc = subprocess.Popen(
        _cmd(*args, "--trials", "5", "--workers", "2"),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=tmp_path,
        env=env,
    )
    trials = _wait_for(url, name, proc, _finished_and_running)
    before = _snapshot(trials)
    victim = next(t for t in trials if _mid_trial(t))
    victim_pid = int(victim.user_attrs[keys.WORKER].rsplit(":", 1)[1])
    assert victim_pid != proc.pid  # a worker, not the parent
    os.kill(victim_pid, signal.SIGKILL)

    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 1, (
        out,
        err,
    )  # the other worker finished the run; the death is reported
    assert f"(pid {victim_pid}) killed by SIGKILL" in err
    assert "Traceback" not in err

    time.sleep(4)  # past the grace period, so the next run fails the stale trial and retries it
    nxt = subprocess.run(
        _cmd(*args, "--trials", "1"),
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=env,
        timeout=300,
    )
    assert nxt.returncode == 0, nxt.stderr

    trials = _trials(url, name)
    _assert_intact(before, trials)
    assert len(trials) == 5 + 1  # each run added exactly what it asked for; the retry used a ticket
    assert not [t.number for t in trials if t.state in (TrialState.RUNNING, TrialState.WAITING)]
    dead = next(t for t in trials if t.number == victim.number)
    assert dead.state == TrialState.FAIL
    assert len(dead.intermediate_values) >= len(victim.intermediate_values) >= 1  # its epochs are kept
    retries = [t for t in trials if t.system_attrs.get("failed_trial") == victim.number]
    assert len(retries) == 1
    # Finished, not failed again: which trial was killed depends on timing, and a random draw
    # can diverge at the default batch size (a diverged trial is PRUNED; --pruner is none).
    assert retries[0].state in (TrialState.COMPLETE, TrialState.PRUNED)
    if retries[0].state == TrialState.PRUNED:
        assert "diverged" in str(retries[0].user_attrs.get(keys.PRUNE_REASON, ""))
    assert retries[0].params == dead.params  # the same configuration, run again


# --- trials that raise or diverge (in process) ------------------------------------------


def _run(*args: str) -> Any:
    return CliRunner().invoke(
        # batch 128: these random draws all converge there (at 32 one diverges: PRUNED)
        app,
        ["run", "--dataset", "digits", "--epochs", "1", "--batch-size", "128", "--strategy", "random", *args],
    )


def test_a_trial_that_raises_is_recorded_failed_and_the_search_goes_on(
    monkeypatch: pytest.MonkeyPatch, sqlite_url: str
) -> None:
    import bnsearch.search.objective as objective

    real = objective.build_model
    calls = []

    def oom_on_second_trial(*a: Any, **kw: Any) -> Any:
        calls.append(1)
        if len(calls) == 2:
            raise RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB (simulated)")
        return real(*a, **kw)

    monkeypatch.setattr(objective, "build_model", oom_on_second_trial)
    result = _run("--trials", "3", "--pruner", "none", "--storage", sqlite_url, "--study-name", "raise")
    assert result.exit_code == 0, result.output
    assert "trial 2/3 (#1) failed: RuntimeError: CUDA out of memory" in result.output
    trials = _trials(sqlite_url, "raise")
    assert [t.state for t in trials] == [TrialState.COMPLETE, TrialState.FAIL, TrialState.COMPLETE]
    assert trials[1].user_attrs[keys.FAIL_REASON].startswith("RuntimeError: CUDA out of memory. Tried to allocate")
    assert trials[2].value is not None and trials[2].intermediate_values


def test_a_trial_that_diverges_is_pruned_with_its_reason(tmp_path: Path, sqlite_url: str) -> None:
    space = tmp_path / "huge-lr.toml"
    space.write_text("lr = 1000.0\n")
    result = _run("--trials", "2", "--space", str(space), "--storage", sqlite_url, "--study-name", "nan")
    assert result.exit_code == 0, result.output
    trials = _trials(sqlite_url, "nan")
    assert [t.state for t in trials] == [TrialState.PRUNED] * 2
    for t in trials:
        assert t.user_attrs[keys.PRUNE_REASON].startswith("diverged: training loss became NaN or infinite")


# --- resuming with other settings -------------------------------------------------------


def _tiny_npz(path: Path) -> Path:
    rng = np.random.default_rng(0)
    np.savez(path, x=rng.random((60, 8, 8)).astype(np.float32), y=np.repeat(np.arange(3), 20))
    return path


@pytest.mark.parametrize(
    ("change", "named"),
    [
        (lambda d: ["--seed", "1"], "seed: study has 0, this run has 1"),
        (
            lambda d: ["--epochs", "2"],
            "space.epochs: study has {'value': 1}, this run has {'value': 2} (pass --epochs 1)",
        ),
        (
            lambda d: ["--batch-size", "64"],
            "(space.batch_size: study has {'value': 128}, this run has {'value': 64} (pass --batch-size 128));",
        ),
        (
            lambda d: [
                "--space",
                str(_write(d / "s.toml", 'activation = { choices = ["relu"] }\n')),
            ],
            "(space.activation: study has {'choices': ['relu', 'leaky_relu', 'tanh', 'sigmoid']}, this run has {'choices': ['relu']});",
        ),
        (
            lambda d: ["--dataset", str(_tiny_npz(d / "other.npz"))],
            "dataset: study has 'digits', this run has",
        ),
    ],
    ids=["seed", "epochs", "batch-size", "space-file", "dataset"],
)
def test_resume_with_other_settings_names_the_mismatch_and_changes_nothing(
    tmp_path: Path, sqlite_url: str, change: Callable[[Path], list[str]], named: str
) -> None:
    base = ["--trials", "1", "--storage", sqlite_url, "--study-name", "same"]
    assert _run(*base).exit_code == 0
    stored = optuna.load_study(study_name="same", storage=sqlite_url)
    attrs, n = stored.user_attrs, len(stored.trials)

    result = _run(*base, *change(tmp_path))
    assert result.exit_code == 2
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: study 'same' was created with different settings")
    assert named in lines[0]
    assert "choose a new --study-name" in lines[0]
    study = optuna.load_study(study_name="same", storage=sqlite_url)
    assert len(study.trials) == n and study.user_attrs == attrs


def _write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


@pytest.mark.parametrize(
    ("direction", "attrs", "message"),
    [
        (
            "minimize",
            {keys.STUDY_CONFIG: {}},
            "study 'foreign' minimizes; bnsearch studies maximize validation accuracy; choose another --study-name",
        ),
        (
            "maximize",
            {},
            "study 'foreign' was not created by bnsearch; choose another --study-name",
        ),
    ],
    ids=["direction", "not-bnsearch"],
)
def test_resume_of_a_foreign_study_is_refused(
    sqlite_url: str, direction: str, attrs: dict[str, Any], message: str
) -> None:
    study = optuna.create_study(study_name="foreign", storage=sqlite_url, direction=direction)
    for k, v in attrs.items():
        study.set_user_attr(k, v)
    result = _run("--trials", "1", "--storage", sqlite_url, "--study-name", "foreign")
    assert result.exit_code == 2
    assert result.output.strip() == f"error: {message}"
    assert len(optuna.load_study(study_name="foreign", storage=sqlite_url).trials) == 0


@pytest.mark.parametrize("where", ["after the storage write", "after report() returned"])
def test_ctrl_c_inside_report_keeps_the_curve_equal_to_the_stored_values(
    tiny_digits: DeviceData, monkeypatch: pytest.MonkeyPatch, where: str
) -> None:
    """A KeyboardInterrupt that lands once epoch 2's value is in the storage (inside
    ``trial.report`` or just after it) must not leave the curve one epoch short."""
    from bnsearch.core.space import SearchSpace
    from bnsearch.search.objective import Objective

    space = SearchSpace.from_mapping(
        {
            "lr": 0.05,
            "weight_decay": 1e-4,
            "activation": "relu",
            "bn_placement": "before_activation",
            "bn_classifier": False,
            "gamma_init": "ones",
            "beta_init": "zeros",
            "epochs": 3,
            "batch_size": 64,
        }
    )
    study = optuna.create_study(direction="maximize")
    storage = study._storage
    real_write = storage.set_trial_intermediate_value
    real_report = optuna.Trial.report

    def write_then_interrupt(trial_id: int, step: int, value: float) -> None:
        real_write(trial_id, step, value)
        if step == 2:
            raise KeyboardInterrupt

    def report_then_interrupt(self: optuna.Trial, value: float, step: int) -> None:
        real_report(self, value, step)
        if step == 2:
            raise KeyboardInterrupt

    if where == "after the storage write":
        monkeypatch.setattr(storage, "set_trial_intermediate_value", write_then_interrupt)
    else:
        monkeypatch.setattr(optuna.Trial, "report", report_then_interrupt)
    with pytest.raises(KeyboardInterrupt):
        study.optimize(Objective(space=space, data=tiny_digits, root_seed=0), n_trials=1)
    trial = study.trials[0]
    stored = [trial.intermediate_values[e] for e in sorted(trial.intermediate_values)]
    assert len(stored) == 2
    assert trial.user_attrs[keys.VAL_ACC_CURVE] == stored
    assert trial.user_attrs[keys.EPOCHS_RUN] == 2
    assert trial.user_attrs[keys.FAIL_REASON] == "interrupted"
