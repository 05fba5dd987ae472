"""The one statistics module, pure numpy/scipy on per-seed effects.

``bnsearch findings`` judges claims with it and ``bnsearch best --confirm`` compares
configurations with it (``holm_intervals``).

The unit of replication is a seed × dataset: each seed gives one paired effect (arm A − arm B,
both trained from that seed's split, batch order and shared initial weights). A claim is
judged on a dataset's per-seed effects:

- a 95% **t-interval** of the mean effect (checked by a hierarchical bootstrap that also
  resamples each seed's within-seed noise);
- a **p-value** for the claim's test, Holm-corrected over the primary claims of a dataset;
- a **margin** fixed in advance (what counts as a practical difference).

Verdicts, for a claim of kind ``increase`` / ``decrease`` (arm A raises / lowers the outcome):
``supported`` or ``contradicted`` when the Holm-adjusted p of "no difference" is below
``ALPHA`` (the sign decides which), else ``equivalent`` when the 95% interval lies inside
±margin, else ``inconclusive``. For ``not_higher`` / ``not_lower`` claims (A is not better /
not worse than B) the absence of a difference never counts as support: ``supported`` needs a
passing non-superiority (non-inferiority) test against the margin, ``contradicted`` a
significant difference the wrong way; ``inconclusive`` otherwise.

**The sequential design** (``judge_sequential``; design 1 keeps the fixed-n ``judge_family``):
seeds are added in pre-registered looks (e.g. 5, 10, 20 seeds per claim), and after each look
only the still-undecided claims get more. Alpha is spent over the looks (Lan–DeMets
O'Brien–Fleming or Pocock type, ``spend``) through group-sequential boundaries for the z
statistic (``sequential_bounds``), applied to each look's t statistic by matching tail
probabilities (``sequential_t_bounds``). Holm sits on top as a graphical procedure (Maurer &
Bretz 2013): with m′ claims not yet rejected, each undecided claim is tested at alpha/m′ over
all its looks so far. A decided claim (supported, contradicted, equivalent) keeps its verdict
and reports the repeated confidence interval (Jennison & Turnbull) of the look it was decided
at, marginal at ``LEVEL``; one still undecided at the last look is ``inconclusive``.
``seeds_for_power`` gives the seeds a claim needs for 80% power.
"""

from __future__ import annotations

import functools
import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import optimize, special
from scipy import stats as sps

from bnsearch.claims import CONTRADICTED, EQUIVALENT, INCONCLUSIVE, NOT_ESTIMABLE, SUPPORTED

ALPHA = 0.05  # family-wise error rate of the primary claims (Holm), and 1 − interval level
LEVEL = 0.95  # confidence level of the reported intervals

CLAIM_KINDS = ("increase", "decrease", "not_higher", "not_lower")


@dataclass(frozen=True, slots=True)
class Interval:
    """Mean of the per-seed effects and its t-interval."""

    mean: float
    low: float
    high: float
    se: float  # standard error of the mean (discretisation of the outcome included)
    n: int  # seeds with an effect


def _sd(effects: np.ndarray, resolution: float) -> float:
    """Sample sd of the effects, widened by the rounding variance of a grid-valued outcome.

    With 5 seeds all landing on the same grid point (one lr step, one test example) the plain
    sd is 0 and a t-test would call any nonzero mean certain; ``resolution²/12`` is the
    variance of rounding to that grid (Sheppard's correction), negligible otherwise.
    """
    sd2 = float(np.var(effects, ddof=1)) if len(effects) > 1 else 0.0
    return math.sqrt(sd2 + resolution**2 / 12.0)


def t_interval(effects: Sequence[float], *, level: float = LEVEL, resolution: float = 0.0) -> Interval:
    """The t-interval of the mean of ``effects`` (NaN bounds with fewer than 2 effects)."""
    e = np.asarray(effects, dtype=float)
    n = len(e)
    if n < 2:
        mean = float(e.mean()) if n else math.nan
        return Interval(mean, math.nan, math.nan, math.nan, n)
    se = _sd(e, resolution) / math.sqrt(n)
    half = float(sps.t.ppf(0.5 + level / 2, n - 1)) * se
    mean = float(e.mean())
    return Interval(mean, mean - half, mean + half, se, n)


def t_pvalue(interval: Interval, *, null: float = 0.0, alternative: str = "two-sided") -> float:
    """p-value of a one-sample t-test of ``mean == null`` from an ``Interval``'s mean and se.

    ``alternative``: ``two-sided``, ``greater`` (H1: mean > null) or ``less``.
    """
    if interval.n < 2:
        return 1.0
    df = interval.n - 1
    if interval.se == 0:
        t = math.copysign(math.inf, interval.mean - null) if interval.mean != null else 0.0
    else:
        t = (interval.mean - null) / interval.se
    if alternative == "greater":
        return float(sps.t.sf(t, df))
    if alternative == "less":
        return float(sps.t.cdf(t, df))
    return float(min(1.0, 2 * sps.t.sf(abs(t), df)))


def holm(pvalues: Sequence[float]) -> list[float]:
    """Holm's step-down adjusted p-values (same order as given): the family-wise error rate
    of rejecting every adjusted p below α is at most α, under any dependence."""
    m = len(pvalues)
    order = sorted(range(m), key=lambda i: pvalues[i])
    adjusted = [1.0] * m
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (m - rank) * pvalues[i]))
        adjusted[i] = running
    return adjusted


def claim_pvalue(kind: str, interval: Interval, margin: float) -> tuple[float, str]:
    """The p-value that enters the Holm family, and the verdict a rejection gives.

    For ``increase``/``decrease``: the two-sided test of no difference; a rejection gives
    ``supported`` when the mean has the claim's sign, else ``contradicted``. For
    ``not_higher``: the smaller of the non-superiority test (H0: effect ≥ margin) and the
    superiority test (H0: effect ≤ 0), doubled (two one-sided tests at α/2 each); ``not_lower``
    mirrors it.
    """
    if kind not in CLAIM_KINDS:
        raise ValueError(f"unknown claim kind {kind!r}; use one of {CLAIM_KINDS}")
    if kind in ("increase", "decrease"):
        p = t_pvalue(interval)
        right_sign = interval.mean > 0 if kind == "increase" else interval.mean < 0
        return p, SUPPORTED if right_sign else CONTRADICTED
    if kind == "not_higher":
        p_support = t_pvalue(interval, null=margin, alternative="less")
        p_contra = t_pvalue(interval, null=0.0, alternative="greater")
    else:
        p_support = t_pvalue(interval, null=-margin, alternative="greater")
        p_contra = t_pvalue(interval, null=0.0, alternative="less")
    if p_support <= p_contra:
        return min(1.0, 2 * p_support), SUPPORTED
    return min(1.0, 2 * p_contra), CONTRADICTED


def verdict(kind: str, interval: Interval, margin: float, p_adjusted: float, *, alpha: float = ALPHA) -> str:
    """The verdict of one claim (see the module notes) from its interval and adjusted p."""
    if interval.n < 2 or math.isnan(interval.low):
        return NOT_ESTIMABLE
    _, on_reject = claim_pvalue(kind, interval, margin)
    if p_adjusted < alpha:
        return on_reject
    if kind in ("increase", "decrease") and -margin < interval.low and interval.high < margin:
        return EQUIVALENT
    return INCONCLUSIVE


@dataclass(frozen=True, slots=True)
class Judged:
    """One claim judged on one dataset."""

    interval: Interval
    p: float  # the claim's raw p (see claim_pvalue)
    p_adjusted: float  # Holm-adjusted within its family (= p for a secondary claim)
    verdict: str


def judge_family(
    items: Sequence[tuple[str, Sequence[float], float]],
    *,
    alpha: float = ALPHA,
    resolutions: Sequence[float] | None = None,
    adjust: bool = True,
) -> list[Judged]:
    """Judge a family of claims ``(kind, per-seed effects, margin)`` with Holm's correction
    (``adjust=False``: each at level α on its own, for secondary claims)."""
    res = list(resolutions) if resolutions is not None else [0.0] * len(items)
    intervals = [t_interval(e, resolution=r) for (_, e, _), r in zip(items, res, strict=True)]
    raw = [claim_pvalue(k, iv, m)[0] if iv.n >= 2 else 1.0 for (k, _, m), iv in zip(items, intervals, strict=True)]
    adjusted = holm(raw) if adjust else raw
    return [
        Judged(iv, p, pa, verdict(k, iv, m, pa, alpha=alpha))
        for (k, _, m), iv, p, pa in zip(items, intervals, raw, adjusted, strict=True)
    ]


def hierarchical_bootstrap(
    effects: Sequence[float],
    within_se: Sequence[float] | None = None,
    *,
    level: float = LEVEL,
    n_boot: int = 4000,
    seed: int = 0,
) -> tuple[float, float]:
    """Percentile interval of the mean effect from a two-level bootstrap.

    Level 1 resamples seeds with replacement; level 2 redraws each drawn seed's effect from its
    own sampling error (``within_se``, e.g. the binomial error of two test accuracies; 0 when
    not given). With 3–5 seeds level 1 alone is too narrow (it ignores that the seeds are a
    sample), which is why the t-interval judges and this only checks it.
    """
    e = np.asarray(effects, dtype=float)
    n = len(e)
    if n < 2:
        return math.nan, math.nan
    w = np.zeros(n) if within_se is None else np.asarray(within_se, dtype=float)
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, n, size=(n_boot, n))
    draws = e[idx] + rng.standard_normal((n_boot, n)) * w[idx]
    means = draws.mean(axis=1)
    tail = (1 - level) / 2
    return float(np.quantile(means, tail)), float(np.quantile(means, 1 - tail))


def power(effect: float, sd: float, n: int, *, alpha: float = ALPHA) -> float:
    """Probability that a two-sided one-sample t-test at ``alpha`` rejects, for a true mean
    ``effect`` with per-seed sd ``sd`` and ``n`` seeds (noncentral t)."""
    if n < 2 or sd <= 0:
        return math.nan
    df = n - 1
    crit = float(sps.t.ppf(1 - alpha / 2, df))
    nc = effect / (sd / math.sqrt(n))
    return float(sps.nct.sf(crit, df, nc) + sps.nct.cdf(-crit, df, nc))


def min_detectable_effect(sd: float, n: int, *, alpha: float = ALPHA, target_power: float = 0.8) -> float:
    """The smallest true mean effect detected with ``target_power`` (bisection on ``power``)."""
    if n < 2 or sd <= 0:
        return math.nan
    lo, hi = 0.0, sd * 100
    for _ in range(80):
        mid = (lo + hi) / 2
        if power(mid, sd, n, alpha=alpha) < target_power:
            lo = mid
        else:
            hi = mid
    return hi


@dataclass(frozen=True, slots=True)
class Compared:
    """One comparison of a Holm family: its interval at the Holm-adjusted level, and its p."""

    interval: Interval  # t-interval at level ``level`` (Holm-adjusted; see ``holm_intervals``)
    level: float  # the confidence level this comparison's interval was computed at
    p: float  # two-sided p of "no difference"
    p_adjusted: float  # Holm-adjusted p; the difference is established when below α


def holm_intervals(
    families: Sequence[Sequence[float]], *, alpha: float = ALPHA, resolution: float = 0.0
) -> list[Compared]:
    """Two-sided t-tests of "mean effect = 0" for each list of per-seed effects, Holm-corrected,
    each with an interval at the level Holm's step-down test used for it (same order as given).

    Ranked by raw p, the i-th comparison (0-based) is tested at α/(m − i) until the first one that
    is not rejected; that one and every later one keep its level α/(m − r). An interval then
    excludes 0 exactly when the Holm-adjusted p is below α, so the words and the interval agree.
    ``resolution``: the grid step of every per-seed effect (see ``_sd``).
    """
    m = len(families)
    plain = [t_interval(e, resolution=resolution) for e in families]
    raw = [t_pvalue(iv) for iv in plain]
    adjusted = holm(raw)
    levels = [1.0 - alpha] * m
    stopped: float | None = None
    for rank, i in enumerate(sorted(range(m), key=lambda i: raw[i])):
        level_alpha = alpha / (m - rank)
        if stopped is None and adjusted[i] >= alpha:
            stopped = level_alpha
        levels[i] = 1.0 - (stopped if stopped is not None else level_alpha)
    return [
        Compared(t_interval(e, level=lv, resolution=resolution), lv, p, pa)
        for e, lv, p, pa in zip(families, levels, raw, adjusted, strict=True)
    ]


# ---------------------------------------------------------------------------------------------
# The sequential design: pre-registered looks, alpha spending, repeated intervals, Holm on top.

SPENDING_KINDS = ("obrien_fleming", "pocock")

_GRID_POINTS = 401  # Simpson nodes over one look's continuation region (odd)
_Z_EDGE = 12.0  # |z| beyond which the continuation region is cut (mass beyond it: ~1e-33)
# Levels at which boundaries are tabulated to turn a statistic into a sequential p-value.
_P_TABLE = np.logspace(-10.0, math.log10(0.9), 221)


def spend(alpha: float, t: float, kind: str = "obrien_fleming") -> float:
    """The alpha spent by information fraction ``t`` (0 < t ≤ 1; ``spend(alpha, 1, …) == alpha``).

    Lan–DeMets spending functions: ``obrien_fleming`` spends 2 − 2Φ(Φ⁻¹(1 − α/2)/√t) (almost
    nothing early, close to the fixed design's α at the end); ``pocock`` spends
    α·ln(1 + (e − 1)t) (evenly, at a higher price at the last look).

    Raises:
        ValueError: an unknown ``kind``, or ``t`` outside (0, 1].
    """
    if kind not in SPENDING_KINDS:
        raise ValueError(f"unknown spending kind {kind!r}; use one of {SPENDING_KINDS}")
    if not 0.0 < t <= 1.0:
        raise ValueError(f"information fraction must be in (0, 1], got {t}")
    if kind == "pocock":
        return alpha * math.log(1.0 + (math.e - 1.0) * t)
    return float(2.0 * special.ndtr(special.ndtri(alpha / 2) / math.sqrt(t)))


def _fractions(looks: Sequence[int]) -> tuple[float, ...]:
    if not looks or any(n < 2 for n in looks) or any(b <= a for a, b in itertools.pairwise(looks)):
        raise ValueError(f"looks must be increasing seed counts ≥ 2, got {tuple(looks)}")
    return tuple(n / looks[-1] for n in looks)


@dataclass(frozen=True, slots=True)
class _Paths:
    """Sub-density of Z at one look over its continuation region (paths that have not crossed)."""

    nodes: np.ndarray
    weighted: np.ndarray  # density × Simpson weight at each node
    t: float  # information fraction of the look


def _exit_prob(prev: _Paths | None, t: float, c: float, drift: float, sides: int) -> float:
    """Probability that a path still running at ``prev`` crosses ±c (``sides`` 2) or c at fraction t.

    Z is Brownian motion with drift θ = ``drift`` on the fraction scale, B(t)/√t: given
    Z_prev = u, Z_t is normal with mean ρu + θ(t − t_prev)/√t and sd √(1 − ρ²), ρ = √(t_prev/t).
    """
    if prev is None:
        mean, m, s = drift * math.sqrt(t), np.zeros(1), 1.0
        weighted = np.ones(1)
    else:
        rho = math.sqrt(prev.t / t)
        mean = drift * (t - prev.t) / math.sqrt(t)
        m, s, weighted = rho * prev.nodes, math.sqrt(1.0 - rho * rho), prev.weighted
    p = special.ndtr((m + mean - c) / s)
    if sides == 2:
        p = p + special.ndtr((-c - m - mean) / s)
    return float(weighted @ p)


def _propagate(prev: _Paths | None, t: float, c: float, drift: float, sides: int) -> _Paths:
    # Paths beyond ±_Z_EDGE carry no mass worth integrating (about 1e-33).
    nodes = np.linspace(max(-c, -_Z_EDGE) if sides == 2 else -_Z_EDGE, min(c, _Z_EDGE), _GRID_POINTS)
    w = np.ones(_GRID_POINTS)
    w[1:-1:2], w[2:-1:2] = 4.0, 2.0
    w *= (nodes[1] - nodes[0]) / 3.0
    if prev is None:
        density = np.exp(-0.5 * (nodes - drift * math.sqrt(t)) ** 2) / math.sqrt(2 * math.pi)
    else:
        rho = math.sqrt(prev.t / t)
        s = math.sqrt(1.0 - rho * rho)
        mean = rho * prev.nodes + drift * (t - prev.t) / math.sqrt(t)
        kernel = np.exp(-0.5 * ((nodes[:, None] - mean[None, :]) / s) ** 2) / (s * math.sqrt(2 * math.pi))
        density = kernel @ prev.weighted
    return _Paths(nodes, density * w, t)


@functools.lru_cache(maxsize=512)
def _z_bounds(fractions: tuple[float, ...], alpha: float, kind: str, sides: int) -> tuple[float, ...]:
    bounds: list[float] = []
    paths: _Paths | None = None
    spent = 0.0
    for t in fractions:
        target = spend(alpha, t, kind) - spent
        c = float(-special.ndtri(target / sides)) if paths is None else _solve_bound(paths, t, target, sides)
        spent += target
        bounds.append(c)
        if t < 1.0:
            paths = _propagate(paths, t, c, 0.0, sides)
    return tuple(bounds)


def _solve_bound(paths: _Paths, t: float, target: float, sides: int) -> float:
    # A one-sided boundary may fall below 0 at the high levels the p-value table reaches.
    lowest = 0.0 if sides == 2 else -10.0
    return float(optimize.brentq(lambda c: _exit_prob(paths, t, c, 0.0, sides) - target, lowest, 60.0, xtol=1e-12))


def sequential_bounds(
    looks: Sequence[int], *, alpha: float = ALPHA, spending: str = "obrien_fleming", sides: int = 2
) -> tuple[float, ...]:
    """Nominal critical values of the z statistic at each look of a group-sequential test.

    Under H0 the z statistics of looks with ``looks`` cumulative seeds are jointly normal with
    corr(Z_i, Z_j) = √(n_i/n_j); the boundary c_k is solved so that the probability of a first
    crossing (|Z_k| ≥ c_k for ``sides`` 2, Z_k ≥ c_k for 1) at look k equals the alpha
    ``spending`` assigns to fraction n_k/n_K, by recursive numerical integration (Simpson's rule,
    Armitage–McPherson–Rowe; precise to about 1e-7 in probability). Cached: the result depends
    only on the arguments.

    Raises:
        ValueError: looks not increasing seed counts ≥ 2, an unknown spending kind or ``sides``.
    """
    if sides not in (1, 2):
        raise ValueError(f"sides must be 1 or 2, got {sides}")
    return _z_bounds(_fractions(looks), float(alpha), spending, sides)


def sequential_t_bounds(
    looks: Sequence[int], *, alpha: float = ALPHA, spending: str = "obrien_fleming", sides: int = 2
) -> tuple[float, ...]:
    """The per-look critical values of the t statistic with n_k − 1 degrees of freedom.

    Each is the t quantile with the tail probability of ``sequential_bounds``' z value at that
    look. Matching tail probabilities is an approximation (the t statistics of the looks are not
    jointly multivariate t with that correlation); the simulation tests show it keeps the
    family-wise error with 5 seeds at the first look. With one look it is the fixed-sample t
    quantile.
    """
    z = sequential_bounds(looks, alpha=alpha, spending=spending, sides=sides)
    return tuple(float(special.stdtrit(n - 1, special.ndtr(c))) for n, c in zip(looks, z, strict=True))


@functools.lru_cache(maxsize=64)
def _p_table(fractions: tuple[float, ...], kind: str, sides: int, share: float) -> np.ndarray:
    """Boundaries at level ``share``·L (rows: the levels L of ``_P_TABLE``, columns: looks)."""
    # Uncached calls: the table's levels would evict the few the verdicts use.
    return np.array([_z_bounds.__wrapped__(fractions, float(a) * share, kind, sides) for a in _P_TABLE])


def _sequential_p(x: np.ndarray, fractions: tuple[float, ...], kind: str, sides: int, share: float) -> float:
    """The smallest level L whose boundaries (at ``share``·L) the z-equivalents ``x`` of looks 1…k
    cross at some look (Maurer & Bretz's sequential p-value), interpolated in tabulated
    boundaries; floored at 1e-10, and 1 above the table's top level (0.9)."""
    table = _p_table(fractions, kind, sides, share)
    log_levels = np.log(_P_TABLE)
    best = math.inf
    for k, xk in enumerate(x):
        column = table[:, k]
        if not xk >= column[-1]:  # below the top level's boundary (or NaN)
            continue
        # Boundaries fall as the level rises: interpolate log level against the reversed column.
        best = min(best, float(np.interp(xk, column[::-1], log_levels[::-1])))
    return 1.0 if best == math.inf else math.exp(best)


@dataclass(frozen=True, slots=True, kw_only=True)
class SequentialPlan:
    """A group-sequential design: looks at pre-registered seed counts, alpha spent over them."""

    looks: tuple[int, ...] = (5, 10, 20)  # cumulative seeds per claim at each look
    alpha: float = ALPHA  # family-wise error over all looks and claims; 1 − the intervals' level
    spending: str = "obrien_fleming"  # alpha-spending function, one of SPENDING_KINDS

    def __post_init__(self) -> None:
        _fractions(self.looks)
        if self.spending not in SPENDING_KINDS:
            raise ValueError(f"unknown spending kind {self.spending!r}; use one of {SPENDING_KINDS}")
        if not 0.0 < self.alpha < 0.5:
            raise ValueError(f"alpha must be in (0, 0.5), got {self.alpha}")

    @property
    def fractions(self) -> tuple[float, ...]:
        return _fractions(self.looks)


@dataclass(frozen=True, slots=True)
class _LookStat:
    mean: float
    se: float
    n: int  # effects present (a seed without an effect is NaN)


def _look_stat(effects: np.ndarray, resolution: float) -> _LookStat:
    e = effects[~np.isnan(effects)]
    n = len(e)
    if n < 2:
        return _LookStat(float(e.mean()) if n else math.nan, math.nan, n)
    return _LookStat(float(e.mean()), _sd(e, resolution) / math.sqrt(n), n)


def _z_equivalent(stats: Sequence[_LookStat], null: float, sign: float) -> np.ndarray:
    """The z values with the one-sided tail probability of each look's t statistic of
    ``sign·(mean − null)`` (n − 1 df); −inf where it cannot be computed."""
    out = np.full(len(stats), -math.inf)
    for k, s in enumerate(stats):
        if s.n < 2:
            continue
        diff = sign * (s.mean - null)
        t = diff / s.se if s.se > 0 else (math.copysign(math.inf, diff) if diff != 0 else 0.0)
        out[k] = -special.ndtri(special.stdtr(s.n - 1, -t))
    return out


@dataclass(frozen=True, slots=True)
class _Test:
    """One hypothesis test of a claim: its z-equivalents per look and the verdict it gives."""

    x: np.ndarray
    sides: int
    share: float  # fraction of the claim's level this test gets (two one-sided tests: 1/2 each)
    on_reject: str  # verdict; "" for a two-sided test (the sign at the crossing look decides)


def _tests(kind: str, stats: Sequence[_LookStat], margin: float) -> list[_Test]:
    if kind in ("increase", "decrease"):
        return [_Test(np.maximum(_z_equivalent(stats, 0.0, 1.0), _z_equivalent(stats, 0.0, -1.0)), 2, 1.0, "")]
    if kind == "not_higher":  # support: effect < margin; contradiction: effect > 0
        support, contra = _z_equivalent(stats, margin, -1.0), _z_equivalent(stats, 0.0, 1.0)
    else:
        support, contra = _z_equivalent(stats, -margin, 1.0), _z_equivalent(stats, 0.0, -1.0)
    return [_Test(support, 1, 0.5, SUPPORTED), _Test(contra, 1, 0.5, CONTRADICTED)]


def repeated_interval(
    effects: Sequence[float], plan: SequentialPlan, look: int, *, resolution: float = 0.0
) -> Interval:
    """The repeated confidence interval (Jennison & Turnbull) of the mean effect at ``look``.

    ``effects`` are per-seed effects in seed order (NaN for a seed without one); the interval at
    look k uses the first ``plan.looks[k]`` of them and the two-sided t boundary of look k at
    level ``plan.alpha`` (``sequential_t_bounds``), so the intervals of all looks cover the true
    mean together with probability 1 − alpha, whenever the design stops. With one look it is
    ``t_interval``.
    """
    if not 0 <= look < len(plan.looks):
        raise ValueError(f"look must be an index into the plan's {len(plan.looks)} looks, got {look}")
    stat = _look_stat(np.asarray(effects, dtype=float)[: plan.looks[look]], resolution)
    return _rci(stat, plan, look)


def _rci(stat: _LookStat, plan: SequentialPlan, look: int) -> Interval:
    if stat.n < 2:
        return Interval(stat.mean, math.nan, math.nan, math.nan, stat.n)
    c = _z_bounds(plan.fractions, float(plan.alpha), plan.spending, 2)[look]
    half = float(special.stdtrit(stat.n - 1, special.ndtr(c))) * stat.se
    return Interval(stat.mean, stat.mean - half, stat.mean + half, stat.se, stat.n)


@dataclass(frozen=True, slots=True)
class SequentialJudged:
    """One claim of a family judged at a look of a sequential plan."""

    interval: Interval  # repeated CI at ``look`` (the look it was decided at, else the current one)
    p: float  # sequential p-value (Maurer & Bretz) of the claim's test over its looks
    p_adjusted: float  # Holm-adjusted sequential p
    verdict: str
    decided: bool  # the verdict is final (supported, contradicted or equivalent); it never changes
    look: int  # index into ``plan.looks`` of the decision, or of the current look when undecided
    n_seeds: int  # seeds the claim used: ``plan.looks[look]``
    final: bool  # decided, or the last look reached (an undecided claim is then inconclusive)


def judge_sequential(
    items: Sequence[tuple[str, Sequence[float], float]],
    plan: SequentialPlan,
    look: int,
    *,
    resolutions: Sequence[float] | None = None,
) -> list[SequentialJudged]:
    """Judge a family of claims ``(kind, per-seed effects, margin)`` at look ``look`` of ``plan``.

    Effects are in seed order (NaN for a seed without one). A claim undecided at look k must have
    at least ``plan.looks[k]`` of them; a claim decided earlier may have fewer (seeds past its
    decision are ignored). The looks are replayed from the first, so the result depends only on
    the data and the plan: a claim decided at look j keeps its verdict, interval and look.

    At each look, with m′ claims not rejected so far, every undecided claim is tested against
    its group-sequential boundaries at level alpha/m′, all its looks up to this one (earlier
    looks re-checked at the new level); a rejection frees alpha for the rest, step down until
    nothing more is rejected (Holm as a graphical procedure over group-sequential tests, Maurer &
    Bretz 2013). Then an ``increase``/``decrease`` claim still undecided whose repeated interval
    lies inside ±margin is decided ``equivalent``; it stops, and still counts in m′. The tests and
    verdicts are those of ``claim_pvalue``/``verdict`` (two one-sided tests at half the level for
    ``not_higher``/``not_lower``); an undecided claim is ``inconclusive`` (final at the last look).

    Returns:
        One ``SequentialJudged`` per claim, in order. ``p_adjusted`` is Holm's adjustment of the
        claims' sequential p-values (each over its looks up to its decision); it is below alpha
        exactly when the claim is supported or contradicted, up to the interpolation of the
        p-value, except for a claim decided ``equivalent`` earlier, which keeps that verdict.

    Raises:
        ValueError: ``look`` outside the plan, an unknown claim kind, or an undecided claim with
            fewer effects than the look needs.
    """
    if not 0 <= look < len(plan.looks):
        raise ValueError(f"look must be an index into the plan's {len(plan.looks)} looks, got {look}")
    m = len(items)
    res = list(resolutions) if resolutions is not None else [0.0] * m
    fractions = plan.fractions
    arrays = [np.asarray(e, dtype=float) for _, e, _ in items]
    stats: list[list[_LookStat]] = [[] for _ in items]
    tests: list[list[_Test]] = [[] for _ in items]
    for kind, _, _ in items:
        if kind not in CLAIM_KINDS:
            raise ValueError(f"unknown claim kind {kind!r}; use one of {CLAIM_KINDS}")
    decided: dict[int, tuple[str, int]] = {}  # claim → (verdict, look)
    rejected: set[int] = set()
    for j in range(look + 1):
        for i, ((kind, _, margin), e, r) in enumerate(zip(items, arrays, res, strict=True)):
            if i in decided:
                continue
            if len(e) < plan.looks[j]:
                raise ValueError(f"claim {i} has {len(e)} seeds; look {j} needs {plan.looks[j]}")
            stats[i].append(_look_stat(e[: plan.looks[j]], r))
            tests[i] = _tests(kind, stats[i], margin)
        while len(rejected) < m:
            level = plan.alpha / (m - len(rejected))
            new: dict[int, tuple[str, int]] = {}
            for i in range(m):
                if i in decided:
                    continue
                for test in tests[i]:
                    bounds = _z_bounds(fractions, level * test.share, plan.spending, test.sides)[: j + 1]
                    crossed = np.flatnonzero(test.x >= np.asarray(bounds))
                    if len(crossed):
                        on_reject = test.on_reject or _direction(items[i][0], stats[i][crossed[0]].mean)
                        new[i] = (on_reject, j)
                        break
            if not new:
                break
            decided.update(new)
            rejected.update(new)
        for i, (kind, _, margin) in enumerate(items):
            if i in decided or kind not in ("increase", "decrease"):
                continue
            iv = _rci(stats[i][j], plan, j)
            if iv.n >= 2 and -margin < iv.low and iv.high < margin:
                decided[i] = (EQUIVALENT, j)
    raw = [min(_sequential_p(t.x, fractions, plan.spending, t.sides, t.share) for t in tests[i]) for i in range(m)]
    adjusted = holm(raw)
    out = []
    for i in range(m):
        verdict_i, at = decided.get(i, (INCONCLUSIVE, look))
        iv = _rci(stats[i][at], plan, at)
        if iv.n < 2:
            verdict_i = NOT_ESTIMABLE
        out.append(
            SequentialJudged(
                interval=iv,
                p=raw[i],
                p_adjusted=adjusted[i],
                verdict=verdict_i,
                decided=i in decided,
                look=at,
                n_seeds=plan.looks[at],
                final=i in decided or look == len(plan.looks) - 1,
            )
        )
    return out


def _direction(kind: str, mean: float) -> str:
    right_sign = mean > 0 if kind == "increase" else mean < 0
    return SUPPORTED if right_sign else CONTRADICTED


def _crossing_power(fractions: tuple[float, ...], alpha: float, kind: str, drift: float) -> float:
    bounds = _z_bounds(fractions, alpha, kind, 2)
    total, paths = 0.0, None
    for t, c in zip(fractions, bounds, strict=True):
        total += _exit_prob(paths, t, c, drift, 2)
        if t < 1.0:
            paths = _propagate(paths, t, c, drift, 2)
    return total


def _drift_for_power(fractions: tuple[float, ...], alpha: float, kind: str, target_power: float) -> float:
    return float(
        optimize.brentq(lambda d: _crossing_power(fractions, alpha, kind, d) - target_power, 0.0, 40.0, xtol=1e-10)
    )


def seeds_for_power(
    sd: float,
    *,
    effect: float = 1.0,
    target_power: float = 0.8,
    alpha: float = ALPHA,
    looks: Sequence[int] | None = None,
    spending: str = "obrien_fleming",
    claims: int = 1,
) -> int:
    """Seeds a claim needs to detect a true mean ``effect`` with ``target_power``, per-seed sd ``sd``.

    The test is two-sided at alpha/``claims`` (the first step of Holm's correction over a family
    of ``claims``: a conservative bound). Fixed design (``looks`` None): the smallest n whose
    noncentral-t power (``power``) reaches the target. Sequential design: the fixed n times the
    design's inflation factor (the squared ratio of the drifts that give ``target_power`` with the
    group-sequential boundaries at the looks' fractions and with one look, in z), rounded up; it is
    the seed count of the last look of a plan whose looks sit at the same fractions.

    Returns:
        The seed count (of the last look, for a sequential plan).

    Raises:
        ValueError: ``sd`` or ``effect`` not positive, ``claims`` < 1, or bad ``looks``.
    """
    if not (sd > 0 and effect > 0):
        raise ValueError(f"sd and effect must be > 0, got sd={sd}, effect={effect}")
    if claims < 1:
        raise ValueError(f"claims must be ≥ 1, got {claims}")
    level = alpha / claims
    hi = 2
    while power(effect, sd, hi, alpha=level) < target_power:
        hi *= 2
    lo = max(2, hi // 2)
    while lo < hi:
        mid = (lo + hi) // 2
        if power(effect, sd, mid, alpha=level) < target_power:
            lo = mid + 1
        else:
            hi = mid
    if looks is None or len(looks) == 1:
        return lo
    fractions = _fractions(looks)
    inflation = (
        _drift_for_power(fractions, level, spending, target_power)
        / _drift_for_power((1.0,), level, spending, target_power)
    ) ** 2
    return math.ceil(lo * inflation - 1e-9)
