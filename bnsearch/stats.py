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
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
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
