"""run --save-models: trial models in Optuna's artifact store, used by best and predict."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import optuna
import pytest
import torch
from _synth import one_worker
from _synth import run_bnsearch as bnsearch
from optuna.artifacts import download_artifact, get_all_artifact_meta
from optuna.trial import TrialState

from bnsearch import keys
from bnsearch.core.data import load_dataset, split_dataset
from bnsearch.core.seeding import derive_seed
from bnsearch.core.train import evaluate
from bnsearch.model_folder import AtomicFileSystemArtifactStore, load_model

# fp32: the saved model evaluated here must give the accuracy the search measured.
RUN = ["--dataset", "digits", "--epochs", "2", "--batch-size", "64", "--threads", "1", "--precision", "fp32"]
RUN += ["--strategy", "random", "--pruner", "none", "--study-name", "s"]
SPACE = "lr = { low = 0.02, high = 0.3, log = true }\n"  # trials that learn, none diverging


@pytest.fixture(scope="module")
def splits():  # type: ignore[no-untyped-def]
    return split_dataset(load_dataset("digits"), seed=derive_seed(0, "split"))


def _accuracy(model_dir: Path, x: np.ndarray, y: np.ndarray) -> float:
    m = load_model(model_dir)
    return evaluate(m.model, torch.from_numpy(x), torch.from_numpy(y))


def _download(
    study: optuna.Study, trial: optuna.trial.FrozenTrial, store: AtomicFileSystemArtifactStore, out: Path
) -> Path:
    """The trial's model folder, fetched through Optuna's artifact API alone."""
    out.mkdir(parents=True)
    for meta in get_all_artifact_meta(trial, storage=study._storage):
        download_artifact(artifact_store=store, artifact_id=meta.artifact_id, file_path=str(out / meta.filename))
    return out


@pytest.mark.parametrize("pack", ["1", "3"], ids=["one-by-one", "packed"])
def test_save_models_all_then_best_and_predict_use_them(tmp_path: Path, splits, pack: str) -> None:  # type: ignore[no-untyped-def]
    # Packed: one shape, so that the three trials train as one packed model.
    shape = 'activation = "relu"\nbn_placement = "after_activation"\nbn_classifier = true\n'
    (tmp_path / "space.toml").write_text(SPACE + (shape if pack != "1" else ""))
    url = f"sqlite:///{tmp_path / 'db' / 's.db'}"
    args = ["--space", "space.toml", *RUN, "--save-models", "all", "--pack", pack]
    run = bnsearch("run", "--trials", "3", "--storage", url, *args, cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    study = optuna.load_study(study_name="s", storage=url)
    store = AtomicFileSystemArtifactStore(tmp_path / "db" / "artifacts")  # beside the database
    test_acc = {}
    for t in study.get_trials(states=(TrialState.COMPLETE,)):
        assert sorted(m.filename for m in get_all_artifact_meta(t, storage=study._storage)) == [
            "config.json",
            "model.pt",
        ]
        folder = _download(study, t, store, tmp_path / f"trial{t.number}")
        # The downloaded model is the trained one: it scores the trial's own validation accuracy.
        assert _accuracy(folder, splits.val_x, splits.val_y) == pytest.approx(t.value, abs=1.5 / len(splits.val_y))
        test_acc[t.number] = _accuracy(folder, splits.test_x, splits.test_y)
    assert len(test_acc) == 3
    if pack != "1":  # the three trials (one shape) trained as one packed model
        assert {len(t.user_attrs[keys.PACK_TRIALS]) for t in study.trials} == {3}

    shown = bnsearch("best", "--study", "s", "--storage", url, "--device", "cpu", cwd=tmp_path)
    assert shown.returncode == 0, shown.stderr
    best = study.best_trial.number
    line = re.search(r"test accuracy (\S+) of the model trial #(\d+) saved in the search", shown.stdout)
    assert line is not None, shown.stdout
    assert int(line.group(2)) == best and float(line.group(1)) == pytest.approx(test_acc[best], abs=1e-4)
    assert "not retrained" in shown.stdout and "evaluated once now on the test split" in shown.stdout

    raw = load_dataset("digits")
    np.savez(tmp_path / "img.npz", x=raw.x[:40], y=raw.y[:40])
    for ref in ("study:s", f"study:s:{best}"):
        pred = bnsearch("predict", "img.npz", "--model", ref, "--storage", url, cwd=tmp_path)
        assert pred.returncode == 0, pred.stderr
        assert pred.stdout.startswith("index,label,confidence") and len(pred.stdout.splitlines()) == 41
        assert "accuracy against y in img.npz" in pred.stderr


def test_save_models_best_keeps_the_best_so_far_chain(tmp_path: Path) -> None:
    (tmp_path / "space.toml").write_text(SPACE)
    url = f"sqlite:///{tmp_path / 's.db'}"
    art = tmp_path / "elsewhere"
    run = bnsearch(
        "run", "--trials", "5", "--storage", url, "--space", "space.toml", *RUN, "--artifacts", str(art), cwd=tmp_path
    )
    assert run.returncode == 0, run.stderr
    study = optuna.load_study(study_name="s", storage=url)
    best_so_far = -1.0
    saved = set()
    for t in sorted(study.get_trials(states=(TrialState.COMPLETE,)), key=lambda t: t.datetime_complete):
        should = t.value > best_so_far
        best_so_far = max(best_so_far, t.value)
        assert (t.user_attrs.get(keys.SAVED_MODEL) is not None) == should, t.number
        assert len(get_all_artifact_meta(t, storage=study._storage)) == (2 if should else 0)
        saved |= set(t.user_attrs[keys.SAVED_MODEL].values()) if should else set()
    assert study.best_trial.user_attrs[keys.SAVED_MODEL] is not None
    assert {p.name for p in art.iterdir()} == saved  # nothing else was written
    assert not (tmp_path / "artifacts").exists()


def test_bad_save_models_and_artifacts_are_one_line_before_any_trial(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 's.db'}"
    (tmp_path / "file").write_text("")
    for extra, message in (
        (["--save-models", "some"], "error: unknown --save-models 'some'; choose one of: best, all, none"),
        (["--artifacts", str(tmp_path / "file")], f"error: artifact store {tmp_path / 'file'} is a file"),
    ):
        res = bnsearch("run", "--trials", "1", "--storage", url, *RUN, *extra, cwd=tmp_path)
        assert res.returncode == 2 and res.stderr.startswith(message), res.stderr
        assert "Traceback" not in res.stderr
    assert not (tmp_path / "artifacts").exists() and not (tmp_path / "s.db").exists()


_KILL_ON_WRITE = """
import io, os, signal, sys
from bnsearch.model_folder import AtomicFileSystemArtifactStore
from bnsearch.cli import main
n_writes = [0]
real_write = AtomicFileSystemArtifactStore.write

class DiesHalfway(io.RawIOBase):  # hands over half the file, then the worker is SIGKILLed
    def __init__(self, data):
        self.data, self.calls = data, 0
    def read(self, n=-1):
        self.calls += 1
        if self.calls > 1:
            os.kill(os.getpid(), signal.SIGKILL)
        return self.data[: len(self.data) // 2]

def write(self, artifact_id, body):
    n_writes[0] += 1
    if n_writes[0] == int(os.environ["KILL_ON_WRITE"]):
        body = DiesHalfway(body.read())
    real_write(self, artifact_id, body)

AtomicFileSystemArtifactStore.write = write
sys.argv = ["bnsearch", *sys.argv[1:]]
main()
"""


@pytest.mark.slow
def test_best_after_a_worker_was_killed_mid_upload(tmp_path: Path, splits) -> None:  # type: ignore[no-untyped-def]
    """Trial 1's worker dies while its config.json is being written (model.pt is linked
    already). Nothing half-written is loaded; the retry of trial 1 saves its own model; best
    tests the model of the study's best trial."""
    (tmp_path / "space.toml").write_text(SPACE)
    (tmp_path / "kill.py").write_text(_KILL_ON_WRITE)
    url = f"sqlite:///{tmp_path / 's.db'}"
    env = {**os.environ, "BNSEARCH_HEARTBEAT_INTERVAL_S": "1", "BNSEARCH_GRACE_PERIOD_S": "2", "COLUMNS": "200"}
    args = one_worker(["run", "--trials", "2", "--storage", url, "--space", "space.toml", *RUN, "--save-models", "all"])
    killed = subprocess.run(
        [sys.executable, "kill.py", *args],
        cwd=tmp_path,
        env={**env, "KILL_ON_WRITE": "4"},
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    study = optuna.load_study(study_name="s", storage=url)
    dead = study.trials[1]
    assert dead.state == TrialState.RUNNING and keys.SAVED_MODEL not in dead.user_attrs
    assert [m.filename for m in get_all_artifact_meta(dead, storage=study._storage)] == ["model.pt"]
    store_dir = tmp_path / "artifacts"
    # The half-written config.json never got its final name: every other file is a linked artifact.
    assert len(list(store_dir.glob("*.part"))) == 1
    linked = {m.artifact_id for t in study.trials for m in get_all_artifact_meta(t, storage=study._storage)}
    assert {p.name for p in store_dir.iterdir() if p.suffix != ".part"} == linked

    time.sleep(3)  # past the grace period: the next run fails trial 1 and retries it
    resumed = subprocess.run(
        [sys.executable, "-m", "bnsearch", *args[:2], "1", *args[3:]],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert resumed.returncode == 0, resumed.stderr
    study = optuna.load_study(study_name="s", storage=url)
    assert [t.state for t in study.trials] == [TrialState.COMPLETE, TrialState.FAIL, TrialState.COMPLETE]
    retry = study.trials[2]
    assert retry.system_attrs["failed_trial"] == 1 and retry.params == dead.params
    own = retry.user_attrs[keys.SAVED_MODEL]
    assert dead_ids_not_in(own, dead, study)
    store = AtomicFileSystemArtifactStore(store_dir)
    for t in (study.trials[0], retry):
        folder = tmp_path / f"t{t.number}"
        folder.mkdir()
        for name, artifact_id in t.user_attrs[keys.SAVED_MODEL].items():
            download_artifact(artifact_store=store, artifact_id=artifact_id, file_path=str(folder / name))
        assert _accuracy(folder, splits.val_x, splits.val_y) == pytest.approx(t.value, abs=1.5 / len(splits.val_y))

    shown = bnsearch("best", "--study", "s", "--storage", url, "--device", "cpu", cwd=tmp_path)
    assert shown.returncode == 0, shown.stderr
    assert f"of the model trial #{study.best_trial.number} saved in the search" in shown.stdout


def dead_ids_not_in(own: dict[str, str], dead: optuna.trial.FrozenTrial, study: optuna.Study) -> bool:
    """The retry's saved model is its own, not the one its failed original began to upload."""
    return not set(own.values()) & {m.artifact_id for m in get_all_artifact_meta(dead, storage=study._storage)}
