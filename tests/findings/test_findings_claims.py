"""Estimands and claims on hand-built cells: best lr on validation scored on test, censoring,
steps to target, pairing by seed, replication, the JSON rows."""

from __future__ import annotations

import dataclasses
import math

import pytest
from _synth import findings_records

from bnsearch.claims import EQUIVALENT, INCONCLUSIVE, SUPPORTED
from bnsearch.findings import _estimands as est
from bnsearch.findings._design import ACTIVATION_LRS, MAIN_LRS
from bnsearch.findings._judge import judge


def gp(lr: float, val: float, test: float, diverged: bool = False) -> est.GridPoint:
    return est.GridPoint(lr=lr, val_acc=val, test_acc=test, diverged=diverged)


def test_best_lr_is_picked_on_validation_and_scored_on_test() -> None:
    points = [gp(0.01, 0.90, 0.99), gp(0.1, 0.95, 0.91), gp(1.0, 0.10, 0.10, True)]
    assert est.best_on_validation(points).lr == 0.1
    assert est.tuned_test_acc(points) == 0.91  # not 0.99: the test split never chooses


def test_a_validation_tie_goes_to_the_smaller_lr() -> None:
    assert est.best_on_validation([gp(0.3, 0.9, 0.5), gp(0.03, 0.9, 0.6)]).lr == 0.03


def test_largest_good_lr_and_censoring() -> None:
    grid = [gp(0.01, 0.95, 0), gp(0.1, 0.96, 0), gp(1.0, 0.93, 0), gp(3.0, 0.10, 0, True)]
    assert est.largest_good_lr(grid) == (0.1, False)  # 0.93 is 3 points below the best
    top_good = [gp(0.01, 0.95, 0), gp(0.1, 0.96, 0), gp(1.0, 0.955, 0)]
    assert est.largest_good_lr(top_good) == (1.0, True)  # the top of the grid: censored
    assert est.lr_window_decades(top_good) == pytest.approx(2.0)


def test_steps_to_target_and_a_censored_curve() -> None:
    fast, slow, never = [(20, 0.5), (40, 0.93)], [(20, 0.5), (40, 0.8), (60, 0.95)], [(20, 0.3), (40, 0.4)]
    assert est.steps_to_target(fast, 0.92) == 40
    assert est.steps_to_target(never, 0.92) is None
    assert est.log_steps_ratio(fast, slow, 0.92, max_steps=80) == (pytest.approx(math.log(40 / 60)), 0)
    assert est.log_steps_ratio(fast, never, 0.92, max_steps=80) == (pytest.approx(math.log(40 / 80)), 1)
    assert est.log_steps_ratio(never, never, 0.92, max_steps=80) == (None, 2)


def _by(results: list, key: str, dataset: str):  # type: ignore[no-untyped-def]
    (r,) = [r for r in results if r.key == key and r.dataset == dataset]
    return r


def test_effects_are_paired_within_seeds() -> None:
    # Seeds differ by 5 points in both arms; the 1-point BN gain is all that is left.
    records = [
        r
        for s, shift in enumerate((0.0, 0.05, -0.05))
        for r in findings_records("digits", s, bn_gain=0.01, seed_shift=shift)
    ]
    results = judge(records)
    acc = _by(results, "bn_accuracy", "digits")
    assert acc.per_seed == pytest.approx((1.0, 1.0, 1.0))
    assert acc.effect == pytest.approx(1.0) and acc.n_seeds == 3
    assert acc.verdict == SUPPORTED
    assert not acc.replicated  # one dataset
    placement = _by(results, "bn_placement", "digits")
    assert placement.effect == pytest.approx(1.0)
    classifier = _by(results, "bn_classifier", "digits")
    assert classifier.effect == pytest.approx(-1.0)  # BN1d arm lacks the gain of relu/before
    steps = _by(results, "bn_convergence", "digits")
    assert steps.effect == pytest.approx(1.0) and steps.unit == "× steps"  # identical curves


def test_replicated_only_when_every_dataset_agrees() -> None:
    def run(gain_mnist: float) -> list:  # type: ignore[type-arg]
        records = []
        for s in range(3):
            records += findings_records("digits", s, bn_gain=0.01, seed_shift=0.01 * s)
            records += findings_records("mnist5k", s, bn_gain=gain_mnist, seed_shift=0.01 * s, n_test=750)
        return judge(records)

    agree = run(0.01)
    assert _by(agree, "bn_accuracy", "digits").replicated and _by(agree, "bn_accuracy", "mnist5k").replicated
    differ = run(0.0)
    assert _by(differ, "bn_accuracy", "mnist5k").verdict in (EQUIVALENT, INCONCLUSIVE)
    assert not _by(differ, "bn_accuracy", "digits").replicated


def test_missing_cells_leave_a_seed_out_and_say_so() -> None:
    records = [r for s in range(3) for r in findings_records("digits", s, bn_gain=0.01, seed_shift=0.0)]
    records = [r for r in records if not (r.seed == 2 and r.arm == "relu/none" and r.lr == MAIN_LRS[0])]
    acc = _by(judge(records), "bn_accuracy", "digits")
    assert acc.n_seeds == 2
    assert any("without an effect" in n for n in acc.notes)


def test_json_rows_carry_the_documented_fields() -> None:
    records = [r for s in range(3) for r in findings_records("digits", s, bn_gain=0.01, seed_shift=0.0)]
    row = _by(judge(records), "activation_interaction", "digits").to_json()
    for field in (
        "key",
        "claim",
        "estimand",
        "dataset",
        "effect",
        "ci_low",
        "ci_high",
        "unit",
        "n_seeds",
        "verdict",
        "replicated",
    ):
        assert field in row
    assert len(ACTIVATION_LRS) < len(MAIN_LRS)


def test_failed_lrs_count_chance_level_nets_as_well_as_diverged_ones() -> None:
    grid = [gp(0.1, 0.95, 0.95), gp(0.3, 0.10, 0.10), gp(1.0, 0.10, 0.10, True)]
    assert est.failed_lrs(grid) == [0.3, 1.0]
    assert est.diverged_lrs(grid) == [1.0]


def test_replicated_needs_a_finding_not_just_agreement() -> None:
    records = []
    for s in range(3):  # BN changes nothing: equivalent on both datasets, a replicated finding
        records += findings_records("digits", s, bn_gain=0.0, seed_shift=0.0)
        records += findings_records("mnist5k", s, bn_gain=0.0, seed_shift=0.0, n_test=750)
    results = judge(records)
    acc = _by(results, "bn_accuracy", "digits")
    assert acc.verdict == EQUIVALENT and acc.replicated
    # Equal lr limits on a half-decade grid: inconclusive on both datasets (the grid's rounding
    # keeps the interval wider than the 2× margin); agreeing on "inconclusive" is no replication.
    for dataset in ("digits", "mnist5k"):
        lr = _by(results, "bn_higher_lr", dataset)
        assert lr.verdict == INCONCLUSIVE and not lr.replicated


def test_a_best_lr_at_the_edge_of_the_grid_is_flagged() -> None:
    # _records puts every arm's best at the grid's largest lr: each seed is flagged, and the
    # flag is in the verdict's notes and sentence.
    records = [r for s in range(3) for r in findings_records("digits", s, bn_gain=0.01, seed_shift=0.01 * s)]
    acc = _by(judge(records), "bn_accuracy", "digits")
    assert any(n.startswith("3 of 3 seeds had an arm's best lr at the edge of the grid") for n in acc.notes)
    assert "edge of the grid" in acc.sentence
    # Best inside the grid: no flag.
    inner = [
        dataclasses.replace(r, val_acc=r.val_acc - (0.05 if r.lr in (MAIN_LRS[0], MAIN_LRS[-1]) else 0.0))
        for r in records
    ]
    acc = _by(judge(inner), "bn_accuracy", "digits")
    assert not any("edge of the grid" in n for n in acc.notes)
