"""The sequential design on synthetic families with known effects (no training; about a minute).

Two plans: the default, looks at 5, 10 and 15 seeds with Pocock spending, and looks at 5, 10 and
20 with O'Brien–Fleming's; Holm on top; six claims per family mixing the kinds; per-seed effects with the real data's sd (1.5 points), rounded to one
test example of a 270-example test set (the resolution the claims pass). After each look only
the still-undecided claims get more seeds: a decided claim is judged on the seeds it had.

Measured (`pytest -s -p no:randomly tests/findings/test_sequential_simulation.py`, ~60 s),
Pocock 5/10/15 (the default) | O'Brien–Fleming 5/10/20:
- family-wise error over all looks and claims, 4000 families: 0.041 ± 0.003 | 0.045 ± 0.003 under
  the global null, 0.038 ± 0.003 | 0.034 ± 0.003 under a partial null (two real 2-point effects);
  fixed-n Holm repeated at each look instead: 0.098 | 0.109 and 0.081 | 0.088 (1000 families).
- coverage of the reported repeated intervals (2000 families × 6 claims): 0.974 | 0.951 under
  the null, 0.969 | 0.954 at a true 1-point effect, 0.974 | 0.974 at 2 points.
- mean seeds per claim: 14.95 | 20.00 under the null; 14.29 | 19.89 at a true 1-point effect
  (stopped at 5 / 10 seeds: 2% / 10% | 0% / 1%; supported 29% | 65%); 10.38 | 17.90 at 2 points
  (12% / 68% | 0% / 21%; supported 99% | 100%).
- one claim, t boundaries matched to the z ones: exact at the first look (5 seeds); over all
  looks 0.0531 at 5% and 0.0089 at 5%/6 (Pocock 5/10/15), 0.0510 and 0.0086 (O'Brien–Fleming
  5/10/20), 0.0534 and 0.0092 (Pocock 5/10/20).
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from bnsearch.claims import CONTRADICTED, EQUIVALENT, SUPPORTED
from bnsearch.stats import SequentialPlan, judge_family, judge_sequential, sequential_t_bounds, spend

DEFAULT = "pocock 5,10,15"  # the plan `bnsearch findings` pre-registers (findings._design)
PLANS = {
    DEFAULT: SequentialPlan(looks=(5, 10, 15), spending="pocock"),
    "obrien-fleming 5,10,20": SequentialPlan(looks=(5, 10, 20), spending="obrien_fleming"),
}
KINDS = ("increase", "decrease", "increase", "not_higher", "not_lower", "increase")
DIRECTIONAL = ("increase", "decrease") * 3
MARGIN = 0.5  # accuracy points
SD = 1.5  # points: per-seed sd of an accuracy difference on the real data
RESOLUTION = 100 / 270  # points: one test example
REPS = 2000  # families per scenario (the family-wise error scenarios: FWER_REPS)
FWER_REPS = 4000


def _slack(rate: float, reps: int) -> float:
    """One-sided 99% binomial margin of an estimated rate."""
    return 2.33 * math.sqrt(rate * (1 - rate) / reps)


def _effects(rng: np.random.Generator, means: np.ndarray, reps: int, plan: SequentialPlan) -> np.ndarray:
    """(reps, claims, last look) per-seed effects, rounded to the outcome's resolution."""
    raw = rng.normal(means[None, :, None], SD, size=(reps, len(means), plan.looks[-1]))
    return np.round(raw / RESOLUTION) * RESOLUTION


def _run(
    kinds: tuple[str, ...], effects: np.ndarray, plan: SequentialPlan
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The sequential design on each family: final verdicts, seeds used, interval bounds (reps, claims)."""
    reps, m, _ = effects.shape
    verdicts = np.empty((reps, m), dtype=object)
    seeds = np.zeros((reps, m), dtype=int)
    low, high = np.zeros((reps, m)), np.zeros((reps, m))
    for r in range(reps):
        judged = None
        for look, n in enumerate(plan.looks):
            # Seeds are added only to the claims still undecided; a decided one keeps what it had.
            counts = [plan.looks[j.look] if j.decided else n for j in judged] if judged else [n] * m
            items = [(k, list(effects[r, i, :c]), MARGIN) for i, (k, c) in enumerate(zip(kinds, counts, strict=True))]
            judged = judge_sequential(items, plan, look, resolutions=[RESOLUTION] * m)
            if all(j.final for j in judged):
                break
        assert judged is not None
        for i, j in enumerate(judged):
            verdicts[r, i], seeds[r, i] = j.verdict, j.n_seeds
            low[r, i], high[r, i] = j.interval.low, j.interval.high
    return verdicts, seeds, low, high


def _naive(kinds: tuple[str, ...], effects: np.ndarray, plan: SequentialPlan) -> np.ndarray:
    """Today's fixed-n Holm at every look, stopping a claim once it is called: verdicts (reps, claims)."""
    reps, m, _ = effects.shape
    verdicts = np.full((reps, m), "", dtype=object)
    for r in range(reps):
        for n in plan.looks:
            judged = judge_family([(k, list(effects[r, i, :n]), MARGIN) for i, k in enumerate(kinds)])
            for i, j in enumerate(judged):
                if not verdicts[r, i] and (j.verdict in (SUPPORTED, CONTRADICTED, EQUIVALENT) or n == plan.looks[-1]):
                    verdicts[r, i] = j.verdict
    return verdicts


def _errors(kinds: tuple[str, ...], means: np.ndarray, verdicts: np.ndarray) -> np.ndarray:
    """Per family: a claim whose null holds called a difference, or a real effect called the wrong way."""
    wrong = np.zeros(verdicts.shape, dtype=bool)
    for i, (kind, mu) in enumerate(zip(kinds, means, strict=True)):
        if mu == 0:
            bad = (SUPPORTED, CONTRADICTED) if kind in ("increase", "decrease") else (CONTRADICTED,)
        else:
            bad = (CONTRADICTED,)
        wrong[:, i] = np.isin(verdicts[:, i], bad)
    return wrong.any(axis=1)


SCENARIOS = {
    "global null": np.zeros(6),
    # Two claims with real 2-point effects in their direction, four nulls.
    "partial null": np.array([2.0, -2.0, 0.0, 0.0, 0.0, 0.0]),
}


T_PLANS = {
    **PLANS,
    "pocock 5,10,20": SequentialPlan(looks=(5, 10, 20), spending="pocock"),
}


@pytest.mark.parametrize("name", list(T_PLANS))
def test_t_matched_boundaries_hold_their_level_for_one_claim(name: str, capsys: pytest.CaptureFixture[str]) -> None:
    """One claim, exactly normal effects: the first look (5 seeds) crosses with the alpha spent
    there (matching tail probabilities is exact for one look), and over all looks the matched t
    boundaries are close to alpha; they run slightly above it with so few seeds (the
    approximation ignores that the looks share their sd estimate), as printed."""
    plan = T_PLANS[name]
    reps = 200_000
    x = np.random.default_rng(51).standard_normal((reps, plan.looks[-1]))
    t = np.stack([x[:, :n].mean(axis=1) / (x[:, :n].std(axis=1, ddof=1) / math.sqrt(n)) for n in plan.looks], axis=1)
    lines = []
    first_fraction = plan.fractions[0]
    for alpha in (0.05, 0.05 / 6):
        crossed = np.abs(t) >= np.array(sequential_t_bounds(plan.looks, alpha=alpha, spending=plan.spending))
        first, anywhere = crossed[:, 0].mean(), crossed.any(axis=1).mean()
        spent = spend(alpha, first_fraction, plan.spending)
        lines.append(f"at {alpha:.4f}: first look {first:.5f} (spent {spent:.5f}), all looks {anywhere:.5f}")
        assert abs(first - spent) < 4 * math.sqrt(spent / reps) + 1e-6, (alpha, first)
        # Measured: 2–3% over alpha for O'Brien–Fleming, 6–11% for Pocock (which spends more early).
        assert 0.95 * alpha < anywhere < 1.15 * alpha, (alpha, anywhere)
    with capsys.disabled():
        print(f"\n{name}, {reps} single claims under H0: " + "; ".join(lines))


@pytest.mark.parametrize("name", list(PLANS))
@pytest.mark.parametrize("scenario", list(SCENARIOS), ids=list(SCENARIOS))
def test_family_wise_error_over_all_looks_and_claims(
    scenario: str, name: str, capsys: pytest.CaptureFixture[str]
) -> None:
    plan, means = PLANS[name], SCENARIOS[scenario]
    rng = np.random.default_rng(24 + len(scenario))
    effects = _effects(rng, means, FWER_REPS, plan)
    verdicts, seeds, low, high = _run(KINDS, effects, plan)
    fwer = _errors(KINDS, means, verdicts).mean()
    naive_reps = FWER_REPS // 4
    naive = _errors(KINDS, means, _naive(KINDS, effects[:naive_reps], plan)).mean()
    covered = (low <= means) & (means <= high)
    with capsys.disabled():
        print(
            f"\n{name}, {scenario}, {FWER_REPS} families of 6 claims: FWER {fwer:.4f} ± {math.sqrt(fwer * (1 - fwer) / FWER_REPS):.4f} "
            f"(fixed-n Holm at every look: {naive:.4f}, {naive_reps} families); coverage {covered.mean():.4f}; "
            f"mean seeds per claim {seeds.mean():.2f}"
        )
    assert fwer <= 0.05 + _slack(0.05, FWER_REPS), fwer
    # Repeating the fixed-n test at each look is what the spending prevents.
    assert naive > 0.05 + _slack(0.05, naive_reps), naive


@pytest.mark.parametrize("name", list(PLANS))
@pytest.mark.parametrize("effect", [0.0, 1.0, 2.0], ids=["null", "1 point", "2 points"])
def test_coverage_and_expected_seeds(effect: float, name: str, capsys: pytest.CaptureFixture[str]) -> None:
    """Six directional claims with a true effect of ``effect`` points in the claimed direction."""
    plan = PLANS[name]
    means = np.array([effect, -effect] * 3)
    rng = np.random.default_rng(7 + int(effect))
    verdicts, seeds, low, high = _run(DIRECTIONAL, _effects(rng, means, REPS, plan), plan)
    covered = ((low <= means) & (means <= high)).mean()
    n_intervals = verdicts.size
    found = np.isin(verdicts, (SUPPORTED,)).mean()
    fwer = _errors(DIRECTIONAL, means, verdicts).mean()
    mean_seeds = seeds.mean()
    with capsys.disabled():
        print(
            f"\n{name}, {effect} point, {REPS} families of 6 claims: coverage {covered:.4f} ± "
            f"{math.sqrt(covered * (1 - covered) / n_intervals):.4f}; mean seeds per claim {mean_seeds:.2f} "
            f"(share stopped at each look: {[float((seeds == n).mean()) for n in plan.looks]}); supported {found:.3f}; "
            f"families with a wrong verdict {fwer:.4f}"
        )
    # Repeated intervals cover at least 95% at whichever look a claim stopped. O'Brien–Fleming's
    # last boundary is close to the fixed-sample one, so its intervals cover about 95%; Pocock's
    # is higher (z 2.30 instead of 1.96 at 5%), so its intervals are wider and cover about 97%:
    # the price of stopping large effects at 5 seeds.
    low_cov, high_cov = (0.95, 0.98) if plan.spending == "pocock" else (0.93, 0.97)
    if plan.spending != "pocock" and effect >= 2:  # claims stopped at 10 seeds report that look's wider interval
        low_cov, high_cov = 0.95, 0.99
    assert low_cov <= covered <= high_cov, covered
    cap = plan.looks[-1]
    if effect == 0:
        assert mean_seeds > cap - 0.1, mean_seeds  # nothing to find: almost every claim runs to the cap
        assert fwer <= 0.05 + _slack(0.05, REPS), fwer
        return
    # (mean seeds per claim, share of claims supported): the ranges hold the measured values with
    # room for Monte-Carlo error (2000 families of 6 claims).
    expected = {
        # At 10 seeds a 1-point effect is about 2.1 standard errors, far below O'Brien–Fleming's
        # boundary at 5%/6: about 1 claim in 100 stops early, and two thirds are found by 20 seeds.
        ("obrien_fleming", 1.0): ((19.7, 19.98), (0.55, 0.75)),
        ("obrien_fleming", 2.0): ((14.0, 18.0), (0.95, 1.0)),  # most stop at 20, a fifth at 10
        # Pocock with a cap of 15: a 1-point effect stops early in about 1 claim in 8 and is found
        # in under a third; a 2-point effect stops at 10 seeds in two thirds of the claims.
        ("pocock", 1.0): ((13.8, 14.7), (0.2, 0.38)),
        ("pocock", 2.0): ((9.5, 11.5), (0.95, 1.0)),
    }
    (seeds_low, seeds_high), (found_low, found_high) = expected[(plan.spending, effect)]
    assert seeds_low < mean_seeds < seeds_high, mean_seeds
    assert found_low < found <= found_high, found
