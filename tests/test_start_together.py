"""Processes that open a fresh study at the same instant: every one succeeds, the study-wide
``--max-trials`` is exact, and a process with other settings gets one clear refusal.

Each test starts ``PROCESSES`` long-lived processes; in every round they are released at the
same instant (a barrier file) onto a fresh storage, each runs the real ``bnsearch run`` command
in-process, and the round is checked. Starting the interpreters once keeps 20 rounds within a
minute or two; the race lies in opening the storage and creating the study, which every round
exercises from scratch.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import optuna
import pytest

from bnsearch import keys
from bnsearch.storages import open_storage

pytestmark = pytest.mark.slow

PROCESSES = 6  # with the same settings; one more process joins with other settings
ROUNDS = 20
MAX_TRIALS = 6
QUICK = tuple("--dataset digits --epochs 1 --strategy random --pruner none --save-models none --workers 1".split())

# One process of the race: for each round, wait for the round's command line and the "go"
# file, run it as `bnsearch run` would, and leave the exit code and output behind.
_RACER = """
import json, sys, time
from pathlib import Path
from typer.testing import CliRunner
from bnsearch.cli import app

folder, index, rounds = Path(sys.argv[1]), sys.argv[2], int(sys.argv[3])
runner = CliRunner()
for r in range(rounds):
    (folder / f"ready-{r}-{index}").touch()
    go = folder / f"go-{r}"
    while not go.exists():
        time.sleep(0.0005)
    args = json.loads((folder / f"args-{r}-{index}.json").read_text())
    res = runner.invoke(app, args)
    crash = None if res.exception is None or isinstance(res.exception, SystemExit) else repr(res.exception)
    out = {"exit": res.exit_code, "stdout": res.stdout, "stderr": res.stderr, "crash": crash}
    part = folder / f"part-{r}-{index}.json"
    part.write_text(json.dumps(out))
    part.rename(folder / f"done-{r}-{index}.json")  # whole, or not there yet
"""


def _wait_for(paths: Callable[[], int], count: int, *, timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while paths() < count:
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.01)


@contextmanager
def racers(folder: Path, n: int, rounds: int) -> Iterator[list[subprocess.Popen[str]]]:
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", _RACER, str(folder), str(i), str(rounds)],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            cwd=folder,
        )
        for i in range(n)
    ]
    try:
        yield procs
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
            p.communicate()


def race_rounds(
    tmp_path: Path,
    fresh_storage: Callable[[int], str],
    *,
    rounds: int = ROUNDS,
    after_round: Callable[[int], None] = lambda r: None,
) -> str:
    """Run ``rounds`` rounds; return a report of the rounds that went wrong (empty: none did).

    ``after_round`` runs once a round is checked (e.g. to drop its database).
    """
    folder = tmp_path / "race"
    folder.mkdir()
    n = PROCESSES + 1
    problems: list[str] = []
    failed_rounds = 0
    with racers(folder, n, rounds) as procs:
        for r in range(rounds):
            url = fresh_storage(r)
            name = f"together-{r}"
            for i in range(n):
                # The last process asks for another epoch count: another study identity.
                epochs = "2" if i == n - 1 else "1"
                args = ["run", *QUICK, "--epochs", epochs, "--max-trials", str(MAX_TRIALS)]
                args += ["--storage", url, "--study-name", name]
                (folder / f"args-{r}-{i}.json").write_text(json.dumps(args))
            _wait_for(lambda r=r: len(list(folder.glob(f"ready-{r}-*"))), n, timeout_s=180, what="ready")
            (folder / f"go-{r}").touch()
            _wait_for(lambda r=r: len(list(folder.glob(f"done-{r}-*"))), n, timeout_s=300, what=f"round {r}")
            results = [json.loads((folder / f"done-{r}-{i}.json").read_text()) for i in range(n)]
            found = _check_round(r, url, name, results)
            after_round(r)
            failed_rounds += bool(found)
            problems += found
        for p in procs:
            p.wait(timeout=60)
    return f"{failed_rounds} of {rounds} rounds failed:\n" + "\n".join(problems) if problems else ""


def _check_round(r: int, url: str, name: str, results: list[dict[str, object]]) -> list[str]:
    storage = open_storage(url, create=False, heartbeat=False)
    names = [s.study_name for s in storage.get_all_studies()]
    if names != [name]:
        return [f"round {r}: studies {names}"]
    study = optuna.load_study(study_name=name, storage=storage)
    stored_epochs = study.user_attrs[keys.STUDY_CONFIG]["space"]["epochs"]["value"]
    problems = []
    for i, res in enumerate(results):
        epochs = 2 if i == len(results) - 1 else 1
        err = str(res["stderr"]).strip()
        if epochs == stored_epochs:
            if res["exit"] != 0:
                problems.append(f"round {r} process {i}: exit {res['exit']}: {err or res['crash']}")
        elif res["exit"] != 2 or len(err.splitlines()) != 1 or "was created with different settings" not in err:
            problems.append(f"round {r} process {i} (other settings): exit {res['exit']}: {err or res['crash']}")
    n_trials = len(study.trials)
    if n_trials != MAX_TRIALS:
        problems.append(f"round {r}: {n_trials} trials, --max-trials {MAX_TRIALS}")
    return problems


@pytest.mark.parametrize("backend", ["sqlite", "journal"])
def test_processes_started_together_on_a_fresh_file_all_succeed(backend: str, tmp_path: Path) -> None:
    def fresh(r: int) -> str:
        return f"{backend}:///{tmp_path / f'round{r}' / ('s.db' if backend == 'sqlite' else 's.log')}"

    problems = race_rounds(tmp_path, fresh)
    assert not problems, problems


def test_processes_started_together_on_a_fresh_postgresql_database_all_succeed(
    postgres_url: str, tmp_path: Path
) -> None:
    import psycopg
    from sqlalchemy.engine import make_url

    server = make_url(postgres_url)
    admin = dict(host=server.host, port=server.port, user=server.username, password=server.password)
    prefix = f"bnsearch_together_{uuid.uuid4().hex[:6]}"

    def fresh(r: int) -> str:
        with psycopg.connect(dbname=server.database, autocommit=True, **admin) as conn:
            conn.execute(f"CREATE DATABASE {prefix}_{r}")
        return server.set(database=f"{prefix}_{r}").render_as_string(hide_password=False)

    def drop(r: int) -> None:
        # FORCE ends the racers' idle pooled connections too, which would otherwise pile up
        # past the server's max_connections over the rounds.
        with psycopg.connect(dbname=server.database, autocommit=True, **admin) as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {prefix}_{r} WITH (FORCE)")

    try:
        problems = race_rounds(tmp_path, fresh, after_round=drop)
    finally:
        for r in range(ROUNDS):
            drop(r)
    assert not problems, problems
