"""The BN findings: each claim of the source article tested on a study's own trials.

These are **exploratory**: the trials are whatever the search sampled (adaptive samplers and
pruning make the groups observational, one seed, grid points not independent), so a verdict
here is a lead, not a result; ``bnsearch findings`` runs the designed, replicated experiment.

Input is the DataFrame of ``analysis.load_trials``; output is plain ``Finding`` dataclasses
(claim, verdict, a sentence in plain words, the groups compared, the effect size and the
figure that shows it). Nothing here imports Optuna.

Which trials count (the same rules for every finding):
- **Outcome accuracy** is a trial's final validation accuracy when it COMPLETED, and 0.0
  when its loss diverged (NaN/inf): a diverged run gave no usable model, and leaving it
  out would flatter the settings that diverge. Trials stopped by the pruner are left out
  of outcome comparisons (they were cut short on purpose); failed and running trials too.
- **Convergence** uses the validation accuracy after epoch 1, which every trial that ran
  an epoch has (pruned ones included), so pruning cannot bias it.
- **Gap** is final train accuracy − final validation accuracy of complete trials. The train
  accuracy is the one ``train()`` records: on the training batches *during* the last epoch
  (train mode, weights still moving), not a separate pass afterwards.
- A trial **trains** when its outcome accuracy is at least ``TRAINS_FRACTION`` of the
  study's best outcome accuracy.
- Nets **with BN count only with gamma initialised near 1** (``STANDARD_GAMMA_INITS``,
  PyTorch's default) in every finding except the gamma-init one. Gamma = 0 in every BN
  layer can stop a whole net from training; pooling those nets in would turn "does BN
  help" into "does gamma = 0 hurt", which the gamma finding answers on its own.

Claim keys and verdict words are ``bnsearch.claims``'s, the designed experiment's: a finding
is ``supported``, ``contradicted``, ``inconclusive`` (no clear difference) or ``not estimable``
(a group has fewer than ``MIN_TRIALS`` trials); with no interval it never says ``equivalent``. A
difference between two groups is clear when Cliff's delta (the probability that a trial
of one group beats one of the other, minus the reverse) is at least ``MIN_CLIFFS_DELTA``
in size (a "medium" effect by Romano et al.'s thresholds) and the medians differ by at
least ``MIN_DIFF`` (accuracy, 0..1).
"""

from __future__ import annotations

import math
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from bnsearch import claims as ck
from bnsearch.claims import CONTRADICTED, INCONCLUSIVE, NOT_ESTIMABLE, SUPPORTED
from bnsearch.report.verdicts import MIN_TRIALS, Finding, Group, compare_groups, median

if TYPE_CHECKING:
    import pandas as pd

TRAINS_FRACTION = 0.5  # a trial "trains" at ≥ this fraction of the study's best accuracy
LR_FACTOR = 2.0  # highest training lr of one group must be ≥ this × the other's to count
MIN_RANGE_DIFF = 0.05  # spread of per-activation medians (accuracy) that counts as different

STANDARD_GAMMA_INITS = ("ones", "normal")  # gamma inits near 1 (normal: N(1, 0.1²))


def outcome_frame(df: pd.DataFrame) -> pd.DataFrame:
    """Trials with an outcome accuracy (complete, or diverged = 0.0) in column ``outcome``."""
    keep = (df["state"] == "COMPLETE") | ((df["state"] == "PRUNED") & df["diverged"])
    out = df[keep].copy()
    out["outcome"] = out["final_val_acc"].where(out["state"] == "COMPLETE", 0.0).astype("float64")
    return out[out["outcome"].notna() & out["has_bn"].notna()]


def standard_init(frame: pd.DataFrame) -> pd.DataFrame:
    """Nets without BN, and nets with BN whose gamma starts near 1 (see the module notes)."""
    keep = frame["has_bn"].eq(False) | frame["gamma_init"].isin(STANDARD_GAMMA_INITS).fillna(False)
    return frame[keep.fillna(False).astype(bool)]


def _values(frame: pd.DataFrame, column: str) -> list[float]:
    return [float(v) for v in frame[column].dropna()]


def bn_accuracy(df: pd.DataFrame) -> Finding:
    """Does BN improve the final validation accuracy?"""
    o = standard_init(outcome_frame(df))
    return compare_groups(
        key=ck.BN_ACCURACY,
        claim="BN improves validation accuracy.",
        metric="outcome val_acc",
        figure="findings_bn",
        a_label="with BN",
        a=_values(o[o["has_bn"]], "outcome"),
        b_label="without BN",
        b=_values(o[~o["has_bn"]], "outcome"),
        claim_kind="higher",
    )


def bn_convergence(df: pd.DataFrame) -> Finding:
    """Does BN speed up convergence (higher validation accuracy after one epoch)?"""
    ran = standard_init(df[df["state"].isin(["COMPLETE", "PRUNED"]) & df["has_bn"].notna()]).copy()
    # A run that diverged in its first epoch has no epoch-1 accuracy: it did not converge.
    ran["epoch1"] = ran["val_acc_epoch1"].where(~(ran["diverged"] & ran["val_acc_epoch1"].isna()), 0.0)
    return compare_groups(
        key=ck.BN_CONVERGENCE,
        claim="BN speeds up convergence.",
        metric="val_acc after epoch 1",
        figure="findings_convergence",
        a_label="with BN",
        a=_values(ran[ran["has_bn"]], "epoch1"),
        b_label="without BN",
        b=_values(ran[~ran["has_bn"]], "epoch1"),
        claim_kind="higher",
    )


def bn_overfitting(df: pd.DataFrame) -> Finding:
    """Does BN reduce overfitting (a smaller train − validation accuracy gap)?"""
    c = standard_init(df[(df["state"] == "COMPLETE") & df["has_bn"].notna()])
    return compare_groups(
        key=ck.BN_OVERFITTING,
        claim="BN reduces overfitting (a smaller train–validation gap).",
        metric="train−val accuracy gap",
        figure="findings_gap",
        a_label="with BN",
        a=_values(c[c["has_bn"]], "train_val_gap"),
        b_label="without BN",
        b=_values(c[~c["has_bn"]], "train_val_gap"),
        claim_kind="lower",
    )


def bn_placement(df: pd.DataFrame) -> Finding:
    """Before or after the activation: which placement gives higher accuracy?"""
    o = standard_init(outcome_frame(df))
    return compare_groups(
        key=ck.BN_PLACEMENT,
        claim="BN works better before the activation than after it.",
        metric="outcome val_acc",
        figure="findings_placement",
        a_label="before activation",
        a=_values(o[o["bn_placement"] == "before_activation"], "outcome"),
        b_label="after activation",
        b=_values(o[o["bn_placement"] == "after_activation"], "outcome"),
        claim_kind="higher",
    )


def bn_classifier(df: pd.DataFrame) -> Finding:
    """Does BN before the classifier add anything (the article says it should not be there)?

    Only nets with BN in the conv blocks count: a net with no BN at all would put "no BN
    anywhere" into the "no BN before the classifier" group.
    """
    o = standard_init(outcome_frame(df))
    o = o[o["bn_placement"] != "none"]
    return compare_groups(
        key=ck.BN_CLASSIFIER,
        claim=("BN belongs between the conv layers, not before the classifier: BN1d there does not help."),
        metric="outcome val_acc (nets with BN in the conv blocks)",
        figure="findings_placement",
        a_label="BN before classifier",
        a=_values(o[o["bn_classifier"].eq(True)], "outcome"),
        b_label="no BN before classifier",
        b=_values(o[o["bn_classifier"].eq(False)], "outcome"),
        claim_kind="not higher",
    )


def _trains_threshold(o: pd.DataFrame) -> float:
    return TRAINS_FRACTION * float(o["outcome"].max()) if len(o) else math.inf


def gamma_zeros(df: pd.DataFrame, activation: str) -> Finding:
    """Gamma initialised to 0 vs 1 with one activation; says when gamma 0 kills the signal."""
    o = outcome_frame(df)
    threshold = _trains_threshold(o)
    bn = o[o["has_bn"] & (o["activation"] == activation)]
    zeros, ones = bn[bn["gamma_init"] == "zeros"], bn[bn["gamma_init"] == "ones"]
    dead_z = int((zeros["outcome"] < threshold).sum())
    dead_o = int((ones["outcome"] < threshold).sum())
    f = compare_groups(
        key=ck.per_activation(ck.GAMMA_ZEROS, activation),
        claim=(f"Initialising BN's gamma to 0 (as the article suggests) trains as well as gamma = 1 ({activation})."),
        metric="outcome val_acc",
        figure="findings_gamma",
        a_label="gamma = 0",
        a=_values(zeros, "outcome"),
        b_label="gamma = 1",
        b=_values(ones, "outcome"),
        claim_kind="not lower",
        notes=(f"{dead_z} of {len(zeros)} did not train", f"{dead_o} of {len(ones)} did not train"),
    )
    if f.verdict != NOT_ESTIMABLE and dead_z * 2 >= len(zeros) and dead_o * 2 < len(ones):
        dies = (
            f"With {activation} and gamma = 0 the signal dies: {dead_z} of {len(zeros)} "
            f"trials never trained (outcome val_acc below {threshold:.3f}) against {dead_o} "
            f"of {len(ones)} with gamma = 1. "
        )
        conv_bn = zeros["bn_placement"] != "none"
        if conv_bn.any() and not (zeros[conv_bn]["outcome"] >= threshold).any():
            dies += (
                f"None of the {int(conv_bn.sum())} gamma = 0 nets with BN in the conv blocks "
                "trained: stacked BN layers that all output a constant pass no gradient back. "
            )
        return replace(f, summary=dies + f.summary)
    return f


def _highest_training_lr(g: pd.DataFrame, threshold: float) -> tuple[float | None, bool]:
    """Highest lr at which most trials train, and whether a higher lr was tried and failed.

    Trials are binned by lr in half-decades (…, 0.01, 0.03, 0.1, 0.3, 1, …); a bin "trains"
    when at least half its trials do, so one lucky run does not set the limit. Returns the
    highest lr of a training trial in the highest training bin (None if no bin trains), and
    whether a higher bin exists (where, by definition, most trials did not train).
    """
    lr_bin = (g["lr"].astype(float).map(math.log10) * 2).round()
    frac = (g["outcome"] >= threshold).groupby(lr_bin).mean()
    good = frac[frac >= 0.5]
    if good.empty:
        return None, bool(len(frac))
    top_bin = float(good.index.max())
    in_bin = g[(lr_bin == top_bin) & (g["outcome"] >= threshold)]
    return float(in_bin["lr"].max()), bool((frac.index > top_bin).any())


def bn_higher_lr(df: pd.DataFrame) -> Finding:
    """Does BN let higher learning rates train?"""
    o = standard_init(outcome_frame(df))
    o = o[o["lr"].notna()]
    threshold = _trains_threshold(o)
    groups_df = {"with BN": o[o["has_bn"]], "without BN": o[~o["has_bn"]]}
    tops = {k: _highest_training_lr(g, threshold) for k, g in groups_df.items()}
    groups = tuple(
        Group(
            label=k,
            n=len(g),
            median=tops[k][0],
            note=f"{int((g['outcome'] >= threshold).sum())} of {len(g)} trained",
        )
        for k, g in groups_df.items()
    )
    base: dict[str, Any] = dict(
        key=ck.BN_HIGHER_LR,
        claim="BN lets higher learning rates train.",
        metric="highest lr at which most trials train",
        figure="findings_lr",
        groups=groups,
        effect_label="ratio of the highest training lr, with BN / without",
    )
    n_bn, n_no = len(groups_df["with BN"]), len(groups_df["without BN"])
    if min(n_bn, n_no) < MIN_TRIALS:
        return Finding(
            verdict=NOT_ESTIMABLE,
            effect=None,
            summary=(
                f"Not estimable, too few trials: n = {n_bn} with BN, n = {n_no} without BN; "
                f"each group needs at least {MIN_TRIALS}."
            ),
            **base,
        )
    (top_bn, above_bn), (top_no, above_no) = tops["with BN"], tops["without BN"]
    desc = (
        f"highest lr at which most trials train {_lr(top_bn, above_bn)} with BN vs "
        f"{_lr(top_no, above_no)} without "
        f"(trains = outcome val_acc ≥ {threshold:.3f}; {n_bn} vs {n_no} trials)"
    )

    ratio = None if top_bn is None or top_no is None else top_bn / top_no
    bn_higher = top_bn is not None and (top_no is None or top_bn >= LR_FACTOR * top_no)
    no_higher = top_no is not None and (top_bn is None or top_no >= LR_FACTOR * top_bn)
    if bn_higher and above_no:
        verdict, words = SUPPORTED, "BN trains at higher learning rates"
    elif no_higher and above_bn:
        verdict, words = CONTRADICTED, "nets without BN train at higher learning rates"
    elif (bn_higher and not above_no) or (no_higher and not above_bn):
        return Finding(
            verdict=NOT_ESTIMABLE,
            effect=ratio,
            summary=(
                f"Not estimable: {desc}, but no trial {'without' if bn_higher else 'with'} "
                "BN was tried at a higher lr, so its limit is unknown."
            ),
            **base,
        )
    elif not above_bn and not above_no:
        return Finding(
            verdict=NOT_ESTIMABLE,
            effect=ratio,
            summary=(
                f"Not estimable: {desc}; both train at the highest lr tried, so neither "
                "limit is known. Widen the lr range."
            ),
            **base,
        )
    else:
        verdict, words = INCONCLUSIVE, f"no clear difference (less than {LR_FACTOR:g}×)"
    return Finding(verdict=verdict, effect=ratio, summary=f"{verdict.capitalize()}: {words} — {desc}.", **base)


def _lr(x: float | None, tested_above: bool = True) -> str:
    if x is None:
        return "none"
    return f"{x:.3g}" if tested_above else f"{x:.3g} (the highest tried)"


def activation_interaction(df: pd.DataFrame) -> Finding:
    """Does the activation matter less with BN (smaller spread of per-activation medians)?"""
    o = standard_init(outcome_frame(df))
    acts = sorted(str(a) for a in o["activation"].dropna().unique())
    groups: list[Group] = []
    med: dict[bool, dict[str, float]] = {True: {}, False: {}}
    for bn in (True, False):
        for a in acts:
            vals = _values(o[(o["has_bn"] == bn) & (o["activation"] == a)], "outcome")
            groups.append(
                Group(
                    label=f"{a}, {'with' if bn else 'without'} BN",
                    n=len(vals),
                    median=median(vals),
                )
            )
            if len(vals) >= MIN_TRIALS:
                med[bn][a] = median(vals)  # type: ignore[assignment]
    usable = sorted(set(med[True]) & set(med[False]))
    base: dict[str, Any] = dict(
        key=ck.ACTIVATION_INTERACTION,
        claim="With BN, the choice of activation matters less.",
        metric="spread (max − min) of per-activation median outcome val_acc",
        figure="findings_activation",
        groups=tuple(groups),
        effect_label="spread without BN − spread with BN",
    )
    if len(usable) < 2:
        return Finding(
            verdict=NOT_ESTIMABLE,
            effect=None,
            summary=(
                f"Not estimable, too few trials: needs at least 2 activations with {MIN_TRIALS}+ trials "
                f"both with and without BN; {len(usable)} have that."
            ),
            **base,
        )
    spread = {bn: max(med[bn][a] for a in usable) - min(med[bn][a] for a in usable) for bn in (True, False)}
    effect = spread[False] - spread[True]
    if effect >= MIN_RANGE_DIFF:
        verdict = SUPPORTED
    elif effect <= -MIN_RANGE_DIFF:
        verdict = CONTRADICTED
    else:
        verdict = INCONCLUSIVE
    best = {bn: max(usable, key=med[bn].__getitem__) for bn in (True, False)}
    summary = (
        f"{verdict.capitalize()}: across {', '.join(usable)} the median outcome val_acc spans "
        f"{spread[True]:.3f} with BN vs {spread[False]:.3f} without (difference {effect:+.3f}; "
        f"counts as a difference from {MIN_RANGE_DIFF:.2f}). "
        f"Best activation: {best[True]} with BN, {best[False]} without."
    )
    return Finding(verdict=verdict, effect=effect, summary=summary, **base)


def all_findings(df: pd.DataFrame) -> tuple[Finding, ...]:
    """Every finding, in report order; gamma findings for each activation in the study."""
    acts = sorted(str(a) for a in df["activation"].dropna().unique())
    return (
        bn_accuracy(df),
        bn_convergence(df),
        bn_higher_lr(df),
        bn_overfitting(df),
        bn_placement(df),
        bn_classifier(df),
        *(gamma_zeros(df, a) for a in acts),
        activation_interaction(df),
    )
