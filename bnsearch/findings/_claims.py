"""The claims, each with one named estimand, its margin (fixed in advance) and what the
literature expects; ``judge`` turns a run's cells into per-dataset effects and verdicts.

Plain Python on ``CellRecord``s (no Optuna, no torch). Effects are paired within a seed
(arm A − arm B from the same split, batch order and initial weights), one per seed; the
per-seed effects of a dataset are judged by ``_stats``. The primary claims form one Holm
family per dataset; secondary claims are judged each at 5% and labelled so.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace

from bnsearch.findings import _estimands as est
from bnsearch.findings._design import (
    ACTIVATION_LRS,
    CHECKPOINT_STEPS,
    CONVERGENCE_TARGET,
    EPOCHS,
    FIT_EXAMPLES,
    FIT_LR,
    FIT_MAX_EPOCHS,
    MAIN_LRS,
    OTHER_ACTIVATIONS,
)
from bnsearch.findings._records import CellRecord
from bnsearch.findings._stats import (
    CONTRADICTED,
    EQUIVALENT,
    INCONCLUSIVE,
    NOT_ESTIMABLE,
    SUPPORTED,
    Interval,
    hierarchical_bootstrap,
    judge_family,
    min_detectable_effect,
)

ACC_MARGIN = 0.5  # accuracy points: smaller differences are of no practical interest
LR_MARGIN = 2.0  # ratio of learning rates
STEPS_MARGIN = 1.2  # ratio of steps (20%)
# Steps to target are read every CHECKPOINT_STEPS steps: at ~100 steps one checkpoint is a
# factor 1.2, the rounding that a log steps ratio carries (see _stats._sd).
STEPS_RESOLUTION = math.log(1 + CHECKPOINT_STEPS / 100)


@dataclass(frozen=True, slots=True)
class SeedView:
    """One dataset × seed's cells, by arm."""

    grid: dict[str, list[est.GridPoint]]
    curves: dict[tuple[str, float], tuple[tuple[int, float], ...]]
    fit: dict[str, CellRecord]
    n_test: int

    def points(self, arm: str, lrs: Sequence[float] = MAIN_LRS) -> list[est.GridPoint]:
        wanted = {round(x, 12) for x in lrs}
        return [p for p in self.grid.get(arm, []) if round(p.lr, 12) in wanted]

    def complete(self, arm: str, lrs: Sequence[float]) -> bool:
        return len(self.points(arm, lrs)) == len(lrs)


def seed_views(records: Sequence[CellRecord]) -> dict[str, dict[int, SeedView]]:
    """dataset → seed → that seed's cells."""
    out: dict[str, dict[int, SeedView]] = {}
    for r in records:
        view = out.setdefault(r.dataset, {}).setdefault(r.seed, SeedView({}, {}, {}, r.n_test))
        if r.kind == "fit":
            view.fit[r.arm] = r
            continue
        view.grid.setdefault(r.arm, []).append(
            est.GridPoint(lr=r.lr, val_acc=r.val_acc, test_acc=r.test_acc, diverged=r.diverged)
        )
        if r.curve:
            view.curves[(r.arm, round(r.lr, 12))] = r.curve
    return out


@dataclass(frozen=True, slots=True)
class SeedEffect:
    value: float | None  # None: this seed has no effect for the claim (cells missing, censored)
    within_se: float = 0.0  # sampling error of the value inside the seed (for the bootstrap)
    note: str = ""  # e.g. "censored"


EffectFn = Callable[[SeedView], SeedEffect]


@dataclass(frozen=True, slots=True)
class Claim:
    key: str
    claim: str  # what the article or the literature claims
    estimand: str  # the one quantity measured, named in every verdict
    network: str  # which nets are compared
    kind: str  # increase, decrease, not_higher, not_lower (see _stats)
    unit: str  # unit of the reported effect
    margin: float  # in the reported unit (a ratio for ratio units)
    primary: bool
    effect: EffectFn = field(repr=False)
    log_scale: bool = False  # per-seed values are logs of ratios (reported as ratios)
    resolution: float = 0.0  # grid step of a per-seed value (log units when log_scale)
    literature: str = ""
    training: str = ""  # how the compared nets trained, when not the dataset's epochs
    expected: str | None = None  # verdict the literature leads one to expect here (None: no prediction)

    @property
    def stat_margin(self) -> float:
        return math.log(self.margin) if self.log_scale else self.margin


EDGE_NOTE = "had an arm's best lr at the edge of the grid (its tuned accuracy a lower bound)"


def _acc_diff(a: est.GridPoint, b: est.GridPoint, n: int) -> SeedEffect:
    return SeedEffect(100 * (a.test_acc - b.test_acc), 100 * est.binomial_se(a.test_acc, b.test_acc, n))


def _tuned(arm_a: str, arm_b: str, lrs: Sequence[float] = MAIN_LRS) -> EffectFn:
    def f(v: SeedView) -> SeedEffect:
        if not (v.complete(arm_a, lrs) and v.complete(arm_b, lrs)):
            return SeedEffect(None, note="cells missing")
        best_a = est.best_on_validation(v.points(arm_a, lrs))
        best_b = est.best_on_validation(v.points(arm_b, lrs))
        effect = _acc_diff(best_a, best_b, v.n_test)
        # A best lr at either end of the grid may have a better one beyond it: the tuned
        # accuracy is then a lower bound, and the verdict says how many seeds that concerns.
        if {best_a.lr, best_b.lr} & {min(lrs), max(lrs)}:
            return replace(effect, note=EDGE_NOTE)
        return effect

    return f


def _grid_mean(arm_a: str, arm_b: str) -> EffectFn:
    def f(v: SeedView) -> SeedEffect:
        if not (v.complete(arm_a, MAIN_LRS) and v.complete(arm_b, MAIN_LRS)):
            return SeedEffect(None, note="cells missing")
        a, b = est.grid_mean_test_acc(v.points(arm_a)), est.grid_mean_test_acc(v.points(arm_b))
        dead = est.failed_lrs(v.points(arm_b))
        note = f"{arm_b} did not train (val acc < 20%) at lr {', '.join(f'{x:g}' for x in dead)}" if dead else ""
        return SeedEffect(100 * (a - b), note=note)

    return f


def _lr_limit(arm_a: str, arm_b: str) -> EffectFn:
    def f(v: SeedView) -> SeedEffect:
        if not (v.complete(arm_a, MAIN_LRS) and v.complete(arm_b, MAIN_LRS)):
            return SeedEffect(None, note="cells missing")
        (la, ca), (lb, cb) = est.largest_good_lr(v.points(arm_a)), est.largest_good_lr(v.points(arm_b))
        note = "censored" if ca or cb else ""
        return SeedEffect(math.log(la / lb), note=note)

    return f


def _window(arm_a: str, arm_b: str) -> EffectFn:
    def f(v: SeedView) -> SeedEffect:
        if not (v.complete(arm_a, MAIN_LRS) and v.complete(arm_b, MAIN_LRS)):
            return SeedEffect(None, note="cells missing")
        return SeedEffect(est.lr_window_decades(v.points(arm_a)) - est.lr_window_decades(v.points(arm_b)))

    return f


def _steps(arm_a: str, arm_b: str, *, matched: bool) -> EffectFn:
    """log(steps_a / steps_b) to CONVERGENCE_TARGET; matched: both at arm_b's best lr."""

    def f(v: SeedView) -> SeedEffect:
        if not (v.complete(arm_a, MAIN_LRS) and v.complete(arm_b, MAIN_LRS)):
            return SeedEffect(None, note="cells missing")
        lr_b = est.best_on_validation(v.points(arm_b)).lr
        lr_a = lr_b if matched else est.best_on_validation(v.points(arm_a)).lr
        ca, cb = v.curves.get((arm_a, round(lr_a, 12))), v.curves.get((arm_b, round(lr_b, 12)))
        if not ca or not cb:
            return SeedEffect(None, note="no curve")
        max_steps = max(s for s, _ in (*ca, *cb)) + CHECKPOINT_STEPS
        value, censored = est.log_steps_ratio(ca, cb, CONVERGENCE_TARGET, max_steps=max_steps)
        return SeedEffect(value, note="censored" if censored else "")

    return f


def _gap(arm_a: str, arm_b: str) -> EffectFn:
    def f(v: SeedView) -> SeedEffect:
        a, b = v.fit.get(arm_a), v.fit.get(arm_b)
        if a is None or b is None:
            return SeedEffect(None, note="cells missing")
        if not (a.fit_reached and b.fit_reached):
            return SeedEffect(None, note="did not fit")
        gap_a = (a.fit_train_acc or 0.0) - a.test_acc
        gap_b = (b.fit_train_acc or 0.0) - b.test_acc
        return SeedEffect(100 * (gap_a - gap_b), 100 * est.binomial_se(a.test_acc, b.test_acc, v.n_test))

    return f


def _interaction(v: SeedView) -> SeedEffect:
    acts = ("relu", *OTHER_ACTIVATIONS)
    tuned: dict[str, list[float]] = {"none": [], "before": []}
    for place in tuned:
        for a in acts:
            arm = f"{a}/{place}"
            if not v.complete(arm, ACTIVATION_LRS):
                return SeedEffect(None, note="cells missing")
            tuned[place].append(est.tuned_test_acc(v.points(arm, ACTIVATION_LRS)))
    return SeedEffect(100 * (est.spread(tuned["none"]) - est.spread(tuned["before"])))


_ACT_SPAN = f"lr {ACTIVATION_LRS[0]:g}–{ACTIVATION_LRS[-1]:g}"
_RELU = "the 2-conv ReLU CNN (32–64 channels)"
_LITERATURE = {
    "accuracy": (
        "Ioffe & Szegedy 2015 report higher final accuracy with BN (Inception, ImageNet); "
        "Santurkar et al. 2018 and Bjorck et al. 2018 trace BN's gains to the larger learning rates "
        "it tolerates, so with each arm's lr tuned a small net may show little difference."
    ),
    "convergence": (
        "Ioffe & Szegedy 2015: the same accuracy in 14× fewer steps; Bjorck et al. 2018: most of the "
        "speed-up comes from the higher lr BN allows, less at a matched lr."
    ),
    "lr": (
        "Ioffe & Szegedy 2015 and Bjorck et al. 2018: BN lets much higher learning rates train "
        "(it keeps activations bounded); Santurkar et al. 2018: a smoother loss landscape."
    ),
    "gap": (
        "Ioffe & Szegedy 2015: BN regularizes (less need for dropout); Luo et al. 2019: the noise of "
        "batch statistics acts as a regularizer whose strength falls with batch size."
    ),
    "placement": (
        "Ioffe & Szegedy 2015 put BN before the nonlinearity (normalising Wx+b); later practice often "
        "puts it after; no theory predicts a large difference in a net this small."
    ),
    "classifier": (
        "The source article keeps BN out of the classifier input; the papers cited here make no claim "
        "about a BN1d layer there."
    ),
    "gamma": (
        "Goyal et al. 2017 zero the last BN gamma of each residual branch so that every block starts "
        "as the identity through its skip path. This plain net has no skip path: their reason does not "
        "apply. Zeroing every gamma makes the output constant and gives every gamma a zero gradient at "
        "initialisation (checked), a degenerate start any training can only leave through rounding noise."
    ),
    "activation": (
        "Ioffe & Szegedy 2015: BN keeps saturating nonlinearities (sigmoid) out of saturation, so the "
        "choice of activation should matter less with BN."
    ),
}


def claims() -> tuple[Claim, ...]:
    """Every claim, primary ones first, in page order."""
    lr_span = f"lr {MAIN_LRS[0]:g}–{MAIN_LRS[-1]:g}"
    primary = (
        Claim(
            key="bn_accuracy",
            claim="BN improves accuracy.",
            estimand="test accuracy at each arm's best lr (chosen on validation), BN before the activation − no BN",
            network=_RELU,
            kind="increase",
            unit="points",
            margin=ACC_MARGIN,
            primary=True,
            effect=_tuned("relu/before", "relu/none"),
            literature=_LITERATURE["accuracy"],
            expected=SUPPORTED,
        ),
        Claim(
            key="bn_convergence",
            claim="BN speeds up convergence.",
            estimand=(
                f"steps to {CONVERGENCE_TARGET:.0%} validation accuracy (BN statistics recomputed before each "
                f"check, every {CHECKPOINT_STEPS} steps), both at the no-BN arm's best lr; ratio BN / no BN"
            ),
            network=_RELU,
            kind="decrease",
            unit="× steps",
            margin=STEPS_MARGIN,
            primary=True,
            effect=_steps("relu/before", "relu/none", matched=True),
            log_scale=True,
            resolution=STEPS_RESOLUTION,
            literature=_LITERATURE["convergence"],
            expected=SUPPORTED,
        ),
        Claim(
            key="bn_higher_lr",
            claim="BN allows higher learning rates.",
            estimand=(
                f"largest lr whose validation accuracy is within {100 * est.WITHIN:g} points of the arm's best "
                f"({lr_span}, half-decade grid); ratio BN / no BN"
            ),
            network=_RELU,
            kind="increase",
            unit="× lr",
            margin=LR_MARGIN,
            primary=True,
            effect=_lr_limit("relu/before", "relu/none"),
            log_scale=True,
            resolution=math.log(math.sqrt(10)),
            literature=_LITERATURE["lr"],
            expected=SUPPORTED,
        ),
        Claim(
            key="bn_overfitting",
            claim="BN reduces overfitting.",
            estimand=(
                f"train − test accuracy gap once the net classifies all of a {FIT_EXAMPLES}-example training "
                f"subset right (matched training accuracy, lr {FIT_LR:g}); BN − no BN"
            ),
            network=_RELU,
            kind="decrease",
            unit="points",
            margin=ACC_MARGIN,
            primary=True,
            effect=_gap("relu/before", "relu/none"),
            training=f"trained until they fit the subset (at most {FIT_MAX_EPOCHS} epochs)",
            literature=_LITERATURE["gap"],
            expected=SUPPORTED,
        ),
        Claim(
            key="bn_placement",
            claim="BN works better before the activation than after it.",
            estimand="test accuracy at each arm's best lr, BN before − BN after the activation",
            network=_RELU,
            kind="increase",
            unit="points",
            margin=ACC_MARGIN,
            primary=True,
            effect=_tuned("relu/before", "relu/after"),
            literature=_LITERATURE["placement"],
            expected=SUPPORTED,
        ),
        Claim(
            key="bn_classifier",
            claim="BN1d before the classifier does not help (among nets with BN in the conv blocks).",
            estimand="test accuracy at each arm's best lr, BN before the activation with BN1d − without BN1d",
            network=_RELU,
            kind="not_higher",
            unit="points",
            margin=ACC_MARGIN,
            primary=True,
            effect=_tuned("relu/before+bn1d", "relu/before"),
            literature=_LITERATURE["classifier"],
            expected=SUPPORTED,
        ),
        Claim(
            key="gamma_zero_last",
            claim="Gamma = 0 on the last BN (Goyal et al.'s trick) trains as well as gamma = 1.",
            estimand="test accuracy at each arm's best lr, BN after the activation, gamma 0 on the last BN − gamma 1",
            network=_RELU,
            kind="not_lower",
            unit="points",
            margin=ACC_MARGIN,
            primary=True,
            effect=_tuned("relu/after/zero_last", "relu/after"),
            literature=_LITERATURE["gamma"],
            expected=None,
        ),
        Claim(
            key="activation_interaction",
            claim="With BN, the choice of activation matters less.",
            estimand=(
                "spread (best − worst) of the four activations' tuned test accuracy "
                f"(lr {ACTIVATION_LRS[0]:g}–{ACTIVATION_LRS[-1]:g}), without BN − with BN before the activation"
            ),
            network="the 2-conv CNN with relu, leaky_relu, tanh and sigmoid",
            kind="increase",
            unit="points",
            margin=ACC_MARGIN,
            primary=True,
            effect=_interaction,
            literature=_LITERATURE["activation"],
            expected=SUPPORTED,
        ),
    )
    secondary = (
        Claim(
            key="bn_accuracy_grid_mean",
            claim="BN improves accuracy (averaged over the lr grid: robustness, not tuned accuracy).",
            estimand=f"mean test accuracy over {lr_span}, BN before − no BN",
            network=_RELU,
            kind="increase",
            unit="points",
            margin=ACC_MARGIN,
            primary=False,
            effect=_grid_mean("relu/before", "relu/none"),
            literature=_LITERATURE["lr"],
            expected=SUPPORTED,
        ),
        Claim(
            key="bn_lr_window",
            claim="BN widens the window of learning rates that train.",
            estimand=f"width in decades of the lrs within {100 * est.WITHIN:g} points of the arm's best, BN − no BN",
            network=_RELU,
            kind="increase",
            unit="decades",
            margin=0.5,
            primary=False,
            effect=_window("relu/before", "relu/none"),
            resolution=0.5,
            literature=_LITERATURE["lr"],
            expected=SUPPORTED,
        ),
        Claim(
            key="bn_convergence_tuned",
            claim="BN speeds up convergence (each arm at its own best lr).",
            estimand=(
                f"steps to {CONVERGENCE_TARGET:.0%} validation accuracy (BN statistics recomputed), "
                "each arm at its best lr; ratio BN / no BN"
            ),
            network=_RELU,
            kind="decrease",
            unit="× steps",
            margin=STEPS_MARGIN,
            primary=False,
            effect=_steps("relu/before", "relu/none", matched=False),
            log_scale=True,
            resolution=STEPS_RESOLUTION,
            literature=_LITERATURE["convergence"],
            expected=SUPPORTED,
        ),
        Claim(
            key="gamma_zeros_degenerate",
            claim="Gamma = 0 in every BN layer trains as well as gamma = 1 (degenerate: the output starts constant).",
            estimand="test accuracy at each arm's best lr, BN after the activation, gamma 0 everywhere − gamma 1",
            network=_RELU,
            kind="not_lower",
            unit="points",
            margin=ACC_MARGIN,
            primary=False,
            effect=_tuned("relu/after/zeros", "relu/after"),
            literature=_LITERATURE["gamma"],
            expected=CONTRADICTED,
        ),
        *(
            Claim(
                key=f"bn_accuracy_{a}",
                claim=f"BN improves accuracy ({a}).",
                estimand=f"test accuracy at each arm's best lr ({_ACT_SPAN}), BN before − no BN",
                network=f"the 2-conv {a} CNN",
                kind="increase",
                unit="points",
                margin=ACC_MARGIN,
                primary=False,
                effect=_tuned(f"{a}/before", f"{a}/none", ACTIVATION_LRS),
                literature=_LITERATURE["activation"] if a == "sigmoid" else _LITERATURE["accuracy"],
                expected=SUPPORTED,
            )
            for a in OTHER_ACTIVATIONS
        ),
        *(
            Claim(
                key=f"bn_placement_{a}",
                claim=f"BN works better before the activation than after it ({a}).",
                estimand=f"test accuracy at each arm's best lr ({_ACT_SPAN}), before − after",
                network=f"the 2-conv {a} CNN",
                kind="increase",
                unit="points",
                margin=ACC_MARGIN,
                primary=False,
                effect=_tuned(f"{a}/before", f"{a}/after", ACTIVATION_LRS),
                literature=_LITERATURE["placement"],
                expected=SUPPORTED,
            )
            for a in OTHER_ACTIVATIONS
        ),
    )
    return primary + secondary


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

    def to_json(self) -> dict[str, object]:
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
        kinds = sorted({e.note for e in ps if e.note})
        notes = [f"{sum(e.note == n for e in ps)} of {len(ps)} seeds {n}" for n in kinds]
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


def judge(records: Sequence[CellRecord], *, claim_list: Sequence[Claim] | None = None) -> list[Result]:
    """Every claim on every dataset of ``records``: per-seed effects, intervals, verdicts."""
    all_claims = tuple(claim_list) if claim_list is not None else claims()
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
