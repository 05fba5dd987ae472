"""Each BN finding on synthetic studies whose answer is known, including "not estimable"."""

from __future__ import annotations

from typing import Any

import pytest
from _synth import make_study
from optuna.trial import TrialState

from bnsearch.analysis import load_trials
from bnsearch.claims import CONTRADICTED, INCONCLUSIVE, NOT_ESTIMABLE, SUPPORTED
from bnsearch.report import findings as fd
from bnsearch.report.verdicts import MIN_TRIALS, cliffs_delta

DIVERGED = "diverged: training loss became NaN or infinite in epoch 1 (by step 16)"


def group(
    n: int, final: float, *, spread: float = 0.01, epoch1: float | None = None, **spec: Any
) -> list[dict[str, Any]]:
    """``n`` complete trials, final val_acc near ``final`` (distinct, ``spread`` apart)."""
    out = []
    for i in range(n):
        v = round(final + spread * (i - n / 2) / n, 4)
        out.append({**spec, "val": (epoch1 if epoch1 is not None else v / 2, v)})
    return out


BN = {"bn_placement": "before_activation"}
NO_BN = {"bn_placement": "none", "bn_classifier": False}


def frame(specs: list[dict[str, Any]]):  # type: ignore[no-untyped-def]
    return load_trials(make_study(specs))


@pytest.mark.parametrize(
    ("bn_final", "no_final", "verdict"),
    [
        (0.95, 0.70, SUPPORTED),
        (0.70, 0.95, CONTRADICTED),
        (0.90, 0.90, INCONCLUSIVE),
    ],
    ids=["bn-better", "bn-worse", "equal"],
)
def test_bn_accuracy(bn_final: float, no_final: float, verdict: str) -> None:
    f = fd.bn_accuracy(frame(group(6, bn_final, **BN) + group(6, no_final, **NO_BN)))
    assert f.verdict == verdict
    assert [g.n for g in f.groups] == [6, 6]
    assert f.groups[0].median == pytest.approx(bn_final, abs=0.01)
    assert f.effect is not None and (f.effect > 0.9 if verdict == SUPPORTED else True)
    assert f.figure == "findings_bn"


def test_not_enough_data_below_min_trials() -> None:
    n = MIN_TRIALS - 1
    df = frame(group(n, 0.95, **BN) + group(8, 0.5, **NO_BN))
    f = fd.bn_accuracy(df)
    assert f.verdict == NOT_ESTIMABLE
    assert f.effect is None
    assert f"at least {MIN_TRIALS}" in f.summary
    # Every finding degrades to "not estimable" on a tiny study instead of guessing.
    assert {x.verdict for x in fd.all_findings(df)} == {NOT_ESTIMABLE}


def test_pruned_trials_are_left_out_but_diverged_ones_count_as_zero() -> None:
    pruned = [{**BN, "val": (0.1,), "state": TrialState.PRUNED, "prune_reason": "pruned by MedianPruner"}] * 6
    diverged = [{**NO_BN, "val": (), "state": TrialState.PRUNED, "prune_reason": DIVERGED}] * 3
    f = fd.bn_accuracy(frame(group(5, 0.9, **BN) + pruned + group(3, 0.9, **NO_BN) + diverged))
    assert [g.n for g in f.groups] == [5, 6]
    assert f.groups[1].median == pytest.approx(0.45, abs=0.01)  # three 0.9s, three 0.0s


def test_convergence_uses_epoch1_of_pruned_trials_too() -> None:
    specs = group(3, 0.95, epoch1=0.8, **BN) + group(5, 0.95, epoch1=0.3, **NO_BN)
    specs += [{**BN, "val": (0.8,), "state": TrialState.PRUNED, "prune_reason": "pruned"}] * 2
    f = fd.bn_convergence(frame(specs))
    assert f.verdict == SUPPORTED
    assert [g.n for g in f.groups] == [5, 5]


def test_gap_smaller_with_bn_supports_the_claim() -> None:
    bn = [{**BN, "val": (0.5, 0.93), "train": (0.5, 0.95)} for _ in range(5)]
    no = [{**NO_BN, "val": (0.5, 0.85 + i / 100), "train": (0.5, 1.0)} for i in range(5)]
    f = fd.bn_overfitting(frame(bn + no))
    assert f.verdict == SUPPORTED
    assert f.groups[0].median == pytest.approx(0.02)
    assert f.groups[1].median == pytest.approx(0.13)


def _lr_study(no_bn_lrs: list[float], no_bn_diverge_from: float) -> list[dict[str, Any]]:
    specs = [{**BN, "lr": lr, "val": (0.5, 0.9)} for lr in (0.01, 0.03, 0.1, 0.3, 1.0)]
    for lr in no_bn_lrs:
        if lr >= no_bn_diverge_from:
            specs.append({**NO_BN, "lr": lr, "val": (), "state": TrialState.PRUNED, "prune_reason": DIVERGED})
        else:
            specs.append({**NO_BN, "lr": lr, "val": (0.5, 0.9)})
    return specs


def test_highest_training_lr_with_bn() -> None:
    f = fd.bn_higher_lr(frame(_lr_study([0.01, 0.03, 0.1, 0.3, 1.0], no_bn_diverge_from=0.3)))
    assert f.verdict == SUPPORTED
    assert f.groups[0].median == pytest.approx(1.0)
    assert f.groups[1].median == pytest.approx(0.1)
    assert f.effect == pytest.approx(10.0)


def test_highest_lr_not_enough_data_when_no_bn_never_tried_high() -> None:
    f = fd.bn_higher_lr(frame(_lr_study([0.01, 0.02, 0.03, 0.04, 0.05], no_bn_diverge_from=10.0)))
    assert f.verdict == NOT_ESTIMABLE
    assert "no trial without BN was tried at a higher lr" in f.summary


def test_placement_and_classifier() -> None:
    before = group(5, 0.95, bn_placement="before_activation")
    after = group(5, 0.80, bn_placement="after_activation")
    cls = group(5, 0.80, bn_placement="after_activation", bn_classifier=True)
    df = frame(before + after + cls)
    assert fd.bn_placement(df).verdict == SUPPORTED
    # BN before the classifier: 5 trials at 0.80 vs 10 without (5×0.95, 5×0.80): no gain.
    assert fd.bn_classifier(df).verdict == SUPPORTED
    better_cls = frame(before + after + group(5, 0.99, bn_placement="after_activation", bn_classifier=True))
    assert fd.bn_classifier(better_cls).verdict == CONTRADICTED


def test_gamma_zero_kills_relu_but_not_tanh() -> None:
    specs = (
        group(5, 0.10, activation="relu", gamma_init="zeros", **BN)
        + group(5, 0.95, activation="relu", gamma_init="ones", **BN)
        + group(5, 0.93, activation="tanh", gamma_init="zeros", **BN)
        + group(5, 0.93, activation="tanh", gamma_init="ones", **BN)
    )
    df = frame(specs)
    relu = fd.gamma_zeros(df, "relu")
    assert relu.verdict == CONTRADICTED
    assert "With relu and gamma = 0 the signal dies: 5 of 5 trials never trained" in relu.summary
    assert relu.groups[0].note == "5 of 5 did not train"
    assert "None of the 5 gamma = 0 nets with BN in the conv blocks trained" in relu.summary
    tanh = fd.gamma_zeros(df, "tanh")
    assert tanh.verdict == SUPPORTED
    assert "signal dies" not in tanh.summary
    assert fd.gamma_zeros(df, "sigmoid").verdict == NOT_ESTIMABLE
    keys = [f.key for f in fd.all_findings(df)]
    assert "gamma_zeros_degenerate_relu" in keys and "gamma_zeros_degenerate_tanh" in keys


@pytest.mark.parametrize(
    ("no_bn_sigmoid", "verdict"),
    [(0.2, SUPPORTED), (0.93, INCONCLUSIVE)],
    ids=["spread", "flat"],
)
def test_activation_interaction(no_bn_sigmoid: float, verdict: str) -> None:
    specs = (
        group(5, 0.95, activation="relu", **BN)
        + group(5, 0.94, activation="sigmoid", **BN)
        + group(5, 0.93, activation="relu", **NO_BN)
        + group(5, no_bn_sigmoid, activation="sigmoid", **NO_BN)
    )
    f = fd.activation_interaction(frame(specs))
    assert f.verdict == verdict
    assert len(f.groups) == 4 and all(g.n == 5 for g in f.groups)


def test_activation_interaction_not_enough_data() -> None:
    specs = group(5, 0.95, activation="relu", **BN) + group(5, 0.9, activation="relu", **NO_BN)
    assert fd.activation_interaction(frame(specs)).verdict == NOT_ESTIMABLE


def test_cliffs_delta() -> None:
    assert cliffs_delta([3, 4], [1, 2]) == 1.0
    assert cliffs_delta([1, 2], [3, 4]) == -1.0
    assert cliffs_delta([1, 2], [1, 2]) == 0.0


def test_bn_comparisons_count_only_nets_with_gamma_near_one() -> None:
    """Dead gamma = 0 nets don't turn "does BN help" into "does gamma = 0 hurt"."""
    specs = group(5, 0.95, gamma_init="ones", **BN) + group(5, 0.10, gamma_init="zeros", **BN) + group(5, 0.80, **NO_BN)
    f = fd.bn_accuracy(frame(specs))
    assert f.verdict == SUPPORTED
    assert [g.n for g in f.groups] == [5, 5]


def test_lr_limit_needs_most_trials_of_a_bin_to_train() -> None:
    """One lucky run at a high lr does not set the limit; both at the top → unknown."""
    lucky = _lr_study([0.01, 0.03, 0.1, 0.3, 1.0], no_bn_diverge_from=0.3)
    lucky += [{**NO_BN, "lr": 1.0, "val": (0.5, 0.9)}]  # 1 of 2 at lr 1.0: a tie, still trains
    lucky += [{**NO_BN, "lr": 1.0, "val": (), "state": TrialState.PRUNED, "prune_reason": DIVERGED}] * 2
    f = fd.bn_higher_lr(frame(lucky))
    assert f.verdict == SUPPORTED and f.groups[1].median == pytest.approx(0.1)
    both_top = fd.bn_higher_lr(frame(_lr_study([0.01, 0.03, 0.1, 0.3, 1.0], no_bn_diverge_from=9)))
    assert both_top.verdict == NOT_ESTIMABLE
    assert "both train at the highest lr tried" in both_top.summary


def test_a_delta_and_a_median_that_disagree_are_no_clear_difference() -> None:
    from bnsearch.report.verdicts import compare_groups

    a = [0.80, 0.80, 0.80, 0.80, 0.99, 0.99, 0.99]  # Cliff's delta +0.35 against b ...
    b = [0.0, 0.0, 0.0, 0.9, 0.9, 0.9, 0.9]  # ... but a median 0.10 lower
    f = compare_groups(
        key="k", claim="c", metric="m", figure="f", a_label="a", a=a, b_label="b", b=b, claim_kind="higher"
    )
    assert f.verdict == INCONCLUSIVE


def test_classifier_finding_leaves_out_nets_without_any_bn() -> None:
    with_bn = group(5, 0.90, bn_placement="after_activation") + group(
        5, 0.90, bn_placement="after_activation", bn_classifier=True
    )
    # Nets with no BN at all, far worse: in the "no BN before the classifier" group they would
    # make BN1d look clearly better.
    f = fd.bn_classifier(frame(with_bn + group(10, 0.30, **NO_BN)))
    assert [g.n for g in f.groups] == [5, 5]
    assert f.verdict == SUPPORTED


def test_the_report_speaks_the_designed_experiments_claim_keys_and_verdicts() -> None:
    """A report finding and ``bnsearch findings``' verdict on the same claim share its key and
    verdict words (a per-activation finding is the claim's key with the activation appended)."""
    from bnsearch import claims as ck
    from bnsearch.findings import claims

    designed = {c.key for c in claims()}
    acts = ("relu", "leaky_relu", "tanh")
    specs = [{**BN, "activation": a, "gamma_init": g, "val": (0.5, 0.9)} for a in acts for g in ("ones", "zeros")]
    findings = fd.all_findings(frame(specs))
    per_activation = {ck.per_activation(k, a) for k in designed for a in acts}
    assert {f.key for f in findings} <= designed | per_activation
    assert {f.key for f in findings} >= {ck.BN_OVERFITTING, ck.BN_HIGHER_LR, ck.ACTIVATION_INTERACTION}
    verdicts = {ck.SUPPORTED, ck.CONTRADICTED, ck.INCONCLUSIVE, ck.NOT_ESTIMABLE}
    assert {f.verdict for f in findings} <= verdicts
