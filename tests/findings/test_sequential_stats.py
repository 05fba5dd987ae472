"""Unit checks of the sequential design's statistics: spending, boundaries, repeated intervals,
the group-sequential Holm procedure and the seed count for a target power."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats as sps

from bnsearch.claims import CONTRADICTED, EQUIVALENT, INCONCLUSIVE, NOT_ESTIMABLE, SUPPORTED
from bnsearch.stats import (
    SPENDING_KINDS,
    SequentialPlan,
    judge_family,
    judge_sequential,
    power,
    repeated_interval,
    seeds_for_power,
    sequential_bounds,
    sequential_t_bounds,
    spend,
    t_interval,
)


@pytest.mark.parametrize("kind", SPENDING_KINDS)
def test_spending_reaches_alpha_at_the_end_and_increases(kind: str) -> None:
    assert spend(0.05, 1.0, kind) == pytest.approx(0.05, rel=1e-12)
    spent = [spend(0.05, t, kind) for t in np.linspace(0.01, 1.0, 100)]
    assert all(b > a for a, b in zip(spent, spent[1:], strict=False))
    assert spent[0] > 0


def test_obrien_fleming_spends_less_early_than_pocock() -> None:
    assert spend(0.05, 0.25, "obrien_fleming") < spend(0.05, 0.25, "pocock") / 10


@pytest.mark.parametrize("bad", [0.0, 1.5, -0.1])
def test_spending_refuses_fractions_outside_the_unit_interval(bad: float) -> None:
    with pytest.raises(ValueError, match="information fraction must be in"):
        spend(0.05, bad)


@pytest.mark.parametrize("n", [3, 5, 20])
@pytest.mark.parametrize("kind", SPENDING_KINDS)
def test_one_look_is_the_fixed_sample_test(n: int, kind: str) -> None:
    assert sequential_bounds((n,), spending=kind) == pytest.approx((sps.norm.isf(0.025),), abs=1e-12)
    assert sequential_t_bounds((n,), spending=kind) == pytest.approx((sps.t.isf(0.025, n - 1),), abs=1e-9)
    assert sequential_t_bounds((n,), spending=kind, sides=1) == pytest.approx((sps.t.isf(0.05, n - 1),), abs=1e-9)


def test_obrien_fleming_first_look_has_its_closed_form() -> None:
    """Lan–DeMets O'Brien–Fleming type: the first look spends 2 − 2Φ(z/√t), so its boundary is
    z_{1−α/2}/√t; the last one sits just above the fixed-sample 1.96."""
    bounds = sequential_bounds((10, 20, 30))
    assert bounds[0] == pytest.approx(sps.norm.isf(0.025) * math.sqrt(3), abs=1e-9)
    assert sps.norm.isf(0.025) < bounds[2] < 2.05


@pytest.mark.parametrize("kind", SPENDING_KINDS)
@pytest.mark.parametrize("sides", [1, 2])
def test_crossing_probability_under_h0_is_the_spent_alpha(kind: str, sides: int) -> None:
    """The joint normal probability of never crossing, by scipy's multivariate normal (Genz), is
    1 − alpha at the last look and 1 − spend(t) after the first two looks."""
    looks = (5, 10, 20)
    c = np.array(sequential_bounds(looks, spending=kind, sides=sides))
    t = np.array(looks) / looks[-1]
    cov = np.sqrt(np.minimum.outer(t, t) / np.maximum.outer(t, t))
    low = -c if sides == 2 else np.full(3, -np.inf)
    for k in (2, 3):
        mvn = sps.multivariate_normal(mean=np.zeros(k), cov=cov[:k, :k], seed=1, abseps=1e-7, releps=1e-7)
        stay = mvn.cdf(c[:k], lower_limit=low[:k])
        assert 1 - stay == pytest.approx(spend(0.05, t[k - 1], kind), abs=2e-5)


def test_obrien_fleming_first_look_is_much_stricter_than_pocock() -> None:
    obf = sequential_t_bounds((5, 10, 20))
    pocock = sequential_t_bounds((5, 10, 20), spending="pocock")
    assert obf[0] > 2 * pocock[0], (obf, pocock)
    # ... and pays for it less at the last look (closer to the fixed t quantile).
    assert sps.t.isf(0.025, 19) < obf[2] < pocock[2]


@pytest.mark.parametrize("resolution", [0.0, 0.37])
def test_repeated_interval_at_a_single_look_is_the_t_interval(resolution: float) -> None:
    effects = [0.3, -1.2, 2.0, 0.7, 1.1]
    rci = repeated_interval(effects, SequentialPlan(looks=(5,)), 0, resolution=resolution)
    iv = t_interval(effects, resolution=resolution)
    assert (rci.mean, rci.low, rci.high, rci.se, rci.n) == pytest.approx((iv.mean, iv.low, iv.high, iv.se, iv.n))


def test_repeated_intervals_are_wider_than_fixed_ones_at_interim_looks() -> None:
    effects = list(np.random.default_rng(0).normal(1.0, 1.5, 20))
    plan = SequentialPlan(looks=(5, 10, 20))
    for k, n in enumerate(plan.looks):
        rci, fixed = repeated_interval(effects, plan, k), t_interval(effects[:n])
        assert rci.low < fixed.low and rci.high > fixed.high


KINDS = ("increase", "decrease", "increase", "not_higher", "not_lower", "increase")


def test_a_single_look_judges_like_todays_fixed_design() -> None:
    """With one look, the sequential procedure is Holm on the t-tests: judge_family's verdicts,
    intervals and adjusted p (the latter through the tabulated boundaries, to 1%)."""
    rng = np.random.default_rng(4)
    seen = set()
    for _ in range(150):
        effects = rng.normal(rng.choice([0.0, 0.1, 1.5, -1.5], size=(6, 1)), rng.choice([0.2, 1.5]), size=(6, 8))
        items = [(k, list(e), 0.5) for k, e in zip(KINDS, effects, strict=True)]
        fixed = judge_family(items)
        seq = judge_sequential(items, SequentialPlan(looks=(8,)), 0)
        for f, s in zip(fixed, seq, strict=True):
            assert s.verdict == f.verdict
            assert (s.interval.low, s.interval.high) == pytest.approx((f.interval.low, f.interval.high))
            if 1e-9 < f.p_adjusted < 0.5:  # the tabulated levels run from 1e-10 to 0.9
                assert s.p_adjusted == pytest.approx(f.p_adjusted, rel=1e-2, abs=1e-6)
            assert s.final and s.n_seeds == 8
            seen.add(f.verdict)
    assert {SUPPORTED, CONTRADICTED, EQUIVALENT, INCONCLUSIVE} <= seen


def test_a_decided_claim_keeps_its_verdict_and_ignores_later_seeds() -> None:
    plan = SequentialPlan(looks=(5, 10, 20))
    strong = [10.0, 10.05, 9.95, 10.02, 9.98]  # decided at the first look even under OBF at α/2
    noise = list(np.random.default_rng(1).normal(0.0, 3.0, 20))
    first = judge_sequential([("increase", strong, 0.5), ("increase", noise[:5], 0.5)], plan, 0)
    assert first[0].verdict == SUPPORTED and first[0].decided and first[0].look == 0 and first[0].n_seeds == 5
    assert first[1].verdict == INCONCLUSIVE and not first[1].decided and not first[1].final
    # Later seeds that point the other way change nothing for the decided claim.
    contrary = strong + [-10.0] * 15
    for look, n in ((1, 10), (2, 20)):
        for seeds in (strong, contrary[:n]):
            later = judge_sequential([("increase", seeds, 0.5), ("increase", noise[:n], 0.5)], plan, look)
            assert later[0] == first[0]
            assert later[1].look == look and later[1].n_seeds == n
    assert later[1].final and later[1].verdict == INCONCLUSIVE
    with pytest.raises(ValueError, match="claim 1 has 5 seeds; look 1 needs 10"):
        judge_sequential([("increase", strong, 0.5), ("increase", noise[:5], 0.5)], plan, 1)


def test_holm_recycles_alpha_to_earlier_looks() -> None:
    """Claim 1 crosses its look-2 boundary at α/2 but not at α/3; once claim 0 is rejected at
    look 3, claim 1's earlier looks are re-checked at α/2 and it is rejected too."""
    plan = SequentialPlan(looks=(5, 10, 20))
    b_half, b_third = sequential_t_bounds(plan.looks, alpha=0.025), sequential_t_bounds(plan.looks, alpha=0.05 / 3)
    target_t = (b_half[1] + b_third[1]) / 2  # claim 1's t at look 2: between the two boundaries
    base = np.array([1.0, -1.0] * 5)
    base = (base - base.mean()) / base.std(ddof=1)
    look2 = base + target_t / math.sqrt(10)  # t = mean / (1/√10) = target_t
    claim1 = list(look2) + list(look2 - 2 * target_t / math.sqrt(10))  # the later seeds drag it to 0
    null = list(np.tile([2.0, -2.0], 10))  # noisy enough never to be called equivalent
    strong_late = null[:10] + [10.0, 10.1, 9.9, 10.05, 9.95] * 2  # nothing, then a large effect
    items = [("increase", strong_late, 0.5), ("increase", claim1, 0.5), ("increase", null, 0.5)]
    at_two = judge_sequential(items, plan, 1)
    assert at_two[1].verdict == INCONCLUSIVE  # α/3 at look 2 is not enough
    at_three = judge_sequential(items, plan, 2)
    assert at_three[0].verdict == SUPPORTED and at_three[0].look == 2
    assert at_three[1].verdict == SUPPORTED and at_three[1].look == 2, at_three[1]
    assert at_three[2].verdict == INCONCLUSIVE


def test_too_few_effects_are_not_estimable() -> None:
    plan = SequentialPlan(looks=(5, 10))
    judged = judge_sequential([("increase", [1.0] + [math.nan] * 4, 0.5)], plan, 0)
    assert judged[0].verdict == NOT_ESTIMABLE and not judged[0].decided


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"looks": (5, 5)}, "looks must be increasing"),
        ({"looks": (1, 5)}, "looks must be increasing"),
        ({"spending": "haybittle"}, "unknown spending kind"),
        ({"alpha": 0.0}, "alpha must be in"),
    ],
    ids=["repeated look", "one seed", "unknown spending", "zero alpha"],
)
def test_a_bad_plan_is_refused(kwargs: dict[str, object], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        SequentialPlan(**kwargs)  # type: ignore[arg-type]


def test_seeds_for_power_fixed_design_is_the_smallest_n_with_the_power() -> None:
    n = seeds_for_power(1.5, effect=1.0)
    assert power(1.0, 1.5, n) >= 0.8 > power(1.0, 1.5, n - 1)
    n_holm = seeds_for_power(1.5, effect=1.0, claims=6)
    assert power(1.0, 1.5, n_holm, alpha=0.05 / 6) >= 0.8 > power(1.0, 1.5, n_holm - 1, alpha=0.05 / 6)
    assert n_holm > n


def test_seeds_for_power_pays_the_sequential_inflation() -> None:
    fixed = seeds_for_power(1.5, claims=6)
    obf = seeds_for_power(1.5, claims=6, looks=(5, 10, 20))
    pocock = seeds_for_power(1.5, claims=6, looks=(5, 10, 20), spending="pocock")
    # O'Brien–Fleming costs a few percent at most, Pocock's even spending 10–25% (J&T ch. 2).
    assert fixed <= obf <= math.ceil(fixed * 1.05) < pocock <= math.ceil(fixed * 1.3), (fixed, obf, pocock)
    with pytest.raises(ValueError, match="sd and effect must be > 0"):
        seeds_for_power(0.0)
