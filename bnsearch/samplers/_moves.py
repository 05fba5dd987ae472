"""The mathematics of simulated annealing, free of Optuna: domains, moves, schedule, replay.

Everything here is a pure function of its arguments (random draws come from a ``Generator``
passed in), so it is tested without a study. ``anneal.py`` is the Optuna adapter: it turns
distributions into domains and trials into ``Observation``s, and calls ``replay`` and
``propose_neighbour``.

Numeric values move in *unit space*: ``[low, high]`` mapped onto ``[0, 1]`` (after ``log`` for
log-scaled params), so a step means the same fraction of the range for every param.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

Value = Any  # a param value as Optuna stores it: float, int, str, bool or None


@dataclass(frozen=True, slots=True, kw_only=True)
class NumericDomain:
    """A float or int range, optionally log-scaled or on a step grid (Optuna's rules)."""

    low: float  # inclusive
    high: float  # inclusive
    log: bool = False  # move in log space (low > 0)
    step: float | None = None  # grid spacing from low; None for a continuous float
    integer: bool = False  # values are ints (step is then at least 1)

    def to_unit(self, value: float) -> float:
        """Position of ``value`` in the range, 0 at ``low`` and 1 at ``high``."""
        if self.high == self.low:
            return 0.0
        if self.log:
            return (math.log(value) - math.log(self.low)) / (math.log(self.high) - math.log(self.low))
        return (value - self.low) / (self.high - self.low)

    def from_unit(self, u: float) -> float | int:
        """The value at unit position ``u`` (clipped to [0, 1]), rounded onto the grid."""
        u = min(1.0, max(0.0, u))
        if self.log:
            x = math.exp(math.log(self.low) + u * (math.log(self.high) - math.log(self.low)))
        else:
            x = self.low + u * (self.high - self.low)
        return self.snap(x)

    def snap(self, x: float) -> float | int:
        """``x`` clipped to the bounds and rounded onto the grid (ints: nearest int)."""
        x = min(self.high, max(self.low, x))
        step = self.step if self.step is not None else (1 if self.integer else None)
        if step is not None:
            k = round((x - self.low) / step)
            x = self.low + k * step
            if x > self.high + 1e-12:  # high need not lie on the grid
                x -= step
            x = min(self.high, max(self.low, x))
        if self.integer:
            return int(round(x))
        if self.step is not None:
            # low + k·step carries float noise (0.30000000000000004); the grid's own decimals
            # suffice, as in Optuna's FloatDistribution.
            x = float(np.round(x, 12))
        return float(x)

    def contains(self, value: Value) -> bool:
        if isinstance(value, bool) or not isinstance(value, int | float):
            return False
        if not (self.low <= value <= self.high):
            return False
        step = self.step if self.step is not None else (1 if self.integer else None)
        if step is None:
            return True
        k = (value - self.low) / step
        return abs(k - round(k)) < 1e-8

    def grid_size(self) -> int | None:
        """Number of grid points, or None for a continuous float."""
        step = self.step if self.step is not None else (1 if self.integer else None)
        if step is None:
            return None
        return int(math.floor((self.high - self.low) / step + 1e-8)) + 1


@dataclass(frozen=True, slots=True)
class CategoricalDomain:
    choices: tuple[Value, ...]

    def contains(self, value: Value) -> bool:
        return any(_same_choice(value, c) for c in self.choices)


Domain = NumericDomain | CategoricalDomain


def _same_choice(a: Value, b: Value) -> bool:
    # True == 1 in Python; categorical choices (True, 1) must stay distinct.
    return type(a) is type(b) and a == b


@dataclass(frozen=True, slots=True, kw_only=True)
class AnnealSchedule:
    """The cooling schedule and move sizes; temperatures are dimensionless.

    A worse move by ``Δ`` is accepted with probability ``exp(-Δ / (T · scale))`` where
    ``scale`` is the standard deviation of the objective values seen so far, so ``T = 1``
    accepts a move one standard deviation worse with probability 1/e, whatever the units.

    The defaults were chosen on ``benchmarks/samplers.py``'s problems at a 50-trial budget with
    seeds 100–899 and checked on 1000–1399 and 2000–2399 (docs/strategies.md reports 0–79). Every
    numeric param moves on every trial; categorical switches stay frequent even when cold
    (0.3 at the coldest T), because a chain that settles in one choice otherwise rarely
    leaves it, even when another choice holds the better optimum at other numeric values.
    These switch probabilities are for one categorical param; ``propose_neighbour`` divides
    them by √n for n of them (checked on the benchmark's ``bnlike`` space, five categoricals).
    """

    n_startup_trials: int = 5  # random trials; the best of them is the first current state
    initial_temperature: float = 0.2  # T of the first move (dimensionless, see above)
    cooling_rate: float = 0.85  # T is multiplied by this after every move
    min_temperature: float = 1e-3  # T never cools below this
    max_step: float = 0.25  # std of a numeric move at the initial T, as a fraction of the range
    min_step: float = 0.02  # std of a numeric move at the coldest T
    max_switch_prob: float = 0.5  # chance a categorical param switches at the initial T
    min_switch_prob: float = 0.3  # chance it switches at the coldest T
    move_prob: float = 1.0  # chance each numeric param moves (else it keeps its value)
    patience: int = 20  # moves without a new best before a restart
    reheat_temperature: float = 0.1  # T after a restart (from the best state)

    def temperature(self, moves_since_restart: int, restarts: int) -> float:
        """T after ``moves_since_restart`` moves: geometric cooling from the (re)start value."""
        start = self.initial_temperature if restarts == 0 else self.reheat_temperature
        return max(self.min_temperature, start * self.cooling_rate**moves_since_restart)

    def heat(self, temperature: float) -> float:
        """Where ``temperature`` lies between the coldest (0) and the initial (1) temperature."""
        span = math.log(self.initial_temperature) - math.log(self.min_temperature)
        if span <= 0:
            return 1.0
        h = (math.log(max(temperature, self.min_temperature)) - math.log(self.min_temperature)) / span
        return min(1.0, max(0.0, h))

    def step_scale(self, temperature: float) -> float:
        """Std of a numeric move in unit space: ``max_step`` hot, ``min_step`` cold (log-linear)."""
        h = self.heat(temperature)
        return math.exp(math.log(self.min_step) + h * (math.log(self.max_step) - math.log(self.min_step)))

    def switch_probability(self, temperature: float) -> float:
        """Chance that a categorical param switches to another choice at ``temperature``."""
        h = self.heat(temperature)
        return self.min_switch_prob + h * (self.max_switch_prob - self.min_switch_prob)


def move_numeric(value: float, domain: NumericDomain, step_scale: float, rng: np.random.Generator) -> float | int:
    """A neighbour of ``value``: a normal step of std ``step_scale`` in unit space, reflected at
    the bounds and rounded onto the grid; on a grid it moves at least one grid point."""
    if domain.high == domain.low:
        return domain.snap(domain.low)
    u = domain.to_unit(value) + rng.normal(0.0, step_scale)
    # Reflect rather than clip, so the bounds are not sampled more often than their neighbours.
    u = abs(u) % 2.0
    u = 2.0 - u if u > 1.0 else u
    new = domain.from_unit(u)
    n = domain.grid_size()
    if n is not None and n > 1 and new == domain.snap(value):
        # A small step rounded back onto the same grid point; move to a neighbouring one.
        step = domain.step if domain.step is not None else 1
        up = value + step <= domain.high + 1e-12
        down = value - step >= domain.low - 1e-12
        direction = (1 if rng.random() < 0.5 else -1) if (up and down) else (1 if up else -1)
        new = domain.snap(value + direction * step)
    return new


def move_categorical(value: Value, domain: CategoricalDomain, switch_prob: float, rng: np.random.Generator) -> Value:
    """``value``, or with probability ``switch_prob`` another choice drawn uniformly."""
    others = [c for c in domain.choices if not _same_choice(c, value)]
    if not others or rng.random() >= switch_prob:
        return value
    return others[int(rng.integers(len(others)))]


def sample_uniform(domain: Domain, rng: np.random.Generator) -> Value:
    """A random value of ``domain`` (uniform in unit space; uniform over choices)."""
    if isinstance(domain, CategoricalDomain):
        return domain.choices[int(rng.integers(len(domain.choices)))]
    n = domain.grid_size()
    if n is not None and not domain.log:
        step = domain.step if domain.step is not None else 1
        return domain.snap(domain.low + int(rng.integers(n)) * step)
    if domain.integer and domain.log:
        # Uniform in log space over [low - 0.5, high + 0.5], as Optuna samples log ints.
        lo, hi = math.log(domain.low - 0.5), math.log(domain.high + 0.5)
        return domain.snap(math.exp(rng.uniform(lo, hi)))
    return domain.from_unit(float(rng.random()))


def propose_neighbour(
    current: Mapping[str, Value],
    domains: Mapping[str, Domain],
    temperature: float,
    schedule: AnnealSchedule,
    rng: np.random.Generator,
) -> dict[str, Value]:
    """A neighbour of ``current`` over every param in ``domains``.

    Numeric params take a normal step whose size shrinks with ``temperature``; categorical
    params switch with a probability that falls with it, divided by √n when ``n`` categorical
    params can switch. A param that ``current`` lacks (a conditional param) or whose value lies
    outside its domain is drawn uniformly. When nothing changed, one param is forced to move, so
    no trial repeats its parent.
    """
    sigma = schedule.step_scale(temperature)
    # Params of ``current`` that can take another value; a param new to this trial (drawn
    # below) does not count as a move of the parent.
    movable = [n for n in sorted(domains) if n in current and _movable(domains[n], current[n])]
    # The schedule's switch probability is for a space with one categorical param; with n of
    # them each switches with p/√n, so a neighbour of a many-choice space stays a neighbour.
    switchable = sum(isinstance(domains[n], CategoricalDomain) for n in movable)
    p_switch = schedule.switch_probability(temperature) / math.sqrt(max(1, switchable))
    out: dict[str, Value] = {}
    for name in sorted(domains):  # sorted: the draw order must not depend on dict order
        dom = domains[name]
        if name not in current or not dom.contains(current[name]):
            out[name] = sample_uniform(dom, rng)
        elif isinstance(dom, CategoricalDomain):
            out[name] = move_categorical(current[name], dom, p_switch, rng)
        elif rng.random() < schedule.move_prob:
            out[name] = move_numeric(current[name], dom, sigma, rng)
        else:
            out[name] = current[name]
    if movable and all(_same_value(out[n], current[n]) for n in movable):
        name = movable[int(rng.integers(len(movable)))]
        dom = domains[name]
        if isinstance(dom, CategoricalDomain):
            out[name] = move_categorical(current[name], dom, 1.0, rng)
        else:
            out[name] = move_numeric(current[name], dom, sigma, rng)
    return out


def _movable(dom: Domain, value: Value) -> bool:
    """``value`` lies in ``dom`` and ``dom`` has another value to move to."""
    if not dom.contains(value):
        return False
    if isinstance(dom, CategoricalDomain):
        return len(dom.choices) > 1
    return dom.high > dom.low


def _same_value(a: Value, b: Value) -> bool:
    return _same_choice(a, b) if isinstance(a, str | bool) or isinstance(b, str | bool) else a == b


def metropolis_accept(
    candidate: float, current: float, *, temperature: float, scale: float, u: float, minimize: bool
) -> bool:
    """Metropolis rule: accept a better (or equal) value; a worse one with ``exp(-Δ/(T·scale))``.

    Args:
        candidate: The new trial's objective value; NaN is never accepted.
        current: The current state's value.
        temperature: Dimensionless temperature ``T`` (> 0).
        scale: Objective scale (std of values seen); non-positive means 1.
        u: A uniform draw in [0, 1) tied to the candidate trial.
        minimize: Direction of the study.
    """
    if math.isnan(candidate):
        return False
    delta = candidate - current if minimize else current - candidate
    if delta <= 0:
        return True
    scale = scale if scale > 0 and math.isfinite(scale) else 1.0
    return u < math.exp(-delta / (max(temperature, 1e-300) * scale))


@dataclass(frozen=True, slots=True, kw_only=True)
class Observation:
    """One finished trial as the annealing run sees it."""

    number: int  # trial number; observations replay in this order
    params: Mapping[str, Value]
    value: float | None  # None for a pruned trial (a rejected move)
    u: float | None = None  # uniform draw stored with the trial for the Metropolis test


@dataclass(frozen=True, slots=True, kw_only=True)
class AnnealState:
    """Where the run stands after replaying the observations."""

    current_params: Mapping[str, Value]
    current_value: float
    current_number: int
    best_params: Mapping[str, Value]
    best_value: float
    best_number: int
    temperature: float
    moves: int  # moves made (observations after the start-up ones)
    moves_since_restart: int
    moves_since_best: int  # moves since the best value last improved
    restarts: int


def replay(observations: Sequence[Observation], schedule: AnnealSchedule, *, minimize: bool) -> AnnealState | None:
    """Rebuild the annealing run from its finished trials, in trial-number order.

    The first ``n_startup_trials`` observations are random start-up trials; the best of them
    becomes the current state. Every later one is a move: accepted or not by the Metropolis
    rule (a pruned or NaN trial is a rejected move), after which ``T`` cools one step. When
    ``patience`` moves pass without a new best, the run restarts from the best state at the
    re-heat temperature.

    Returns:
        The state, or None while no start-up trial has a finite value.
    """
    state: AnnealState | None = None
    values: list[float] = []
    for i, obs in enumerate(sorted(observations, key=lambda o: o.number)):
        value = _finite(obs.value)
        scale = _std(values)  # of the values seen before this one
        if value is not None:
            values.append(value)
        if state is None or i < schedule.n_startup_trials:
            if value is not None and (state is None or _better(value, state.current_value, minimize)):
                state = AnnealState(
                    current_params=obs.params,
                    current_value=value,
                    current_number=obs.number,
                    best_params=obs.params,
                    best_value=value,
                    best_number=obs.number,
                    temperature=schedule.temperature(0, 0),
                    moves=0,
                    moves_since_restart=0,
                    moves_since_best=0,
                    restarts=0,
                )
            continue
        state = _step(state, obs, schedule, scale=scale, minimize=minimize)
    return state


def _step(
    state: AnnealState, obs: Observation, schedule: AnnealSchedule, *, scale: float, minimize: bool
) -> AnnealState:
    value = _finite(obs.value)
    new_best = value is not None and _better(value, state.best_value, minimize)
    accepted = value is not None and metropolis_accept(
        value,
        state.current_value,
        temperature=state.temperature,
        scale=scale,
        u=1.0 if obs.u is None else obs.u,
        minimize=minimize,
    )
    s = replace(
        state,
        moves=state.moves + 1,
        moves_since_restart=state.moves_since_restart + 1,
        moves_since_best=0 if new_best else state.moves_since_best + 1,
    )
    if value is not None and accepted:
        s = replace(s, current_params=obs.params, current_value=value, current_number=obs.number)
    if value is not None and new_best:
        s = replace(s, best_params=obs.params, best_value=value, best_number=obs.number)
    if s.moves_since_best >= schedule.patience:
        s = replace(
            s,
            current_params=s.best_params,
            current_value=s.best_value,
            current_number=s.best_number,
            moves_since_restart=0,
            moves_since_best=0,
            restarts=s.restarts + 1,
        )
    return replace(s, temperature=schedule.temperature(s.moves_since_restart, s.restarts))


def _finite(value: float | None) -> float | None:
    return float(value) if value is not None and math.isfinite(value) else None


def _better(a: float, b: float, minimize: bool) -> bool:
    return a < b if minimize else a > b


def _std(values: Sequence[float]) -> float:
    if len(values) < 2:
        return 1.0
    sd = float(np.std(values))
    return sd if sd > 0 else 1.0
