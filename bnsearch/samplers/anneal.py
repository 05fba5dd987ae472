"""Simulated annealing as an Optuna sampler whose state lives in the study, not in memory."""

from __future__ import annotations

import math
import threading
import zlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
from optuna.distributions import BaseDistribution
from optuna.samplers import BaseSampler
from optuna.search_space import intersection_search_space
from optuna.study import StudyDirection
from optuna.trial import TrialState

from bnsearch._optuna import storage_of, study_id_of, trial_id_of
from bnsearch.samplers._common import LazySeed, domain_of, trial_rng
from bnsearch.samplers._moves import (
    AnnealSchedule,
    AnnealState,
    CategoricalDomain,
    Observation,
    move_categorical,
    move_numeric,
    propose_neighbour,
    replay,
    sample_uniform,
)

if TYPE_CHECKING:
    from optuna.study import Study
    from optuna.trial import FrozenTrial

ANNEAL_ATTR = "bnsearch:anneal"  # trial system attr: {"u", "temperature", "parent", "restarts"}
_CACHE_SIZE = 256  # plans kept per sampler; only trials still being sampled need one


@dataclass(frozen=True, slots=True)
class _Plan:
    """What the sampler decided for one trial; computed once, then read by every suggest."""

    state: AnnealState | None  # None during start-up: params are drawn uniformly
    proposal: Mapping[str, Any]  # neighbour of the current state, over its params


class SimulatedAnnealingSampler(LazySeed, BaseSampler):
    """Simulated annealing over any Optuna search space, continued across processes and resumes.

    Algorithm (the maths is in ``bnsearch.samplers._moves``):

    1. The first ``schedule.n_startup_trials`` trials are drawn uniformly (log params in log
       space); the best of them becomes the *current state*.
    2. Every later trial is a *neighbour* of the current state: each numeric param, with
       probability ``move_prob`` (1 by default: all of them), takes a normal step in unit
       space (its range mapped to [0, 1], after ``log`` for log params) whose std shrinks with
       the temperature from ``max_step`` to ``min_step``; values are reflected into the bounds
       and rounded onto the step grid. Each categorical param
       switches to another choice with a probability that falls with the temperature
       (divided by √n when there are n categorical params). If nothing moved, one param is
       forced to move.
    3. When the trial finishes, the Metropolis rule decides whether it becomes the current
       state: always if it is at least as good, else with probability ``exp(-Δ / (T·σ))``,
       where ``σ`` is the std of the values seen so far (so ``T`` is unit-free). Minimize and
       maximize are both supported. The temperature cools geometrically per move
       (``T = T₀·rate^k``, floored at ``min_temperature``).
    4. After ``patience`` moves without a new best value the run restarts from the best state
       at ``reheat_temperature``.

    State: nothing but a cache lives on the instance. Before each trial the sampler replays
    the study's finished trials in trial-number order (COMPLETE: a move with its value;
    PRUNED: a rejected move; FAIL and RUNNING: ignored) to rebuild the current state, the
    temperature and the restart count. Several processes on one storage, ``n_jobs>1`` and a
    study resumed later therefore continue one run. The uniform draw of each trial's
    Metropolis test is stored in its system attribute ``bnsearch:anneal`` (with its
    temperature and parent trial), so every process replays the same accept decisions.

    Sampling: ``infer_relative_search_space`` is the intersection space of the finished trials
    (params with one value only left out); ``sample_relative`` returns the neighbour for it.
    Params outside it (conditional ones) go through ``sample_independent``, which returns the
    neighbour's value when the current state has that param, and a uniform draw when it
    doesn't (a conditional branch just switched on) or its value lies outside the asked range.

    Randomness: every draw comes from a generator seeded by ``(seed, trial number, purpose)``,
    so the same seed on a sequential run gives the same sequence, and threads or processes
    never share a stream. Without a seed one is drawn lazily; ``reseed_rng`` draws a new one.

    Args:
        seed: Seed of all random draws; None for a random one.
        schedule: Cooling schedule and move sizes (``AnnealSchedule()`` by default).
    """

    def __init__(self, *, seed: int | None = None, schedule: AnnealSchedule | None = None) -> None:
        self._seed = seed
        self._schedule = schedule or AnnealSchedule()
        self._plans: dict[tuple[int, int, int], _Plan] = {}
        self._lock = threading.Lock()

    # Pickling and deep copies (Optuna's way to save a sampler and to copy it for n_jobs) keep the
    # seed and schedule; the lock cannot be copied and the plan cache is rebuilt from the study.
    def __getstate__(self) -> dict[str, Any]:
        return {"_seed": self._seed, "_schedule": self._schedule}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self._seed = state["_seed"]
        self._schedule = state["_schedule"]
        self._plans = {}
        self._lock = threading.Lock()

    @property
    def schedule(self) -> AnnealSchedule:
        return self._schedule

    def _rng(self, number: int, purpose: str) -> np.random.Generator:
        return trial_rng(self._base_seed(), number, purpose)

    # ---- Optuna's sampler interface -------------------------------------------------------

    def before_trial(self, study: Study, trial: FrozenTrial) -> None:
        if not study._is_multi_objective():
            self._plan(study, trial)

    def infer_relative_search_space(self, study: Study, trial: FrozenTrial) -> dict[str, BaseDistribution]:
        if study._is_multi_objective():
            return {}
        trials = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED))
        space = intersection_search_space(trials, include_pruned=True)
        return {name: d for name, d in sorted(space.items()) if not d.single()}

    def sample_relative(
        self, study: Study, trial: FrozenTrial, search_space: dict[str, BaseDistribution]
    ) -> dict[str, Any]:
        self._raise_error_if_multi_objective(study)
        if not search_space:
            return {}
        plan = self._plan(study, trial)
        return {name: self._value(plan, trial, name, dist) for name, dist in sorted(search_space.items())}

    def sample_independent(
        self,
        study: Study,
        trial: FrozenTrial,
        param_name: str,
        param_distribution: BaseDistribution,
    ) -> Any:
        self._raise_error_if_multi_objective(study)
        return self._value(self._plan(study, trial), trial, param_name, param_distribution)

    # ---- state and proposals ----------------------------------------------------------------

    def _plan(self, study: Study, trial: FrozenTrial) -> _Plan:
        key = (id(storage_of(study)), study_id_of(study), trial_id_of(trial))
        plan = self._plans.get(key)
        if plan is not None:
            return plan
        with self._lock:
            plan = self._plans.get(key)
            if plan is None:
                plan = self._make_plan(study, trial)
                self._plans[key] = plan
                while len(self._plans) > _CACHE_SIZE:
                    self._plans.pop(next(iter(self._plans)))
        return plan

    def _make_plan(self, study: Study, trial: FrozenTrial) -> _Plan:
        finished = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED))
        observations = [_observation(t) for t in finished if t.number != trial.number]
        minimize = study.direction == StudyDirection.MINIMIZE
        state = replay(observations, self._schedule, minimize=minimize)
        u = float(self._rng(trial.number, "accept").random())
        record: dict[str, Any] = {"u": u}
        if state is None or len(observations) < self._schedule.n_startup_trials:
            plan = _Plan(state=None, proposal={})
        else:
            parent = next(t for t in finished if t.number == state.current_number)
            domains = {n: domain_of(d) for n, d in parent.distributions.items() if not d.single()}
            proposal = propose_neighbour(
                state.current_params,
                domains,
                state.temperature,
                self._schedule,
                self._rng(trial.number, "move"),
            )
            plan = _Plan(state=state, proposal=proposal)
            record |= {
                "temperature": state.temperature,
                "parent": state.current_number,
                "restarts": state.restarts,
            }
        storage_of(study).set_trial_system_attr(trial_id_of(trial), ANNEAL_ATTR, record)
        return plan

    def _value(self, plan: _Plan, trial: FrozenTrial, name: str, dist: BaseDistribution) -> Any:
        dom = domain_of(dist)
        if dist.single():
            return sample_uniform(dom, self._rng(trial.number, "param:" + name))
        if name in plan.proposal and dom.contains(plan.proposal[name]):
            return plan.proposal[name]
        rng = self._rng(trial.number, "param:" + name)
        state = plan.state
        if state is None or name not in state.current_params or not dom.contains(state.current_params[name]):
            return sample_uniform(dom, rng)
        # The current state has this param but under another range (a dynamic search space).
        if isinstance(dom, CategoricalDomain):
            return move_categorical(
                state.current_params[name],
                dom,
                self._schedule.switch_probability(state.temperature),
                rng,
            )
        return move_numeric(state.current_params[name], dom, self._schedule.step_scale(state.temperature), rng)


def _observation(trial: FrozenTrial) -> Observation:
    value = trial.value if trial.state == TrialState.COMPLETE else None
    if value is not None and not math.isfinite(value):
        value = None
    record = trial.system_attrs.get(ANNEAL_ATTR)
    u = record.get("u") if isinstance(record, dict) else None
    if u is None:
        # A trial this sampler did not propose (enqueued, added, another sampler): a draw
        # fixed by its number alone, so every process replays it the same way.
        u = float(np.random.default_rng([trial.number, zlib.crc32(b"accept")]).random())
    return Observation(number=trial.number, params=trial.params, value=value, u=float(u))
