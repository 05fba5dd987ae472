"""Judging the claims: a run's cells → per-seed effects → per-dataset intervals, verdicts and
the sentence that says them.

Plain Python on ``CellRecord``s (no Optuna, no torch). The per-seed effects of a dataset are
judged by ``bnsearch.stats``; a verdict is replicated when every dataset of the run gives it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from bnsearch.claims import CONTRADICTED, EQUIVALENT, INCONCLUSIVE, NOT_ESTIMABLE, SUPPORTED
from bnsearch.findings._catalogue import Claim
from bnsearch.findings._catalogue2 import catalogue
from bnsearch.findings._design import EPOCHS
from bnsearch.findings._effects import SeedView, seed_views
from bnsearch.findings._records import CellRecord
from bnsearch.stats import Interval, hierarchical_bootstrap, judge_family, min_detectable_effect


@dataclass(frozen=True, slots=True)
class Result:
    """One claim on one dataset: the effect, its interval and verdict (the JSON's rows)."""

    key: str
    claim: str
    estimand: str
    dataset: str
    effect: float  # mean effect in ``unit`` (a ratio for ratio units)
    ci_low: float
    ci_high: float
    boot_low: float  # hierarchical bootstrap check of the interval
    boot_high: float
    unit: str
    margin: float
    n_seeds: int
    verdict: str
    p_adjusted: float
    primary: bool
    replicated: bool  # every dataset of the run (≥ 2) gave this verdict, and it is not inconclusive
    mde: float  # smallest effect (unit) this many seeds detect with 80% power, from the observed sd
    per_seed: tuple[float, ...]  # per-seed effects in ``unit``
    notes: tuple[str, ...]  # per-seed notes ("censored", "did not fit") that apply
    sentence: str
    literature: str
    agreement: str  # agrees / disagrees / no clear answer / no prediction
    look: int | None = None  # design 2: the pre-registered look at which the verdict was reached (sequential driver)
    seeds_used: int | None = None  # design 2: the seeds trained for this claim's arms by then

    def to_json(self, *, sequential: bool = False) -> dict[str, object]:
        """The JSON row; ``sequential`` (design 2) adds ``look`` and ``seeds_used``."""
        extra: dict[str, object] = {"look": self.look, "seeds_used": self.seeds_used} if sequential else {}
        return {
            "key": self.key,
            "claim": self.claim,
            "estimand": self.estimand,
            "dataset": self.dataset,
            "effect": self.effect,
            "ci_low": self.ci_low,
            "ci_high": self.ci_high,
            "unit": self.unit,
            "n_seeds": self.n_seeds,
            "verdict": self.verdict,
            "replicated": self.replicated,
            "primary": self.primary,
            "margin": self.margin,
            "p_holm": self.p_adjusted if self.primary else None,
            "p": None if self.primary else self.p_adjusted,
            "bootstrap_ci": [self.boot_low, self.boot_high],
            "mde_80": self.mde,
            "per_seed": list(self.per_seed),
            "notes": list(self.notes),
            "sentence": self.sentence,
            "literature": self.literature,
            "agreement": self.agreement,
            **extra,
        }


_VERDICT_WORDS = {
    SUPPORTED: "supported",
    CONTRADICTED: "contradicted",
    EQUIVALENT: "no practical difference (the interval lies within ±{m})",
    INCONCLUSIVE: "inconclusive",
    NOT_ESTIMABLE: "not estimable",
}


def _num(value: float, unit: str) -> str:
    """A bound without its unit: ``−1.8``, ``+0.3``, ``0.53`` (ratios unsigned)."""
    if not math.isfinite(value):
        return "n/a"
    text = f"{value:.2f}" if unit.startswith("×") else f"{value:+.1f}"
    return text.replace("-", "−")


def _fmt_effect(value: float, unit: str, *, sign: bool = True) -> str:
    if not math.isfinite(value):
        return "n/a"
    if unit.startswith("×"):
        return f"{value:.2f}{unit}"
    return (_num(value, unit) if sign else f"{value:.1f}") + f" {unit}"


def _sentence(
    c: Claim, dataset: str, r_effect: float, lo: float, hi: float, n: int, verdict: str, notes: Sequence[str]
) -> str:
    epochs = EPOCHS.get(dataset)
    train = c.training or (f"{epochs} epochs" if epochs else "the design's epochs")
    m = _fmt_effect(c.margin, c.unit, sign=False)
    words = _VERDICT_WORDS[verdict].format(m=m)
    ci = f"95% CI {_num(lo, c.unit)}…{_num(hi, c.unit)}" if math.isfinite(lo) else "no interval"
    text = (
        f"{c.estimand[0].upper()}{c.estimand[1:]}: {_fmt_effect(r_effect, c.unit)} ({ci}; {n} seeds, {dataset}, "
        f"{c.network}, {train}): {words}."
    )
    if notes:
        text += " " + "; ".join(notes) + "."
    return text


def _agreement(expected: str | None, verdicts: Sequence[str]) -> str:
    if expected is None:
        return "no prediction"
    if all(v == expected for v in verdicts):
        return "agrees"
    if any(v in (SUPPORTED, CONTRADICTED, EQUIVALENT) and v != expected for v in verdicts):
        return "disagrees"
    return "no clear answer"


@dataclass(frozen=True, slots=True)
class _Row:
    interval: Interval
    boot: tuple[float, float]
    verdict: str
    p: float
    per_seed: list[float]
    notes: tuple[str, ...]
    mde: float


def _judge_dataset(seeds: dict[int, SeedView], family: Sequence[Claim], *, primary: bool) -> list[_Row]:
    n_test = max(v.n_test for v in seeds.values())
    effects = [[c.effect(seeds[s]) for s in sorted(seeds)] for c in family]
    present = [[e for e in es if e.value is not None] for es in effects]
    values = [[float(e.value) for e in es if e.value is not None] for es in present]
    judged = judge_family(
        [(c.kind, v, c.stat_margin) for c, v in zip(family, values, strict=True)],
        # An accuracy difference moves in steps of one test example.
        resolutions=[100 / n_test if c.unit == "points" else c.resolution for c in family],
        adjust=primary,
    )
    rows = []
    for es, ps, vals, j in zip(effects, present, values, judged, strict=True):
        kinds = sorted({n for e in ps for n in e.notes})
        notes = [f"{sum(n in e.notes for e in ps)} of {len(ps)} seeds {n}" for n in kinds]
        skipped = sorted({e.note for e in es if e.value is None})
        if skipped:
            notes.append(f"{len(es) - len(ps)} seed(s) without an effect ({', '.join(skipped)})")
        boot = hierarchical_bootstrap(vals, [e.within_se for e in ps])
        if j.verdict in (SUPPORTED, CONTRADICTED) and boot[0] <= 0 <= boot[1]:
            notes.append("the hierarchical bootstrap interval includes 0: read this verdict with care")
        sd = j.interval.se * math.sqrt(j.interval.n) if j.interval.n >= 2 else math.nan
        rows.append(
            _Row(
                interval=j.interval,
                boot=boot,
                verdict=j.verdict,
                p=j.p_adjusted,
                per_seed=vals,
                notes=tuple(notes),
                mde=min_detectable_effect(sd, j.interval.n) if math.isfinite(sd) else math.nan,
            )
        )
    return rows


def judge(records: Sequence[CellRecord], *, claim_list: Sequence[Claim] | None = None, design: int = 1) -> list[Result]:
    """Every claim of ``design``'s catalogue (or of ``claim_list``) on every dataset of
    ``records``: per-seed effects, intervals, verdicts."""
    all_claims = tuple(claim_list) if claim_list is not None else catalogue(design)
    views = seed_views(records)
    datasets = sorted(views)
    rows: dict[tuple[str, str], _Row] = {}
    for dataset in datasets:
        for primary in (True, False):
            family = [c for c in all_claims if c.primary == primary]
            for c, row in zip(family, _judge_dataset(views[dataset], family, primary=primary), strict=True):
                rows[(c.key, dataset)] = row
    results: list[Result] = []
    for c in all_claims:
        verdicts = [rows[(c.key, d)].verdict for d in datasets]
        # Replicated: a finding (not "inconclusive") that every dataset of the run gives alike.
        replicated = (
            len(datasets) >= 2 and len(set(verdicts)) == 1 and verdicts[0] in (SUPPORTED, CONTRADICTED, EQUIVALENT)
        )
        agreement = _agreement(c.expected, verdicts)

        def conv(x: float, c: Claim = c) -> float:
            return math.exp(x) if c.log_scale and math.isfinite(x) else x

        for d in datasets:
            row = rows[(c.key, d)]
            iv = row.interval
            effect, lo, hi = conv(iv.mean), conv(iv.low), conv(iv.high)
            results.append(
                Result(
                    key=c.key,
                    claim=c.claim,
                    estimand=c.estimand,
                    dataset=d,
                    effect=effect,
                    ci_low=lo,
                    ci_high=hi,
                    boot_low=conv(row.boot[0]),
                    boot_high=conv(row.boot[1]),
                    unit=c.unit,
                    margin=c.margin,
                    n_seeds=iv.n,
                    verdict=row.verdict,
                    p_adjusted=row.p,
                    primary=c.primary,
                    replicated=replicated,
                    mde=conv(row.mde),
                    per_seed=tuple(conv(x) for x in row.per_seed),
                    notes=row.notes,
                    sentence=_sentence(c, d, effect, lo, hi, iv.n, row.verdict, row.notes),
                    literature=c.literature,
                    agreement=agreement,
                )
            )
    return results
