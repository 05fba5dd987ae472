"""The numbers behind ``bnsearch compare``: curves, final bests, trials to target, ranking.

Plain functions on plain data (no Optuna, no plotly), so they are tested on hand-made runs.
A ``Run`` is one study: one strategy with one seed, its trials in the order they ran.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

TARGET_GAP = 0.005  # "within 0.5 points": accuracy is 0..1, so half a percentage point
TIME_GRID_POINTS = 100  # points of the shared wall-time axis of the time curves


@dataclass(frozen=True, slots=True)
class Run:
    """One strategy × seed: what each counted trial scored and how long it took."""

    strategy: str
    seed: int
    values: tuple[float | None, ...]  # val_acc of each trial in order; None if pruned
    times_s: tuple[float, ...]  # wall seconds each trial took (same length as values)

    def __post_init__(self) -> None:
        assert len(self.values) == len(self.times_s)


@dataclass(frozen=True, slots=True)
class Band:
    """Median and interquartile band over seeds at each x.

    One population of seeds from start to end: seeds that never completed a trial are left out,
    and the band is NaN until every other seed has completed one.
    """

    x: tuple[float, ...]
    median: tuple[float, ...]
    q25: tuple[float, ...]
    q75: tuple[float, ...]


@dataclass(frozen=True, slots=True)
class StrategySummary:
    strategy: str
    n_runs: int
    final_bests: tuple[float, ...]  # best val_acc of each seed's run (NaN if no trial completed)
    median_best: float
    q25_best: float
    q75_best: float
    mean_best: float
    mean_rank: float  # average rank among strategies within each seed (1 = best)
    trials_to_target: tuple[int | None, ...]  # per seed; None: never within the target
    median_trials_to_target: float | None  # over seeds that reached it; None if none did
    n_reached: int  # seeds whose run came within TARGET_GAP of the seed's best
    median_time_s: float  # median total wall seconds of a run


@dataclass(frozen=True, slots=True)
class CompareData:
    """Everything the compare page and the terminal ranking show."""

    mode: str  # "real" or "benchmark"
    mode_note: str  # one line saying what produced the figures
    trials: int  # budget per run
    seeds: tuple[int, ...]
    targets: dict[int, float]  # seed → target value (best of any strategy − TARGET_GAP)
    by_trials: dict[str, Band]  # strategy → best-so-far vs trial number (1-based); never decreases
    by_time: dict[str, Band]  # strategy → best-so-far vs wall seconds; never decreases
    ranking: tuple[StrategySummary, ...]  # best first


def best_so_far(values: Sequence[float | None]) -> np.ndarray:
    """Running maximum of the completed values; NaN before the first completed trial."""
    out = np.full(len(values), np.nan)
    best = -math.inf
    for i, v in enumerate(values):
        if v is not None and math.isfinite(v):
            best = max(best, v)
        if best > -math.inf:
            out[i] = best
    return out


def final_best(run: Run) -> float:
    """The best completed value of a run (NaN if none completed)."""
    curve = best_so_far(run.values)
    return float(curve[-1]) if len(curve) else math.nan


def trials_to_reach(values: Sequence[float | None], target: float) -> int | None:
    """1-based number of trials after which the best so far is ≥ ``target``; None if never."""
    curve = best_so_far(values)
    hits = np.nonzero(curve >= target)[0]  # NaN compares False
    return int(hits[0]) + 1 if len(hits) else None


def seed_targets(runs: Sequence[Run], gap: float = TARGET_GAP) -> dict[int, float]:
    """Per seed: the best value any strategy found with that seed, minus ``gap``.

    Runs of one seed share the data split and trial seeds (a paired comparison), so their
    values are comparable; runs of different seeds may not be.
    """
    out: dict[int, float] = {}
    for seed in sorted({r.seed for r in runs}):
        bests = [final_best(r) for r in runs if r.seed == seed]
        finite = [b for b in bests if math.isfinite(b)]
        out[seed] = max(finite) - gap if finite else math.nan
    return out


def _band(x: Sequence[float] | np.ndarray, rows: np.ndarray) -> Band:
    """Median and quartiles over one population of runs from the first x to the last.

    ``rows`` (runs × x) are best-so-far curves: NaN until a run's first completed trial, then
    non-decreasing. A run that never completed a trial is left out of every x; the band starts
    at the first x where every other run has a best, and is NaN before it. Quantiles of a fixed
    set of non-decreasing rows never decrease, so neither does any plotted series (a median over
    the runs that have a best *yet* can fall when a late run joins with a low best).
    """
    rows = rows[~np.all(np.isnan(rows), axis=1)]
    med, lo, hi = (np.full(rows.shape[1], np.nan) for _ in range(3))
    full = np.all(~np.isnan(rows), axis=0) if len(rows) else np.zeros(rows.shape[1], dtype=bool)
    if full.any():
        med[full] = np.median(rows[:, full], axis=0)
        lo[full] = np.percentile(rows[:, full], 25, axis=0)
        hi[full] = np.percentile(rows[:, full], 75, axis=0)
    return Band(tuple(float(v) for v in x), *(tuple(float(v) for v in a) for a in (med, lo, hi)))


def curve_by_trials(runs: Sequence[Run], trials: int) -> Band:
    """Best-so-far against trial number 1..``trials``, median and IQR over ``runs``."""
    rows = np.full((len(runs), trials), np.nan)
    for i, r in enumerate(runs):
        c = best_so_far(r.values[:trials])
        rows[i, : len(c)] = c
        if 0 < len(c) < trials:  # a short run keeps its last best (it stopped improving)
            rows[i, len(c) :] = c[-1]
    return _band(range(1, trials + 1), rows)


def value_at_times(run: Run, grid_s: Sequence[float] | np.ndarray) -> np.ndarray:
    """Best value among the trials finished by each time in ``grid_s`` (NaN before the first)."""
    ends = np.cumsum(run.times_s)
    curve = best_so_far(run.values)
    idx = np.searchsorted(ends, np.asarray(grid_s, dtype=float), side="right") - 1
    return np.where(idx >= 0, curve[np.clip(idx, 0, None)] if len(curve) else np.nan, np.nan)


def time_grid(runs: Sequence[Run], points: int = TIME_GRID_POINTS) -> np.ndarray:
    """A shared time axis from 0 to the longest run's total wall time."""
    longest = max((float(np.sum(r.times_s)) for r in runs), default=0.0)
    return np.linspace(0.0, longest, points) if longest > 0 else np.zeros(1)


def curve_by_time(runs: Sequence[Run], grid_s: Sequence[float] | np.ndarray) -> Band:
    """Best-so-far against wall seconds on ``grid_s``, median and IQR over ``runs``."""
    rows = np.vstack([value_at_times(r, grid_s) for r in runs]) if runs else np.zeros((0, len(grid_s)))
    return _band(grid_s, rows)


def _ranks_within_seeds(runs: Sequence[Run]) -> dict[str, list[float]]:
    """For each seed, rank the strategies by final best (1 = best, ties share the mean rank)."""
    out: dict[str, list[float]] = {}
    for seed in sorted({r.seed for r in runs}):
        group = [r for r in runs if r.seed == seed]
        scores = np.array([final_best(r) for r in group])
        scores = np.where(np.isnan(scores), -np.inf, scores)
        for r, s in zip(group, scores, strict=True):
            rank = 1.0 + float(np.sum(scores > s)) + (float(np.sum(scores == s)) - 1.0) / 2.0
            out.setdefault(r.strategy, []).append(rank)
    return out


def summarize(runs: Sequence[Run], targets: dict[int, float]) -> list[StrategySummary]:
    """One summary per strategy, ranked: median final best, then mean rank, then speed."""
    ranks = _ranks_within_seeds(runs)
    out = []
    for strategy in sorted({r.strategy for r in runs}):
        mine = sorted((r for r in runs if r.strategy == strategy), key=lambda r: r.seed)
        bests = np.array([final_best(r) for r in mine])
        finite = bests[np.isfinite(bests)]
        to_target = tuple(trials_to_reach(r.values, targets.get(r.seed, math.nan)) for r in mine)
        reached = [t for t in to_target if t is not None]

        q25, median, q75 = np.percentile(finite, [25, 50, 75]) if len(finite) else (math.nan,) * 3
        out.append(
            StrategySummary(
                strategy=strategy,
                n_runs=len(mine),
                final_bests=tuple(float(b) for b in bests),
                median_best=float(median),
                q25_best=float(q25),
                q75_best=float(q75),
                mean_best=float(np.mean(finite)) if len(finite) else math.nan,
                mean_rank=float(np.mean(ranks.get(strategy, [math.nan]))),
                trials_to_target=to_target,
                median_trials_to_target=float(np.median(reached)) if reached else None,
                n_reached=len(reached),
                median_time_s=float(np.median([np.sum(r.times_s) for r in mine])) if mine else 0.0,
            )
        )

    def key(s: StrategySummary) -> tuple[float, float, float]:
        med = s.median_best if math.isfinite(s.median_best) else -math.inf
        speed = s.median_trials_to_target if s.median_trials_to_target is not None else math.inf
        return (-med, s.mean_rank, speed)

    return sorted(out, key=key)


def build_compare_data(runs: Sequence[Run], *, trials: int, mode: str, mode_note: str) -> CompareData:
    """Curves and ranking of ``runs``, each cut to its first ``trials`` trials (equal budgets)."""
    cut = [Run(r.strategy, r.seed, r.values[:trials], r.times_s[:trials]) for r in runs]
    targets = seed_targets(cut)
    grid = time_grid(cut)
    strategies = sorted({r.strategy for r in cut})
    return CompareData(
        mode=mode,
        mode_note=mode_note,
        trials=trials,
        seeds=tuple(sorted({r.seed for r in cut})),
        targets=targets,
        by_trials={s: curve_by_trials([r for r in cut if r.strategy == s], trials) for s in strategies},
        by_time={s: curve_by_time([r for r in cut if r.strategy == s], grid) for s in strategies},
        ranking=tuple(summarize(cut, targets)),
    )


def ranking_rows(data: CompareData) -> list[dict[str, str]]:
    """The ranking as display strings (the terminal table and the HTML table use these)."""
    rows = []
    n_seeds = len(data.seeds)
    for i, s in enumerate(data.ranking, start=1):
        ttt = "-" if s.median_trials_to_target is None else f"{s.median_trials_to_target:g}"
        rows.append(
            {
                "rank": str(i),
                "strategy": s.strategy,
                "median best": _pct(s.median_best),
                "IQR": f"{_pct(s.q25_best)}–{_pct(s.q75_best)}",
                "mean rank": f"{s.mean_rank:.2f}",
                "reached": f"{s.n_reached}/{n_seeds}",
                "trials to target": ttt,
                "run time (s)": f"{s.median_time_s:.1f}",
            }
        )
    return rows


def _pct(v: float) -> str:
    return f"{100 * v:.2f}%" if math.isfinite(v) else "-"
