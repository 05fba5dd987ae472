"""--mlflow-uri: one MLflow run per trial on a real `mlflow server`, read back with MlflowClient."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import optuna
import pytest
from _synth import run_bnsearch as bnsearch
from optuna.trial import TrialState
from typer.testing import CliRunner

from bnsearch import keys
from bnsearch.cli import app

RUN = ["--dataset", "digits", "--epochs", "2", "--batch-size", "64", "--threads", "1", "--precision", "fp32"]
RUN += ["--strategy", "random", "--pruner", "none", "--study-name", "tracked"]
SECRET = "Tr4ckS3cret"


def _in_ci() -> bool:
    return os.environ.get("CI", "").lower() in ("1", "true", "yes")


@pytest.fixture(scope="module")
def mlflow_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real MLflow tracking server on 127.0.0.1 (SQLite backend, artifacts in tmp): its URL.

    Skipped when mlflow is not installed, except in CI, where the tracking extra must be.
    """
    try:
        import mlflow  # noqa: F401
    except ImportError:
        if _in_ci():
            pytest.fail('CI must run the MLflow tests: install the extra with pip install -e ".[tracking]"')
        pytest.skip('mlflow is not installed (pip install -e ".[tracking]")')
    root = tmp_path_factory.mktemp("mlflow")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    log = (root / "server.log").open("w")
    cmd = [sys.executable, "-m", "mlflow", "server", "--host", "127.0.0.1", "--port", str(port)]
    cmd += ["--backend-store-uri", f"sqlite:///{root / 'mlflow.db'}", "--artifacts-destination", str(root / "art")]
    cmd += ["--workers", "1"]
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, cwd=root)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                with urllib.request.urlopen(f"{url}/health", timeout=2):
                    break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("no mlflow server: " + (root / "server.log").read_text()[-2000:]) from None
                time.sleep(0.5)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


def _runs(url: str, experiment: str) -> list:  # type: ignore[type-arg]
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=url)
    exp = client.get_experiment_by_name(experiment)
    assert exp is not None, f"no experiment {experiment}"
    return list(client.search_runs([exp.experiment_id], max_results=1000))


@pytest.mark.slow
def test_mlflow_round_trip_resume_and_masking(tmp_path: Path, mlflow_server: str) -> None:
    from mlflow.tracking import MlflowClient

    (tmp_path / "space.toml").write_text("lr = { low = 0.02, high = 0.3, log = true }\n")
    url = f"sqlite:///{tmp_path / 's.db'}"
    # A password in the tracking URI: the server ignores it, nothing may print or store it.
    host = mlflow_server.split("://", 1)[1]
    tracking = f"http://bob:{SECRET}@{host}"
    args = ["run", "--storage", url, "--space", "space.toml", *RUN, "--mlflow-uri", tracking, "--save-models", "all"]
    first = bnsearch(*args, "--trials", "3", cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    assert "MLflow http://bob:***@" in first.stdout
    again = bnsearch(*args, "--trials", "2", "--workers", "2", cwd=tmp_path)  # resumed, two processes
    assert again.returncode == 0, again.stderr
    for res in (first, again):
        assert SECRET not in res.stdout + res.stderr and "not logged to MLflow" not in res.stderr

    study = optuna.load_study(study_name="tracked", storage=url)
    trials = {t.number: t for t in study.get_trials()}
    runs = _runs(mlflow_server, "tracked")
    by_trial = {int(r.data.tags["bnsearch.trial_number"]): r for r in runs}
    assert len(runs) == len(by_trial) == len(trials) == 5  # one run per trial, none twice
    client = MlflowClient(tracking_uri=mlflow_server)
    for number, run in by_trial.items():
        t = trials[number]
        assert run.info.run_name == f"trial-{number}" and run.info.status == "FINISHED"
        assert run.data.tags["optuna.state"] == t.state.name
        assert run.data.params == {k: str(v) for k, v in t.user_attrs[keys.RESOLVED_PARAMS].items()}
        history = client.get_metric_history(run.info.run_id, "val_acc")
        assert [(m.step, m.value) for m in history] == [(1, t.intermediate_values[1]), (2, t.intermediate_values[2])]
        assert [m.step for m in client.get_metric_history(run.info.run_id, "train_loss")] == [1, 2]
        assert len(client.get_metric_history(run.info.run_id, "train_acc")) == 2
        assert run.data.tags["bnsearch.storage"] == url
        assert SECRET not in str(run.data.tags) + str(run.data.params)
        if t.state == TrialState.COMPLETE:
            files = sorted(a.path for a in client.list_artifacts(run.info.run_id, "model"))
            assert files == ["model/config.json", "model/model.pt"]
    # Logging a trial again (a callback run twice, a retried sync) adds nothing.
    from bnsearch.tracking import MlflowLogger

    assert MlflowLogger(uri=mlflow_server, storage=url).log_trial("tracked", trials[0]) is None
    assert len(_runs(mlflow_server, "tracked")) == 5


def test_missing_mlflow_is_one_error_line_before_any_trial(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "mlflow", None)  # import mlflow now raises ImportError
    url = f"sqlite:///{tmp_path / 's.db'}"
    r = CliRunner().invoke(app, ["run", "--storage", url, *RUN, "--trials", "1", "--mlflow-uri", "http://127.0.0.1:9"])
    assert r.exit_code == 2, r.output
    assert (
        r.output.startswith("error: --mlflow-uri needs the package 'mlflow'")
        and 'pip install -e ".[tracking]"' in r.output
    )
    assert not (tmp_path / "s.db").exists()


def test_unreachable_mlflow_server_is_one_error_line_before_any_trial(tmp_path: Path) -> None:
    pytest.importorskip("mlflow")
    url = f"sqlite:///{tmp_path / 's.db'}"
    res = bnsearch(
        "run", "--storage", url, *RUN, "--trials", "1", "--mlflow-uri", f"http://bob:{SECRET}@127.0.0.1:9", cwd=tmp_path
    )
    assert res.returncode == 2, res.stderr
    assert res.stderr.startswith("error: cannot reach the MLflow server at http://bob:***@127.0.0.1:9")
    assert len(res.stderr.strip().splitlines()) == 1 and SECRET not in res.stderr
    assert not (tmp_path / "s.db").exists()
