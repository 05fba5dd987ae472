"""Design 2's claims on hand-built cells: each effect with a known value (censored and edge cases
included), the lr grids read from the records, the catalogue's arms, and design 1 left alone."""

from __future__ import annotations

import dataclasses
import math

import pytest
from _synth import DESIGN2_ARMS, LRS2, Arm2, design2_records

from bnsearch import claims as ck
from bnsearch.findings import _effects as eff
from bnsearch.findings._catalogue import Claim, claims
from bnsearch.findings._catalogue2 import catalogue, claims2
from bnsearch.findings._judge import Result, judge
from bnsearch.findings._probe import largest_stable_lr
from bnsearch.findings._records import CellRecord

BN, NO_BN = "plain:relu/before", "plain:relu/none"
ONES, ZERO_LAST = "resnet:relu/post", "resnet:relu/post/zero_last"


def view(arms: dict[str, Arm2], seed: int = 0, records: list[CellRecord] | None = None) -> eff.SeedView:
    """One seed's view of ``arms`` (or of ``records``), its grids read from the records."""
    recs = records if records is not None else design2_records("digits", seed, arms)
    return eff.seed_views(recs)["digits"][seed]


def test_stable_lr_ratio_from_the_probe_cells_and_its_censoring() -> None:
    arms = {BN: Arm2(0.95, max_lr=4.64), NO_BN: Arm2(0.92, max_lr=0.0464)}
    e = eff.stable_lr(BN, NO_BN)(view(arms))
    assert e.value == pytest.approx(math.log(4.64 / 0.0464)) and e.note == ""
    top = eff.stable_lr(BN, NO_BN)(view({**arms, BN: Arm2(0.95)}))  # BN stable up to the grid's top
    assert top.value == pytest.approx(math.log(10 / 0.0464)) and top.note == "censored"
    no_probe = [r for r in design2_records("digits", 0, arms) if not (r.kind == "probe" and r.arm == NO_BN)]
    assert eff.stable_lr(BN, NO_BN)(view(arms, records=no_probe)).value is None


def test_probe_cells_are_not_grid_cells() -> None:
    v = view({BN: Arm2(0.95, max_lr=0.1)})
    assert len(v.grid[BN]) == len(LRS2) and v.lrs[BN] == LRS2
    # The bisection tried the ends, then 0.0215 (stable), 0.464 (not), 0.1 (stable), 0.215 (not).
    assert sorted(p.lr for p in v.probe[BN]) == [1e-4, 0.0215, 0.1, 0.215, 0.464, 10.0]
    assert largest_stable_lr(v.probe[BN], LRS2) == (0.1, False)


def test_optimal_lr_ratio_and_its_edge_flag() -> None:
    arms = {BN: Arm2(0.95, best_lr=0.464), NO_BN: Arm2(0.92, best_lr=0.0464)}
    e = eff.optimal_lr(BN, NO_BN)(view(arms))
    assert e.value == pytest.approx(math.log(10)) and not e.edge
    edge = eff.optimal_lr(BN, NO_BN)(view({**arms, NO_BN: Arm2(0.92, best_lr=1e-4)}))
    assert edge.value == pytest.approx(math.log(0.464 / 1e-4)) and edge.edge
    assert eff.EDGE_NOTE in edge.notes


def test_an_arm_on_a_sub_range_has_its_own_edges() -> None:
    # The BN arm trains only on 0.01 … 1 and is best at 1: the edge of its grid, not of LRS2.
    records = [
        r
        for r in design2_records("digits", 0, {BN: Arm2(0.95, best_lr=1.0), NO_BN: Arm2(0.92)})
        if r.arm != BN or 0.01 <= r.lr <= 1.0
    ]
    v = view({}, records=records)
    assert v.lrs[BN] == tuple(x for x in LRS2 if 0.01 <= x <= 1.0)
    e = eff.tuned(BN, NO_BN, eff.RECORDED)(v)
    assert e.value == pytest.approx(3.0) and e.edge
    assert not eff.tuned(BN, NO_BN, eff.RECORDED)(view({BN: Arm2(0.95, best_lr=0.464), NO_BN: Arm2(0.92)})).edge


def test_a_seed_missing_a_recorded_lr_has_no_effect() -> None:
    arms = {BN: Arm2(0.95), NO_BN: Arm2(0.92)}
    records = design2_records("digits", 0, arms) + [
        r for r in design2_records("digits", 1, arms) if not (r.arm == NO_BN and r.lr == 1.0)
    ]
    views = eff.seed_views(records)["digits"]
    assert views[0].lrs[NO_BN] == LRS2  # the grid is every lr any seed recorded
    assert eff.tuned(BN, NO_BN, eff.RECORDED)(views[0]).value == pytest.approx(3.0)
    assert eff.tuned(BN, NO_BN, eff.RECORDED)(views[1]).note == eff.CELLS_MISSING
    assert eff.tuned(BN, "plain:tanh/none", eff.RECORDED)(views[0]).note == eff.CELLS_MISSING  # no such arm


def test_failure_rate_counts_only_the_high_lrs_and_nets_stuck_near_chance() -> None:
    # lrs ≥ 0.1: 0.1 0.215 0.464 1 2.15 4.64 10; ones diverge above 0.464 (4 of 7), zero_last above 2.15 (2 of 7).
    arms = {ZERO_LAST: Arm2(0.95, max_lr=2.15), ONES: Arm2(0.95, max_lr=0.464)}
    fail = eff.failure(ZERO_LAST, ONES, low=0.1, below=0.2)
    assert fail(view(arms)).value == pytest.approx(100 * (2 - 4) / 7)
    # Failing below 0.1 does not count.
    low = {ZERO_LAST: Arm2(0.95, max_lr=0.01), ONES: Arm2(0.95, max_lr=0.0464)}
    assert fail(view(low)).value == pytest.approx(0.0)
    # A net stuck at chance with a finite loss failed as well (the resnets of the pilots).
    recs = [
        dataclasses.replace(r, diverged=False, val_acc=0.1, test_acc=0.1) if r.diverged else r
        for r in design2_records("digits", 0, arms)
    ]
    assert fail(view({}, records=recs)).value == pytest.approx(100 * (2 - 4) / 7)


def test_early_loss_at_the_pre_registered_lr() -> None:
    arms = {ZERO_LAST: Arm2(0.95, max_lr=2.15, early=0.6), ONES: Arm2(0.95, max_lr=0.464, early=1.2)}
    assert eff.early_loss(ZERO_LAST, ONES, lr=0.1)(view(arms)).value == pytest.approx(math.log(0.5))
    # One arm diverged at that lr: no effect on that seed, and the note says why.
    assert eff.early_loss(ZERO_LAST, ONES, lr=1.0)(view(arms)).value is None
    assert "diverged within the first steps" in eff.early_loss(ZERO_LAST, ONES, lr=1.0)(view(arms)).note
    unrecorded = [dataclasses.replace(r, early_loss=None) for r in design2_records("digits", 0, arms)]
    assert eff.early_loss(ZERO_LAST, ONES, lr=0.1)(view({}, records=unrecorded)).value is None


def test_test_nll_at_the_lr_chosen_on_validation_accuracy() -> None:
    arms = {BN: Arm2(0.95), NO_BN: Arm2(0.92)}
    # test_nll = 0.05 + (1 − acc): BN's net is 0.03 nats better.
    assert eff.tuned_nll(BN, NO_BN)(view(arms)).value == pytest.approx(-0.03)
    missing = [dataclasses.replace(r, test_nll=None) for r in design2_records("digits", 0, arms)]
    assert eff.tuned_nll(BN, NO_BN)(view({}, records=missing)).note == "no test NLL"


def test_value_at_a_fixed_lr() -> None:
    e = eff.at_lr(BN, NO_BN, 1.0)(view({BN: Arm2(0.95, best_lr=1.0), NO_BN: Arm2(0.92, max_lr=0.1)}))
    assert e.value == pytest.approx(100 * (0.95 - 0.1)) and e.within_se > 0
    assert eff.at_lr(BN, NO_BN, 0.5)(view({BN: Arm2(0.95), NO_BN: Arm2(0.92)})).note == eff.CELLS_MISSING


def _run(seeds: int = 6, changed: dict[str, Arm2] | None = None) -> dict[str, Result]:
    table = {**DESIGN2_ARMS, **(changed or {})}
    records = [r for s in range(seeds) for r in design2_records("digits", s, table, seed_shift=0.01 * (s % 3))]
    return {r.key: r for r in judge(records, design=2)}


def test_design_2_verdicts_on_known_effects() -> None:
    results = _run()
    verdict = {k: r.verdict for k, r in results.items()}
    assert set(verdict) == {c.key for c in claims2()}
    assert verdict["plain:bn_accuracy"] == ck.SUPPORTED
    assert verdict["plain:bn_optimal_lr"] == ck.SUPPORTED  # same best lr: not higher within 2×
    assert verdict["plain:bn_stable_lr"] == ck.SUPPORTED  # 4.64 / 0.1
    assert results["plain:bn_stable_lr"].effect == pytest.approx(46.4)
    assert verdict["plain:activation_interaction"] == ck.SUPPORTED  # spread 12 without BN, 2 with
    assert results["plain:activation_interaction"].effect == pytest.approx(10.0)
    assert verdict["resnet:gamma_zero_last_divergence"] == ck.SUPPORTED
    assert verdict["plain:bn_accuracy_nll"] == ck.SUPPORTED  # NLL falls: the accuracy claim's twin
    # Gamma 1 diverges above lr 0.464 here, so the early loss at the pre-registered lr 1 has no seed.
    early = results[ck.on_net("resnet", ck.GAMMA_ZERO_LAST_EARLY_LOSS)]
    assert early.verdict == ck.NOT_ESTIMABLE and early.n_seeds == 0
    rest = [r for r in results.values() if r is not early]
    assert all(r.n_seeds == 6 and r.look is None and r.seeds_used is None for r in rest)


def test_design_2_optimal_lr_raised_by_bn_is_contradicted() -> None:
    results = _run(changed={BN: Arm2(0.95, best_lr=0.464, max_lr=4.64)})
    r = results["plain:bn_optimal_lr"]
    assert r.verdict == ck.CONTRADICTED and r.effect == pytest.approx(10.0)


def test_every_design_2_claim_names_the_arms_it_reads() -> None:
    for c in claims2():
        assert c.arms, c.key
        assert all(a.split(":")[0] in ("plain", "resnet", "bncnn") for a in c.arms)
        # Dropping any one of its arms leaves the claim without an effect: it reads every arm it names.
        for arm in c.arms:
            records = [r for s in range(2) for r in design2_records("digits", s) if r.arm != arm]
            assert c.effect(eff.seed_views(records)["digits"][0]).value is None, (c.key, arm)


def test_design_1_catalogue_is_unchanged() -> None:
    def table(cs: tuple[Claim, ...]) -> list[tuple[object, ...]]:
        return [(c.key, c.estimand, c.kind, c.margin, c.primary, c.expected, c.resolution) for c in cs]

    assert table(catalogue(1)) == table(claims())
    assert len(claims()) == 18 and not set(table(claims())) & set(table(claims2()))
    assert all(c.arms == () for c in claims())
    assert [c.key for c in claims()][:3] == [ck.BN_ACCURACY, ck.BN_CONVERGENCE, ck.BN_HIGHER_LR]
    with pytest.raises(ValueError, match="choose one of: 1, 2"):
        catalogue(3)


def test_design_2_convergence_and_interaction_carry_the_edge_flag() -> None:
    steps = eff.steps(BN, NO_BN, matched=True, lrs=eff.RECORDED, edge=True)
    interaction = eff.interaction("plain:", eff.RECORDED, edge=True)
    inside = view(DESIGN2_ARMS)
    assert not steps(inside).edge and not interaction(inside).edge
    assert interaction(inside).value == pytest.approx(10.0)
    # The no-BN arm best at the grid's top: the matched lr of the convergence claim is on the edge.
    on_edge = view({**DESIGN2_ARMS, NO_BN: Arm2(0.92, best_lr=10.0)})
    assert steps(on_edge).edge and interaction(on_edge).edge
    assert not eff.steps(BN, NO_BN, matched=True, lrs=eff.RECORDED)(on_edge).edge  # design 1 never flags it
