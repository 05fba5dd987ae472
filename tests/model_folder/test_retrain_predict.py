"""best: the best trial retrained on train+val, tested once, saved, reloaded, used to predict."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import optuna
import pytest
import torch

from bnsearch.config import RunConfig
from bnsearch.core.data import load_dataset, split_dataset
from bnsearch.core.train import evaluate
from bnsearch.errors import ModelError, StudyError
from bnsearch.model_folder import as_model_input, find_best, load_model, predict, read_images, retrain_best
from bnsearch.search import run_search


@pytest.fixture(scope="module")
def searched(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, str]:
    """A finished 3-trial search on digits (tiny widths, 2 epochs): (storage URL, study name)."""
    url = f"sqlite:///{tmp_path_factory.mktemp('best') / 's.db'}"
    cfg = RunConfig(
        strategy="random",
        trials=3,
        dataset="digits",
        epochs=2,
        batch_size=128,  # seed 3's third draw (lr 0.73) learns at 128, not at 32
        pruner="none",
        storage=url,
        widths=(4, 8),
        device="cpu",
        seed=3,
        study_name="digits-best",
    )
    run_search(cfg)
    return url, "digits-best"


@pytest.fixture(scope="module")
def model_dir(searched: tuple[str, str], tmp_path_factory: pytest.TempPathFactory) -> Path:
    url, name = searched
    out = tmp_path_factory.mktemp("model") / "m"
    retrain_best(find_best(url, name), out, device="cpu")
    return out


def test_find_best_is_the_studys_best_trial(searched: tuple[str, str]) -> None:
    url, name = searched
    best = find_best(url, name)
    study = optuna.load_study(study_name=name, storage=url)
    assert best.number == study.best_trial.number
    assert best.val_acc == study.best_value
    assert best.params == study.best_trial.user_attrs["resolved_params"]
    assert best.identity["dataset"] == "digits" and best.n_complete == 3


def test_retrained_weights_reproduce_the_recorded_test_accuracy(model_dir: Path, searched: tuple[str, str]) -> None:
    metrics = json.loads((model_dir / "metrics.json").read_text())
    config = json.loads((model_dir / "config.json").read_text())
    assert set(metrics) >= {"val_acc", "test_acc", "epochs", "device", "seed", "versions"}
    assert metrics["epochs"] == 2 and metrics["device"] == "cpu"
    assert metrics["val_acc"] == find_best(*searched).val_acc
    assert config["widths"] == [4, 8] and config["in_shape"] == [1, 8, 8]
    # Rebuild the search's split from the saved files alone and score the saved weights on it.
    splits = split_dataset(load_dataset(config["dataset"]), seed=config["split_seed"])
    assert tuple(config["mean"]) == splits.mean and tuple(config["std"]) == splits.std
    loaded = load_model(model_dir)
    assert not loaded.model.training
    acc = evaluate(loaded.model, torch.from_numpy(splits.test_x), torch.from_numpy(splits.test_y))
    assert acc == metrics["test_acc"]
    assert metrics["test_examples"] == len(splits.test_y)
    assert metrics["train_examples"] == len(splits.train_y) + len(splits.val_y)  # trained on train+val
    assert acc > 0.5  # it learned something in 2 epochs


def test_predict_on_raw_images_matches_the_test_accuracy(model_dir: Path, tmp_path: Path) -> None:
    config = json.loads((model_dir / "config.json").read_text())
    metrics = json.loads((model_dir / "metrics.json").read_text())
    splits = split_dataset(load_dataset("digits"), seed=config["split_seed"])
    mean, std = np.float32(config["mean"][0]), np.float32(config["std"][0])
    raw = np.rint(splits.test_x[:, 0] * std + mean)  # digits pixels are integers 0..16; (N, H, W)
    labels = predict(model_dir, raw)
    assert np.mean(labels == splits.test_y) == metrics["test_acc"]
    # (N, C, H, W) and (N, H, W, C) give the same answer as (N, H, W).
    assert (predict(model_dir, raw[:, None]) == labels).all()
    assert (predict(model_dir, raw[:, :, :, None]) == labels).all()


def test_retrain_uses_the_searchs_precision(model_dir: Path, searched: tuple[str, str]) -> None:
    from bnsearch.core.train import bf16_supported

    url, name = searched
    metrics = json.loads((model_dir / "metrics.json").read_text())
    assert metrics["precision"] == find_best(url, name).identity["precision"]
    assert metrics["precision"] == ("bf16" if bf16_supported("cpu") else "fp32")  # auto


def test_a_format_1_model_loads_with_channel_first_features(model_dir: Path, tmp_path: Path) -> None:
    import shutil

    old = tmp_path / "old"
    shutil.copytree(model_dir, old)
    config = json.loads((old / "config.json").read_text())
    (old / "config.json").write_text(json.dumps({**config, "format": "bnsearch-model/1"}))
    assert any(isinstance(m, torch.nn.Flatten) for m in load_model(old).model.features)
    assert not any(isinstance(m, torch.nn.Flatten) for m in load_model(model_dir).model.features)


def test_cli_best_and_predict_round_trip(searched: tuple[str, str], model_dir: Path, tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from bnsearch.cli import app

    url, name = searched
    runner = CliRunner()
    shown = runner.invoke(app, ["best", "--study", name, "--storage", url])
    assert shown.exit_code == 0, shown.output
    assert f"#{find_best(url, name).number}" in shown.output and "lr" in shown.output

    x = np.random.default_rng(0).integers(0, 17, size=(5, 8, 8))
    npz = tmp_path / "new.npz"
    np.savez(npz, x=x)
    out = tmp_path / "preds.csv"
    res = runner.invoke(app, ["predict", "--model", str(model_dir), str(npz), "--out", str(out)])
    assert res.exit_code == 0, res.output
    lines = out.read_text().splitlines()
    assert lines[0] == "index,label,confidence" and len(lines) == 6
    assert [int(line.split(",")[1]) for line in lines[1:]] == predict(model_dir, x).tolist()


@pytest.mark.parametrize(
    ("args", "match"),
    [
        (["best", "--study", "nope"], "no study named 'nope'"),
        (["predict", "--model", "{tmp}/missing", "{tmp}/x.npz"], "not a bnsearch model folder"),
        (
            ["predict", "--model", "{model}", "{tmp}/wrong.npz"],
            "images are 1×28×28 but the model expects 1×8×8",
        ),
        (["predict", "--model", "{model}", "{tmp}/absent.npz"], "not a readable .npz"),
    ],
    ids=["unknown-study", "bad-model-dir", "shape-mismatch", "missing-npz"],
)
def test_cli_errors_are_one_line(
    args: list[str], match: str, searched: tuple[str, str], model_dir: Path, tmp_path: Path
) -> None:
    from typer.testing import CliRunner

    from bnsearch.cli import app

    np.savez(tmp_path / "x.npz", x=np.zeros((2, 8, 8)))
    np.savez(tmp_path / "wrong.npz", x=np.zeros((2, 28, 28)))
    argv = [a.format(tmp=tmp_path, model=model_dir) for a in args]
    if argv[0] == "best":
        argv += ["--storage", searched[0]]
    res = CliRunner().invoke(app, argv)
    assert res.exit_code == 2
    lines = res.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in res.output
    assert match in lines[0]


def test_a_study_without_complete_trials_is_refused(sqlite_url: str) -> None:
    study = optuna.create_study(storage=sqlite_url, study_name="empty", direction="maximize")
    study.set_user_attr("bnsearch_config", {"dataset": "digits", "seed": 0})
    with pytest.raises(StudyError, match="study 'empty' has no complete trial yet"):
        find_best(sqlite_url, "empty")
    optuna.create_study(storage=sqlite_url, study_name="foreign")
    with pytest.raises(StudyError, match="not created by bnsearch"):
        find_best(sqlite_url, "foreign")


def test_bad_images_are_refused() -> None:
    with pytest.raises(ModelError, match="images are 3×8×8 but the model expects 1×8×8"):
        as_model_input(np.zeros((2, 3, 8, 8)), (1, 8, 8))
    with pytest.raises(ModelError, match=r"must be \(N, H, W\) or \(N, C, H, W\)"):
        as_model_input(np.zeros((64,)), (1, 8, 8))
    with pytest.raises(ModelError, match="NaN"):
        as_model_input(np.full((1, 8, 8), np.nan), (1, 8, 8))


def test_read_images_needs_x(tmp_path: Path) -> None:
    np.savez(tmp_path / "y.npz", y=np.zeros(3))
    with pytest.raises(ModelError, match="needs an array 'x'"):
        read_images(tmp_path / "y.npz")
