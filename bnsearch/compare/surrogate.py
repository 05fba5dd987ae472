"""``bnsearch compare --benchmark``: the real samplers and pruner against a cheap stand-in.

The stand-in is a *surrogate*: scikit-learn's ``ExtraTreesRegressor`` fitted to the finished
trials of existing studies, mapping a configuration (log-scaled numbers, one-hot choices) to
its per-epoch validation-accuracy curve and its seconds per epoch. Every benchmark run is a
real Optuna study (in memory) with the real sampler and pruner; only ``train()`` is replaced,
so a comparison of many seeds takes seconds. Its figures are predictions, not measurements,
and the output says so.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from bnsearch import keys
from bnsearch.compare.runs import CompareResult, run_from_study
from bnsearch.compare.stats import Run, build_compare_data
from bnsearch.config import resolve_pack
from bnsearch.core.seeding import derive_seed
from bnsearch.core.space import CategoricalParam, FloatParam, IntParam, SearchSpace, TrialParams
from bnsearch.errors import ConfigError, StudyError
from bnsearch.urls import mask_url

if TYPE_CHECKING:
    import optuna

    from bnsearch.compare.runs import CompareConfig
    from bnsearch.search.run import StudyCallback

MIN_SURROGATE_TRIALS = 5  # fewer finished trials than this cannot stand in for a search space
SURROGATE_TREES = 100  # trees per ExtraTrees forest


@dataclass(frozen=True, slots=True)
class Outcome:
    """What a stand-in objective says training a configuration would give."""

    val_acc_curve: tuple[float, ...]  # validation accuracy (0..1) after each epoch
    epoch_time_s: float  # training seconds per epoch


Simulator = Callable[[TrialParams], Outcome]


@dataclass(frozen=True, slots=True, kw_only=True)
class StandInObjective:
    """Optuna objective that reports a simulated curve epoch by epoch, so pruners act as usual."""

    space: SearchSpace
    simulate: Simulator

    def __call__(self, trial: optuna.Trial) -> float:
        return self.evaluate(trial, self.begin(trial))

    def begin(self, trial: optuna.Trial) -> TrialParams:
        """Suggest the trial's params (at ask time, as a packed search does)."""
        params = self.space.suggest(trial)
        trial.set_user_attr(keys.RESOLVED_PARAMS, params.to_dict())
        return params

    def evaluate(self, trial: optuna.Trial, params: TrialParams) -> float:
        """Report the simulated curve epoch by epoch; return the last value or raise TrialPruned."""
        import optuna

        out = self.simulate(params)
        curve = out.val_acc_curve[: params.epochs]
        for epoch, value in enumerate(curve, start=1):
            trial.report(value, epoch)
            if trial.should_prune():
                self._record(trial, curve[:epoch], out.epoch_time_s)
                raise optuna.TrialPruned(f"pruned after simulated epoch {epoch}")
        self._record(trial, curve, out.epoch_time_s)
        return curve[-1]

    @staticmethod
    def _record(trial: optuna.Trial, curve: Sequence[float], epoch_time_s: float) -> None:
        trial.set_user_attr(keys.VAL_ACC_CURVE, list(curve))
        trial.set_user_attr(keys.EPOCH_TIME_CURVE, [epoch_time_s] * len(curve))
        trial.set_user_attr(keys.SIMULATED_TIME_S, epoch_time_s * len(curve))


def encode(space: SearchSpace, values: dict[str, Any]) -> list[float]:
    """Feature vector of a configuration: log10 of log-ranged numbers, one-hot choices.

    A conditional parameter that is absent (gamma/beta without BN) encodes as all zeros.
    """
    row: list[float] = []
    for name in space.searchable:
        p = space.params[name]
        v = values.get(name)
        if isinstance(p, CategoricalParam):
            row.extend(1.0 if v is not None and v == c and type(v) is type(c) else 0.0 for c in p.choices)
        elif isinstance(p, FloatParam | IntParam):
            x = float(v) if v is not None else float(p.low)
            row.append(math.log10(x) if p.log else x)
    return row


@dataclass(frozen=True, slots=True)
class Surrogate:
    """A fitted stand-in for training: configuration → (curve, seconds per epoch)."""

    space: SearchSpace
    curve_model: Any  # ExtraTreesRegressor, multi-output over epochs
    time_model: Any  # ExtraTreesRegressor on log seconds per epoch
    n_trials: int  # trials it was fitted to

    def __call__(self, params: TrialParams) -> Outcome:
        x = np.array([encode(self.space, params.to_dict())])
        curve = np.clip(np.atleast_1d(self.curve_model.predict(x)[0]), 0.0, 1.0)
        epoch_s = float(np.exp(self.time_model.predict(x)[0]))
        return Outcome(tuple(float(v) for v in curve), epoch_s)


def _trial_row(
    t: optuna.trial.FrozenTrial, space: SearchSpace, n_epochs: int
) -> tuple[dict[str, Any], list[float], float | None]:
    values = t.user_attrs.get(keys.RESOLVED_PARAMS) or dict(t.params)
    curve = [float(v) for v in t.user_attrs.get(keys.VAL_ACC_CURVE) or []]
    if not curve and t.value is not None:
        curve = [float(t.value)]
    # A pruned trial is taken to stay where it stopped; the padded tail is an assumption.
    curve = (curve + [curve[-1]] * n_epochs)[:n_epochs] if curve else []
    times = t.user_attrs.get(keys.EPOCH_TIME_CURVE) or []
    epoch_s = float(np.mean(times)) if times else None
    return values, curve, epoch_s


def fit_surrogate(space: SearchSpace, trials: Sequence[optuna.trial.FrozenTrial], *, seed: int = 0) -> Surrogate:
    """Fit a surrogate to finished trials of ``space`` (complete and pruned ones).

    Trials that diverged before their first epoch count as the worst curve seen.

    Raises:
        StudyError: fewer than ``MIN_SURROGATE_TRIALS`` usable trials.
    """
    from optuna.trial import TrialState
    from sklearn.ensemble import ExtraTreesRegressor

    n_epochs = space.max_epochs
    rows = [_trial_row(t, space, n_epochs) for t in trials if t.state in (TrialState.COMPLETE, TrialState.PRUNED)]
    with_curve = [r for r in rows if r[1]]
    if len(rows) < MIN_SURROGATE_TRIALS or not with_curve:
        raise StudyError(
            f"the benchmark surrogate needs at least {MIN_SURROGATE_TRIALS} finished trials "
            f"with validation results, got {len(with_curve)}; run more trials first "
            "(bnsearch run or compare)"
        )
    worst = min(min(r[1]) for r in with_curve)
    x = np.array([encode(space, r[0]) for r in rows])
    y = np.array([r[1] or [worst] * n_epochs for r in rows])
    times = [r[2] for r in rows if r[2] is not None]
    default_s = float(np.median(times)) if times else 1.0
    log_s = np.log(np.array([r[2] if r[2] is not None else default_s for r in rows]))
    curve_model = ExtraTreesRegressor(n_estimators=SURROGATE_TREES, random_state=seed, n_jobs=1)
    curve_model.fit(x, y if n_epochs > 1 else y.ravel())
    time_model = ExtraTreesRegressor(n_estimators=SURROGATE_TREES, random_state=seed, n_jobs=1).fit(x, log_s)
    return Surrogate(space=space, curve_model=curve_model, time_model=time_model, n_trials=len(rows))


def run_simulated_compare(
    space: SearchSpace,
    simulate: Simulator,
    *,
    strategies: Sequence[str],
    seeds: Sequence[int],
    trials: int,
    pruner: str,
    mode_note: str,
    trial_callbacks: Sequence[StudyCallback] = (),
    on_event: Callable[[str], None] | None = None,
    pack: int = 1,
) -> CompareResult:
    """Every strategy × seed as an in-memory Optuna study against ``simulate``.

    With ``pack`` above 1, trials are asked ``pack`` at a time before any of them reports, as
    ``--pack`` does, so the cost of asking several at once shows in the comparison.

    Samplers are configured as in real mode (same registry, same startup count, same
    pruner), so only the objective differs; their seeds differ from the real runs' so that a
    benchmark over a real compare's own studies explores new trajectories.
    """
    import optuna

    from bnsearch.samplers import SamplerContext, make_sampler, n_startup_trials
    from bnsearch.search.pruners import make_pruner

    objective = StandInObjective(space=space, simulate=simulate)
    runs: list[Run] = []
    names: list[str] = []
    for seed in seeds:
        for strategy in strategies:
            # Not the real runs' sampler seeds: the surrogate reproduces its training points
            # exactly, so the same seeds would only replay the real runs it was fitted to.
            ctx = SamplerContext(
                seed=derive_seed(seed, "benchmark", "sampler", strategy),
                space=space,
                n_startup_trials=n_startup_trials(trials),
            )
            study = optuna.create_study(
                study_name=f"benchmark-{strategy}-s{seed}",
                sampler=make_sampler(strategy, ctx),
                pruner=make_pruner(pruner, max_epochs=space.max_epochs),
                direction="maximize",
            )
            if pack > 1:
                _optimize_in_packs(study, objective, trials=trials, pack=pack, callbacks=trial_callbacks)
            else:
                study.optimize(objective, n_trials=trials, callbacks=list(trial_callbacks), gc_after_trial=False)
            names.append(study.study_name)
            runs.append(run_from_study(study, strategy=strategy, seed=seed))
            if on_event is not None:
                on_event(f"{study.study_name}: {trials} simulated trials")
    data = build_compare_data(runs, trials=trials, mode="benchmark", mode_note=mode_note)
    return CompareResult(data=data, study_names=tuple(names), trials_run=sum(len(r.values) for r in runs))


def _optimize_in_packs(
    study: optuna.Study,
    objective: StandInObjective,
    *,
    trials: int,
    pack: int,
    callbacks: Sequence[StudyCallback],
) -> None:
    import optuna

    done = 0
    while done < trials:
        asked = [study.ask() for _ in range(min(pack, trials - done))]
        begun = [(t, objective.begin(t)) for t in asked]
        for trial, params in begun:
            try:
                value: float | None = objective.evaluate(trial, params)
                state = None
            except optuna.TrialPruned:
                value, state = None, optuna.trial.TrialState.PRUNED
            frozen = study.tell(trial, value, state=state)
            for callback in callbacks:
                callback(study, frozen)
        done += len(asked)


def source_studies(cfg: CompareConfig, storage: optuna.storages.BaseStorage) -> list[str]:
    """``--from-study`` names, or else every real compare study of ``cfg.dataset`` in storage."""
    from bnsearch.study import study_names

    if cfg.from_studies:
        return list(cfg.from_studies)
    head = cfg.study_name("x", 0)[: -len("-x-s0")] + "-"
    found = [n for n in study_names(storage) if n.startswith(head)]
    if not found:
        raise ConfigError(
            f"--benchmark needs trials to fit its surrogate: pass --from-study NAME, or run a real "
            f"compare on {cfg.dataset} first (no study named {head}* in {mask_url(cfg.storage)})"
        )
    return found


def run_benchmark_compare(
    cfg: CompareConfig,
    *,
    on_event: Callable[[str], None] | None = None,
    trial_callbacks: Sequence[StudyCallback] = (),
) -> CompareResult:
    """Fit a surrogate to the source studies, then compare ``cfg.strategies`` against it.

    Raises:
        StudyError: a source study is missing, has too few trials, or the sources disagree
            on the search space.
    """
    from bnsearch.storages import open_storage
    from bnsearch.study import load_existing

    storage = open_storage(cfg.storage, create=False, heartbeat=False)
    names = source_studies(cfg, storage)
    trials: list[optuna.trial.FrozenTrial] = []
    spaces: dict[str, Any] = {}
    datasets: set[str] = set()
    for name in names:
        study = load_existing(storage, name)
        identity = study.user_attrs.get(keys.STUDY_CONFIG)
        if identity is None:
            raise StudyError(f"study '{name}' was not created by bnsearch; it has no stored search space")
        spaces[name] = identity["space"]
        datasets.add(str(identity.get("dataset")))
        trials.extend(study.get_trials(deepcopy=False))
    first = names[0]
    for name in names[1:]:
        if spaces[name] != spaces[first]:
            raise StudyError(
                f"source studies '{first}' and '{name}' searched different spaces; fit the "
                "surrogate to studies of one space (pass --from-study for each)"
            )
    space = SearchSpace.from_dict(spaces[first])
    surrogate = fit_surrogate(space, trials)
    note = (
        "BENCHMARK mode: values are predictions of a surrogate (ExtraTrees fitted to "
        f"{surrogate.n_trials} trials of {', '.join(names)} on {', '.join(sorted(datasets))}), "
        "not trained models; "
        "times are simulated training time plus real sampler time"
    )
    return run_simulated_compare(
        space,
        surrogate,
        strategies=cfg.strategies,
        seeds=cfg.seed_list,
        trials=cfg.trials,
        pruner=cfg.pruner,
        mode_note=note,
        trial_callbacks=trial_callbacks,
        on_event=on_event,
        pack=resolve_pack(cfg.pack, "cpu"),
    )
