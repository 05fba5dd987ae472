"""``--model`` end to end: built-in nets, a user factory from a file, identity, saved models, and a
study made before ``--model`` existed."""

from __future__ import annotations

import shutil
import sqlite3
import textwrap
from pathlib import Path

import numpy as np
import optuna
import pytest
from optuna.trial import TrialState
from typer.testing import CliRunner

from bnsearch import keys
from bnsearch.cli import app
from bnsearch.config import RunConfig
from bnsearch.model_folder import find_best, load_model, retrain_best
from bnsearch.search import run_search

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
FAST = ["--dataset", "digits", "--epochs", "1", "--threads", "1", "--precision", "fp32"]

FACTORY = textwrap.dedent(
    """
    from torch import nn

    from bnsearch.core.blocks import conv_norm_act, init_norms

    SEEN = []  # the params each call received

    def build(params, in_shape, num_classes):
        SEEN.append(params)
        width = params.extra["width_mult"] * 4
        net = nn.Sequential(
            conv_norm_act(in_shape[0], width, params),
            nn.Dropout(params.extra["dropout"]),
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(),
            nn.Linear(width, num_classes),
        )
        return init_norms(net, params)
    """
)
SPACE = textwrap.dedent(
    """
    lr = { low = 0.05, high = 0.2, log = true }
    width_mult = { choices = [1, 2] }
    dropout = { low = 0.0, high = 0.3 }
    """
)


def invoke(*args: str) -> object:
    return CliRunner().invoke(app, list(args))


@pytest.fixture
def factory(tmp_path: Path) -> tuple[str, Path]:
    """A user factory in a file of tmp_path, and its space file: (--model value, space path)."""
    (tmp_path / "mynet.py").write_text(FACTORY)
    (tmp_path / "space.toml").write_text(SPACE)
    return f"{tmp_path / 'mynet.py'}:build", tmp_path / "space.toml"


def test_user_factory_search_resume_refusal_retrain_and_predict(
    factory: tuple[str, Path], tmp_path: Path, sqlite_url: str
) -> None:
    model, space = factory
    args = [
        "run",
        "--model",
        model,
        "--space",
        str(space),
        "--trials",
        "2",
        "--pruner",
        "none",
        "--storage",
        sqlite_url,
    ]
    first = invoke(*args, *FAST, "--strategy", "random")
    assert first.exit_code == 0, first.output
    assert "created study digits-build-random" in first.output
    study = optuna.load_study(study_name="digits-build-random", storage=sqlite_url)
    trials = study.get_trials()
    assert [t.state for t in trials] == [TrialState.COMPLETE] * 2
    for t in trials:
        # The extra params are searched and reach the factory untouched.
        assert set(t.params) >= {"width_mult", "dropout", "lr"}
        extra = t.user_attrs[keys.RESOLVED_PARAMS]["extra"]
        assert extra == {"dropout": t.params["dropout"], "width_mult": t.params["width_mult"]}
    identity = study.user_attrs[keys.STUDY_CONFIG]
    assert identity["model"] == model and len(identity["model_source"]) == 16

    again = invoke(*args, *FAST, "--strategy", "random")
    assert again.exit_code == 0, again.output
    assert len(optuna.load_study(study_name="digits-build-random", storage=sqlite_url).trials) == 4

    # Another factory, or the same one edited, is refused before any trial.
    (tmp_path / "other.py").write_text(FACTORY)
    other = invoke(
        *[a if a != model else f"{tmp_path / 'other.py'}:build" for a in args],
        *FAST,
        "--strategy",
        "random",
        "--study",
        "digits-build-random",
    )
    assert other.exit_code == 2
    line = other.output.strip().splitlines()
    assert len(line) == 1 and line[0].startswith("error: study 'digits-build-random' trains model")
    assert "mynet.py:build" in line[0] and "other.py:build" in line[0]
    (tmp_path / "mynet.py").write_text(FACTORY + "\n# edited\n")
    edited = invoke(*args, *FAST, "--strategy", "random")
    assert edited.exit_code == 2 and "source file changed" in edited.output
    assert len(optuna.load_study(study_name="digits-build-random", storage=sqlite_url).trials) == 4
    (tmp_path / "mynet.py").write_text(FACTORY)

    # The model saved in the search (config.json names the factory) loads and is tested.
    saved = invoke("best", "--study", "digits-build-random", "--storage", sqlite_url, "--device", "cpu")
    assert saved.exit_code == 0 and "test accuracy" in saved.output, saved.output
    out = tmp_path / "model"
    res = invoke(
        "best",
        "--study",
        "digits-build-random",
        "--storage",
        sqlite_url,
        "--retrain",
        "--out",
        str(out),
        "--device",
        "cpu",
    )
    assert res.exit_code == 0, res.output
    loaded = load_model(out)
    assert type(loaded.model).__name__ == "Sequential" and loaded.config["model"] == model
    x = np.random.default_rng(0).integers(0, 17, size=(4, 8, 8))
    np.savez(tmp_path / "x.npz", x=x)
    pred = invoke("predict", "--model", str(out), str(tmp_path / "x.npz"), "--out", str(tmp_path / "p.csv"))
    assert pred.exit_code == 0, pred.output
    assert len((tmp_path / "p.csv").read_text().splitlines()) == 5


def test_the_factory_receives_the_trials_params(factory: tuple[str, Path], sqlite_url: str) -> None:
    import sys

    model, space = factory
    cfg = RunConfig(
        model=model, space_path=str(space), strategy="random", trials=2, dataset="digits", epochs=1,
        pruner="none", storage=sqlite_url, device="cpu", precision="fp32", save_models="none",
    )  # fmt: skip
    study = run_search(cfg)
    path = model.rpartition(":")[0]
    module = next(m for m in list(sys.modules.values()) if getattr(m, "__file__", None) == path)
    # The first call is the probe before the study; then one per trial, with its own values.
    seen = module.SEEN[-2:]
    for p, t in zip(seen, study.trials, strict=True):
        assert p.extra == {"dropout": t.params["dropout"], "width_mult": t.params["width_mult"]}
        assert p.lr == t.params["lr"] and p.activation == t.params["activation"]


def test_user_nets_pack_where_they_are_identical_and_train_apart_where_not(
    factory: tuple[str, Path], sqlite_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    model, space = factory
    cfg = RunConfig(
        model=model, space_path=str(space), strategy="random", trials=6, dataset="digits", epochs=1, pack=6,
        pruner="none", storage=sqlite_url, device="cpu", precision="fp32", save_models="none", seed=1,
    )  # fmt: skip
    with caplog.at_level("WARNING", logger="bnsearch.search.packing"):
        study = run_search(cfg)
    assert [t.state for t in study.trials] == [TrialState.COMPLETE] * 6
    for t in study.trials:
        mates = [study.trials[n] for n in t.user_attrs[keys.PACK_TRIALS]]
        # Packed together only with nets built from the same extras (dropout differs per trial).
        assert {(m.params["dropout"], m.params["width_mult"]) for m in mates} == {
            (t.params["dropout"], t.params["width_mult"])
        }
    splits = [r for r in caplog.records if "differ" in r.getMessage()]
    assert len(splits) <= 1  # said once per run at most


BAD = {
    "import": ("import does_not_exist_anywhere\n", "build", "cannot import"),
    "missing": ("x = 1\n", "build", "has no attribute 'build'"),
    "not-callable": ("build = 3\n", "build", "is a int, not a function"),
    "raises": ("def build(p, s, n):\n    raise ValueError('no luck')\n", "build", "raised ValueError: no luck"),
    "not-module": ("def build(p, s, n):\n    return 42\n", "build", "returned a int, expected a torch.nn.Module"),
    "wrong-shape": (
        "from torch import nn\ndef build(p, s, n):\n    return nn.Sequential(nn.Flatten(), nn.Linear(64, 3))\n",
        "build",
        "to (2, 3); expected (2, 10)",
    ),
    "forward-fails": (
        "from torch import nn\ndef build(p, s, n):\n    return nn.Linear(5, n)\n",
        "build",
        "the network failed on a batch",
    ),
}


@pytest.mark.parametrize("case", sorted(BAD), ids=sorted(BAD))
def test_a_bad_factory_is_one_error_line_before_any_study(case: str, tmp_path: Path, sqlite_url: str) -> None:
    source, fn, match = BAD[case]
    (tmp_path / "bad.py").write_text(source)
    res = invoke("run", "--model", f"{tmp_path / 'bad.py'}:{fn}", "--storage", sqlite_url, *FAST)
    assert res.exit_code == 2, res.output
    lines = res.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: --model ") and "Traceback" not in res.output
    assert match in lines[0]
    assert not (tmp_path / "s.db").exists() or optuna.get_all_study_names(sqlite_url) == []


@pytest.mark.parametrize(
    ("model", "match"),
    [
        ("resnett", "--model must be a built-in net or package.module:function, got 'resnett'; choose one of: bncnn"),
        ("no_such_pkg_xyz.mod:build", "cannot import no_such_pkg_xyz.mod"),
    ],
)
def test_bad_model_names(model: str, match: str, sqlite_url: str) -> None:
    res = invoke("run", "--model", model, "--storage", sqlite_url, *FAST)
    assert res.exit_code == 2 and match in res.output


def test_builtin_models_search_and_resume_with_another_model_is_refused(tmp_path: Path, sqlite_url: str) -> None:
    res = invoke("run", "--model", "resnet", "--trials", "2", "--storage", sqlite_url, *FAST, "--save-models", "none")
    assert res.exit_code == 0, res.output
    study = optuna.load_study(study_name="digits-resnet-tpe", storage=sqlite_url)
    assert study.user_attrs[keys.STUDY_CONFIG]["model"] == "resnet"
    assert study.user_attrs[keys.STUDY_CONFIG]["space"]["depth"] == {"value": 8}
    other = invoke("run", "--model", "plain", "--study", "digits-resnet-tpe", "--storage", sqlite_url, *FAST)
    assert other.exit_code == 2
    assert other.output.strip() == (
        "error: study 'digits-resnet-tpe' trains model 'resnet', this run asks for 'plain'; "
        "rerun with --model resnet or choose a new --study-name"
    )


def test_plain_space_file_searches_depth_and_norm(tmp_path: Path, sqlite_url: str) -> None:
    space = tmp_path / "space.toml"
    space.write_text('depth = { low = 2, high = 6 }\nwidth = 4\nnorm = { choices = ["batch", "group", "none"] }\n')
    cfg = RunConfig(
        model="plain", space_path=str(space), strategy="random", trials=4, dataset="digits", epochs=1,
        storage=sqlite_url, device="cpu", precision="fp32", save_models="best", pruner="none",
    )  # fmt: skip
    study = run_search(cfg)
    assert all(2 <= t.params["depth"] <= 6 for t in study.trials)
    for t in study.trials:
        resolved = t.user_attrs[keys.RESOLVED_PARAMS]
        if resolved["norm"] == "none":
            assert resolved["gamma_init"] is None  # no norm layer: nothing to initialise
    best = find_best(sqlite_url, study.study_name)
    out = retrain_best(best, tmp_path / "m", device="cpu")
    assert load_model(out.out_dir).config["model"] == "plain"


def _fixture_trials(path: Path) -> list[optuna.trial.FrozenTrial]:
    return optuna.load_study(study_name="old-digits", storage=f"sqlite:///{path}").get_trials()


OLD_RUN = ["--dataset", "digits", "--epochs", "1", "--strategy", "tpe", "--seed", "7", "--precision", "fp32"]


def resume_args(db: Path, trials: int) -> list[str]:
    """``bnsearch run`` as the fixture study was made, adding ``trials`` to study old-digits in ``db``."""
    where = ["--study-name", "old-digits", "--storage", f"sqlite:///{db}"]
    return ["run", *OLD_RUN, "--trials", str(trials), "--save-models", "none", "--threads", "1", *where]


def test_a_study_made_before_model_existed_resumes_as_bncnn_with_the_same_trials(tmp_path: Path) -> None:
    """tests/fixtures/pre_model_study.db was made by the code before --model with
    ``bnsearch run --dataset digits --trials 4 --epochs 1 --strategy tpe --seed 7 --precision fp32
    --save-models none --study-name old-digits``."""
    db = tmp_path / "old.db"
    shutil.copy(FIXTURES / "pre_model_study.db", db)
    old = _fixture_trials(db)
    with sqlite3.connect(db) as con:  # it really has no model key
        assert '"model"' not in "".join(r[0] for r in con.execute("select value_json from study_user_attributes"))
    res = invoke(*resume_args(db, 1))
    assert res.exit_code == 0, res.output
    assert "resuming study old-digits (4 trials so far)" in res.output
    assert len(_fixture_trials(db)) == 5
    plain = invoke("run", *OLD_RUN, "--model", "plain", "--study-name", "old-digits", "--storage", f"sqlite:///{db}")
    assert plain.exit_code == 2 and "trains model 'bncnn', this run asks for 'plain'" in plain.output

    # The same seeded search, fresh, with this code: the same trials.
    fresh = tmp_path / "fresh.db"
    res = invoke(*resume_args(fresh, 4))
    assert res.exit_code == 0, res.output
    new = _fixture_trials(fresh)
    assert [t.params for t in new] == [t.params for t in old]
    assert [t.user_attrs[keys.RESOLVED_PARAMS] for t in new] == [t.user_attrs[keys.RESOLVED_PARAMS] for t in old]
    for a, b in zip(new, old, strict=True):
        assert a.state == b.state
        # Same weights, same batches: equal on this CPU; a point of accuracy elsewhere (kernels differ).
        assert a.value == pytest.approx(b.value, abs=0.02)
    assert (
        optuna.load_study(study_name="old-digits", storage=f"sqlite:///{fresh}").user_attrs[keys.STUDY_CONFIG]["model"]
        == "bncnn"
    )


def test_identity_defaults_read_a_missing_model_as_bncnn() -> None:
    from bnsearch.study import identity_mismatches

    assert identity_mismatches({"dataset": "digits"}, {"dataset": "digits", "model": "bncnn"}) == []
    assert identity_mismatches({"dataset": "digits"}, {"dataset": "digits", "model": "plain"}) == ["model"]
