"""The confirm's statistics: per-seed validation accuracies → leader, intervals, sentences.

Pure (no Optuna, no torch), so tests feed it made-up per-seed values. The intervals and Holm's
correction come from ``bnsearch.stats``, the module ``bnsearch findings`` judges with.

Every configuration trained on the same seeds, paired: seed s gave each the same split, initial
weights and batch order, so the difference leader − other on seed s removes what the seed did to
both. Those per-seed differences (in accuracy points) are what the leader is judged on.

The leader is chosen on the very seeds it is judged on, so it is the luckiest of K as well as
(perhaps) the best. Testing only its K − 1 differences would call it ahead of a configuration
it equals more often than 5% (7.6% with three equal ones). Holm's correction therefore runs
over all K(K − 1)/2 pairs, whichever turns out to lead: a family that holds the error of every
pairwise statement at 5% holds it for the leader's, however the leader was picked. Only the
leader's K − 1 pairs are reported.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from bnsearch.stats import ALPHA, Compared, Interval, holm_intervals, seeds_for_power, t_interval

# A difference smaller than this (accuracy points) is of no practical interest: an interval
# inside ±PRACTICAL_POINTS is called "within noise"; a wider one is "cannot be told apart".
PRACTICAL_POINTS = 1.0


@dataclass(frozen=True, slots=True)
class Candidate:
    """One distinct configuration of the study, represented by its best trial."""

    key: str  # stable name of the configuration (a hash of its settings), used in stored cells
    number: int  # its best trial in the search
    search_val_acc: float  # that trial's validation accuracy in the search (0..1)
    params: dict[str, Any]  # every setting it trains with (resolved_params)

    @property
    def label(self) -> str:
        return f"#{self.number}"


@dataclass(frozen=True, slots=True)
class ConfigStats:
    """One configuration's validation accuracy over the confirm seeds."""

    candidate: Candidate
    values: tuple[float, ...]  # validation accuracy (0..1) on each confirm seed, in seed order
    mean: Interval  # mean and 95% t-interval (0..1)


@dataclass(frozen=True, slots=True)
class Difference:
    """The leader minus one other configuration, paired by seed, in accuracy points."""

    other: Candidate
    compared: Compared  # interval (points) at its Holm-adjusted level, raw and adjusted p
    distinguishable: bool  # Holm-adjusted p below α: the leader is ahead beyond the seed noise
    sentence: str


@dataclass(frozen=True, slots=True)
class ConfirmSummary:
    """What a confirm found: the configurations ranked by mean, and the leader's differences."""

    configs: tuple[ConfigStats, ...]  # best mean first; configs[0] is the leader
    differences: tuple[Difference, ...]  # leader − each other configuration, in ``configs`` order
    seeds: int

    @property
    def leader(self) -> Candidate:
        return self.configs[0].candidate

    @property
    def verdict(self) -> str:
        """One line: is the leader distinguishable from every other configuration?"""
        lead = self.leader.label
        if not self.differences:
            return f"{lead} is the only configuration confirmed"
        ahead = [d.other.label for d in self.differences if d.distinguishable]
        tied = [d.other.label for d in self.differences if not d.distinguishable]
        if not tied:
            return f"{lead} is ahead of every other configuration beyond the seed noise"
        return f"{lead} leads, but cannot be told apart from {_join(tied)}" + (
            f"; it is ahead of {_join(ahead)}" if ahead else ""
        )


def _join(labels: Sequence[str]) -> str:
    return labels[0] if len(labels) == 1 else ", ".join(labels[:-1]) + " and " + labels[-1]


def _points(x: float) -> str:
    return f"{x:+.1f}".replace("-", "−")


def summarize(
    candidates: Sequence[Candidate],
    values: Mapping[str, Sequence[float]],
    *,
    alpha: float = ALPHA,
    n_val: int | None = None,
) -> ConfirmSummary:
    """Rank ``candidates`` by mean validation accuracy over the seeds and compare the leader
    with each other one (paired by seed, Holm-corrected over every pair: see the module notes).

    Args:
        candidates: The configurations, best in the search first (breaks ties of the mean).
        values: Configuration key → validation accuracy (0..1) on seeds 0..S−1, every list of
            the same length S ≥ 2.
        n_val: Validation examples per seed, when known: accuracies move in steps of
            1 / n_val, whose rounding variance widens the intervals (``bnsearch.stats._sd``),
            so a few seeds with equal accuracies do not give a zero-width interval.

    Raises:
        ValueError: a configuration lacks values, or the lists differ in length or have fewer than 2.
    """
    lengths = {len(values.get(c.key, ())) for c in candidates}
    if len(lengths) != 1 or min(lengths) < 2:
        raise ValueError(f"every configuration needs the same number (≥ 2) of seeds, got {sorted(lengths)}")
    order = sorted(range(len(candidates)), key=lambda i: (-sum(values[candidates[i].key]), i))
    step = 1.0 / n_val if n_val else 0.0
    stats = tuple(
        ConfigStats(
            candidate=candidates[i],
            values=tuple(float(v) for v in values[candidates[i].key]),
            mean=_accuracy_interval(values[candidates[i].key], step),
        )
        for i in order
    )
    leader, others = stats[0], stats[1:]
    # Every pair (a, b) with a before b in rank order; the leader's are the first K − 1.
    pairs = [(a, b) for a in range(len(stats)) for b in range(a + 1, len(stats))]
    diffs = [[100.0 * (x - y) for x, y in zip(stats[a].values, stats[b].values, strict=True)] for a, b in pairs]
    compared = holm_intervals(diffs, alpha=alpha, resolution=100.0 * step)[: len(others)]
    out = []
    for o, c in zip(others, compared, strict=True):
        iv = c.interval
        level = f"{round(100 * (1 - alpha))}% CI" + (f" (Holm, {len(pairs)} pairs)" if len(pairs) > 1 else "")
        numbers = f"{_points(iv.mean)} points, {level} {_points(iv.low)}…{_points(iv.high)}"
        ahead = c.p_adjusted < alpha and iv.mean > 0
        pair = f"{leader.candidate.label} and {o.candidate.label}"
        if ahead:
            sentence = f"{leader.candidate.label} is ahead of {o.candidate.label}: {numbers}"
        elif -PRACTICAL_POINTS < iv.low and iv.high < PRACTICAL_POINTS:
            sentence = f"{pair} are within noise: {numbers}"
        else:
            # Not told apart, but a difference of practical size is not ruled out either: say
            # what would settle it rather than call a wide interval "noise".
            sentence = f"{pair} cannot be told apart on {len(leader.values)} seeds: {numbers}" + _seeds_hint(
                iv, len(pairs), alpha
            )
        out.append(Difference(other=o.candidate, compared=c, distinguishable=ahead, sentence=sentence))
    return ConfirmSummary(configs=stats, differences=tuple(out), seeds=len(leader.values))


def _seeds_hint(iv: Interval, pairs: int, alpha: float) -> str:
    """``; about N seeds would resolve a 1-point difference`` from the observed per-seed sd."""
    sd = iv.se * math.sqrt(iv.n) if iv.n >= 2 else math.nan
    if not (math.isfinite(sd) and sd > 0):
        return ""
    need = seeds_for_power(sd, effect=PRACTICAL_POINTS, alpha=alpha, claims=pairs)
    return f"; about {need} seeds would resolve a {PRACTICAL_POINTS:g}-point difference"


def _accuracy_interval(values: Sequence[float], step: float) -> Interval:
    """The t-interval of a mean accuracy, cut to 0..1 (the bounds an accuracy can have)."""
    iv = t_interval(values, resolution=step)
    return replace(iv, low=max(0.0, iv.low), high=min(1.0, iv.high))


def summary_to_dict(summary: ConfirmSummary) -> dict[str, Any]:
    """The summary as JSON-ready numbers (stored on the study, shown by the report and dashboard)."""

    def iv(i: Interval) -> dict[str, float]:
        return {"mean": i.mean, "low": i.low, "high": i.high}

    return {
        "seeds": summary.seeds,
        "leader_trial": summary.leader.number,
        "leader_key": summary.leader.key,
        "verdict": summary.verdict,
        "configs": [
            {
                "trial": c.candidate.number,
                "key": c.candidate.key,
                "search_val_acc": c.candidate.search_val_acc,
                "val_acc": iv(c.mean),
                "values": list(c.values),
            }
            for c in summary.configs
        ],
        "differences": [
            {
                "trial": d.other.number,
                "points": iv(d.compared.interval),
                "level": d.compared.level,
                "p_holm": d.compared.p_adjusted,  # Holm over every pair of the K configurations
                "distinguishable": d.distinguishable,
                "sentence": d.sentence,
            }
            for d in summary.differences
        ],
    }
