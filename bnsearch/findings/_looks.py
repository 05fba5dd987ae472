"""Design 2's sequential run: pre-registered looks, seeds added only where claims are undecided.

The first look trains every cell of ``plan.looks[0]`` seeds per dataset. After each look the
claims are judged with alpha spending on top of Holm (``_judge.judge(plan=...)``, from
``bnsearch.stats.judge_sequential``); a decided claim keeps its verdict, and only the arms of
the primary claims still *inconclusive* get the next look's seeds, up to the last look (the
cap). Everything is read back from the studies, so a run that stops resumes at the look it
reached: judging depends only on the cells, never on what the previous call did.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

from bnsearch.claims import INCONCLUSIVE
from bnsearch.findings._catalogue import Claim
from bnsearch.findings._catalogue2 import catalogue
from bnsearch.findings._controls import Trust, check_controls
from bnsearch.findings._design import FindingsConfig
from bnsearch.findings._judge import Result, judge
from bnsearch.findings._records import CellRecord
from bnsearch.findings._runner import OnCell, records_from_study, run_experiment
from bnsearch.stats import SequentialPlan, seeds_for_power

POWER_EFFECT_POINTS = 1.0  # the effect of the seed-count table: ±1 accuracy point
POWER = 0.8


@dataclass(frozen=True, slots=True)
class LooksSummary:
    records: tuple[CellRecord, ...]
    results: tuple[Result, ...]
    trust: Trust
    cells_run: int
    study_names: tuple[str, ...]


def _minutes(seconds: float) -> str:
    return f"{seconds / 60:.0f} min" if seconds >= 90 else f"{seconds:.0f} s"


def read_records(cfg: FindingsConfig, plan: SequentialPlan) -> tuple[list[CellRecord], tuple[str, ...]]:
    """Every cell of the run's studies (seeds up to the last look), and the studies' names."""
    import optuna

    from bnsearch.storages import open_storage
    from bnsearch.study import study_names

    storage = open_storage(cfg.storage)
    existing = set(study_names(storage))
    records: list[CellRecord] = []
    names: list[str] = []
    for seed in range(plan.looks[-1]):
        for dataset in cfg.datasets:
            name = cfg.study_name(dataset, seed)
            if name in existing:
                names.append(name)
                study = optuna.load_study(study_name=name, storage=storage)
                records += records_from_study(study, dataset=dataset, seed=seed)
    return records, tuple(names)


def continuing(results: Sequence[Result], plan: SequentialPlan) -> dict[str, list[Result]]:
    """Dataset → its primary claims that are still inconclusive before the last look."""
    out: dict[str, list[Result]] = {}
    for r in results:
        if r.primary and r.verdict == INCONCLUSIVE and r.look is not None and 0 < r.look < len(plan.looks):
            out.setdefault(r.dataset, []).append(r)
    return out


def _stat_scale_sd(result: Result, claim: Claim, n_test: int) -> float:
    """The per-seed sd on the scale the claim is tested on, widened by its grid's rounding
    variance as ``bnsearch.stats`` widens it (so equal per-seed values still have a spread)."""
    values = [math.log(v) if claim.log_scale else v for v in result.per_seed if v > 0 or not claim.log_scale]
    if len(values) < 2:
        return math.nan
    step = 100 / n_test if claim.unit == "points" else claim.resolution
    return math.sqrt(statistics.variance(values) + step**2 / 12)


def power_lines(
    results: Sequence[Result], plan: SequentialPlan, cfg: FindingsConfig, n_test: dict[str, int]
) -> list[str]:
    """For each primary claim: the seeds 80% power needs at ±1 point (at the margin for a ratio
    or a rate), from the first look's per-seed sd, and the time those seeds take."""
    from bnsearch.findings._design2 import job_seconds

    by_key = {c.key: c for c in catalogue(2)}
    m = sum(1 for c in by_key.values() if c.primary)
    lines = []
    for r in results:
        claim = by_key.get(r.key)
        if claim is None or not r.primary:
            continue
        sd = _stat_scale_sd(r, claim, n_test.get(r.dataset, 0) or 1)
        points = claim.unit == "points"
        effect = POWER_EFFECT_POINTS if points else claim.stat_margin
        label = "±1 point" if points else f"the margin ({claim.margin:g} {claim.unit})"
        if not (math.isfinite(sd) and sd > 0 and effect > 0):
            lines.append(f"  {r.dataset} {r.key}: no per-seed spread yet; the seeds it needs cannot be estimated")
            continue
        need = seeds_for_power(
            sd, effect=effect, target_power=POWER, looks=plan.looks, spending=plan.spending, claims=m
        )
        more = max(0, need - plan.looks[0])
        seconds = more * job_seconds(r.dataset, arms=claim.arms) / max(1, cfg.workers)
        cap = "" if need <= plan.looks[-1] else f" (more than the plan's cap of {plan.looks[-1]})"
        when = f"about {_minutes(seconds)} beyond the first look" if cfg.device == "cpu" else "time not estimated"
        lines.append(
            f"  {r.dataset} {r.key}: per-seed sd {sd:.2g} → {need} seeds for {POWER:.0%} power at {label}{cap}, {when}"
        )
    return lines


def run_looks(
    cfg: FindingsConfig,
    plan: SequentialPlan,
    *,
    on_event: Callable[[str], None] | None = None,
    on_cell: OnCell | None = None,
) -> LooksSummary:
    """Run design 2 look by look (see the module notes) and judge it.

    Raises:
        BnsearchError: a bad option or storage, or a study of another design; nothing trains then.
    """
    from bnsearch.findings._design2 import POSITIVE_CONTROL_LR, estimate_wall_s

    emit = on_event or (lambda _line: None)
    first = replace(cfg, seeds=plan.looks[0])
    first.validate()
    if cfg.device == "cpu":
        when = (
            f": about {_minutes(estimate_wall_s(first))} on {cfg.workers} worker(s), at most "
            f"{_minutes(estimate_wall_s(replace(cfg, seeds=plan.looks[-1])))} if every claim needed the last look"
        )
    else:  # the seconds per cell were measured on a CPU
        when = f" (no time estimate on {cfg.device}: the seconds per cell are measured on CPUs)"
    emit(
        f"looks at {', '.join(map(str, plan.looks))} seeds ({plan.spending.replace('_', '-')} alpha spending over "
        f"Holm); the first look trains every cell{when}"
    )
    quiet = lambda line: None if line.endswith(": complete") else emit(line)  # noqa: E731
    ran = run_experiment(first, on_event=quiet, on_cell=on_cell).cells_run
    by_key = {c.key: c for c in catalogue(2)}
    told_power = False
    while True:
        records, names = read_records(cfg, plan)
        results = judge(records, design=2, plan=plan)
        if not told_power:
            emit("seeds each primary claim needs (from the first look's spread):")
            n_test = {r.dataset: r.n_test for r in records}
            first_look = judge([r for r in records if r.seed < plan.looks[0]], design=2, plan=plan)
            for line in power_lines(first_look, plan, cfg, n_test):
                emit(line)
            told_power = True
        todo = continuing(results, plan)
        if not todo:
            break
        trained = 0
        for dataset, claims_left in todo.items():
            look = min(r.look or 1 for r in claims_left)
            seeds = plan.looks[look]
            arms = sorted({a for r in claims_left for a in by_key[r.key].arms})
            more = replace(cfg, datasets=(dataset,), seeds=seeds)
            extra = estimate_wall_s(more, seeds=range(plan.looks[look - 1], seeds), arms=arms)
            emit(
                f"{dataset}: look {look} leaves {len(claims_left)} claim(s) undecided "
                f"({', '.join(r.key for r in claims_left)}); seeds {plan.looks[look - 1]}–{seeds - 1} for their "
                f"{len(arms)} arms" + (f", about {_minutes(extra)}" if cfg.device == "cpu" else "")
            )
            trained += run_experiment(more, on_event=quiet, on_cell=on_cell, arms=arms).cells_run
        if trained == 0:
            # Every cell those looks need is there, yet the looks did not advance: a claim whose
            # effect reads cells its ``arms`` do not name. Judge what there is rather than loop.
            emit("warning: no cells left to train, yet claims remain undecided; judging what there is")
            break
        ran += trained
    trust = check_controls([r for r in records if r.seed < plan.looks[0]], lr=POSITIVE_CONTROL_LR)
    return LooksSummary(records=tuple(records), results=tuple(results), trust=trust, cells_run=ran, study_names=names)
