"""SkoptSampler: Optuna's sampler contract, distribution ↔ dimension mapping, every estimator."""

from __future__ import annotations

import sys
from collections.abc import Callable

import optuna
import pytest
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution
from optuna.testing.pytest_samplers import (
    BasicSamplerTestCase,
    RelativeSamplerTestCase,
    SingleOnlySamplerTestCase,
)
from optuna.trial import TrialState
from typer.testing import CliRunner

from bnsearch.errors import ConfigError, MissingDependencyError
from bnsearch.samplers import SamplerContext, get_strategy, make_sampler
from bnsearch.samplers.skopt import (
    ESTIMATORS,
    SkoptOptions,
    SkoptSampler,
    from_dimension,
    to_dimension,
    to_dimension_value,
)

FAST = SkoptOptions(n_startup_trials=3, acq_optimizer="sampling")


class TestOptunaBasic(BasicSamplerTestCase):
    """With 3 start-up trials most tests reach the surrogate: ~15 s, so slow."""

    pytestmark = pytest.mark.slow

    @pytest.fixture
    def sampler(self) -> Callable[[], optuna.samplers.BaseSampler]:
        return lambda: SkoptSampler(seed=0, options=FAST)


class TestOptunaBasicDefaults(BasicSamplerTestCase):
    """The same contract with the strategy's default options (GP, gp_hedge, auto, 10 start-up)."""

    @pytest.fixture
    def sampler(self) -> Callable[[], optuna.samplers.BaseSampler]:
        return lambda: make_sampler("skopt", SamplerContext(seed=0))


class TestOptunaRelative(RelativeSamplerTestCase):
    """~40 s on 2 busy cores (a GP fit per ask), so slow."""

    pytestmark = pytest.mark.slow

    @pytest.fixture
    def sampler(self) -> Callable[[], optuna.samplers.BaseSampler]:
        # One start-up point, so sample_relative asks the fitted surrogate at once.
        return lambda: SkoptSampler(seed=0, options=SkoptOptions(n_startup_trials=1, acq_optimizer="sampling"))


class TestOptunaSingleOnly(SingleOnlySamplerTestCase):
    @pytest.fixture
    def sampler(self) -> Callable[[], optuna.samplers.BaseSampler]:
        return lambda: SkoptSampler(seed=0)


MAPPING_CASES = {
    "float": (FloatDistribution(-1.0, 2.0), [-1.0, 0.3, 2.0]),
    "float_log": (FloatDistribution(1e-6, 1.0, log=True), [1e-6, 3e-3, 1.0]),
    "float_step": (FloatDistribution(0.0, 1.0, step=0.1), [0.0, 0.3, 0.7, 1.0]),
    "int": (IntDistribution(-3, 7), [-3, 0, 7]),
    "int_log": (IntDistribution(1, 512, log=True), [1, 17, 512]),
    "int_step": (IntDistribution(1, 9, step=2), [1, 5, 9]),
    "categorical_mixed": (
        CategoricalDistribution((1, "1", None, False, 2.5)),
        [1, "1", None, False, 2.5],
    ),
}


@pytest.mark.parametrize("case", sorted(MAPPING_CASES))
def test_values_round_trip_through_skopt_dimensions(case: str) -> None:
    dist, values = MAPPING_CASES[case]
    dim = to_dimension(dist)
    for v in values:
        x = to_dimension_value(dist, v)
        assert x in dim
        back = from_dimension(dist, x)
        assert back == v and type(back) is type(v)


@pytest.mark.parametrize("case", sorted(MAPPING_CASES))
def test_points_skopt_draws_map_to_valid_values(case: str) -> None:
    dist, _ = MAPPING_CASES[case]
    for x in to_dimension(dist).rvs(n_samples=200, random_state=0):
        v = from_dimension(dist, x)
        assert dist._contains(dist.to_internal_repr(v)), v
        assert type(v).__module__ == "builtins"


def test_step_floats_round_onto_the_grid() -> None:
    dist = FloatDistribution(0.0, 1.0, step=0.1)
    assert from_dimension(dist, 0.2999) == 0.3
    assert from_dimension(dist, 0.96) == 1.0


def _objective(trial: optuna.trial.Trial) -> float:
    x = trial.suggest_float("x", -3.0, 3.0)
    n = trial.suggest_int("n", 1, 64, log=True)
    c = trial.suggest_categorical("c", ["a", "b", "c"])
    return (x - 1) ** 2 + abs(n - 8) / 8 + (c != "b")


@pytest.mark.parametrize("estimator", ESTIMATORS)
def test_every_estimator_runs_on_a_mixed_space(estimator: str) -> None:
    """A smoke test per surrogate: a future skopt/sklearn/numpy that breaks one fails here."""
    sampler = SkoptSampler(seed=0, options=SkoptOptions(estimator=estimator, n_startup_trials=4))
    study = optuna.create_study(sampler=sampler)
    study.optimize(_objective, n_trials=7)
    assert all(t.state == TrialState.COMPLETE for t in study.trials)
    assert len({tuple(sorted(t.params.items())) for t in study.trials}) == 7


def test_gbrt_plain_skopt_still_fails_here() -> None:
    """Documents why make_gbrt exists; when skopt fixes GBRT this fails and make_gbrt can go."""
    import skopt

    with pytest.raises(ValueError, match="has to be a regressor"):
        skopt.Optimizer([(0.0, 1.0)], base_estimator="GBRT")


def test_maximize_study_is_negated_for_skopt() -> None:
    sampler = SkoptSampler(seed=0, options=SkoptOptions(n_startup_trials=1, acq_optimizer="sampling"))
    study = optuna.create_study(direction="maximize", sampler=sampler)
    for x in (0.1, 0.9):
        study.enqueue_trial({"x": x})
    study.optimize(lambda t: t.suggest_float("x", 0.0, 1.0), n_trials=2)
    xs, ys = sampler._observations(study, ["x"], {"x": FloatDistribution(0.0, 1.0)})
    assert xs == [[0.1], [0.9]] and ys == [-0.1, -0.9]


def test_pruned_trials_are_told_with_their_last_report() -> None:
    study = optuna.create_study()
    dist = {"x": FloatDistribution(0.0, 1.0)}
    study.add_trial(optuna.create_trial(params={"x": 0.5}, distributions=dist, value=2.0))
    study.add_trial(
        optuna.create_trial(
            params={"x": 0.2},
            distributions=dist,
            state=TrialState.PRUNED,
            intermediate_values={0: 9.0, 3: 7.0},
        )
    )
    study.add_trial(optuna.create_trial(params={"x": 0.3}, distributions=dist, state=TrialState.PRUNED))
    study.add_trial(optuna.create_trial(params={"x": 0.4}, distributions=dist, state=TrialState.FAIL))
    told = SkoptSampler(seed=0)._observations(study, ["x"], dist)
    assert told == ([[0.5], [0.2]], [2.0, 7.0])
    ignored = SkoptSampler(seed=0, options=SkoptOptions(consider_pruned_trials=False))
    assert ignored._observations(study, ["x"], dist) == ([[0.5]], [2.0])


def test_running_trials_of_other_workers_get_the_worst_value() -> None:
    study = optuna.create_study(direction="maximize")
    dist = {"x": FloatDistribution(0.0, 1.0)}
    for x, v in ((0.1, 0.5), (0.2, 0.9)):
        study.add_trial(optuna.create_trial(params={"x": x}, distributions=dist, value=v))
    other = study.ask(dist)  # another worker's trial, params set, still running
    mine = study.ask()
    xs, ys = SkoptSampler(seed=0)._observations(study, ["x"], dist, exclude=mine.number)
    assert xs == [[0.1], [0.2], [other.params["x"]]]
    assert ys == [-0.5, -0.9, -0.5]  # negated for skopt; the lie is the worst (largest) one
    plain = SkoptSampler(seed=0, options=SkoptOptions(constant_liar=False))
    assert plain._observations(study, ["x"], dist, exclude=mine.number)[0] == [[0.1], [0.2]]


def test_resume_shares_what_is_known() -> None:
    """A fresh sampler on the same study asks exactly what the first would (nothing in memory)."""
    opts = SkoptOptions(n_startup_trials=3, acq_optimizer="sampling")
    study = optuna.create_study(sampler=SkoptSampler(seed=1, options=opts))
    study.optimize(_objective, n_trials=5)
    trial = study.ask()
    space = study.sampler.infer_relative_search_space(study, trial._cached_frozen_trial)
    frozen = trial._cached_frozen_trial
    first = study.sampler.sample_relative(study, frozen, space)
    assert SkoptSampler(seed=1, options=opts).sample_relative(study, frozen, space) == first
    assert set(space) == {"c", "n", "x"}


@pytest.mark.parametrize(
    ("options", "match"),
    [
        (
            {"skopt_estimator": "XGB"},
            "unknown --skopt-estimator 'XGB'; choose one of: GP, RF, ET, GBRT",
        ),
        ({"skopt_acq": "UCB"}, "unknown --skopt-acq 'UCB'; choose one of: gp_hedge, EI, PI, LCB"),
    ],
    ids=["estimator", "acq"],
)
def test_bad_options_are_config_errors(options: dict, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        get_strategy("skopt").validate_options(options)
    with pytest.raises(ConfigError, match=match):
        make_sampler("skopt", SamplerContext(options=options))


def test_options_of_another_strategy_are_refused() -> None:
    with pytest.raises(ConfigError, match="--skopt-estimator does not apply to --strategy tpe"):
        get_strategy("tpe").validate_options({"skopt_estimator": "RF"})


def test_lbfgs_needs_the_gp() -> None:
    with pytest.raises(ConfigError, match="lbfgs"):
        SkoptOptions(estimator="RF", acq_optimizer="lbfgs").validate()


def test_missing_skopt_names_the_package(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "skopt", None)  # import skopt now raises ImportError
    with pytest.raises(MissingDependencyError, match="pip install scikit-optimize"):
        make_sampler("skopt", SamplerContext(seed=0))


def test_option_names_are_case_insensitive() -> None:
    sampler = make_sampler("skopt", SamplerContext(options={"skopt_estimator": "gbrt", "skopt_acq": "ei"}))
    assert (sampler.options.estimator, sampler.options.acq_func) == ("GBRT", "EI")  # type: ignore[attr-defined]


def test_factory_passes_cli_options_through() -> None:
    sampler = make_sampler(
        "skopt",
        SamplerContext(seed=0, n_startup_trials=5, options={"skopt_estimator": "ET", "skopt_acq": "EI"}),
    )
    assert isinstance(sampler, SkoptSampler)
    assert (
        sampler.options.estimator,
        sampler.options.acq_func,
        sampler.options.n_startup_trials,
    ) == ("ET", "EI", 5)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--skopt-estimator", "XGB"], "choose one of: GP, RF, ET, GBRT"),
        (["--skopt-acq", "UCB"], "choose one of: gp_hedge, EI, PI, LCB"),
        (
            ["--strategy", "tpe", "--skopt-estimator", "RF"],
            "--skopt-estimator does not apply to --strategy tpe",
        ),
    ],
    ids=["estimator", "acq", "wrong-strategy"],
)
def test_cli_rejects_bad_skopt_options_without_creating_a_study(tmp_path, args: list[str], message: str) -> None:
    from bnsearch.cli import app

    db = tmp_path / "s.db"
    base = ["run", "--strategy", "skopt"] if "--strategy" not in args else ["run"]
    result = CliRunner().invoke(app, [*base, *args, "--dataset", "digits", "--storage", f"sqlite:///{db}"])
    assert result.exit_code == 2, result.output
    assert message in result.output and "Traceback" not in result.output
    assert not db.exists()
