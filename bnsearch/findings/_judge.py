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
from bnsearch.findings._effects import CELLS_MISSING, SeedEffect, SeedView, seed_views
from bnsearch.findings._records import CellRecord
from bnsearch.stats import (
    Interval,
    SequentialPlan,
    hierarchical_bootstrap,
    judge_family,
    judge_sequential,
    min_detectable_effect,
)


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
    look: int | None = None  # sequential: 1-based look of the verdict
    seeds_used: int | None = None  # sequential: seeds of the claim's arms at that look


def _resolution(c: Claim, n_test: int) -> float:
    # An accuracy difference moves in steps of one test example.
    return 100 / n_test if c.unit == "points" else c.resolution


def _trained_prefix(effects: list[SeedEffect]) -> list[SeedEffect]:
    """The effects of seeds 0, 1, … up to the first seed whose cells are missing: a sequential
    run trains more seeds only for undecided claims, so a claim's seeds end where its arms' do."""
    for i, e in enumerate(effects):
        if e.value is None and e.note == CELLS_MISSING:
            return effects[:i]
    return effects


def _judge_sequential(
    family: Sequence[Claim], effects: list[list[SeedEffect]], plan: SequentialPlan, n_test: int, *, primary: bool
) -> list[tuple[Interval, str, float, int, int, str]]:
    """(interval, verdict, adjusted p, 1-based look, seeds used, a note on the look) per claim
    of ``family``.

    The primary claims are one family at the latest look every undecided one has reached; a
    secondary claim is a family of its own, at the latest look its arms have reached."""
    prefixes = [_trained_prefix(es) for es in effects]
    arrays = [[math.nan if e.value is None else float(e.value) for e in es] for es in prefixes]
    items = [(c.kind, a, c.stat_margin) for c, a in zip(family, arrays, strict=True)]
    res = [_resolution(c, n_test) for c in family]
    groups = [list(range(len(family)))] if primary else [[i] for i in range(len(family))]
    out: dict[int, tuple[Interval, str, float, int, int, str]] = {}
    last = len(plan.looks)
    for group in groups:
        judged = None
        for look in range(len(plan.looks) - 1, -1, -1):
            try:
                judged = judge_sequential([items[i] for i in group], plan, look, resolutions=[res[i] for i in group])
                break
            except ValueError:  # some undecided claim has not reached this look's seeds yet
                continue
        if judged is None:  # not even the first look's seeds: nothing to judge yet
            for i in group:
                nothing = Interval(math.nan, math.nan, math.nan, math.nan, 0)
                out[i] = (nothing, NOT_ESTIMABLE, 1.0, 0, 0, f"fewer seeds than the first look's {plan.looks[0]}")
            continue
        for i, j in zip(group, judged, strict=True):
            look = j.look + 1
            if j.decided:
                note = f"decided at look {look} of {last} ({j.n_seeds} seeds)"
            elif j.final:
                note = f"undecided at the last look ({j.n_seeds} seeds, the cap)"
            else:
                note = f"undecided so far: look {look} of {last} ({j.n_seeds} seeds)"
            out[i] = (j.interval, j.verdict, j.p_adjusted, look, j.n_seeds, note)
    return [out[i] for i in range(len(family))]


def _judge_dataset(
    seeds: dict[int, SeedView], family: Sequence[Claim], *, primary: bool, plan: SequentialPlan | None = None
) -> list[_Row]:
    n_test = max(v.n_test for v in seeds.values())
    effects = [[c.effect(seeds[s]) for s in sorted(seeds)] for c in family]
    if plan is not None:
        sequential = _judge_sequential(family, effects, plan, n_test, primary=primary)
        # Only the seeds the verdict used: those past a claim's decision do not count for it.
        effects = [es[: seq[4]] for es, seq in zip(effects, sequential, strict=True)]
    present = [[e for e in es if e.value is not None] for es in effects]
    values = [[float(e.value) for e in es if e.value is not None] for es in present]
    judged = judge_family(
        [(c.kind, v, c.stat_margin) for c, v in zip(family, values, strict=True)],
        resolutions=[_resolution(c, n_test) for c in family],
        adjust=primary,
    )
    rows = []
    for index, (es, ps, vals, j) in enumerate(zip(effects, present, values, judged, strict=True)):
        interval, verdict, p = j.interval, j.verdict, j.p_adjusted
        look = used = None
        notes = []
        if plan is not None:
            interval, verdict, p, look, used, look_note = sequential[index]
            notes.append(look_note)
        kinds = sorted({n for e in ps for n in e.notes})
        notes += [f"{sum(n in e.notes for e in ps)} of {len(ps)} seeds {n}" for n in kinds]
        skipped = sorted({e.note for e in es if e.value is None})
        if skipped:
            notes.append(f"{len(es) - len(ps)} seed(s) without an effect ({', '.join(skipped)})")
        boot = hierarchical_bootstrap(vals, [e.within_se for e in ps])
        if verdict in (SUPPORTED, CONTRADICTED) and boot[0] <= 0 <= boot[1]:
            notes.append("the hierarchical bootstrap interval includes 0: read this verdict with care")
        sd = j.interval.se * math.sqrt(j.interval.n) if j.interval.n >= 2 else math.nan
        rows.append(
            _Row(
                interval=interval,
                boot=boot,
                verdict=verdict,
                p=p,
                per_seed=vals,
                notes=tuple(notes),
                mde=min_detectable_effect(sd, j.interval.n) if math.isfinite(sd) else math.nan,
                look=look,
                seeds_used=used,
            )
        )
    return rows


def judge(
    records: Sequence[CellRecord],
    *,
    claim_list: Sequence[Claim] | None = None,
    design: int = 1,
    plan: SequentialPlan | None = None,
) -> list[Result]:
    """Every claim of ``design``'s catalogue (or of ``claim_list``) on every dataset of
    ``records``: per-seed effects, intervals, verdicts.

    ``plan`` (design 2): judge at the pre-registered looks with alpha spending
    (``bnsearch.stats.judge_sequential``): each claim's verdict, repeated 95% interval, the look
    that decided it and the seeds it used; a claim decided at a look keeps its verdict however
    many seeds its arms get later for other claims."""
    all_claims = tuple(claim_list) if claim_list is not None else catalogue(design)
    views = seed_views(records)
    datasets = sorted(views)
    rows: dict[tuple[str, str], _Row] = {}
    for dataset in datasets:
        for primary in (True, False):
            family = [c for c in all_claims if c.primary == primary]
            judged = _judge_dataset(views[dataset], family, primary=primary, plan=plan)
            for c, row in zip(family, judged, strict=True):
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
                    look=row.look,
                    seeds_used=row.seeds_used,
                )
            )
    return results
