"""Running on a cluster: storage from the environment, journal files, ``--study`` aliases,
masked passwords, and the study-wide ``--max-trials`` budget under real races."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
import uuid
from pathlib import Path

import optuna
import pytest
from _synth import make_study, mixed_specs, one_worker
from optuna.trial import TrialState
from typer.testing import CliRunner

from bnsearch import keys
from bnsearch.analysis import load_trials
from bnsearch.cli import app
from bnsearch.config import DEFAULT_STORAGE, RunConfig, default_storage
from bnsearch.errors import ConfigError, StudyError
from bnsearch.search.budget import BudgetedStudy, BudgetReached, budget_lock, counted_trials
from bnsearch.storages import ENV_GRACE_PERIOD, ENV_HEARTBEAT_INTERVAL, open_storage
from bnsearch.urls import mask_url

runner = CliRunner()


# --- storage from the environment ---------------------------------------------------------


@pytest.mark.parametrize(
    ("bnsearch_env", "optuna_env", "expected"),
    [
        (None, None, DEFAULT_STORAGE),
        (None, "sqlite:///o.db", "sqlite:///o.db"),
        ("journal:///b.log", "sqlite:///o.db", "journal:///b.log"),
        ("  ", "sqlite:///o.db", "sqlite:///o.db"),
    ],
    ids=["neither", "optuna-only", "bnsearch-wins", "blank-is-unset"],
)
def test_default_storage_reads_the_environment(
    monkeypatch: pytest.MonkeyPatch, bnsearch_env: str | None, optuna_env: str | None, expected: str
) -> None:
    for var, value in (("BNSEARCH_STORAGE", bnsearch_env), ("OPTUNA_STORAGE", optuna_env)):
        if value is None:
            monkeypatch.delenv(var, raising=False)
        else:
            monkeypatch.setenv(var, value)
    assert default_storage() == expected
    assert RunConfig().storage == expected


def test_every_command_reads_the_storage_from_the_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'env.db'}"
    make_study(mixed_specs(), storage=url, name="mixed")
    monkeypatch.delenv("BNSEARCH_STORAGE", raising=False)
    monkeypatch.setenv("OPTUNA_STORAGE", url)
    monkeypatch.chdir(tmp_path)
    r = runner.invoke(app, ["studies"])
    assert r.exit_code == 0, r.output
    assert r.stdout.startswith("mixed ") and f"1 study in {url} (from $OPTUNA_STORAGE)" in r.stderr
    r = runner.invoke(app, ["export", "--study", "mixed", "--format", "json"])
    assert r.exit_code == 0, r.output
    assert (tmp_path / "mixed.json").exists() and "(from $OPTUNA_STORAGE)" in r.output
    assert len(load_trials("mixed")) == len(mixed_specs())  # the notebook API too
    assert not (tmp_path / "studies").exists()  # the default file was never created


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("postgresql+psycopg://bn:s3cr@t@db.example:5432/bn", "postgresql+psycopg://bn:***@db.example:5432/bn"),
        ("mysql://root:pw@h/db", "mysql://root:***@h/db"),
        ("postgresql://bn@h/db", "postgresql://bn@h/db"),
        ("sqlite:///studies/x.db", "sqlite:///studies/x.db"),
    ],
    ids=["password-with-at", "mysql", "no-password", "sqlite"],
)
def test_mask_url_masks_only_the_password(url: str, shown: str) -> None:
    assert mask_url(url) == shown


def test_a_password_from_the_environment_is_never_printed(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    # Nothing listens on port 9 of this machine: the connection fails at once.
    monkeypatch.setenv("BNSEARCH_STORAGE", "postgresql+psycopg://bn:hunter2@127.0.0.1:9/bn")
    monkeypatch.chdir(tmp_path)
    for args in (["studies"], ["run", "--dataset", "digits", "--trials", "1", "--epochs", "1"]):
        r = runner.invoke(app, args)
        assert r.exit_code == 2, r.output
        assert "bn:***@127.0.0.1:9/bn" in r.output and "hunter2" not in r.output


# --- --study and --study-name ----------------------------------------------------------


@pytest.mark.parametrize("flag", ["--study", "--study-name"])
@pytest.mark.parametrize("command", ["report", "export"])  # best: in the journal test below
def test_result_commands_take_study_and_study_name(command: str, flag: str, tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 's.db'}"
    make_study(mixed_specs(), storage=url, name="mixed")
    out = {"report": ["--out", str(tmp_path / "r.html")], "export": ["--out", str(tmp_path / "t.csv")]}
    r = runner.invoke(app, [command, flag, "mixed", "--storage", url, *out[command]])
    assert r.exit_code == 0, r.output


def test_run_takes_study_as_well_as_study_name(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 's.db'}"
    args = ["run", "--dataset", "digits", "--epochs", "1", "--strategy", "random", "--storage", url]
    r = runner.invoke(app, [*args, "--trials", "1", "--study", "alias"])
    assert r.exit_code == 0, r.output
    r = runner.invoke(app, [*args, "--trials", "1", "--study-name", "alias"])
    assert r.exit_code == 0, r.output
    assert "resuming study alias (1 trials so far)" in r.output
    assert len(optuna.load_study(study_name="alias", storage=url).trials) == 2


# --- journal files -----------------------------------------------------------------------


def test_journal_storage_serves_run_and_every_reader(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    url = "journal:///studies/j.log"  # relative, like the SQLite default
    args = ["run", "--dataset", "digits", "--epochs", "1", "--strategy", "random", "--storage", url]
    r = runner.invoke(app, [*args, "--trials", "2", "--study", "j"])
    assert r.exit_code == 0, r.output
    assert "created study j (0 trials so far) in journal:///studies/j.log" in r.output
    assert (tmp_path / "studies" / "j.log").read_bytes().startswith(b"{")
    absolute = f"journal:///{tmp_path / 'studies' / 'j.log'}"  # journal:////abs/path.log
    assert absolute.startswith("journal:////")
    r = runner.invoke(app, ["studies", "--storage", absolute])
    assert r.stdout.startswith("j  strategy=random  dataset=digits") and "complete=" in r.stdout
    for cmd in (["report", "--out", "j.html"], ["export", "--format", "csv"]):
        r = runner.invoke(app, [cmd[0], "--study", "j", "--storage", url, *cmd[1:]])
        assert r.exit_code == 0, (cmd, r.output)
    for flag in ("--study", "--study-name"):
        r = runner.invoke(app, ["best", flag, "j", "--storage", url])
        assert r.exit_code == 0 and "best trial #" in r.output, r.output
    frame = load_trials("j", url)
    assert len(frame) == 2 and set(frame["state"]) <= {"COMPLETE", "PRUNED"}

    from bnsearch.dashboard import make_app

    assert callable(make_app(url))


@pytest.mark.parametrize(
    ("url", "match"),
    [
        ("journal://j.log", "bad journal URL 'journal://j.log'; write it as journal:///relative/path.log"),
        ("journal:///", "bad journal URL"),
    ],
    ids=["two-slashes", "no-path"],
)
def test_bad_journal_urls_are_refused(url: str, match: str) -> None:
    with pytest.raises(StudyError, match=match):
        open_storage(url)


def test_readers_refuse_a_missing_or_foreign_journal(tmp_path: Path) -> None:
    with pytest.raises(StudyError, match="no study journal at"):
        open_storage(f"journal:///{tmp_path / 'none.log'}", create=False)
    assert not (tmp_path / "none.log").exists()
    (tmp_path / "text.log").write_text("hello\n")
    r = runner.invoke(app, ["studies", "--storage", f"journal:///{tmp_path / 'text.log'}"])
    assert r.exit_code == 2 and "is not an Optuna journal" in r.output and "Traceback" not in r.output


# --- the study-wide budget ---------------------------------------------------------------


def _retry_of(number: int, original: int) -> optuna.trial.FrozenTrial:
    t = optuna.trial.create_trial(state=TrialState.COMPLETE, value=0.5, system_attrs={"failed_trial": original})
    t.number = number
    return t


def test_a_retry_counts_once_with_its_original() -> None:
    plain = [optuna.trial.create_trial(state=TrialState.FAIL) for _ in range(3)]
    for i, t in enumerate(plain):
        t.number = i
    assert counted_trials(plain) == 3
    assert counted_trials([*plain, _retry_of(3, 1), _retry_of(4, 1)]) == 3


def test_max_trials_refuses_a_storage_without_a_lock() -> None:
    with pytest.raises(ConfigError, match="--max-trials needs a SQLite, journal or PostgreSQL storage"):
        budget_lock("mysql://u@h/db", optuna.storages.InMemoryStorage(), "x")
    with pytest.raises(ConfigError, match="--max-trials must be ≥ 1, got 0"):
        RunConfig(max_trials=0).validate()


def test_a_killed_trial_is_retried_inside_the_budget(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """A trial whose process died is failed by heartbeat and retried, and the retry does not
    use up a second place: the budget of 2 ends with the failed #0, its retry #1, and #2."""
    monkeypatch.setenv(ENV_HEARTBEAT_INTERVAL, "1")
    monkeypatch.setenv(ENV_GRACE_PERIOD, "2")
    url = f"sqlite:///{tmp_path / 's.db'}"
    storage = open_storage(url)
    base = optuna.create_study(study_name="b", storage=storage, direction="maximize")
    with pytest.warns(UserWarning, match="Heartbeat"):  # Optuna: heartbeats are for optimize()
        dead = base.ask()  # a trial whose process then died: one heartbeat, then silence
    dead.suggest_float("x", 0, 1)
    storage.record_heartbeat(dead._trial_id)
    time.sleep(3)
    study = BudgetedStudy(base, max_trials=2, lock=budget_lock(url, storage, "b"))
    with pytest.raises(BudgetReached):
        study.optimize(lambda t: t.suggest_float("x", 0, 1), n_trials=10)
    trials = study.get_trials()
    assert [t.state for t in trials] == [TrialState.FAIL, TrialState.COMPLETE, TrialState.COMPLETE]
    assert trials[1].system_attrs["failed_trial"] == 0 and trials[1].params == trials[0].params
    assert counted_trials(trials) == 2


# Each racing process opens the storage the way bnsearch does, waits for the start signal,
# then asks for trials as fast as it can until the budget stops it.
_RACE = """
import sys, time, optuna
from pathlib import Path
from bnsearch.search.budget import BudgetedStudy, BudgetReached, budget_lock
from bnsearch.storages import open_storage
optuna.logging.set_verbosity(optuna.logging.ERROR)
url, name, index, max_trials, folder = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), Path(sys.argv[5])
storage = open_storage(url)
base = optuna.load_study(study_name=name, storage=storage, sampler=optuna.samplers.RandomSampler(seed=index))
study = BudgetedStudy(base, max_trials=max_trials, lock=budget_lock(url, storage, name))
(folder / f"ready-{index}").touch()
while not (folder / "go").exists():
    time.sleep(0.001)
try:
    study.optimize(lambda t: t.suggest_float("x", 0, 1), n_trials=10_000, catch=())
except BudgetReached:
    print("budget reached")
"""


def race(url: str, tmp_path: Path, *, processes: int, max_trials: int) -> list[optuna.trial.FrozenTrial]:
    """``processes`` processes released at the same instant on one budgeted study."""
    name = f"race-{uuid.uuid4().hex[:8]}"
    optuna.create_study(study_name=name, storage=open_storage(url))
    folder = tmp_path / name
    folder.mkdir()
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", _RACE, url, name, str(i), str(max_trials), str(folder)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(processes)
    ]
    deadline = time.monotonic() + 120
    while len(list(folder.glob("ready-*"))) < processes and time.monotonic() < deadline:
        time.sleep(0.05)
    (folder / "go").touch()
    for p in procs:
        out, err = p.communicate(timeout=300)
        assert p.returncode == 0, err
        assert out.strip() == "budget reached", (out, err)
    return optuna.load_study(study_name=name, storage=open_storage(url, create=False)).trials


@pytest.mark.parametrize("backend", ["sqlite", "journal"])
def test_racing_processes_never_overshoot_the_budget(backend: str, tmp_path: Path) -> None:
    url = f"{backend}:///{tmp_path / ('s.db' if backend == 'sqlite' else 's.log')}"
    trials = race(url, tmp_path, processes=4, max_trials=30)
    assert len(trials) == 30
    assert {t.state for t in trials} == {TrialState.COMPLETE}
    assert sorted(t.number for t in trials) == list(range(30))


@pytest.mark.slow
def test_racing_processes_never_overshoot_the_budget_on_postgresql(postgres_url: str, tmp_path: Path) -> None:
    trials = race(postgres_url, tmp_path, processes=8, max_trials=60)
    assert len(trials) == 60
    assert {t.state for t in trials} == {TrialState.COMPLETE}


def _run_cmd(url: str, name: str, *extra: str) -> list[str]:
    quick = "--dataset digits --epochs 1 --strategy random --pruner none".split()
    return [sys.executable, "-m", "bnsearch", *one_worker(["run", *quick, "--storage", url, "--study", name, *extra])]


@pytest.mark.slow
def test_workers_progress_counts_the_study_against_max_trials(tmp_path: Path) -> None:
    """With --workers the progress line shows the study's count, as a single process does."""
    url = f"sqlite:///{tmp_path / 's.db'}"
    out = subprocess.run(
        _run_cmd(url, "budget-workers", "--max-trials", "4", "--workers", "2"),
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert out.returncode == 0, out.stderr
    counts = re.findall(r"\| study (\d+)/4 \|", out.stdout)
    assert counts and counts[-1] == "4", out.stdout


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["sqlite", "journal", "postgresql"])
def test_runs_started_together_add_exactly_max_trials(
    backend: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    """Three `bnsearch run --max-trials 7` (one with 2 workers) at once, as three machines would."""
    if backend == "postgresql":
        url = request.getfixturevalue("postgres_url")
    else:
        url = f"{backend}:///{tmp_path / ('s.db' if backend == 'sqlite' else 's.log')}"
    name = f"budget-{uuid.uuid4().hex[:8]}"
    # The study exists first, as on a cluster where a set-up step (or the first run) creates it.
    first = subprocess.run(_run_cmd(url, name, "--max-trials", "1"), capture_output=True, text=True, cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    procs = [
        subprocess.Popen(
            _run_cmd(url, name, "--max-trials", "7", *(("--workers", "2") if i == 0 else ())),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=tmp_path,
            env={**os.environ, "PYTHONPATH": os.environ.get("PYTHONPATH", "")},
        )
        for i in range(3)
    ]
    outputs = [p.communicate(timeout=600) for p in procs]
    for p, (out, err) in zip(procs, outputs, strict=True):
        assert p.returncode == 0, err
        assert "Traceback" not in err
        assert "of --max-trials 7)" in out
    trials = optuna.load_study(study_name=name, storage=open_storage(url, create=False)).trials
    assert len(trials) == 7
    assert {t.state for t in trials} <= {TrialState.COMPLETE, TrialState.PRUNED}
    assert len({t.user_attrs[keys.WORKER] for t in trials}) >= 2  # the budget really was shared
    assert any("| study 7/7 |" in out for out, _ in outputs), "\n---\n".join(out for out, _ in outputs)


# --- mixed hardware ------------------------------------------------------------------------


def _bf16_units(monkeypatch: pytest.MonkeyPatch, *, native: bool, emulated: bool = True) -> None:
    import bnsearch.core.train

    monkeypatch.setattr(bnsearch.core.train, "bf16_supported", lambda d: native)
    monkeypatch.setattr(bnsearch.core.train, "bf16_runs", lambda d: emulated)


def test_a_machine_without_bf16_units_joins_a_bf16_study(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from bnsearch.search.run import prepare_search

    url = f"sqlite:///{tmp_path / 's.db'}"
    cfg = RunConfig(dataset="digits", storage=url, device="cpu", study_name="mixed")
    _bf16_units(monkeypatch, native=True)  # the machine that created the study
    assert prepare_search(cfg).cfg.precision == "bf16"
    _bf16_units(monkeypatch, native=False)  # an older machine joins with --precision auto
    joined = prepare_search(cfg)
    assert joined.resumed and joined.cfg.precision == "bf16"
    with pytest.raises(StudyError, match="precision: study has 'bf16', this run has 'fp32'"):
        prepare_search(RunConfig(dataset="digits", storage=url, device="cpu", study_name="mixed", precision="fp32"))
    _bf16_units(monkeypatch, native=False, emulated=False)  # a device that cannot run bf16 at all
    with pytest.raises(ConfigError, match=r"cannot run bf16; run this machine on a study of its own \(--study NAME"):
        prepare_search(cfg)


def test_the_progress_line_counts_the_whole_study_under_a_budget() -> None:
    import io

    from rich.console import Console

    from bnsearch.cli.progress import SearchProgress

    study = make_study(mixed_specs())
    study.add_trial(_retry_of(len(study.trials), 0))  # a retry: counts once with trial #0
    out = io.StringIO()
    with SearchProgress(Console(file=out, width=200), total=40, label="run", study_total=40) as progress:
        progress(study, study.trials[-1])
    line = out.getvalue().strip()
    assert line.startswith(f"trial 1 (#{study.trials[-1].number}) complete") and "| study 7/40 |" in line, line


_OPEN_AT_ONCE = """
import sys, time
from bnsearch.storages import open_storage
time.sleep(max(0.0, float(sys.argv[2]) - time.time()))
open_storage(sys.argv[1], create=True)
"""


@pytest.mark.slow
def test_processes_opening_an_empty_postgresql_database_at_once_all_succeed(postgres_url: str) -> None:
    # The tasks of a job array open the storage together; on an empty database they all
    # create Optuna's tables, and every one must still open it.
    import psycopg
    from sqlalchemy.engine import make_url

    server = make_url(postgres_url)
    name = f"bnsearch_empty_{uuid.uuid4().hex[:8]}"
    admin = dict(host=server.host, port=server.port, user=server.username, password=server.password)
    with psycopg.connect(dbname=server.database, autocommit=True, **admin) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    try:
        url = server.set(database=name).render_as_string(hide_password=False)
        start = str(time.time() + 3.0)
        procs = [
            subprocess.Popen([sys.executable, "-c", _OPEN_AT_ONCE, url, start], stderr=subprocess.PIPE, text=True)
            for _ in range(6)
        ]
        errors = [p.communicate(timeout=120)[1] for p in procs]
        assert [p.returncode for p in procs] == [0] * 6, "\n".join(errors)
    finally:
        with psycopg.connect(dbname=server.database, autocommit=True, **admin) as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
