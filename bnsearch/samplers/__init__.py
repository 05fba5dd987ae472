"""The strategy registry: name → factory of an Optuna sampler.

A new strategy is one ``register(Strategy(...))`` call here; the CLI, the contract tests and
the benchmarks read the registry, so they pick it up without changes.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from bnsearch.errors import ConfigError

if TYPE_CHECKING:
    from optuna.samplers import BaseSampler

    from bnsearch.core.space import SearchSpace


@dataclass(frozen=True, slots=True, kw_only=True)
class SamplerContext:
    """What a sampler factory may use."""

    seed: int | None = None  # sampler seed (derived from the run's root seed)
    space: SearchSpace | None = None  # needed by grid
    n_startup_trials: int = 10  # random trials before a model-based sampler takes over
    options: Mapping[str, Any] = field(default_factory=dict)  # strategy-specific options


@dataclass(frozen=True, slots=True)
class Strategy:
    name: str
    factory: Callable[[SamplerContext], BaseSampler]
    help: str  # one line for --help
    experimental: bool = False  # --help marks it; running it logs one warning
    # Strategy options (SamplerContext.options keys, named as their CLI flags with '_') and
    # a check of their values; options of other strategies are refused.
    option_names: tuple[str, ...] = ()
    check_options: Callable[[Mapping[str, Any]], None] | None = None

    def validate_options(self, options: Mapping[str, Any]) -> None:
        """Raise ``ConfigError`` for an option this strategy doesn't take or a bad value."""
        for key in sorted(options):
            if key not in self.option_names:
                owners = [s.name for s in strategies() if key in s.option_names]
                flag = "--" + key.replace("_", "-")
                where = f" (only to --strategy {', '.join(owners)})" if owners else ""
                raise ConfigError(f"{flag} does not apply to --strategy {self.name}{where}")
        if self.check_options is not None:
            self.check_options(options)


def n_startup_trials(trials: int) -> int:
    """Random trials before model-based samplers take over: a third of a short budget, 4..10."""
    return max(4, min(10, trials // 3))


_REGISTRY: dict[str, Strategy] = {}


def register(strategy: Strategy) -> None:
    _REGISTRY[strategy.name] = strategy


def strategy_names() -> list[str]:
    return sorted(_REGISTRY)


def strategies() -> list[Strategy]:
    return [_REGISTRY[n] for n in strategy_names()]


def get_strategy(name: str) -> Strategy:
    """Look up a strategy; raise ``ConfigError`` listing the choices when unknown."""
    try:
        return _REGISTRY[name]
    except KeyError:
        raise ConfigError(f"unknown strategy '{name}'; choose one of: {', '.join(strategy_names())}") from None


def make_sampler(name: str, ctx: SamplerContext) -> BaseSampler:
    """Build the named strategy's sampler (Optuna's experimental-feature warnings silenced)."""
    import optuna

    strategy = get_strategy(name)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return strategy.factory(ctx)


def _random(ctx: SamplerContext) -> BaseSampler:
    import optuna

    return optuna.samplers.RandomSampler(seed=ctx.seed)


def _tpe(ctx: SamplerContext) -> BaseSampler:
    import optuna

    # group=True lets multivariate TPE model the conditional gamma/beta params jointly with
    # the BN structure that enables them; constant_liar keeps parallel workers apart.
    return optuna.samplers.TPESampler(
        seed=ctx.seed,
        n_startup_trials=ctx.n_startup_trials,
        multivariate=True,
        group=True,
        constant_liar=True,
    )


def _gp(ctx: SamplerContext) -> BaseSampler:
    import optuna

    return optuna.samplers.GPSampler(
        seed=ctx.seed, n_startup_trials=ctx.n_startup_trials, warn_independent_sampling=False
    )


def _cmaes(ctx: SamplerContext) -> BaseSampler:
    import optuna

    return optuna.samplers.CmaEsSampler(
        seed=ctx.seed, n_startup_trials=ctx.n_startup_trials, warn_independent_sampling=False
    )


def _qmc(ctx: SamplerContext) -> BaseSampler:
    import optuna

    return optuna.samplers.QMCSampler(seed=ctx.seed, scramble=True, warn_independent_sampling=False)


def _grid(ctx: SamplerContext) -> BaseSampler:
    import optuna

    if ctx.space is None:
        raise ConfigError("the grid strategy needs a search space")
    return optuna.samplers.GridSampler(ctx.space.grid(), seed=ctx.seed)  # type: ignore[arg-type, unused-ignore]


def _anneal(ctx: SamplerContext) -> BaseSampler:
    from bnsearch.samplers._moves import AnnealSchedule
    from bnsearch.samplers.anneal import SimulatedAnnealingSampler

    # Annealing needs fewer random starts than a surrogate model: its own default (5), or
    # fewer when the run is short.
    n_startup = min(AnnealSchedule().n_startup_trials, ctx.n_startup_trials)
    return SimulatedAnnealingSampler(seed=ctx.seed, schedule=AnnealSchedule(n_startup_trials=n_startup))


def _skopt_options(ctx_options: Mapping[str, Any], n_startup_trials: int = 10) -> Any:
    from bnsearch.samplers.skopt import ACQ_FUNCS, ESTIMATORS, SkoptOptions

    def canonical(value: str, choices: tuple[str, ...]) -> str:  # --skopt-estimator gbrt → GBRT
        return next((c for c in choices if c.lower() == str(value).lower()), str(value))

    opts = SkoptOptions(
        estimator=canonical(ctx_options.get("skopt_estimator") or "GP", ESTIMATORS),
        acq_func=canonical(ctx_options.get("skopt_acq") or "gp_hedge", ACQ_FUNCS),
        n_startup_trials=n_startup_trials,
    )
    opts.validate()
    return opts


def _skopt(ctx: SamplerContext) -> BaseSampler:
    from bnsearch.samplers.skopt import SkoptSampler

    return SkoptSampler(seed=ctx.seed, options=_skopt_options(ctx.options, ctx.n_startup_trials))


register(Strategy("random", _random, "uniform random search (Optuna RandomSampler)"))
register(Strategy("tpe", _tpe, "multivariate TPE, conditional-aware (Optuna TPESampler)"))
register(Strategy("gp", _gp, "Gaussian-process Bayesian optimization (Optuna GPSampler)"))
register(Strategy("cmaes", _cmaes, "CMA-ES on the numeric params (Optuna CmaEsSampler)"))
register(Strategy("qmc", _qmc, "scrambled Sobol quasi-random search (Optuna QMCSampler)"))
register(Strategy("grid", _grid, "grid over choices and 3 points per range (Optuna GridSampler)"))
register(Strategy("anneal", _anneal, "simulated annealing, state derived from the study (bnsearch)"))
register(
    Strategy(
        "skopt",
        _skopt,
        "scikit-optimize Optimizer: GP, RF, ET or GBRT surrogate (--skopt-estimator)",
        # scikit-optimize is barely maintained and runs on today's numpy/scikit-learn only
        # through our GBRT shim; a future release of either may break it.
        experimental=True,
        option_names=("skopt_estimator", "skopt_acq"),
        check_options=lambda options: _skopt_options(options),
    )
)
