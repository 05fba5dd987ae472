"""End to end: `bnsearch run` as a real subprocess on digits, resume, pruning, divergence."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import optuna
import pytest
from _synth import run_bnsearch as bnsearch
from optuna.trial import TrialState

from bnsearch import keys

FAST = ["--dataset", "digits", "--epochs", "2", "--batch-size", "32", "--threads", "1", "--workers", "1"]


def load(url: str, name: str) -> optuna.Study:
    return optuna.load_study(study_name=name, storage=url)


def test_run_then_resume(tmp_path: Path, sqlite_url: str) -> None:
    space = tmp_path / "space.toml"
    space.write_text("lr = { low = 0.01, high = 0.2, log = true }\n")  # no diverging trial here
    args = [
        "run",
        "--strategy",
        "random",
        "--trials",
        "3",
        "--pruner",
        "none",
        "--storage",
        sqlite_url,
        "--space",
        str(space),
        *FAST,
    ]
    first = bnsearch(*args, cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    assert "created study digits-random" in first.stdout
    assert "best trial #" in first.stdout and "val_acc" in first.stdout
    study = load(sqlite_url, "digits-random")
    trials = study.get_trials()
    assert [t.state for t in trials] == [TrialState.COMPLETE] * 3
    for t in trials:
        assert sorted(t.intermediate_values) == [1, 2]
        assert t.value == t.intermediate_values[2] == t.user_attrs[keys.VAL_ACC_CURVE][-1]
        assert len(t.user_attrs[keys.TRAIN_LOSS_CURVE]) == 2
        assert t.user_attrs[keys.DEVICE] == "cpu"
        assert t.user_attrs[keys.WALL_TIME_S] > 0
        assert t.user_attrs[keys.RESOLVED_PARAMS]["epochs"] == 2
    config = study.user_attrs[keys.STUDY_CONFIG]
    assert config["dataset"] == "digits" and config["space"]["epochs"] == {"value": 2}
    assert "torch" in study.user_attrs[keys.STUDY_VERSIONS]

    second = bnsearch(*args, cwd=tmp_path)
    assert second.returncode == 0, second.stderr
    assert "resuming study digits-random (3 trials so far)" in second.stdout
    after = load(sqlite_url, "digits-random").get_trials()
    assert len(after) == 6 and all(t.state == TrialState.COMPLETE for t in after)
    assert [(t.params, t.value) for t in after[:3]] == [(t.params, t.value) for t in trials]
    # The resumed sampler must not replay the first run's random draws.
    assert after[3].params != trials[0].params


def test_resume_with_other_settings_is_refused(tmp_path: Path, sqlite_url: str) -> None:
    base = ["run", "--strategy", "random", "--trials", "1", "--storage", sqlite_url, "--study-name", "s", *FAST]
    assert bnsearch(*base, cwd=tmp_path).returncode == 0
    other = bnsearch(*base[:-8], "--dataset", "digits", "--epochs", "3", "--batch-size", "32", cwd=tmp_path)
    assert other.returncode == 2
    assert "study 's' was created with different settings" in other.stderr and "space" in other.stderr
    assert "Traceback" not in other.stderr
    assert len(load(sqlite_url, "s").trials) == 1


def test_pruning_really_prunes(tmp_path: Path, sqlite_url: str) -> None:
    # Half the learning rates cannot learn in 2 epochs. Once 5 trials have finished, the median
    # pruner must stop exactly the trials whose best accuracy so far is below the median of the
    # finished trials at that epoch, whatever the accuracies that this CPU's arithmetic gives.
    space = tmp_path / "space.toml"
    space.write_text(
        'lr = { choices = [0.00001, 0.1] }\nbn_placement = "before_activation"\n'
        'activation = "relu"\nbn_classifier = false\n'
    )
    r = bnsearch("run", "--strategy", "random", "--trials", "14", "--pruner", "median", "--space", str(space),
                 "--storage", sqlite_url, "--study-name", "p", "--seed", "1", *FAST, cwd=tmp_path)  # fmt: skip
    assert r.returncode == 0, r.stderr
    trials = sorted(load(sqlite_url, "p").get_trials(), key=lambda t: t.number)
    assert {t.state for t in trials} <= {TrialState.COMPLETE, TrialState.PRUNED}
    for i, t in enumerate(trials):
        finished = [u for u in trials[:i] if u.state == TrialState.COMPLETE]  # one worker: in order
        expected_stop = None
        if len(finished) >= 5:
            for epoch in (1, 2):
                best_so_far = max(v for e, v in t.intermediate_values.items() if e <= epoch)
                if best_so_far < np.median([u.intermediate_values[epoch] for u in finished]):
                    expected_stop = epoch
                    break
        if expected_stop is None:
            assert t.state == TrialState.COMPLETE, f"trial {t.number} was pruned above the median"
            continue
        assert t.state == TrialState.PRUNED, f"trial {t.number} is below the median but was not pruned"
        assert list(t.intermediate_values) == list(range(1, expected_stop + 1))
        assert f"pruned by MedianPruner after epoch {expected_stop}" in t.user_attrs[keys.PRUNE_REASON]
    pruned = [t for t in trials if t.state == TrialState.PRUNED]
    # The seeded sampler's lr sequence is the same on every CPU; with it, trials with lr 1e-5
    # (chance accuracy) start after finished lr 0.1 ones, so some trial is below the median.
    assert pruned, "no trial was pruned"
    assert any(t.params["lr"] == 0.00001 for t in pruned)
    assert "pruned" in r.stdout


def test_nan_config_is_pruned_with_reason_and_search_goes_on(tmp_path: Path, sqlite_url: str) -> None:
    space = tmp_path / "space.toml"
    space.write_text(
        'lr = { choices = [1000000.0, 0.05] }\nbn_placement = "none"\nbn_classifier = false\n'
        'activation = "relu"\nweight_decay = 0.0\n'
    )
    r = bnsearch(
        "run",
        "--strategy",
        "random",
        "--trials",
        "6",
        "--pruner",
        "none",
        "--space",
        str(space),
        "--storage",
        sqlite_url,
        "--study-name",
        "nan",
        *FAST,
        cwd=tmp_path,
    )
    assert r.returncode == 0, r.stderr
    trials = load(sqlite_url, "nan").get_trials()
    by_lr = {lr: [t for t in trials if t.params["lr"] == lr] for lr in (1000000.0, 0.05)}
    assert by_lr[1000000.0] and by_lr[0.05], "seed did not draw both learning rates"
    for t in by_lr[1000000.0]:
        assert t.state == TrialState.PRUNED
        assert "diverged: training loss became NaN or infinite" in t.user_attrs[keys.PRUNE_REASON]
    assert all(t.state == TrialState.COMPLETE for t in by_lr[0.05])
    assert trials[-1].number == 5


BAD_INPUTS = [
    ("unknown-strategy", ["--strategy", "tpee"], "unknown strategy 'tpee'; choose one of:"),
    ("unknown-dataset", ["--dataset", "mnist"], "unknown dataset 'mnist'"),
    ("unknown-pruner", ["--pruner", "early"], "unknown pruner 'early'"),
    ("zero-trials", ["--trials", "0"], "--trials must be ≥ 1, got 0"),
    ("zero-epochs", ["--epochs", "0"], "--epochs must be ≥ 1, got 0"),
    ("bad-device", ["--device", "tpu"], "unknown device 'tpu'"),
    ("bad-storage-scheme", ["--storage", "redis://localhost/0"], "unsupported storage URL"),
    ("malformed-toml", ["--space", "{bad_toml}"], "is not valid TOML"),
    ("missing-space", ["--space", "/nonexistent/space.toml"], "cannot read space file"),
]


@pytest.mark.parametrize(("args", "message"), [b[1:] for b in BAD_INPUTS], ids=[b[0] for b in BAD_INPUTS])
def test_bad_input_one_line_exit_2(tmp_path: Path, args: list[str], message: str) -> None:
    from typer.testing import CliRunner

    from bnsearch.cli import app

    bad_toml = tmp_path / "bad.toml"
    bad_toml.write_text("lr = [\n")
    args = [a.replace("{bad_toml}", str(bad_toml)) for a in args]
    db = tmp_path / "s.db"
    result = CliRunner().invoke(app, ["run", "--storage", f"sqlite:///{db}", "--dataset", "digits", *args])
    assert result.exit_code == 2
    lines = [ln for ln in result.output.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], result.output
    assert "Traceback" not in result.output
    assert not db.exists()


def test_not_a_sqlite_file(tmp_path: Path) -> None:
    junk = tmp_path / "junk.db"
    junk.write_text("this is not a database")
    r = bnsearch("run", "--storage", f"sqlite:///{junk}", *FAST, cwd=tmp_path)
    assert r.returncode == 2 and "is not a SQLite database" in r.stderr and "Traceback" not in r.stderr
    assert junk.read_text() == "this is not a database"


@pytest.mark.parametrize("command", ["run"])
def test_help_documents_every_option(command: str) -> None:
    from typer.testing import CliRunner

    from bnsearch.cli import app

    out = CliRunner().invoke(app, [command, "--help"], env={"COLUMNS": "200"}).output
    for opt in (
        "--strategy",
        "--trials",
        "--timeout",
        "--dataset",
        "--epochs",
        "--batch-size",
        "--pruner",
        "--storage",
        "--study-name",
        "--space",
        "--seed",
        "--device",
    ):
        assert opt in out
    assert "tpe" in out and "hyperband" in out
