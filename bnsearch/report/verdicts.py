"""Verdicts from two groups of numbers: the statistics behind ``bnsearch.report.findings``.

Exploratory: these compare whatever trials a search happened to sample (adaptive sampling and
pruning make the groups observational); ``bnsearch findings`` runs the designed experiment.

Plain Python, no pandas or Optuna: a ``Finding`` holds a claim, its verdict, a sentence in
plain words, the groups compared and the effect size. Two groups are compared with
Cliff's delta (the probability that a value of one group beats one of the other, minus
the reverse), which needs no assumption about the distribution and copes with the
bimodal "trained / never trained" accuracies a search produces.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from bnsearch.claims import CONTRADICTED, INCONCLUSIVE, NOT_ESTIMABLE, SUPPORTED

MIN_TRIALS = 5  # trials per group below which a finding is "not estimable"
MIN_CLIFFS_DELTA = 0.33  # |Cliff's delta| from which a difference counts as clear
MIN_DIFF = 0.01  # difference of medians (accuracy 0..1) from which a difference counts


@dataclass(frozen=True, slots=True, kw_only=True)
class Group:
    """One group of trials a finding compares."""

    label: str  # e.g. "with BN"
    n: int  # trials in the group
    median: float | None  # median of the finding's metric (None when n == 0)
    note: str = ""  # extra evidence, e.g. "3 of 6 never trained"


@dataclass(frozen=True, slots=True, kw_only=True)
class Finding:
    """A claim, its verdict on this study's trials, and the evidence."""

    key: str  # one of bnsearch.claims's keys, e.g. "bn_accuracy" or "gamma_zeros_degenerate_relu"
    claim: str  # what the article (or common lore) claims
    verdict: str  # SUPPORTED, CONTRADICTED, INCONCLUSIVE (no clear difference) or NOT_ESTIMABLE
    summary: str  # the verdict in plain words with its numbers
    metric: str  # what was compared, e.g. "final val_acc of complete trials"
    groups: tuple[Group, ...]
    effect: float | None  # effect size (see effect_label); None without enough data
    effect_label: str  # what ``effect`` measures
    figure: str  # key of the report figure that shows it


def cliffs_delta(a: Sequence[float], b: Sequence[float]) -> float:
    """P(x > y) − P(x < y) for x from ``a`` and y from ``b``; in [-1, 1], 0 when equal."""
    if not a or not b:
        return 0.0
    gt = sum(1 for x in a for y in b if x > y)
    lt = sum(1 for x in a for y in b if x < y)
    return (gt - lt) / (len(a) * len(b))


def median(xs: Sequence[float]) -> float | None:
    """The median of ``xs``, None when empty."""
    s = sorted(xs)
    if not s:
        return None
    mid = len(s) // 2
    return s[mid] if len(s) % 2 else (s[mid - 1] + s[mid]) / 2


def _magnitude(delta: float) -> str:
    d = abs(delta)
    return "negligible" if d < 0.147 else "small" if d < 0.33 else "medium" if d < 0.474 else "large"


def _fmt(x: float | None) -> str:
    return "n/a" if x is None else f"{x:.3f}"


def compare_groups(
    *,
    key: str,
    claim: str,
    metric: str,
    figure: str,
    a_label: str,
    a: list[float],
    b_label: str,
    b: list[float],
    claim_kind: str,
    notes: tuple[str, str] = ("", ""),
) -> Finding:
    """Compare group ``a`` with group ``b`` on one metric.

    ``claim_kind`` says what the claim states about ``a``: ``higher`` or ``lower`` than
    ``b`` (a clear difference the other way contradicts it, no clear difference is
    INCONCLUSIVE), or ``not higher`` / ``not lower`` (only a clear difference the
    wrong way contradicts it).
    """
    groups = (
        Group(label=a_label, n=len(a), median=median(a), note=notes[0]),
        Group(label=b_label, n=len(b), median=median(b), note=notes[1]),
    )
    counts = f"n = {len(a)} {a_label}, n = {len(b)} {b_label}"
    if len(a) < MIN_TRIALS or len(b) < MIN_TRIALS:
        return Finding(
            key=key,
            claim=claim,
            verdict=NOT_ESTIMABLE,
            metric=metric,
            figure=figure,
            summary=f"Not estimable, too few trials: {counts}; each group needs at least {MIN_TRIALS}.",
            groups=groups,
            effect=None,
            effect_label="Cliff's delta",
        )
    delta = cliffs_delta(a, b)
    ma, mb = groups[0].median, groups[1].median
    assert ma is not None and mb is not None
    diff = ma - mb
    direction = "none"
    # Both measures must point the same way: a positive delta with a lower median is no evidence.
    if abs(delta) >= MIN_CLIFFS_DELTA and abs(diff) >= MIN_DIFF and (delta > 0) == (diff > 0):
        direction = "higher" if diff > 0 else "lower"
    if claim_kind in ("higher", "lower"):
        verdict = INCONCLUSIVE if direction == "none" else (SUPPORTED if direction == claim_kind else CONTRADICTED)
    else:  # "not higher" / "not lower"
        verdict = CONTRADICTED if f"not {direction}" == claim_kind else SUPPORTED
    words = "no clear difference" if direction == "none" else f"{a_label} is clearly {direction}"
    summary = (
        f"{verdict.capitalize()}: {words}; median {metric} {_fmt(ma)} {a_label} vs {_fmt(mb)} "
        f"{b_label} ({diff:+.3f}; Cliff's delta {delta:+.2f}, {_magnitude(delta)}; {counts})."
    )
    return Finding(
        key=key,
        claim=claim,
        verdict=verdict,
        summary=summary,
        metric=metric,
        figure=figure,
        groups=groups,
        effect=delta,
        effect_label="Cliff's delta",
    )
