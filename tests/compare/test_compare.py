"""compare: plain statistics on hand-made runs, real runs on digits (resumed), benchmark mode."""

from __future__ import annotations

import math
import re
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import optuna
import pytest
from optuna.trial import TrialState

from bnsearch import samplers
from bnsearch.compare import CompareConfig, counted_trials, run_compare
from bnsearch.compare.html import write_compare_html
from bnsearch.compare.stats import (
    Run,
    best_so_far,
    build_compare_data,
    curve_by_time,
    ranking_rows,
    seed_targets,
    trials_to_reach,
    value_at_times,
)
from bnsearch.compare.surrogate import Outcome, StandInObjective, fit_surrogate, run_simulated_compare
from bnsearch.core.space import SearchSpace, TrialParams
from bnsearch.errors import ConfigError, StudyError

# ---------------------------------------------------------------- statistics on plain data


def test_best_so_far_skips_pruned_and_starts_nan() -> None:
    curve = best_so_far([None, 0.5, None, 0.4, 0.7])
    assert math.isnan(curve[0])
    assert list(curve[1:]) == [0.5, 0.5, 0.5, 0.7]


@pytest.mark.parametrize(
    ("values", "target", "expected"),
    [([0.1, 0.5, 0.9], 0.8, 3), ([0.9, 0.1], 0.9, 1), ([None, 0.2], 0.5, None), ([], 0.1, None)],
    ids=["third", "first-exact", "never", "empty"],
)
def test_trials_to_reach(values: list[float | None], target: float, expected: int | None) -> None:
    assert trials_to_reach(values, target) == expected


def test_value_at_times_is_a_step_function_of_finished_trials() -> None:
    run = Run("a", 0, (0.2, None, 0.6), (1.0, 1.0, 2.0))  # trials end at 1, 2 and 4 s
    got = value_at_times(run, [0.5, 1.0, 3.9, 4.0, 9.0])
    assert math.isnan(got[0])
    assert list(got[1:]) == [0.2, 0.2, 0.6, 0.6]


def test_curve_by_time_median_and_iqr_over_seeds() -> None:
    runs = [Run("a", s, (v,), (1.0,)) for s, v in enumerate((0.1, 0.2, 0.3, 0.4, 0.5))]
    band = curve_by_time(runs, [1.0])
    assert band.median == (0.3,)
    assert band.q25 == (0.2,)
    assert band.q75 == (0.4,)


def _never_decreases(series: tuple[float, ...]) -> bool:
    finite = [v for v in series if math.isfinite(v)]
    return all(b >= a for a, b in zip(finite, finite[1:], strict=False))


def _random_runs(rng: np.random.Generator, strategy: str, seeds: int, trials: int) -> list[Run]:
    runs = []
    for seed in range(seeds):
        values = tuple(None if rng.random() < 0.4 else float(rng.random()) for _ in range(trials))
        runs.append(Run(strategy, seed, values, tuple(float(t) for t in rng.uniform(0.1, 3.0, trials))))
    return runs


def test_best_so_far_curves_never_go_down() -> None:
    """Every plotted series (median, quartiles; by trials and by time) is non-decreasing, also
    when seeds get their first completed trial at different times (seed 1's first trial was
    pruned: a median over "the seeds that have a best yet" fell from 0.87 to the mean of 0.87
    and 0.52)."""
    runs = [Run("random", 0, (0.87, 0.30, 0.40), (1, 1, 1)), Run("random", 1, (None, 0.52, 0.60), (1, 1, 1))]
    rng = np.random.default_rng(0)
    for i in range(30):
        runs += _random_runs(rng, f"s{i}", seeds=int(rng.integers(1, 6)), trials=int(rng.integers(1, 9)))
    data = build_compare_data(runs, trials=8, mode="real", mode_note="")
    bands = [*data.by_trials.values(), *data.by_time.values()]
    for band in bands:
        for series in (band.median, band.q25, band.q75):
            assert _never_decreases(series), series
    first = data.by_trials["random"]
    assert math.isnan(first.median[0])  # one population: the curve starts once every seed has a best
    assert first.median[1:3] == pytest.approx((0.695, 0.735))


def test_a_seed_with_no_completed_trial_is_left_out_of_the_curves() -> None:
    runs = [Run("a", 0, (0.5, 0.6), (1, 1)), Run("a", 1, (None, None), (1, 1))]
    data = build_compare_data(runs, trials=2, mode="real", mode_note="")
    assert data.by_trials["a"].median == (0.5, 0.6)
    assert data.by_time["a"].median[-1] == 0.6


def _runs() -> list[Run]:
    # "good" is better in every seed and reaches the target earlier; "slow" catches up late.
    return [
        Run("good", 0, (0.80, 0.956, 0.96), (1, 1, 1)),
        Run("slow", 0, (0.50, 0.60, 0.958), (1, 1, 1)),
        Run("bad", 0, (0.30, None, 0.40), (1, 1, 1)),
        Run("good", 1, (0.90, 0.91, 0.97), (1, 1, 1)),
        Run("slow", 1, (0.20, 0.85, 0.90), (1, 1, 1)),
        Run("bad", 1, (None, None, None), (1, 1, 1)),
    ]


def test_targets_are_per_seed_best_minus_half_a_point() -> None:
    targets = seed_targets(_runs())
    assert targets == pytest.approx({0: 0.955, 1: 0.965})


def test_ranking_orders_by_median_best_and_counts_trials_to_target() -> None:
    data = build_compare_data(_runs(), trials=3, mode="real", mode_note="REAL")
    names = [s.strategy for s in data.ranking]
    assert names == ["good", "slow", "bad"]
    good, slow, bad = data.ranking
    assert good.trials_to_target == (2, 3)
    assert slow.trials_to_target == (3, None)
    assert (good.n_reached, slow.n_reached, bad.n_reached) == (2, 1, 0)
    assert good.mean_rank == 1.0 and bad.mean_rank == 3.0
    assert good.final_bests == (0.96, 0.97)
    quartiles = (good.q25_best, good.median_best, good.q75_best)
    assert quartiles == pytest.approx((0.9625, 0.965, 0.9675))
    assert math.isnan(bad.final_bests[1])
    rows = ranking_rows(data)
    assert rows[0]["strategy"] == "good" and rows[0]["reached"] == "2/2"


def test_budget_cuts_longer_runs() -> None:
    runs = [Run("a", 0, (0.1, 0.9), (1, 1)), Run("b", 0, (0.5,), (1,))]
    data = build_compare_data(runs, trials=1, mode="real", mode_note="")
    assert [s.strategy for s in data.ranking] == ["b", "a"]


# ---------------------------------------------------------------- a crippled strategy


class _LowestLrSampler(optuna.samplers.RandomSampler):
    """Random search that always picks the smallest learning rate: clearly worse."""

    def sample_independent(self, study: Any, trial: Any, param_name: str, param_distribution: Any) -> Any:
        if param_name == "lr":
            return param_distribution.low
        return super().sample_independent(study, trial, param_name, param_distribution)


@pytest.fixture
def crippled(monkeypatch: pytest.MonkeyPatch) -> str:
    strategy = samplers.Strategy("crippled", lambda ctx: _LowestLrSampler(seed=ctx.seed), "test only")
    monkeypatch.setitem(samplers._REGISTRY, "crippled", strategy)
    return "crippled"


# ---------------------------------------------------------------- real mode on digits


def _trial_snapshot(url: str, name: str) -> list[tuple[int, str, float | None]]:
    study = optuna.load_study(study_name=name, storage=url)
    return [(t.number, t.state.name, t.value) for t in study.get_trials(deepcopy=False)]


def test_compare_real_runs_resumes_and_benchmark_agrees(sqlite_url: str, tmp_path: Path, crippled: str) -> None:
    cfg = CompareConfig(
        strategies=("random", crippled),
        seeds=2,
        trials=1,
        dataset="digits",
        epochs=1,
        pruner="none",
        storage=sqlite_url,
        widths=(4, 8),
        device="cpu",
    )
    first = run_compare(cfg)
    assert first.study_names == (
        "compare-digits-random-s0",
        "compare-digits-crippled-s0",
        "compare-digits-random-s1",
        "compare-digits-crippled-s1",
    )
    assert first.trials_run == 4
    # An interrupted trial (FAIL) does not use up the budget; the top-up reruns it.
    study = optuna.load_study(study_name="compare-digits-random-s0", storage=sqlite_url)
    study.tell(study.ask(), state=TrialState.FAIL)

    bigger = replace(cfg, trials=2)
    before = {n: _trial_snapshot(sqlite_url, n) for n in first.study_names}
    second = run_compare(bigger)
    assert second.trials_run == 4  # one more per study, not a rerun
    for name in first.study_names:
        after = _trial_snapshot(sqlite_url, name)
        assert after[: len(before[name])] == before[name]  # earlier trials untouched
        study = optuna.load_study(study_name=name, storage=sqlite_url)
        assert len(counted_trials(study)) == 2
        # finished (a diverged trial is PRUNED); the FAIL is not counted
        assert all(t.state in (TrialState.COMPLETE, TrialState.PRUNED) for t in counted_trials(study))
    snapshot = {n: _trial_snapshot(sqlite_url, n) for n in first.study_names}

    third = run_compare(bigger)
    assert third.trials_run == 0
    assert {n: _trial_snapshot(sqlite_url, n) for n in first.study_names} == snapshot
    assert [s.final_bests for s in third.data.ranking] == [s.final_bests for s in second.data.ranking]

    real_order = [s.strategy for s in third.data.ranking]
    assert real_order == ["random", crippled]
    page = write_compare_html(third.data, tmp_path / "page.html").read_text(encoding="utf-8")
    assert "REAL mode" in page and "BENCHMARK" not in page
    assert re.search(r"<script[^>]*\ssrc=", page) is None and "Plotly" in page  # plotly.js inlined

    # Benchmark mode, surrogate fitted to these studies: the same ranking, labelled as such.
    # The surrogate needs some data: with 2 trials per study (7 points) it can miss the effect
    # of lr entirely; 6 per study ranked right in every trial run.
    run_compare(replace(cfg, trials=6))
    snapshot = _trial_snapshot(sqlite_url, "compare-digits-random-s0")
    bench = run_compare(replace(bigger, benchmark=True, epochs=None, seeds=6, trials=6))
    assert bench.data.mode == "benchmark"
    assert [s.strategy for s in bench.data.ranking] == real_order
    assert "BENCHMARK mode" in bench.data.mode_note
    page = write_compare_html(bench.data, tmp_path / "bench.html").read_text(encoding="utf-8")
    assert "BENCHMARK mode" in page
    assert _trial_snapshot(sqlite_url, "compare-digits-random-s0") == snapshot


def test_compare_refuses_a_changed_setting_before_running(sqlite_url: str, crippled: str) -> None:
    cfg = CompareConfig(
        strategies=("random",),
        seeds=1,
        trials=1,
        dataset="digits",
        epochs=1,
        pruner="none",
        storage=sqlite_url,
        widths=(4, 8),
        device="cpu",
    )
    run_compare(cfg)
    with pytest.raises(StudyError, match="compare-digits-random-s0.*different settings.*space"):
        run_compare(replace(cfg, epochs=2, strategies=(crippled, "random")))
    names = {s.study_name for s in optuna.get_all_study_summaries(sqlite_url)}
    assert names == {"compare-digits-random-s0"}  # the crippled study was not created


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"strategies": ("random", "tpee")}, "unknown strategy 'tpee'; choose one of: .*random"),
        ({"strategies": ()}, "--strategies is empty"),
        ({"strategies": ("random", "random")}, "names random twice"),
        ({"seeds": 0}, "--seeds must be ≥ 1, got 0"),
        ({"workers": 0}, "--workers must be ≥ 1, got 0"),
        ({"trials": 0}, "--trials must be ≥ 1, got 0"),
        ({"pruner": "medain"}, "unknown pruner 'medain'"),
        ({"from_studies": ("x",)}, "--from-study only applies with --benchmark"),
        ({"benchmark": True, "epochs": 2}, "--epochs does not apply with --benchmark"),
    ],
    ids=[
        "strategy",
        "empty",
        "duplicate",
        "seeds",
        "workers",
        "trials",
        "pruner",
        "from-study",
        "bench-epochs",
    ],
)
def test_bad_compare_options(kwargs: dict[str, Any], match: str, sqlite_url: str) -> None:
    with pytest.raises(ConfigError, match=match):
        run_compare(CompareConfig(storage=sqlite_url, **kwargs))


def test_benchmark_without_source_says_what_to_do(sqlite_url: str) -> None:
    cfg = CompareConfig(strategies=("random",), dataset="digits", storage=sqlite_url, benchmark=True)
    optuna.create_study(storage=sqlite_url, study_name="unrelated")
    with pytest.raises(ConfigError, match="--from-study NAME"):
        run_compare(cfg)
    with pytest.raises(StudyError, match="no study named 'nope'"):
        run_compare(replace(cfg, from_studies=("nope",)))


# ---------------------------------------------------------------- benchmark vs a known objective


def _truth(params: TrialParams) -> Outcome:
    """A known objective: best near lr = 0.1, a bonus for BN; four epochs of rising accuracy."""
    peak = 0.1 + 0.85 * math.exp(-((math.log10(params.lr) + 1.0) ** 2) / 0.5)
    peak = min(peak + (0.04 if params.has_bn else 0.0), 1.0)
    return Outcome(tuple(peak * (0.7 + 0.1 * e) for e in range(4)), 0.5)


def test_surrogate_benchmark_ranks_like_the_objective_it_stands_for(crippled: str) -> None:
    space = SearchSpace.default()
    source = optuna.create_study(direction="maximize", sampler=optuna.samplers.RandomSampler(seed=1))
    source.optimize(StandInObjective(space=space, simulate=_truth), n_trials=40)
    surrogate = fit_surrogate(space, source.get_trials())
    common = {
        "strategies": ("random", crippled),
        "seeds": range(3),
        "trials": 12,
        "pruner": "median",
    }
    truth = run_simulated_compare(space, _truth, mode_note="truth", **common)  # type: ignore[arg-type]
    bench = run_simulated_compare(space, surrogate, mode_note="surrogate", **common)  # type: ignore[arg-type]
    assert [s.strategy for s in truth.data.ranking] == ["random", crippled]
    assert [s.strategy for s in bench.data.ranking] == ["random", crippled]
    # The surrogate is close to the objective where it was fitted, not just ordered alike.
    fitted = np.array([surrogate(p).val_acc_curve[-1] for p in _sample_params(space, source)])
    actual = np.array([_truth(p).val_acc_curve[-1] for p in _sample_params(space, source)])
    assert np.corrcoef(fitted, actual)[0, 1] > 0.9


def _sample_params(space: SearchSpace, study: optuna.Study) -> list[TrialParams]:
    return [TrialParams(**t.user_attrs["resolved_params"]) for t in study.get_trials()]


def test_surrogate_needs_enough_trials() -> None:
    with pytest.raises(StudyError, match="at least 5 finished trials"):
        fit_surrogate(SearchSpace.default(), [])


# ---------------------------------------------------------------- CLI


def test_cli_compare_benchmark_says_which_mode_made_the_figures(sqlite_url: str, tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from bnsearch.cli import app

    space = SearchSpace.default()
    source = optuna.create_study(
        storage=sqlite_url,
        study_name="src",
        direction="maximize",
        sampler=optuna.samplers.RandomSampler(seed=0),
    )
    source.set_user_attr("bnsearch_config", {"dataset": "digits", "space": space.to_dict(), "seed": 0})
    source.optimize(StandInObjective(space=space, simulate=_truth), n_trials=12)
    page = tmp_path / "b.html"
    res = CliRunner().invoke(
        app,
        [
            "compare",
            "--benchmark",
            "--from-study",
            "src",
            "--storage",
            sqlite_url,
            "--strategies",
            "random,tpe",
            "--seeds",
            "2",
            "--trials",
            "6",
            "--out",
            str(page),
        ],
    )
    assert res.exit_code == 0, res.output
    assert "BENCHMARK mode" in res.output and "ranking (benchmark mode" in res.output
    assert "BENCHMARK mode" in page.read_text(encoding="utf-8")
    assert [s.study_name for s in optuna.get_all_study_summaries(sqlite_url)] == ["src"]  # runs stay in memory


@pytest.mark.parametrize(
    ("args", "match"),
    [
        (["--strategies", "random,tpee"], "unknown strategy 'tpee'"),
        (["--widths", "4"], "--widths must be two integers"),
        (["--seeds", "0"], "--seeds must be ≥ 1, got 0"),
    ],
    ids=["strategy", "widths", "seeds"],
)
def test_cli_compare_bad_input_is_one_line_and_writes_nothing(args: list[str], match: str, tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from bnsearch.cli import app

    db = tmp_path / "s.db"
    res = CliRunner().invoke(app, ["compare", "--dataset", "digits", "--storage", f"sqlite:///{db}", *args])
    assert res.exit_code == 2
    lines = res.output.strip().splitlines()
    assert len(lines) == 1 and match in lines[0] and "Traceback" not in res.output
    assert not db.exists()


@pytest.mark.parametrize("command", ["compare", "best", "predict"])
def test_cli_help(command: str) -> None:
    from typer.testing import CliRunner

    from bnsearch.cli import app

    res = CliRunner().invoke(app, [command, "--help"])
    assert res.exit_code == 0 and "Usage" in res.output


@pytest.mark.slow
def test_compare_with_workers_tops_up_every_run_in_processes(sqlite_url: str) -> None:
    cfg = CompareConfig(
        strategies=("random", "tpe"),
        seeds=1,
        trials=2,
        dataset="digits",
        epochs=1,
        pruner="none",
        storage=sqlite_url,
        widths=(4, 8),
        device="cpu",
        workers=2,
        threads=1,
    )
    events: list[str] = []
    first = run_compare(cfg, on_event=events.append)
    assert first.trials_run == 4
    assert any("2 worker processes" in e for e in events)
    for name in first.study_names:
        study = optuna.load_study(study_name=name, storage=sqlite_url)
        assert len(counted_trials(study)) == 2
    assert run_compare(cfg).trials_run == 0
