"""SimulatedAnnealingSampler: Optuna's own sampler contract, and a state that lives in the study."""

from __future__ import annotations

import math
from collections.abc import Callable

import optuna
import pytest
from optuna.testing.pytest_samplers import (
    BasicSamplerTestCase,
    RelativeSamplerTestCase,
    SingleOnlySamplerTestCase,
)
from optuna.trial import TrialState

from bnsearch.samplers._moves import AnnealSchedule
from bnsearch.samplers.anneal import ANNEAL_ATTR, SimulatedAnnealingSampler

SCHEDULE = AnnealSchedule(n_startup_trials=3)


class TestOptunaBasic(BasicSamplerTestCase):
    @pytest.fixture
    def sampler(self) -> Callable[[], optuna.samplers.BaseSampler]:
        return lambda: SimulatedAnnealingSampler(seed=0, schedule=SCHEDULE)


class TestOptunaRelative(RelativeSamplerTestCase):
    @pytest.fixture
    def sampler(self) -> Callable[[], optuna.samplers.BaseSampler]:
        # No start-up trials, so sample_relative proposes neighbours from the first trial on.
        return lambda: SimulatedAnnealingSampler(seed=0, schedule=AnnealSchedule(n_startup_trials=1))


class TestOptunaSingleOnly(SingleOnlySamplerTestCase):
    @pytest.fixture
    def sampler(self) -> Callable[[], optuna.samplers.BaseSampler]:
        return lambda: SimulatedAnnealingSampler(seed=0)


def _quadratic(trial: optuna.trial.Trial) -> float:
    x = trial.suggest_float("x", -5.0, 5.0)
    y = trial.suggest_float("y", 1e-4, 1.0, log=True)
    return (x - 1.0) ** 2 + (math.log10(y) + 2.0) ** 2


def _records(study: optuna.Study) -> list[dict]:
    return [t.system_attrs.get(ANNEAL_ATTR, {}) for t in study.trials]


def test_moves_are_neighbours_of_the_current_state() -> None:
    study = optuna.create_study(sampler=SimulatedAnnealingSampler(seed=1, schedule=SCHEDULE))
    study.optimize(_quadratic, n_trials=30)
    trials = study.trials
    for t in trials[SCHEDULE.n_startup_trials :]:
        rec = t.system_attrs[ANNEAL_ATTR]
        parent = trials[rec["parent"]]
        assert parent.number < t.number and parent.state == TrialState.COMPLETE
        assert 0 <= rec["u"] < 1 and rec["temperature"] > 0
        assert t.params != parent.params
    temps = [r["temperature"] for r in _records(study)[SCHEDULE.n_startup_trials :]]
    assert temps[-1] < temps[0]
    assert study.best_value < 0.5


def test_two_sampler_instances_continue_one_run() -> None:
    """A second process (a fresh sampler, same storage) proposes what the first one would have."""

    def run(split: int) -> list[dict]:
        study = optuna.create_study(sampler=SimulatedAnnealingSampler(seed=7, schedule=SCHEDULE))
        study.optimize(_quadratic, n_trials=split)
        # Same study, new sampler object: nothing but the trials carries over.
        resumed = optuna.load_study(
            study_name=study.study_name,
            storage=study._storage,
            sampler=SimulatedAnnealingSampler(seed=7, schedule=SCHEDULE),
        )
        resumed.optimize(_quadratic, n_trials=20 - split)
        return [t.params for t in resumed.trials]

    assert run(12) == run(20) == run(5)


def test_state_continues_across_seeds_of_different_workers() -> None:
    """A worker with another seed picks up the parent, temperature and restarts of the run."""
    study = optuna.create_study(sampler=SimulatedAnnealingSampler(seed=1, schedule=SCHEDULE))
    study.optimize(_quadratic, n_trials=15)
    other = SimulatedAnnealingSampler(seed=99, schedule=SCHEDULE)
    state_seen_by_first = study.sampler._make_plan(study, study.ask()._cached_frozen_trial).state  # type: ignore[attr-defined]
    state_seen_by_other = other._make_plan(study, study.ask()._cached_frozen_trial).state
    assert state_seen_by_first == state_seen_by_other


def test_pruned_trials_are_rejected_and_failed_ones_ignored() -> None:
    sampler = SimulatedAnnealingSampler(seed=3, schedule=AnnealSchedule(n_startup_trials=2, patience=100))
    study = optuna.create_study(sampler=sampler)
    calls = {"n": 0}

    def objective(trial: optuna.trial.Trial) -> float:
        value = _quadratic(trial)
        calls["n"] += 1
        if calls["n"] in (4, 5):
            raise optuna.TrialPruned()
        if calls["n"] in (6, 7):
            raise RuntimeError("boom")
        return value

    study.optimize(objective, n_trials=12, catch=(RuntimeError,))
    states = [t.state for t in study.trials]
    assert states.count(TrialState.PRUNED) == 2 and states.count(TrialState.FAIL) == 2
    recs = _records(study)
    # Trials 3, 4 pruned; 5, 6 failed. A pruned trial is a move that cools T and never
    # becomes the parent; a failed one is ignored (no cooling).
    r = sampler.schedule.cooling_rate
    assert all(study.trials[rec["parent"]].state == TrialState.COMPLETE for rec in recs if "parent" in rec)
    assert recs[5]["temperature"] == pytest.approx(recs[4]["temperature"] * r)
    assert recs[7]["temperature"] == pytest.approx(recs[5]["temperature"])


def test_seeded_sequential_runs_repeat_and_seeds_differ() -> None:
    def params(seed: int) -> list[dict]:
        study = optuna.create_study(sampler=SimulatedAnnealingSampler(seed=seed))
        study.optimize(_quadratic, n_trials=15)
        return [t.params for t in study.trials]

    assert params(5) == params(5)
    assert params(5) != params(6)


def test_restarts_happen_when_the_search_stalls() -> None:
    sampler = SimulatedAnnealingSampler(seed=0, schedule=AnnealSchedule(n_startup_trials=2, patience=4))
    study = optuna.create_study(sampler=sampler)
    study.optimize(lambda t: float(t.suggest_int("k", 0, 3) != 0), n_trials=25)  # flat: stalls at once
    assert max(r.get("restarts", 0) for r in _records(study)) >= 2


def test_reseed_rng_changes_the_stream() -> None:
    s = SimulatedAnnealingSampler(seed=1)
    before = s._rng(0, "x").random()
    s.reseed_rng()
    assert s._rng(0, "x").random() != before
