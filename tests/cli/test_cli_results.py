"""`bnsearch studies|report|export|dashboard` and `run --preset` through the CLI."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pandas as pd
import pytest
from _synth import make_study, mixed_specs
from typer.testing import CliRunner

from bnsearch import presets
from bnsearch.cli import app
from bnsearch.errors import ConfigError

runner = CliRunner()


@pytest.fixture(scope="module")
def stored(tmp_path_factory: pytest.TempPathFactory) -> str:
    url = f"sqlite:///{tmp_path_factory.mktemp('db') / 's.db'}"
    make_study(mixed_specs(), storage=url, name="mixed")
    make_study([{"val": (0.5, 0.7)}], storage=url, name="single")
    return url


def test_studies_lists_one_line_per_study(stored: str) -> None:
    r = runner.invoke(app, ["studies", "--storage", stored])
    assert r.exit_code == 0, r.output
    lines = r.stdout.strip().splitlines()
    assert len(lines) == 2
    assert f"2 studies in {stored}" in r.stderr
    assert lines[0].startswith("mixed  strategy=random  dataset=digits  complete=4 pruned=2 failed=1  best=0.9500")
    assert "last_update=2026-01-01 12:01:02" in lines[0]
    assert lines[1].startswith("single ")


def test_report_and_export_write_files(stored: str, tmp_path: Path) -> None:
    out = tmp_path / "r.html"
    r = runner.invoke(app, ["report", "--study", "mixed", "--storage", stored, "--out", str(out)])
    assert r.exit_code == 0, r.output
    assert f"wrote {out}" in r.output and out.stat().st_size > 1_000_000
    for fmt in ("csv", "parquet", "json"):
        target = tmp_path / f"t.{fmt}"
        r = runner.invoke(
            app,
            [
                "export",
                "--study",
                "mixed",
                "--storage",
                stored,
                "--format",
                fmt,
                "--out",
                str(target),
            ],
        )
        assert r.exit_code == 0, r.output
        assert target.exists()
    assert len(pd.read_csv(tmp_path / "t.csv")) == 7


def test_export_default_file_name(stored: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    r = runner.invoke(app, ["export", "--study", "single", "--storage", stored, "--format", "json"])
    assert r.exit_code == 0, r.output
    assert json.loads((tmp_path / "single.json").read_text())[0]["state"] == "COMPLETE"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["report", "--study", "nope"],
            "error: no study named 'nope' in this storage; existing studies: mixed, single",
        ),
        (["export", "--study", "nope"], "error: no study named 'nope'"),
        (["export", "--study", "mixed", "--format", "xlsx"], "error: unknown export format 'xlsx'"),
        (["dashboard", "--port", "70000"], "error: --port must be between 0 and 65535, got 70000"),
    ],
    ids=["report-missing-study", "export-missing-study", "bad-format", "bad-port"],
)
def test_bad_input_exits_2_with_one_line(stored: str, args: list[str], message: str) -> None:
    r = runner.invoke(app, [*args, "--storage", stored])
    assert r.exit_code == 2
    assert r.output.startswith(message) and len(r.output.strip().splitlines()) == 1
    assert "Traceback" not in r.output


@pytest.mark.parametrize("command", ["studies", "report", "export", "dashboard"])
def test_missing_database_is_an_error_and_is_not_created(tmp_path: Path, command: str) -> None:
    db = tmp_path / "none.db"
    args = [command, "--storage", f"sqlite:///{db}"] + (["--study", "x"] if command in ("report", "export") else [])
    r = runner.invoke(app, args)
    assert r.exit_code == 2 and r.output.startswith("error: no study database at")
    assert not db.exists()


def test_preset_values_and_explicit_override() -> None:
    p = presets.load_preset("findings")
    assert p.run["strategy"] == "grid" and p.run["pruner"] == "none" and p.run["dataset"] == "digits"
    assert p.run["threads"] == 1
    assert Path(p.run["space"]).is_file()
    got = presets.resolve("findings", {"trials": 30}, trials=None, dataset="mnist5k", strategy=None)
    assert got == {"trials": 240, "dataset": "mnist5k", "strategy": "grid"}
    assert presets.resolve(None, {"trials": 30}, trials=None) == {"trials": 30}
    with pytest.raises(ConfigError, match="unknown preset 'nope'; choose one of: findings"):
        presets.load_preset("nope")


def test_findings_preset_grid_gives_every_group_enough_trials() -> None:
    """The preset's grid, enumerated: every group a finding compares has ≥ MIN_TRIALS trials."""
    from bnsearch.core.space import SearchSpace
    from bnsearch.report.verdicts import MIN_TRIALS

    p = presets.load_preset("findings")
    grid = SearchSpace.from_toml(p.run["space"]).grid()
    n = 1
    for values in grid.values():
        n *= len(values)
    assert n == p.run["trials"]
    per_act_no_bn = len(grid["lr"]) * len(grid["gamma_init"])  # no BN: placement none, no classifier
    per_act_gamma = len(grid["lr"]) * (len(grid["bn_placement"]) * len(grid["bn_classifier"]) - 1)
    assert min(per_act_no_bn, per_act_gamma) >= MIN_TRIALS


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _get_json(url: str) -> dict:  # type: ignore[type-arg]
    with urllib.request.urlopen(url, timeout=10) as resp:
        return json.loads(resp.read())  # type: ignore[no-any-return]


def test_dashboard_serves_the_studies_and_the_saved_models(tmp_path: Path) -> None:
    """optuna-dashboard's own server, with the artifact store beside the database."""
    from optuna.artifacts import upload_artifact

    from bnsearch.dashboard import start_dashboard
    from bnsearch.model_folder import AtomicFileSystemArtifactStore

    url = f"sqlite:///{tmp_path / 's.db'}"
    study = make_study(mixed_specs(), storage=url, name="mixed")
    (tmp_path / "model.pt").write_bytes(b"weights of trial 7")
    store = AtomicFileSystemArtifactStore(tmp_path / "artifacts")
    trial = study.ask()  # artifacts are linked while a trial runs
    artifact_id = upload_artifact(artifact_store=store, file_path=str(tmp_path / "model.pt"), study_or_trial=trial)
    study.tell(trial, 0.5)
    board = start_dashboard(url, host="127.0.0.1", port=0)
    try:
        assert board.artifacts == tmp_path / "artifacts"
        assert board.url == f"http://127.0.0.1:{board.port}/dashboard/"
        base = f"http://127.0.0.1:{board.port}"
        summaries = {s["study_name"]: s for s in _get_json(f"{base}/api/studies")["study_summaries"]}
        study_id = summaries["mixed"]["study_id"]
        detail = _get_json(f"{base}/api/studies/{study_id}")
        assert sorted(t["state"] for t in detail["trials"]) == ["Complete"] * 5 + ["Fail"] + ["Pruned"] * 2
        listed = {t["number"]: [a["filename"] for a in t["artifacts"]] for t in detail["trials"]}
        assert listed[7] == ["model.pt"] and listed[0] == []
        trial_id = next(t["trial_id"] for t in detail["trials"] if t["number"] == 7)
        with urllib.request.urlopen(f"{base}/artifacts/{study_id}/{trial_id}/{artifact_id}", timeout=10) as resp:
            assert resp.read() == b"weights of trial 7"
    finally:
        board.stop()
    assert not board.process.is_alive()
    with pytest.raises(OSError):
        _get_json(f"{base}/api/studies")  # nothing listens any more


def test_dashboard_stops_on_ctrl_c_while_requests_are_served(stored: str) -> None:
    """Ctrl-C (KeyboardInterrupt in the waiting thread) stops it even with requests in flight."""
    import _thread
    import threading

    from bnsearch.dashboard import start_dashboard

    board = start_dashboard(stored, host="127.0.0.1", port=0)
    base = f"http://127.0.0.1:{board.port}"
    answers: list[int] = []

    def browse_then_ctrl_c() -> None:
        try:
            for _ in range(3):
                answers.append(len(_get_json(f"{base}/api/studies")["study_summaries"]))
        finally:  # a failed request must fail the test, not leave it waiting for Ctrl-C
            _thread.interrupt_main()  # what Ctrl-C does to the main thread

    threading.Thread(target=browse_then_ctrl_c, daemon=True).start()
    board.wait_until_interrupted()  # returns on the KeyboardInterrupt
    assert answers == [2, 2, 2]
    assert not board.process.is_alive()
    with pytest.raises(OSError):
        _get_json(f"{base}/api/studies")  # the server is gone


def test_dashboard_port_in_use_is_one_error_line(stored: str) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        r = runner.invoke(app, ["dashboard", "--storage", stored, "--port", str(s.getsockname()[1])])
    assert r.exit_code == 2 and r.output.startswith("error: cannot listen on 127.0.0.1:")


@pytest.mark.slow
def test_dashboard_command_serves_then_stops_on_ctrl_c(stored: str) -> None:
    import signal
    import threading

    port = _free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "bnsearch", "dashboard", "--storage", stored, "--port", str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=dict(os.environ),
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert f"http://127.0.0.1:{port}/dashboard/" in line
        deadline = time.monotonic() + 30
        while True:
            try:
                studies = _get_json(f"http://127.0.0.1:{port}/api/studies")["study_summaries"]
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
        assert {s["study_name"] for s in studies} == {"mixed", "single"}
        # Ctrl-C while a client keeps polling, as the dashboard page does.
        stop = threading.Event()

        def poll() -> None:
            while not stop.is_set():
                try:
                    _get_json(f"http://127.0.0.1:{port}/api/studies/1")
                except OSError:
                    return

        poller = threading.Thread(target=poll, daemon=True)
        poller.start()
        time.sleep(0.5)
        proc.send_signal(signal.SIGINT)
        try:
            rest, _ = proc.communicate(timeout=30)
        finally:
            stop.set()
        assert proc.returncode == 0, rest
        assert "dashboard stopped" in rest and "Traceback" not in rest
    finally:
        if proc.poll() is None:
            proc.kill()


def test_run_with_findings_preset_then_report(tmp_path: Path) -> None:
    """A real (tiny) search with the preset; explicit --trials/--epochs override it."""
    import optuna

    from bnsearch import keys

    url = f"sqlite:///{tmp_path / 'p.db'}"
    r = runner.invoke(
        app,
        [
            "run",
            "--preset",
            "findings",
            "--trials",
            "3",
            "--epochs",
            "1",
            "--storage",
            url,
        ],
    )
    assert r.exit_code == 0, r.output
    assert "(1 thread)" in r.output  # the preset's threads
    study = optuna.load_study(study_name="digits-findings", storage=url)
    assert study.user_attrs[keys.STUDY_STRATEGY] == "grid"
    assert study.user_attrs[keys.STUDY_PRUNER] == "none"
    space = study.user_attrs[keys.STUDY_CONFIG]["space"]
    assert space["epochs"] == {"value": 1} and space["lr"] == {"choices": [0.01, 0.03, 0.1, 0.3, 1.0]}
    trials = study.get_trials()
    assert len(trials) == 3 and all(t.user_attrs[keys.EPOCHS_RUN] == 1 for t in trials)
    r = runner.invoke(app, ["studies", "--storage", url])
    assert r.stdout.startswith("digits-findings  strategy=grid  dataset=digits  complete=3")
    out = tmp_path / "p.html"
    r = runner.invoke(app, ["report", "--study", "digits-findings", "--storage", url, "--out", str(out)])
    assert r.exit_code == 0, r.output
    assert out.exists()


def test_read_only_commands_leave_a_foreign_sqlite_file_alone(tmp_path: Path) -> None:
    import sqlite3

    from typer.testing import CliRunner

    from bnsearch.cli import app

    db = tmp_path / "other.db"
    con = sqlite3.connect(db)
    con.execute("CREATE TABLE notes (x TEXT)")
    con.commit()
    con.close()
    before = db.read_bytes()
    for args in (["studies"], ["report", "--study", "x"], ["export", "--study", "x", "--format", "csv"]):
        result = CliRunner().invoke(app, [*args, "--storage", f"sqlite:///{db}"])
        assert result.exit_code == 2, result.output
        assert "holds no Optuna studies" in result.output and "Traceback" not in result.output
    assert db.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["other.db"]  # no -wal / -shm files either
