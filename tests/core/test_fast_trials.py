"""Behaviour of the fast-trial paths: bf16 autocast, channels_last, fused SGD, thread restore.

No timing asserts here; speed is measured in benchmarks/.
"""

from __future__ import annotations

import math
from pathlib import Path

import optuna
import pytest
import torch

from bnsearch import keys
from bnsearch.config import RunConfig, resolve_precision
from bnsearch.core.data import DeviceData
from bnsearch.core.model import build_model
from bnsearch.core.space import SearchSpace, TrialParams
from bnsearch.core.train import NATIVE_BF16_ENV, TrainConfig, bf16_supported, train
from bnsearch.errors import ConfigError, StudyError
from bnsearch.search import prepare_search
from bnsearch.search.objective import Objective


@pytest.fixture
def native_bf16(monkeypatch: pytest.MonkeyPatch) -> None:
    """Treat this CPU as one with bf16 units, whatever it has (bf16 autocast runs anywhere)."""
    monkeypatch.setenv(NATIVE_BF16_ENV, "1")


def _params(epochs: int = 3, lr: float = 0.05) -> TrialParams:
    return TrialParams(
        lr=lr,
        weight_decay=1e-4,
        momentum=0.9,
        batch_size=64,
        epochs=epochs,
        activation="relu",
        bn_placement="before_activation",
        bn_classifier=True,
        gamma_init="ones",
        beta_init="zeros",
    )


def _run(data: DeviceData, cfg: TrainConfig, p: TrialParams | None = None, seed: int = 3):
    p = p or _params()
    model = build_model(p, in_shape=data.in_shape, num_classes=data.num_classes, seed=1, cfg=None)
    return train(model, data, p, seed=seed, cfg=cfg)


@pytest.fixture(scope="module")
def plain(tiny_digits: DeviceData):  # type: ignore[no-untyped-def]
    """The loop without the fast paths: fp32, NCHW."""
    return _run(tiny_digits, TrainConfig(precision="fp32", channels_last=False))


@pytest.mark.parametrize(
    "cfg",
    [
        pytest.param(TrainConfig(precision="fp32", channels_last=True), id="fp32-channels_last"),
        pytest.param(
            TrainConfig(precision="bf16", channels_last=True),
            id="bf16-channels_last",
        ),
        pytest.param(TrainConfig(precision="bf16", channels_last=False), id="bf16-nchw"),
    ],
)
def test_fast_paths_learn_like_the_plain_fp32_loop(tiny_digits: DeviceData, plain, cfg: TrainConfig) -> None:  # type: ignore[no-untyped-def]
    fast = _run(tiny_digits, cfg)
    assert not fast.diverged
    assert all(math.isfinite(m.train_loss) for m in fast.history)
    assert fast.history[-1].train_loss < fast.history[0].train_loss
    assert plain.val_acc > 0.8
    # bf16 rounds activations to 8 mantissa bits: accuracy moves a little, not a lot.
    assert abs(fast.val_acc - plain.val_acc) <= 0.05


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_same_seed_same_history(tiny_digits: DeviceData, precision: str) -> None:
    cfg = TrainConfig(precision=precision)
    a = _run(tiny_digits, cfg, _params(epochs=2))
    b = _run(tiny_digits, cfg, _params(epochs=2))
    assert [(m.train_loss, m.train_acc, m.val_acc) for m in a.history] == [
        (m.train_loss, m.train_acc, m.val_acc) for m in b.history
    ]


def test_huge_lr_still_diverges_with_fused_sgd(tiny_digits: DeviceData) -> None:
    p = TrialParams(
        lr=1e6,
        weight_decay=0.0,
        momentum=0.9,
        batch_size=16,
        epochs=2,
        activation="relu",
        bn_placement="none",
        bn_classifier=False,
    )
    result = _run(tiny_digits, TrainConfig(), p)
    assert result.diverged
    assert "NaN or infinite" in (result.reason or "")


def test_objective_restores_the_configured_threads(tiny_digits: DeviceData, monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[int] = []
    import bnsearch.search.objective as objective_module

    real_train = objective_module.train

    def spy_train(*args, **kwargs):  # type: ignore[no-untyped-def]
        seen.append(torch.get_num_threads())
        return real_train(*args, **kwargs)

    monkeypatch.setattr(objective_module, "train", spy_train)
    space = SearchSpace.default().with_fixed(epochs=1, batch_size=64)
    before = torch.get_num_threads()
    try:
        # A sampler that leaves torch at one thread (what GPSampler does while it optimizes).
        class OneThreadSampler(optuna.samplers.RandomSampler):
            def sample_independent(self, *args, **kwargs):  # type: ignore[no-untyped-def]
                torch.set_num_threads(1)
                return super().sample_independent(*args, **kwargs)

        study = optuna.create_study(direction="maximize", sampler=OneThreadSampler(seed=0))
        study.optimize(Objective(space=space, data=tiny_digits, root_seed=0, threads=2), n_trials=2)
        assert seen == [2, 2]
    finally:
        torch.set_num_threads(before)


def test_gp_sampler_does_not_leave_training_on_one_thread(
    tiny_digits: DeviceData, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[int] = []
    import bnsearch.search.objective as objective_module

    real_train = objective_module.train

    def spy_train(*args, **kwargs):  # type: ignore[no-untyped-def]
        seen.append(torch.get_num_threads())
        return real_train(*args, **kwargs)

    monkeypatch.setattr(objective_module, "train", spy_train)
    space = SearchSpace.from_mapping(
        {
            "activation": "relu",
            "bn_placement": "before_activation",
            "bn_classifier": True,
            "gamma_init": "ones",
            "beta_init": "zeros",
            "epochs": 1,
            "batch_size": 64,
        }
    )
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        sampler = optuna.samplers.GPSampler(seed=0, n_startup_trials=1)
        study = optuna.create_study(direction="maximize", sampler=sampler)
        study.optimize(Objective(space=space, data=tiny_digits, root_seed=0, threads=2), n_trials=3)
        assert seen == [2, 2, 2]
    finally:
        torch.set_num_threads(before)


def test_unknown_precision_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="unknown precision 'fp8'; choose one of: auto, fp32, bf16"):
        RunConfig(precision="fp8", device="cpu").validate()


@pytest.mark.usefixtures("native_bf16")
def test_precision_is_part_of_the_study_identity(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 's.db'}"
    prepare_search(RunConfig(dataset="digits", storage=url, device="cpu", precision="fp32"))
    with pytest.raises(StudyError, match="precision: study has 'fp32', this run has 'bf16'"):
        prepare_search(RunConfig(dataset="digits", storage=url, device="cpu", precision="bf16"))


def test_cli_rejects_unknown_precision_without_creating_a_study(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from bnsearch.cli import app

    db = tmp_path / "s.db"
    result = CliRunner().invoke(
        app, ["run", "--dataset", "digits", "--precision", "fp8", "--storage", f"sqlite:///{db}"]
    )
    assert result.exit_code == 2
    assert "error: unknown precision 'fp8'; choose one of: auto, fp32, bf16" in result.output
    assert "Traceback" not in result.output
    assert not db.exists()


@pytest.mark.parametrize(
    ("requested", "native", "study", "expected"),
    [
        ("auto", {"cpu"}, None, "bf16"),  # new study, device with bf16 units
        ("auto", set(), None, "fp32"),  # new study, no bf16 units
        ("auto", {"cpu"}, "fp32", "fp32"),  # a resumed study keeps its precision
        ("auto", {"cpu"}, "bf16", "bf16"),
        ("auto", set(), "bf16", "fp32"),  # cannot keep it: the identity check then names it
        ("fp32", {"cpu"}, "bf16", "fp32"),  # explicit choices are taken as given
        ("bf16", {"cpu"}, None, "bf16"),
    ],
)
def test_resolve_precision(
    monkeypatch: pytest.MonkeyPatch, requested: str, native: set[str], study: str | None, expected: str
) -> None:
    import bnsearch.core.train

    monkeypatch.setattr(bnsearch.core.train, "bf16_supported", lambda d: str(d) in native)
    assert resolve_precision(requested, ["cpu"], study_precision=study) == expected


def test_auto_is_fp32_when_any_training_device_lacks_bf16(monkeypatch: pytest.MonkeyPatch) -> None:
    import bnsearch.core.train

    monkeypatch.setattr(bnsearch.core.train, "bf16_supported", lambda d: d == "cuda:0")
    assert resolve_precision("auto", ["cuda:0", "cuda:1"]) == "fp32"
    with pytest.raises(ConfigError, match="device cuda:1 has no native bf16 support"):
        resolve_precision("bf16", ["cuda:0", "cuda:1"])


@pytest.mark.usefixtures("native_bf16")
def test_auto_precision_is_stored_resolved_and_kept_on_resume(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 's.db'}"
    made = prepare_search(RunConfig(dataset="digits", storage=url, device="cpu", precision="fp32"))
    assert made.study.user_attrs[keys.STUDY_CONFIG]["precision"] == "fp32"
    resumed = prepare_search(RunConfig(dataset="digits", storage=url, device="cpu"))  # auto
    assert resumed.resumed and resumed.cfg.precision == "fp32"
    fresh = prepare_search(RunConfig(dataset="digits", storage=url, device="cpu", study_name="new"))
    assert fresh.cfg.precision == "bf16"
    assert fresh.study.user_attrs[keys.STUDY_CONFIG]["precision"] == "bf16"


@pytest.mark.parametrize(("override", "expected"), [("0", "fp32"), ("1", "bf16")])
def test_native_bf16_override_decides_what_auto_picks(
    monkeypatch: pytest.MonkeyPatch, override: str, expected: str
) -> None:
    monkeypatch.setenv(NATIVE_BF16_ENV, override)
    assert bf16_supported("cpu") is (override == "1")
    assert resolve_precision("auto", ["cpu"]) == expected


def test_bad_native_bf16_override_is_a_config_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(NATIVE_BF16_ENV, "yes")
    with pytest.raises(ConfigError, match="BNSEARCH_NATIVE_BF16 must be 0 or 1, got 'yes'"):
        resolve_precision("auto", ["cpu"])
