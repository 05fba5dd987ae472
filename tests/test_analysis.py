"""load_trials / learning_curves / study_summaries / export_trials on hand-made studies."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from _synth import make_study, mixed_specs

from bnsearch.analysis import export_trials, latest_study, learning_curves, load_trials, study_summaries
from bnsearch.errors import ConfigError, StudyError


@pytest.fixture(scope="module")
def stored(tmp_path_factory: pytest.TempPathFactory) -> str:
    url = f"sqlite:///{tmp_path_factory.mktemp('db') / 's.db'}"
    study = make_study(mixed_specs(), storage=url, name="mixed")
    study.ask()  # a RUNNING trial without params
    return url


def test_load_trials_one_typed_row_per_trial(stored: str) -> None:
    df = load_trials("mixed", stored)
    assert list(df["number"]) == list(range(8))
    assert list(df["state"]) == ["COMPLETE"] * 3 + [
        "PRUNED",
        "PRUNED",
        "FAIL",
        "COMPLETE",
        "RUNNING",
    ]
    assert df["value"].dtype == "float64" and df["has_bn"].dtype == "boolean"
    assert df["epochs_run"].dtype == "Int64" and df["activation"].dtype == "string"
    # Fixed settings come from resolved_params; gamma/beta are missing for nets without BN.
    assert (df["momentum"].iloc[:7] == 0.9).all()
    assert df.loc[1, "has_bn"] == False and pd.isna(df.loc[1, "gamma_init"])  # noqa: E712
    assert df.loc[6, "has_bn"] == True  # BN only before the classifier  # noqa: E712
    assert df.loc[4, "diverged"] and not df.loc[3, "diverged"]
    assert df.loc[5, "fail_reason"] == "RuntimeError: boom"
    assert df.loc[0, "train_val_gap"] == pytest.approx(0.02)
    assert df.loc[0, "final_val_acc"] == 0.9 and df.loc[0, "val_acc_epoch1"] == 0.6
    assert pd.isna(df.loc[7, "has_bn"]) and df.loc[7, "duration_s"] >= 0
    assert df.attrs["searchable"] == [
        "activation",
        "beta_init",
        "bn_classifier",
        "bn_placement",
        "gamma_init",
        "lr",
    ]


def test_learning_curves_long_format(stored: str) -> None:
    lc = learning_curves("mixed", stored)
    assert list(lc.columns) == [
        "trial",
        "epoch",
        "val_acc",
        "train_loss",
        "train_acc",
        "state",
        "has_bn",
    ]
    t0 = lc[lc["trial"] == 0]
    assert list(t0["epoch"]) == [1, 2] and list(t0["val_acc"]) == [0.6, 0.9]
    assert set(lc[lc["state"] == "PRUNED"]["trial"]) == {3}  # the diverged trial ran no epoch
    assert 7 not in set(lc["trial"])


def test_study_summaries(stored: str) -> None:
    make_study([{"val": (0.5, 0.7)}], storage=stored, name="another")
    rows = study_summaries(stored)
    assert [r.name for r in rows] == ["another", "mixed"]
    m = rows[1]
    assert (m.n_complete, m.n_pruned, m.n_failed, m.n_running) == (4, 2, 1, 1)
    assert m.best_value == pytest.approx(0.95)
    assert m.strategy == "random" and m.dataset == "digits" and m.last_update is not None


def test_latest_study_is_the_one_whose_trials_changed_last(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 's.db'}"
    make_study(mixed_specs(), storage=url, name="long")  # its last trial ends after the other's
    make_study([{"val": (0.5, 0.7)}], storage=url, name="created-later")
    assert latest_study(url) == "long"
    make_study([], storage=url, name="empty")
    assert latest_study(url) == "long"
    late = make_study([{"val": (0.5, 0.7)}], storage=url, name="z")
    late.ask()  # a trial started now
    assert latest_study(url) == "z"


def test_latest_study_of_an_empty_storage_says_so(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 's.db'}"
    import optuna

    optuna.create_study(storage=url, study_name="gone")  # creates the tables
    optuna.delete_study(study_name="gone", storage=url)
    with pytest.raises(StudyError, match="no studies in .*; run a search first"):
        latest_study(url)


@pytest.mark.parametrize("fmt", ["csv", "parquet", "json"])
def test_export_round_trips(stored: str, tmp_path: Path, fmt: str) -> None:
    path = export_trials("mixed", stored, fmt=fmt, out=tmp_path / f"t.{fmt}")
    if fmt == "csv":
        back = pd.read_csv(path)
        curve = json.loads(back.loc[0, "val_acc_curve"])
    elif fmt == "parquet":
        back = pd.read_parquet(path)
        curve = list(back.loc[0, "val_acc_curve"])
    else:
        back = pd.DataFrame(json.loads(path.read_text()))
        curve = back.loc[0, "val_acc_curve"]
    assert len(back) == 8 and curve == [0.6, 0.9]
    assert {"lr", "activation", "gamma_init", "state", "value", "duration_s"} <= set(back.columns)


def test_missing_study_and_database_raise_without_creating(tmp_path: Path, stored: str) -> None:
    with pytest.raises(StudyError, match="no study named 'nope'.*existing studies: .*mixed"):
        load_trials("nope", stored)
    missing = tmp_path / "missing.db"
    with pytest.raises(StudyError, match="no study database at"):
        load_trials("mixed", f"sqlite:///{missing}")
    assert not missing.exists()
    with pytest.raises(ConfigError, match="unknown export format 'xlsx'; choose one of: csv, parquet, json"):
        export_trials("mixed", stored, fmt="xlsx")
