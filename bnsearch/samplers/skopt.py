"""scikit-optimize's ask/tell ``Optimizer`` behind an Optuna sampler (skopt imported lazily)."""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from optuna.distributions import (
    BaseDistribution,
    CategoricalDistribution,
    FloatDistribution,
    IntDistribution,
)
from optuna.samplers import BaseSampler
from optuna.search_space import intersection_search_space
from optuna.study import StudyDirection
from optuna.trial import TrialState

from bnsearch.errors import ConfigError, MissingDependencyError
from bnsearch.samplers._common import LazySeed, sample_random, trial_rng

if TYPE_CHECKING:
    from optuna.study import Study
    from optuna.trial import FrozenTrial

ESTIMATORS = (
    "GP",
    "RF",
    "ET",
    "GBRT",
)  # skopt surrogates: Gaussian process, random forest, extra trees, gradient boosting
ACQ_FUNCS = (
    "gp_hedge",
    "EI",
    "PI",
    "LCB",
)  # skopt acquisition functions (gp_hedge: a portfolio of EI, PI, LCB)
ACQ_OPTIMIZERS = ("auto", "sampling", "lbfgs")  # how skopt maximises the acquisition


@dataclass(frozen=True, slots=True, kw_only=True)
class SkoptOptions:
    """How the skopt strategy builds its ``skopt.Optimizer``."""

    estimator: str = "GP"  # one of ESTIMATORS
    acq_func: str = "gp_hedge"  # one of ACQ_FUNCS
    acq_optimizer: str = "auto"  # one of ACQ_OPTIMIZERS; lbfgs needs the GP estimator
    n_startup_trials: int = 10  # random points before the surrogate is used (skopt's n_initial_points)
    consider_pruned_trials: bool = True  # tell pruned trials with their last reported value
    constant_liar: bool = True  # tell running trials (other workers') the worst value seen

    def validate(self) -> None:
        """Raise ``ConfigError`` naming the bad option and the choices."""
        for flag, value, choices in (
            ("--skopt-estimator", self.estimator, ESTIMATORS),
            ("--skopt-acq", self.acq_func, ACQ_FUNCS),
            ("skopt acq_optimizer", self.acq_optimizer, ACQ_OPTIMIZERS),
        ):
            if value not in choices:
                raise ConfigError(f"unknown {flag} '{value}'; choose one of: {', '.join(choices)}")
        if self.acq_optimizer == "lbfgs" and self.estimator != "GP":
            raise ConfigError(
                f"skopt acq_optimizer 'lbfgs' needs gradients, which only the GP estimator has, "
                f"not {self.estimator}; use acq_optimizer 'sampling' or 'auto'"
            )
        if self.n_startup_trials < 1:
            raise ConfigError(f"skopt n_startup_trials must be ≥ 1, got {self.n_startup_trials}")


def _import_skopt() -> Any:
    try:
        import skopt
    except ImportError:
        raise MissingDependencyError("scikit-optimize", "the skopt strategy") from None
    return skopt


class SkoptSampler(LazySeed, BaseSampler):
    """Bayesian optimization with scikit-optimize's ``Optimizer`` (ask/tell).

    Every call to ``sample_relative`` builds a fresh ``skopt.Optimizer`` over the relative
    search space, ``tell``s it every finished trial in the study and ``ask``s one point, so
    parallel workers and a resumed study share everything known (nothing lives on the
    instance). The relative space is the intersection of the params of the finished trials;
    a param outside it (a conditional param, or one with a changing range) is drawn
    uniformly at random by ``sample_independent``. Params with a single possible value are
    left out of the space. The first ``n_startup_trials`` points are skopt's random initial
    points.

    Mapping of distributions to skopt dimensions:

    * float → ``Real`` (``prior="log-uniform"`` for log); a float with a ``step`` is searched
      as a ``Real`` and its value rounded onto the grid (``low + k·step``) before use;
    * int → ``Integer`` (``prior="log-uniform"`` for log); an int with ``step > 1`` is an
      ``Integer`` over grid indices ``k`` with value ``low + k·step``;
    * categorical → ``Categorical`` over the choice indices, so choices of mixed types
      (``1``, ``"a"``, ``None``) round-trip exactly.

    Told trials: COMPLETE ones with their value; PRUNED ones, when ``consider_pruned_trials``,
    with their last reported intermediate value (pruned trials without any report are left
    out); FAIL ones never. RUNNING trials of other workers whose params are all set are told
    the worst value seen so far (a constant liar, ``constant_liar=True``), so two workers
    asking at the same moment don't pick the same point. skopt minimizes, so values of a
    maximized study are negated. A trial whose params lie outside the current space (a
    narrowed range) is left out.

    GBRT: skopt 0.10.2 rejects its own ``GradientBoostingQuantileRegressor`` under
    scikit-learn ≥ 1.6 ("has to be a regressor": the class lists ``BaseEstimator`` before
    ``RegressorMixin``, so the new tag system reads it as no regressor) and its ``predict``
    calls ``np.in1d``, gone in numpy 2.4. The sampler hands skopt a subclass that fixes both.

    Args:
        seed: Seed of skopt's random state and of the independent draws; None for random.
        options: Estimator, acquisition and start-up settings (validated here).

    Raises:
        ConfigError: an invalid option.
        MissingDependencyError: scikit-optimize is not installed.
    """

    def __init__(self, *, seed: int | None = None, options: SkoptOptions | None = None) -> None:
        self._options = options or SkoptOptions()
        self._options.validate()
        _import_skopt()
        self._seed = seed

    @property
    def options(self) -> SkoptOptions:
        return self._options

    def infer_relative_search_space(self, study: Study, trial: FrozenTrial) -> dict[str, BaseDistribution]:
        if study._is_multi_objective():
            return {}
        space = intersection_search_space(self._told_trials(study), include_pruned=self._options.consider_pruned_trials)
        return {name: d for name, d in sorted(space.items()) if not d.single()}

    def sample_relative(
        self, study: Study, trial: FrozenTrial, search_space: dict[str, BaseDistribution]
    ) -> dict[str, Any]:
        self._raise_error_if_multi_objective(study)
        if not search_space:
            return {}
        names = sorted(search_space)
        dims = [to_dimension(search_space[n]) for n in names]
        xs, ys = self._observations(study, names, search_space, exclude=trial.number)
        # skopt's random state: a 32-bit seed per trial, so a sequential seeded run repeats.
        seed = int(trial_rng(self._base_seed(), trial.number, "skopt").integers(2**31 - 1))
        optimizer = self._optimizer(dims, seed)
        # One BLAS thread: skopt's matrices are tiny, and a threaded BLAS on busy cores made
        # each GP fit ~6x slower (measured). OpenMP pools (torch) are left alone.
        with _blas_controller().limit(limits=1, user_api="blas"), warnings.catch_warnings():
            # skopt warns when a point is told twice (parallel workers may repeat one).
            warnings.simplefilter("ignore", UserWarning)
            if xs:
                optimizer.tell(xs, ys)
            point = optimizer.ask()
        return {n: from_dimension(search_space[n], x) for n, x in zip(names, point, strict=True)}

    def sample_independent(
        self,
        study: Study,
        trial: FrozenTrial,
        param_name: str,
        param_distribution: BaseDistribution,
    ) -> Any:
        self._raise_error_if_multi_objective(study)
        return sample_random(param_distribution, trial_rng(self._base_seed(), trial.number, "param:" + param_name))

    # ---- helpers ---------------------------------------------------------------------------

    def _told_trials(self, study: Study) -> list[FrozenTrial]:
        states = (
            (TrialState.COMPLETE, TrialState.PRUNED) if self._options.consider_pruned_trials else (TrialState.COMPLETE,)
        )
        return [t for t in study.get_trials(deepcopy=False, states=states) if _objective(t) is not None]

    def _observations(
        self,
        study: Study,
        names: Sequence[str],
        space: Mapping[str, BaseDistribution],
        exclude: int | None = None,
    ) -> tuple[list[list[Any]], list[float]]:
        sign = -1.0 if study.direction == StudyDirection.MAXIMIZE else 1.0
        xs: list[list[Any]] = []
        ys: list[float] = []
        for t in self._told_trials(study):
            if not all(n in t.params and _inside(space[n], t.params[n]) for n in names):
                continue
            value = _objective(t)
            assert value is not None  # _told_trials keeps only trials with a value
            xs.append([to_dimension_value(space[n], t.params[n]) for n in names])
            ys.append(sign * value)
        if self._options.constant_liar and ys:
            # Constant liar: trials still running elsewhere are told the worst value seen,
            # so a parallel worker asking now is steered away from their points.
            lie = max(ys)
            for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
                if t.number != exclude and all(n in t.params and _inside(space[n], t.params[n]) for n in names):
                    xs.append([to_dimension_value(space[n], t.params[n]) for n in names])
                    ys.append(lie)
        return xs, ys

    def _optimizer(self, dims: list[Any], seed: int) -> Any:
        skopt = _import_skopt()
        o = self._options
        estimator: Any = o.estimator
        if o.estimator == "GBRT":
            estimator = make_gbrt(seed)
        return skopt.Optimizer(
            dims,
            base_estimator=estimator,
            n_initial_points=o.n_startup_trials,
            acq_func=o.acq_func,
            acq_optimizer=o.acq_optimizer,
            random_state=seed,
        )


_BLAS_CONTROLLER: Any = None


def _blas_controller() -> Any:
    """threadpoolctl's view of the loaded thread pools, scanned once (a scan costs ~30 ms)."""
    global _BLAS_CONTROLLER
    if _BLAS_CONTROLLER is None:
        from threadpoolctl import ThreadpoolController

        _BLAS_CONTROLLER = ThreadpoolController()
    return _BLAS_CONTROLLER


def _inside(dist: BaseDistribution, value: Any) -> bool:
    try:
        return bool(dist._contains(dist.to_internal_repr(value)))
    except ValueError:  # a categorical value that is not among the choices
        return False


def _objective(trial: FrozenTrial) -> float | None:
    """The value skopt is told for ``trial``: its value, or a pruned trial's last report."""
    if trial.state == TrialState.COMPLETE:
        value = trial.value
    elif trial.state == TrialState.PRUNED and trial.intermediate_values:
        value = trial.intermediate_values[max(trial.intermediate_values)]
    else:
        return None
    if value is None or not math.isfinite(value):
        return None
    return float(value)


def to_dimension(dist: BaseDistribution) -> Any:
    """The skopt dimension searched for an Optuna distribution (see ``SkoptSampler``)."""
    space = _import_skopt().space
    if isinstance(dist, CategoricalDistribution):
        return space.Categorical(tuple(str(i) for i in range(len(dist.choices))))
    if isinstance(dist, IntDistribution):
        if dist.log:
            return space.Integer(dist.low, dist.high, prior="log-uniform")
        if dist.step != 1:
            return space.Integer(0, (dist.high - dist.low) // dist.step)
        return space.Integer(dist.low, dist.high)
    if isinstance(dist, FloatDistribution):
        return space.Real(dist.low, dist.high, prior="log-uniform" if dist.log else "uniform")
    raise TypeError(f"unsupported distribution {dist!r}")


def to_dimension_value(dist: BaseDistribution, value: Any) -> Any:
    """An Optuna param value as a point of ``to_dimension(dist)``."""
    if isinstance(dist, CategoricalDistribution):
        return str(dist.to_internal_repr(value))
    if isinstance(dist, IntDistribution) and not dist.log and dist.step != 1:
        return (int(value) - dist.low) // dist.step
    if isinstance(dist, IntDistribution):
        return int(value)
    return float(value)


def from_dimension(dist: BaseDistribution, x: Any) -> Any:
    """A point of ``to_dimension(dist)`` as a valid Optuna value (Python scalar, on the grid)."""
    if isinstance(dist, CategoricalDistribution):
        return dist.choices[int(x)]
    if isinstance(dist, IntDistribution):
        k = int(round(float(x)))
        if not dist.log and dist.step != 1:
            return min(dist.high, dist.low + k * dist.step)
        return min(dist.high, max(dist.low, k))
    if isinstance(dist, FloatDistribution):
        v = min(dist.high, max(dist.low, float(x)))
        if dist.step is not None:
            k = round((v - dist.low) / dist.step)
            v = dist.low + k * dist.step
            if v > dist.high:
                v -= dist.step
            # low + k·step carries float noise; keep what the grid can express.
            v = float(min(dist.high, max(dist.low, round(v, 12))))
        return v
    raise TypeError(f"unsupported distribution {dist!r}")


_GBRT_CLASS: Any = None


def make_gbrt(seed: int | None) -> Any:
    """skopt's GBRT surrogate, as ``cook_estimator("GBRT")`` builds it, that skopt accepts
    under scikit-learn ≥ 1.6 and numpy ≥ 2.4 (see ``SkoptSampler``)."""
    global _GBRT_CLASS
    if _GBRT_CLASS is None:
        import numpy as np
        from skopt.learning import GradientBoostingQuantileRegressor

        class _GBRT(GradientBoostingQuantileRegressor):
            def __sklearn_tags__(self) -> Any:
                tags = super().__sklearn_tags__()
                tags.estimator_type = "regressor"
                return tags

            def predict(self, X: Any, return_std: bool = False, return_quantiles: bool = False) -> Any:
                if not return_std or return_quantiles:
                    return super().predict(X, return_std=return_std, return_quantiles=return_quantiles)
                if not np.all(np.isin([0.16, 0.5, 0.84], self.quantiles)):
                    raise ValueError("return_std needs the quantiles 0.16, 0.5 and 0.84")
                low, mid, high = (self.regressors_[self.quantiles.index(q)].predict(X) for q in (0.16, 0.5, 0.84))
                return mid, (high - low) / 2.0

        _GBRT_CLASS = _GBRT
    from sklearn.ensemble import GradientBoostingRegressor

    return _GBRT_CLASS(
        base_estimator=GradientBoostingRegressor(loss="quantile", n_estimators=30),
        random_state=seed,
    )
