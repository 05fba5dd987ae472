"""The annealing maths without a study: domains, moves, schedule, Metropolis rule and replay."""

from __future__ import annotations

import math

import numpy as np
import pytest

from bnsearch.samplers._moves import (
    AnnealSchedule,
    CategoricalDomain,
    Domain,
    NumericDomain,
    Observation,
    metropolis_accept,
    move_categorical,
    move_numeric,
    propose_neighbour,
    replay,
    sample_uniform,
)

DOMAINS = {
    "float": NumericDomain(low=-2.0, high=3.0),
    "float_log": NumericDomain(low=1e-6, high=1.0, log=True),
    "float_step": NumericDomain(low=-1.0, high=1.0, step=0.1),
    "float_step_off_grid_high": NumericDomain(low=0.0, high=1.05, step=0.1),
    "int": NumericDomain(low=-3, high=7, integer=True),
    "int_log": NumericDomain(low=1, high=512, log=True, integer=True),
    "int_step": NumericDomain(low=1, high=9, step=2, integer=True),
}


def _on_grid(dom: NumericDomain, v: float) -> bool:
    step = dom.step if dom.step is not None else (1 if dom.integer else None)
    if step is None:
        return True
    k = (v - dom.low) / step
    return abs(k - round(k)) < 1e-9


@pytest.mark.parametrize("name", sorted(DOMAINS))
def test_moves_and_uniform_draws_stay_inside_bounds_and_on_the_grid(name: str) -> None:
    dom = DOMAINS[name]
    rng = np.random.default_rng(0)
    value = sample_uniform(dom, rng)
    for sigma in (0.01, 0.3, 5.0):
        for _ in range(200):
            new = move_numeric(value, dom, sigma, rng)
            assert dom.low <= new <= dom.high
            assert _on_grid(dom, new), new
            assert type(new) is (int if dom.integer else float)
            value = new
    draws = [sample_uniform(dom, rng) for _ in range(300)]
    assert all(dom.low <= d <= dom.high and _on_grid(dom, d) for d in draws)


def test_step_float_values_are_clean_grid_numbers() -> None:
    dom = NumericDomain(low=0.0, high=1.0, step=0.1)
    assert dom.snap(0.30000000001) == 0.3
    assert dom.snap(0.97) == 1.0
    assert dom.snap(-5) == 0.0


def test_log_moves_are_scaled_in_log_space() -> None:
    # From 1e-5 in [1e-6, 1], a log-space move of std 0.05·range is a factor of ~2,
    # never 1e-5 ± 0.05.
    dom = DOMAINS["float_log"]
    rng = np.random.default_rng(1)
    moves = np.array([move_numeric(1e-5, dom, 0.05, rng) for _ in range(500)])
    ratios = np.abs(np.log10(moves / 1e-5))
    assert np.median(ratios) < 0.4
    assert moves.max() < 1e-3


def test_numeric_step_shrinks_with_temperature() -> None:
    s = AnnealSchedule()
    dom = DOMAINS["float"]
    spreads = []
    for temperature in (s.initial_temperature, s.min_temperature):
        rng = np.random.default_rng(2)
        spreads.append(np.std([move_numeric(0.5, dom, s.step_scale(temperature), rng) for _ in range(500)]))
    assert spreads[0] > 5 * spreads[1]
    assert s.step_scale(s.initial_temperature) == pytest.approx(s.max_step)
    assert s.step_scale(s.min_temperature) == pytest.approx(s.min_step)


def test_categorical_switch_probability_falls_with_temperature() -> None:
    s = AnnealSchedule()
    dom = CategoricalDomain(("a", "b", "c", "d"))
    rates = []
    for temperature in (s.initial_temperature, s.min_temperature):
        rng = np.random.default_rng(3)
        rates.append(
            np.mean([move_categorical("a", dom, s.switch_probability(temperature), rng) != "a" for _ in range(2000)])
        )
    assert rates[0] == pytest.approx(s.max_switch_prob, abs=0.04)
    assert rates[1] == pytest.approx(s.min_switch_prob, abs=0.02)


def test_default_neighbour_moves_every_numeric_param() -> None:
    # A neighbour that keeps some params fixed searched the 50-trial benchmarks worse
    # (docs/strategies.md, "anneal"); the default moves all of them.
    s = AnnealSchedule()
    current = {name: dom.from_unit(0.5) for name, dom in DOMAINS.items()}
    rng = np.random.default_rng(6)
    for temperature in (s.initial_temperature, s.min_temperature):
        for _ in range(50):
            out = propose_neighbour(current, DOMAINS, temperature, s, rng)
            assert all(out[name] != current[name] for name in DOMAINS)


def test_switch_probability_is_shared_out_over_categorical_params() -> None:
    # With n categorical params each switches with p/√n, so a neighbour in a space with many
    # choices (bnsearch's has five) changes about as much as one with a single choice.
    s = AnnealSchedule()
    p = s.switch_probability(s.min_temperature)
    rng = np.random.default_rng(7)
    for n in (1, 4):
        domains: dict[str, Domain] = {f"c{i}": CategoricalDomain(("a", "b", "c")) for i in range(n)}
        domains["x"] = DOMAINS["float"]
        current = {**{name: "a" for name in domains}, "x": 0.5}
        switched = [propose_neighbour(current, domains, s.min_temperature, s, rng)["c0"] != "a" for _ in range(4000)]
        assert np.mean(switched) == pytest.approx(p / math.sqrt(n), abs=0.02)


def test_categorical_keeps_mixed_types_apart() -> None:
    dom = CategoricalDomain((1, True, "1", None, 1.5))
    rng = np.random.default_rng(4)
    seen = {repr(move_categorical(True, dom, 1.0, rng)) for _ in range(300)}
    assert seen == {"1", "'1'", "None", "1.5"}  # never True itself, and 1 is not True
    assert dom.contains(True) and not CategoricalDomain((1,)).contains(True)


def test_neighbour_draws_conditional_params_uniformly_and_always_moves() -> None:
    domains = {
        "c": CategoricalDomain(("x", "y")),
        "n": DOMAINS["int_step"],
        "g": CategoricalDomain(("p", "q")),
    }
    rng = np.random.default_rng(5)
    s = AnnealSchedule(min_switch_prob=0.0, max_switch_prob=0.0)
    for _ in range(100):
        out = propose_neighbour({"c": "x", "n": 5}, domains, s.min_temperature, s, rng)
        assert set(out) == {"c", "n", "g"}
        assert out["g"] in ("p", "q")  # absent from the current state: drawn, not an error
        assert (out["c"], out["n"]) != ("x", 5)  # nothing moved would repeat the parent
    # Only one-valued params: nothing can move and nothing is forced.
    single = {"a": CategoricalDomain(("only",))}
    assert propose_neighbour({"a": "only"}, single, 1.0, s, rng) == {"a": "only"}


@pytest.mark.parametrize("minimize", [True, False], ids=["minimize", "maximize"])
def test_metropolis_rule(minimize: bool) -> None:
    sign = 1.0 if minimize else -1.0
    better, worse = sign * 1.0, sign * 2.0
    current = sign * 1.5
    kw = {"temperature": 0.5, "scale": 1.0, "minimize": minimize}
    assert metropolis_accept(better, current, u=0.999, **kw)
    assert metropolis_accept(current, current, u=0.999, **kw)
    p = math.exp(-0.5 / 0.5)  # Δ = 0.5 at T·scale = 0.5
    assert metropolis_accept(worse, current, u=p - 1e-9, **kw)
    assert not metropolis_accept(worse, current, u=p + 1e-9, **kw)
    assert not metropolis_accept(float("nan"), current, u=0.0, **kw)
    # Colder means pickier; a bigger objective scale means more tolerant.
    assert not metropolis_accept(worse, current, u=0.1, temperature=0.01, scale=1.0, minimize=minimize)
    assert metropolis_accept(worse, current, u=0.1, temperature=0.01, scale=1000.0, minimize=minimize)


def _obs(number: int, value: float | None, u: float = 0.5, x: float | None = None) -> Observation:
    return Observation(number=number, params={"x": float(number) if x is None else x}, value=value, u=u)


def test_replay_starts_from_the_best_startup_trial_and_cools_per_move() -> None:
    s = AnnealSchedule(n_startup_trials=3, initial_temperature=1.0, cooling_rate=0.5, patience=100)
    assert replay([], s, minimize=True) is None
    assert replay([_obs(0, None)], s, minimize=True) is None  # a pruned start-up trial only
    state = replay([_obs(0, 5.0), _obs(1, 3.0), _obs(2, 4.0)], s, minimize=True)
    assert state is not None
    assert (state.current_number, state.best_number, state.moves, state.temperature) == (
        1,
        1,
        0,
        1.0,
    )
    state = replay([_obs(0, 5.0), _obs(1, 3.0), _obs(2, 4.0), _obs(3, 2.0), _obs(4, None)], s, minimize=True)
    assert state is not None
    assert (state.current_number, state.best_number, state.moves) == (3, 3, 2)
    assert state.temperature == pytest.approx(0.25)


def test_replay_order_is_trial_number_not_arrival() -> None:
    s = AnnealSchedule(n_startup_trials=2, patience=100)
    obs = [_obs(0, 5.0), _obs(1, 4.0), _obs(2, 3.0, u=0.9), _obs(3, 3.5, u=0.0)]
    assert replay(obs, s, minimize=True) == replay(list(reversed(obs)), s, minimize=True)


def test_pruned_trials_are_rejected_moves() -> None:
    s = AnnealSchedule(n_startup_trials=1, patience=100)
    state = replay([_obs(0, 1.0), _obs(1, None, u=0.0), _obs(2, None, u=0.0)], s, minimize=True)
    assert state is not None
    assert state.current_number == 0 and state.moves == 2
    assert state.temperature < s.initial_temperature


def test_worse_move_accepted_by_its_stored_draw() -> None:
    s = AnnealSchedule(n_startup_trials=2, initial_temperature=1.0, patience=100)
    base = [_obs(0, 1.0), _obs(1, 3.0)]  # current = trial 0; scale = std(1, 3) = 1
    # Δ = 0.5 at T·scale = 1 → accepted when u < e^-0.5 ≈ 0.61.
    lucky = replay([*base, _obs(2, 1.5, u=0.55)], s, minimize=True)
    unlucky = replay([*base, _obs(2, 1.5, u=0.65)], s, minimize=True)
    assert lucky is not None and unlucky is not None
    assert lucky.current_number == 2 and unlucky.current_number == 0


def test_restart_from_the_best_after_patience_moves_without_improvement() -> None:
    s = AnnealSchedule(n_startup_trials=1, patience=3, initial_temperature=1.0, reheat_temperature=0.3)
    obs = [_obs(0, 0.0), _obs(1, 10.0, u=0.0), _obs(2, 11.0, u=0.0)]  # accepted uphill moves
    state = replay(obs, s, minimize=True)
    assert state is not None and state.current_number == 2 and state.restarts == 0
    state = replay([*obs, _obs(3, 12.0, u=0.0)], s, minimize=True)
    assert state is not None
    assert state.restarts == 1
    assert state.current_number == 0 and state.current_value == 0.0  # back at the best
    assert state.temperature == pytest.approx(0.3)  # re-heated


def test_maximize_replay_prefers_larger_values() -> None:
    s = AnnealSchedule(n_startup_trials=2, patience=100)
    state = replay([_obs(0, 0.2), _obs(1, 0.9), _obs(2, 0.95, u=0.99)], s, minimize=False)
    assert state is not None and state.best_number == 2 and state.current_number == 2
