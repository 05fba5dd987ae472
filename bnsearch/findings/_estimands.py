"""What each claim measures on one seed: plain functions of that seed's trained cells.

No Optuna, no torch: a ``GridPoint`` is one arm trained at one learning rate (its final
validation accuracy and its test accuracy); a curve is ``(step, validation accuracy)`` pairs.
The lr is always **chosen on validation** and the chosen net **scored once on test**.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

WITHIN = 0.02  # "within 2 points of the arm's best" (accuracy 0..1)


@dataclass(frozen=True, slots=True, kw_only=True)
class GridPoint:
    """One arm trained at one lr on one seed."""

    lr: float
    val_acc: float  # final validation accuracy (0..1); chance level when the loss diverged
    test_acc: float  # test accuracy (0..1) of the same net; chance level when diverged
    diverged: bool = False
    test_nll: float | None = None  # design 2: mean test NLL (nats) of the same net
    early_loss: float | None = None  # design 2: mean training loss over the first steps


def best_on_validation(points: Sequence[GridPoint]) -> GridPoint:
    """The point with the highest validation accuracy; a tie goes to the smaller lr."""
    if not points:
        raise ValueError("no grid points")
    return max(sorted(points, key=lambda p: p.lr), key=lambda p: p.val_acc)


def tuned_test_acc(points: Sequence[GridPoint]) -> float:
    """Test accuracy at the lr picked on validation: what the arm reaches when tuned."""
    return best_on_validation(points).test_acc


def grid_mean_test_acc(points: Sequence[GridPoint]) -> float:
    """Mean test accuracy over the whole lr grid: robustness to the grid, not tuned accuracy."""
    return sum(p.test_acc for p in points) / len(points)


def largest_good_lr(points: Sequence[GridPoint], *, within: float = WITHIN) -> tuple[float, bool]:
    """The largest lr whose validation accuracy is within ``within`` of the arm's best, and
    whether it is censored (the grid's largest lr: the true limit may lie above the grid)."""
    best = best_on_validation(points).val_acc
    good = [p.lr for p in points if p.val_acc >= best - within and not p.diverged]
    top = max(good) if good else best_on_validation(points).lr
    return top, top >= max(p.lr for p in points)


def lr_window_decades(points: Sequence[GridPoint], *, within: float = WITHIN) -> float:
    """Width, in decades of lr, of the grid span whose points come within ``within`` of the
    arm's best (0 when only one lr does)."""
    best = best_on_validation(points).val_acc
    good = [p.lr for p in points if p.val_acc >= best - within and not p.diverged]
    return math.log10(max(good) / min(good)) if good else 0.0


def diverged_lrs(points: Sequence[GridPoint]) -> list[float]:
    """The lrs at which the loss became NaN/inf, ascending."""
    return sorted(p.lr for p in points if p.diverged)


def failed_lrs(points: Sequence[GridPoint], *, below: float = 0.2) -> list[float]:
    """The lrs at which the arm did not train: diverged, or validation accuracy below ``below``
    (twice chance with 10 classes), ascending."""
    return sorted(p.lr for p in points if p.diverged or p.val_acc < below)


def steps_to_target(curve: Sequence[tuple[int, float]], target: float) -> int | None:
    """The first checkpoint step whose validation accuracy reaches ``target`` (None: never)."""
    for step, acc in sorted(curve):
        if acc >= target:
            return step
    return None


def log_steps_ratio(
    curve_a: Sequence[tuple[int, float]],
    curve_b: Sequence[tuple[int, float]],
    target: float,
    *,
    max_steps: int,
) -> tuple[float | None, int]:
    """``log(steps_a / steps_b)`` to reach ``target``, and how many of the two never reached it.

    A curve that never reaches the target counts as ``max_steps`` (censored: its real number is
    larger), which shrinks the effect toward 0 when the other one did reach it. When neither
    reached it the seed has no effect (None).
    """
    a, b = steps_to_target(curve_a, target), steps_to_target(curve_b, target)
    censored = (a is None) + (b is None)
    if a is None and b is None:
        return None, censored
    return math.log((a or max_steps) / (b or max_steps)), censored


def spread(values: Sequence[float]) -> float:
    """max − min."""
    return max(values) - min(values)


def binomial_se(acc_a: float, acc_b: float, n: int) -> float:
    """Sampling error of ``acc_a − acc_b`` from ``n`` test examples each (independent arms:
    an upper bound for paired nets scored on the same examples)."""
    if n <= 0:
        return 0.0
    return math.sqrt((acc_a * (1 - acc_a) + acc_b * (1 - acc_b)) / n)


def best_lr_on_edge(best: GridPoint, lrs: Sequence[float]) -> bool:
    """Whether an arm's best lr is its grid's smallest or largest (a better one may lie beyond)."""
    return best.lr in (min(lrs), max(lrs))


def failure_rate(points: Sequence[GridPoint], *, low: float, below: float) -> float:
    """Fraction (0..1) of the grid's lrs ≥ ``low`` at which training failed: the loss diverged,
    or validation accuracy ended below ``below`` (a net stuck near chance with a finite loss
    failed as surely as one whose loss overflowed). 0 when the grid has no such lr."""
    high = [p for p in points if p.lr >= low * (1 - 1e-9)]
    return sum(p.diverged or p.val_acc < below for p in high) / len(high) if high else 0.0
