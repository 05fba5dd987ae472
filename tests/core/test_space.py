from __future__ import annotations

from pathlib import Path

import optuna
import pytest

from bnsearch.core.space import (
    ACTIVATIONS,
    BETA_INITS,
    BN_PLACEMENTS,
    GAMMA_INITS,
    CategoricalParam,
    FixedParam,
    FloatParam,
    IntParam,
    SearchSpace,
)
from bnsearch.errors import SpaceError


def sample(space: SearchSpace, n: int, seed: int = 0) -> list[tuple[optuna.trial.FrozenTrial, object]]:
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=seed), direction="maximize")
    out = []
    for _ in range(n):
        trial = study.ask()
        params = space.suggest(trial)
        study.tell(trial, 0.5)
        out.append((study.trials[-1], params))
    return out


def test_defaults_sample_valid_configs() -> None:
    for frozen, p in sample(SearchSpace.default(), 60):
        assert 1e-4 <= p.lr <= 1.0 and 1e-6 <= p.weight_decay <= 1e-2
        assert p.activation in ACTIVATIONS and p.bn_placement in BN_PLACEMENTS
        assert p.momentum == 0.9 and p.batch_size == 32 and p.epochs == 4
        assert "momentum" not in frozen.params  # fixed params are not sampled
        if p.has_bn:
            assert p.gamma_init in GAMMA_INITS and p.beta_init in BETA_INITS
            assert {"gamma_init", "beta_init"} <= set(frozen.params)
        else:
            assert p.gamma_init is None and p.beta_init is None
            assert "gamma_init" not in frozen.params and "beta_init" not in frozen.params


def test_gamma_beta_only_when_some_bn_exists() -> None:
    space = SearchSpace.from_mapping({"bn_placement": "none", "bn_classifier": False})
    assert all("gamma_init" not in t.params for t, _ in sample(space, 10))
    space = SearchSpace.from_mapping({"bn_placement": "none", "bn_classifier": True})
    assert all("gamma_init" in t.params for t, _ in sample(space, 10))


def test_toml_overrides_take_effect(tmp_path: Path) -> None:
    f = tmp_path / "space.toml"
    f.write_text(
        "epochs = 2\n"
        'activation = { choices = ["relu", "tanh"] }\n'
        "[lr]\nlow = 0.01\nhigh = 0.1\nlog = true\n"
        "[momentum]\nlow = 0.5\nhigh = 0.95\n"
        "[batch_size]\nchoices = [32, 64]\n"
        "[weight_decay]\nvalue = 0.0\n"
    )
    space = SearchSpace.from_toml(f)
    assert space.params["epochs"] == FixedParam(2)
    assert space.params["lr"] == FloatParam(0.01, 0.1, log=True)
    assert space.params["activation"] == CategoricalParam(("relu", "tanh"))
    assert "momentum" in space.searchable
    for frozen, p in sample(space, 30):
        assert 0.01 <= p.lr <= 0.1 and 0.5 <= p.momentum <= 0.95
        assert p.activation in ("relu", "tanh") and p.batch_size in (32, 64)
        assert p.epochs == 2 and p.weight_decay == 0.0
        assert "momentum" in frozen.params


def test_int_range_with_step_stays_on_grid() -> None:
    space = SearchSpace.from_mapping({"batch_size": {"low": 16, "high": 128, "step": 16}})
    assert space.params["batch_size"] == IntParam(16, 128, step=16)
    assert all(p.batch_size % 16 == 0 and 16 <= p.batch_size <= 128 for _, p in sample(space, 20))


def test_with_fixed_overrides_and_to_dict_is_stable() -> None:
    space = SearchSpace.default().with_fixed(epochs=3, batch_size=None)
    assert space.params["epochs"] == FixedParam(3)
    assert space.params["batch_size"] == FixedParam(32)
    assert space.to_dict() == SearchSpace.default().with_fixed(epochs=3).to_dict()
    assert space.to_dict() != SearchSpace.default().to_dict()


def test_grid_endpoints_exact() -> None:
    grid = SearchSpace.default().grid()
    assert grid["lr"][0] == 1e-4 and grid["lr"][-1] == 1.0 and len(grid["lr"]) == 3
    assert grid["activation"] == list(ACTIVATIONS)


BAD = [
    ("unknown-name", "lrr = 0.1\n", "unknown parameter 'lrr'"),
    ("low-gt-high", "[lr]\nlow = 0.5\nhigh = 0.1\n", r"low > high"),
    ("log-touches-zero", "[weight_decay]\nlow = 0.0\nhigh = 0.1\nlog = true\n", "log range must have low > 0"),
    ("empty-choices", "activation = { choices = [] }\n", "choices is empty"),
    ("bad-choice", 'activation = { choices = ["gelu"] }\n', "unknown choice 'gelu'"),
    ("not-toml", "lr = [\n", "not valid TOML"),
    ("wrong-type", 'epochs = "ten"\n', "epochs: must be a number"),
    ("non-integer", "epochs = 2.5\n", "must be an integer"),
    ("zero-epochs", "epochs = 0\n", "must be ≥ 1"),
    ("unknown-key", "[lr]\nlow = 0.1\nhigh = 0.5\nlgo = true\n", "unknown key 'lgo'"),
    ("range-on-categorical", "[activation]\nlow = 1\nhigh = 2\n", "is categorical"),
    ("half-range", "[lr]\nlow = 0.1\n", "needs both low and high"),
    ("two-kinds", "[lr]\nvalue = 0.1\nchoices = [0.1]\n", "exactly one of"),
    ("momentum-one", "momentum = 1.0\n", "must be < 1"),
    ("bool-as-number", "lr = true\n", "must be a number"),
]


@pytest.mark.parametrize(("text", "message"), [b[1:] for b in BAD], ids=[b[0] for b in BAD])
def test_invalid_space_files(tmp_path: Path, text: str, message: str) -> None:
    f = tmp_path / "space.toml"
    f.write_text(text)
    with pytest.raises(SpaceError, match=message):
        SearchSpace.from_toml(f)


def test_missing_space_file(tmp_path: Path) -> None:
    with pytest.raises(SpaceError, match="cannot read space file"):
        SearchSpace.from_toml(tmp_path / "nope.toml")


# --- per-model spaces (--model) ---


def test_the_bncnn_space_is_what_it_always_was() -> None:
    from bnsearch.core.space import SearchSpace

    assert SearchSpace.default().to_dict() == SearchSpace.default("bncnn").to_dict()
    assert sorted(SearchSpace.default().params) == [
        "activation", "batch_size", "beta_init", "bn_classifier", "bn_placement",
        "epochs", "gamma_init", "lr", "momentum", "weight_decay",
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("family", "toml", "match"),
    [
        ("bncnn", "depth = 4", "unknown parameter 'depth'; known parameters"),
        ("plain", "depth = 30", "depth: must be < 21"),
        ("plain", "depth = 1", "depth: must be ≥ 2"),
        ("plain", 'norm = "layer"', "norm: unknown choice 'layer'"),
        ("plain", "dropout = 0.1", "unknown parameter 'dropout' for model plain"),
        ("resnet", "depth = 10", r"depth must be 6n\+2 \(8, 14, 20, ...\), got 10"),
        ("resnet", "depth = { low = 8, high = 20 }", "give choices"),
        ("resnet", 'bn_placement = "before_activation"', "choose from: none, post_activation, pre_activation"),
        ("user", 'x = { choices = [1, "a"] }', "an extra parameter must be"),
        ("plain", "bn_momentum = 1.5", "bn_momentum: must be < 1"),
    ],
)
def test_bad_model_spaces(family: str, toml: str, match: str) -> None:
    import tomllib

    from bnsearch.core.space import SearchSpace

    with pytest.raises(SpaceError, match=match):
        SearchSpace.from_mapping(tomllib.loads(toml), family=family)


def test_a_user_space_declares_extra_params_that_come_last_and_round_trip() -> None:
    import optuna

    from bnsearch.core.space import CategoricalParam, FloatParam, IntParam, SearchSpace

    space = SearchSpace.from_mapping(
        {
            "blocks": {"low": 1, "high": 4},
            "drop": {"low": 0, "high": 0.5},
            "act2": {"choices": ["gelu", "silu"]},
            "k": 3,
        },
        family="user",
    )
    assert isinstance(space.params["blocks"], IntParam) and isinstance(space.params["drop"], FloatParam)
    assert isinstance(space.params["act2"], CategoricalParam)
    trial = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0)).ask()
    p = space.suggest(trial)
    assert set(p.extra) == {"blocks", "drop", "act2", "k"} and p.extra["k"] == 3
    assert list(trial.params)[-3:] == ["act2", "blocks", "drop"]  # after the built-in params
    assert SearchSpace.from_dict(space.to_dict(), family="user") == space
    assert p.to_dict()["extra"] == p.extra


def test_norm_none_skips_gamma_and_beta() -> None:
    import optuna

    from bnsearch.core.space import SearchSpace

    space = SearchSpace.from_mapping({"norm": "none"}, family="plain")
    for seed in range(5):
        trial = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=seed)).ask()
        p = space.suggest(trial)
        assert p.gamma_init is None and p.beta_init is None and "gamma_init" not in trial.params


def test_a_user_space_may_set_norm_as_a_field_not_an_extra() -> None:
    from bnsearch.core.space import SearchSpace

    p = SearchSpace.from_mapping({"norm": "group", "depth": 3, "k": 1}, family="user").fixed_params(
        lr=0.1, weight_decay=1e-4, activation="relu", bn_placement="before_activation", bn_classifier=False,
        gamma_init="ones", beta_init="zeros",
    )  # fmt: skip
    assert p.norm == "group" and p.depth == 3 and p.extra == {"k": 1}
