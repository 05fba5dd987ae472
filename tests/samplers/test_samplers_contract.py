"""The contract every registered strategy keeps, on bnsearch's own search space.

Parametrised over ``bnsearch.samplers.strategies()``: a strategy registered tomorrow is tested
here for free. Objectives are cheap analytic functions of the suggested ``TrialParams`` (no
training), and params are suggested through ``SearchSpace.suggest``, the one path a real
search takes.
"""

from __future__ import annotations

import functools
import json
import math
import os
import pickle
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import optuna
import pytest
from optuna.trial import TrialState

from bnsearch.config import RunConfig
from bnsearch.core.space import SearchSpace, TrialParams
from bnsearch.samplers import SamplerContext, make_sampler, strategy_names

STRATEGIES = strategy_names()
N_STARTUP = 3  # model-based strategies reach their model within the few trials run here

SPACES = {
    # The default space: log floats, string and bool categoricals, conditional gamma/beta.
    "default": SearchSpace.default(),
    # Every numeric kind: float log / uniform / step, int log / step.
    "numeric-kinds": SearchSpace.from_mapping(
        {
            "weight_decay": {"low": 0.0, "high": 0.01},
            "momentum": {"low": 0.5, "high": 0.95, "step": 0.05},
            "batch_size": {"low": 8, "high": 512, "log": True},
            "epochs": {"low": 1, "high": 9, "step": 2},
        }
    ),
    # Plain int range; a float step whose high is off the grid; a one-choice categorical.
    "int-uniform": SearchSpace.from_mapping(
        {
            "batch_size": {"low": 16, "high": 64},
            "momentum": {"low": 0.0, "high": 0.99, "step": 0.1},
            "activation": {"choices": ["tanh"]},
        }
    ),
}

_ACTIVATION_BONUS = {"relu": 0.3, "leaky_relu": 0.25, "tanh": 0.1, "sigmoid": 0.0}


def score(p: TrialParams) -> float:
    """A smooth stand-in for validation accuracy (maximized), peaked at lr=1e-2, wd=1e-4."""
    s = 1.0 - (math.log10(p.lr) + 2.0) ** 2 / 8 - (math.log10(p.weight_decay + 1e-9) + 4.0) ** 2 / 40
    s += _ACTIVATION_BONUS[p.activation] + (0.2 if p.has_bn else 0.0) + (0.05 if p.gamma_init == "ones" else 0.0)
    return s - abs(p.momentum - 0.9) - abs(math.log2(p.batch_size / 64)) / 20 - abs(p.epochs - 5) / 50


def _sampler(name: str, space: SearchSpace, seed: int | None = 0) -> optuna.samplers.BaseSampler:
    return make_sampler(name, SamplerContext(seed=seed, space=space, n_startup_trials=N_STARTUP))


def _objective(space: SearchSpace):  # noqa: ANN202
    return lambda trial: score(space.suggest(trial))


def _assert_valid(trial: optuna.trial.FrozenTrial, space: SearchSpace) -> None:
    """Every value inside its distribution (bounds, step/log grid, choices), as a Python scalar,
    and the conditional params present exactly when the network has BN."""
    for name, value in trial.params.items():
        dist = trial.distributions[name]
        assert dist._contains(dist.to_internal_repr(value)), f"{name}={value!r} outside {dist}"
        assert type(value).__module__ == "builtins", f"{name}={value!r} is a {type(value)}"
    resolved = space.fixed_params(**trial.params)
    for name in ("gamma_init", "beta_init"):
        assert (name in trial.params) == resolved.has_bn, trial.params


@pytest.mark.filterwarnings("ignore:The distribution is specified by:UserWarning")  # int-uniform's 0.99
@pytest.mark.parametrize("space_name", sorted(SPACES))
@pytest.mark.parametrize("strategy", STRATEGIES)
def test_values_inside_bounds_on_grids_and_conditionals_consistent(strategy: str, space_name: str) -> None:
    space = SPACES[space_name]
    study = optuna.create_study(direction="maximize", sampler=_sampler(strategy, space))
    study.optimize(_objective(space), n_trials=6)
    assert [t.state for t in study.trials] == [TrialState.COMPLETE] * 6
    for t in study.trials:
        _assert_valid(t, space)


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_categorical_choices_of_mixed_types_come_back_exactly(strategy: str) -> None:
    choices = (1, "1", None, 2.5, False)
    sampler = _sampler(strategy, SPACES["default"])
    if isinstance(sampler, optuna.samplers.GridSampler):
        pytest.skip("a grid strategy samples only the grid of bnsearch's space")

    def objective(trial: optuna.trial.Trial) -> float:
        c = trial.suggest_categorical("c", choices)
        return float(choices.index(c)) + trial.suggest_float("x", 0.0, 1.0)

    study = optuna.create_study(sampler=sampler)
    study.optimize(objective, n_trials=8)
    for t in study.trials:
        assert any(t.params["c"] is c or (type(t.params["c"]) is type(c) and t.params["c"] == c) for c in choices)


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_same_seed_same_sequence(strategy: str) -> None:
    space = SPACES["default"]

    def run() -> list[dict]:
        study = optuna.create_study(direction="maximize", sampler=_sampler(strategy, space, seed=11))
        study.optimize(_objective(space), n_trials=7)
        return [t.params for t in study.trials]

    assert run() == run()


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_pickled_mid_study_it_goes_on_exactly_as_the_original(strategy: str) -> None:
    # Optuna's way to save and restore a sampler (its FAQ on reproducible resumption) is pickle.
    space = SPACES["default"]
    original = optuna.create_study(direction="maximize", sampler=_sampler(strategy, space, seed=5))
    original.optimize(_objective(space), n_trials=N_STARTUP + 2)
    restored = optuna.create_study(direction="maximize", sampler=pickle.loads(pickle.dumps(original.sampler)))
    restored.add_trials(original.trials)
    for key, value in original._storage.get_study_system_attrs(original._study_id).items():
        restored._storage.set_study_system_attr(restored._study_id, key, value)  # qmc's sample counter
    original.optimize(_objective(space), n_trials=4)
    restored.optimize(_objective(space), n_trials=4)
    assert [t.params for t in restored.trials] == [t.params for t in original.trials]


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_parallel_threads_n_jobs_2(strategy: str) -> None:
    space = SPACES["default"]
    study = optuna.create_study(direction="maximize", sampler=_sampler(strategy, space))
    study.optimize(_objective(space), n_trials=8, n_jobs=2)
    assert sorted(t.number for t in study.trials) == list(range(8))
    assert all(t.state == TrialState.COMPLETE for t in study.trials)
    for t in study.trials:
        _assert_valid(t, space)


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_pruned_and_failed_trials_do_not_break_it(strategy: str) -> None:
    space = SPACES["default"]
    study = optuna.create_study(direction="maximize", sampler=_sampler(strategy, space))

    def objective(trial: optuna.trial.Trial) -> float:
        value = score(space.suggest(trial))
        trial.report(value - 1.0, step=0)
        if trial.number % 4 == 1:
            raise optuna.TrialPruned()
        if trial.number % 4 == 2:
            raise RuntimeError("diverged")
        return value

    study.optimize(objective, n_trials=10, catch=(RuntimeError,))
    states = [t.state for t in study.trials]
    assert states.count(TrialState.PRUNED) == 3 and states.count(TrialState.FAIL) == 2
    assert states[-2:] == [TrialState.COMPLETE, TrialState.PRUNED]  # still sampling after both
    for t in study.trials:
        _assert_valid(t, space)


@functools.cache
def _digits() -> Any:
    from bnsearch.core.data import load_dataset

    return load_dataset("digits")


@pytest.fixture
def cached_digits(monkeypatch: pytest.MonkeyPatch) -> None:
    """Read digits once for all strategies (reading it is most of a resume test's time)."""
    import bnsearch.search.run

    monkeypatch.setattr(bnsearch.search.run, "load_dataset", lambda name: _digits())


def _run_config(strategy: str, storage: str, trials: int) -> RunConfig:
    return RunConfig(
        strategy=strategy,
        trials=trials,
        dataset="digits",
        storage=storage,
        study_name="contract",
        device="cpu",
        seed=3,
    )


@pytest.mark.parametrize("strategy", STRATEGIES)
@pytest.mark.usefixtures("cached_digits")
def test_resume_from_storage_continues_rather_than_restarts(strategy: str, sqlite_url: str) -> None:
    """Resume the way ``bnsearch run`` does (``prepare_search`` on the same study twice)."""
    from bnsearch.search import prepare_search

    first = prepare_search(_run_config(strategy, sqlite_url, 4))
    first.study.optimize(_objective(first.space), n_trials=4)
    second = prepare_search(_run_config(strategy, sqlite_url, 4))
    assert second.resumed and second.n_existing == 4
    second.study.optimize(_objective(second.space), n_trials=4)

    trials = second.study.get_trials()
    assert [t.number for t in trials] == list(range(8))
    assert all(t.state == TrialState.COMPLETE for t in trials)
    before = [json.dumps(t.params, sort_keys=True) for t in trials[:4]]
    after = [json.dumps(t.params, sort_keys=True) for t in trials[4:]]
    # A restarted sampler would replay its first proposals; a continued one moves on.
    assert after != before
    assert not set(after) & set(before)


_WORKER = textwrap.dedent("""
    import sys
    sys.path.insert(0, {tests!r})
    from bnsearch.config import RunConfig
    from bnsearch.search import prepare_search
    from test_samplers_contract import _objective, _run_config

    setup = prepare_search(_run_config({strategy!r}, {storage!r}, 6), worker_index=int(sys.argv[1]))
    setup.study.optimize(_objective(setup.space), n_trials=6)
""")


@pytest.mark.slow
@pytest.mark.parametrize("strategy", STRATEGIES)
def test_two_processes_share_one_sqlite_study(strategy: str, sqlite_url: str, tmp_path: Path) -> None:
    from bnsearch.search import prepare_search

    # Create the study first, as `bnsearch run --workers 2` does before starting its workers.
    prepare_search(_run_config(strategy, sqlite_url, 6))
    script = _WORKER.format(tests=str(Path(__file__).parent), strategy=strategy, storage=sqlite_url)
    env = dict(os.environ)
    procs = [
        subprocess.Popen([sys.executable, "-c", script, str(i)], env=env, stderr=subprocess.PIPE, text=True)
        for i in range(2)
    ]
    for p in procs:
        _, err = p.communicate(timeout=300)
        assert p.returncode == 0, err
    study = optuna.load_study(study_name="contract", storage=sqlite_url)
    trials = study.get_trials()
    assert sorted(t.number for t in trials) == list(range(12))
    assert all(t.state == TrialState.COMPLETE for t in trials)
    for t in trials:
        _assert_valid(t, SPACES["default"])
    # Two workers asking at the same moment may now and then get one point twice (Optuna's
    # GPSampler did in one run here); workers that mirror each other would repeat all six.
    assert len({json.dumps(t.params, sort_keys=True) for t in trials}) >= 10
