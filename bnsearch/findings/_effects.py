"""Per-seed effects: one seed's cells → one paired effect (arm A − arm B) for a claim.

Plain Python on ``CellRecord``s (no Optuna, no torch). Each effect is computed within a seed
(same split, batch order and initial weights) from the estimands of ``_estimands``; a seed
whose cells are not all there gives no effect (``CELLS_MISSING``), checked in one place.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

from bnsearch.findings import _estimands as est
from bnsearch.findings._design import ACTIVATION_LRS, CHECKPOINT_STEPS, CONVERGENCE_TARGET, MAIN_LRS, OTHER_ACTIVATIONS
from bnsearch.findings._records import CellRecord

CELLS_MISSING = "cells missing"
EDGE_NOTE = "had an arm's best lr at the edge of the grid (its tuned accuracy a lower bound)"


@dataclass(frozen=True, slots=True)
class SeedView:
    """One dataset × seed's cells, by arm."""

    grid: dict[str, list[est.GridPoint]]
    curves: dict[tuple[str, float], tuple[tuple[int, float], ...]]
    fit: dict[str, CellRecord]
    n_test: int

    def points(self, arm: str, lrs: Sequence[float] = MAIN_LRS) -> list[est.GridPoint]:
        wanted = {round(x, 12) for x in lrs}
        return [p for p in self.grid.get(arm, []) if round(p.lr, 12) in wanted]

    def complete(self, arm: str, lrs: Sequence[float]) -> bool:
        return len(self.points(arm, lrs)) == len(lrs)


def seed_views(records: Sequence[CellRecord]) -> dict[str, dict[int, SeedView]]:
    """dataset → seed → that seed's cells."""
    out: dict[str, dict[int, SeedView]] = {}
    for r in records:
        view = out.setdefault(r.dataset, {}).setdefault(r.seed, SeedView({}, {}, {}, r.n_test))
        if r.kind == "fit":
            view.fit[r.arm] = r
            continue
        view.grid.setdefault(r.arm, []).append(
            est.GridPoint(lr=r.lr, val_acc=r.val_acc, test_acc=r.test_acc, diverged=r.diverged)
        )
        if r.curve:
            view.curves[(r.arm, round(r.lr, 12))] = r.curve
    return out


@dataclass(frozen=True, slots=True)
class SeedEffect:
    value: float | None  # None: this seed has no effect for the claim (cells missing, censored)
    within_se: float = 0.0  # sampling error of the value inside the seed (for the bootstrap)
    note: str = ""  # e.g. "censored"


EffectFn = Callable[[SeedView], SeedEffect]


def _on_grid(arms: Sequence[str], lrs: Sequence[float], compute: EffectFn) -> EffectFn:
    """``compute`` on a seed whose grid cells of ``arms`` × ``lrs`` are all there, else no effect."""

    def f(v: SeedView) -> SeedEffect:
        if not all(v.complete(arm, lrs) for arm in arms):
            return SeedEffect(None, note=CELLS_MISSING)
        return compute(v)

    return f


def _acc_diff(a: est.GridPoint, b: est.GridPoint, n: int) -> SeedEffect:
    return SeedEffect(100 * (a.test_acc - b.test_acc), 100 * est.binomial_se(a.test_acc, b.test_acc, n))


def tuned(arm_a: str, arm_b: str, lrs: Sequence[float] = MAIN_LRS) -> EffectFn:
    """Test accuracy at each arm's best lr (chosen on validation), A − B, in points."""

    def f(v: SeedView) -> SeedEffect:
        best_a = est.best_on_validation(v.points(arm_a, lrs))
        best_b = est.best_on_validation(v.points(arm_b, lrs))
        effect = _acc_diff(best_a, best_b, v.n_test)
        # A best lr at either end of the grid may have a better one beyond it: the tuned
        # accuracy is then a lower bound, and the verdict says how many seeds that concerns.
        if {best_a.lr, best_b.lr} & {min(lrs), max(lrs)}:
            return replace(effect, note=EDGE_NOTE)
        return effect

    return _on_grid((arm_a, arm_b), lrs, f)


def grid_mean(arm_a: str, arm_b: str) -> EffectFn:
    """Mean test accuracy over the lr grid, A − B, in points."""

    def f(v: SeedView) -> SeedEffect:
        a, b = est.grid_mean_test_acc(v.points(arm_a)), est.grid_mean_test_acc(v.points(arm_b))
        dead = est.failed_lrs(v.points(arm_b))
        note = f"{arm_b} did not train (val acc < 20%) at lr {', '.join(f'{x:g}' for x in dead)}" if dead else ""
        return SeedEffect(100 * (a - b), note=note)

    return _on_grid((arm_a, arm_b), MAIN_LRS, f)


def lr_limit(arm_a: str, arm_b: str) -> EffectFn:
    """log of the ratio of the largest lrs within reach of each arm's best, A / B."""

    def f(v: SeedView) -> SeedEffect:
        (la, ca), (lb, cb) = est.largest_good_lr(v.points(arm_a)), est.largest_good_lr(v.points(arm_b))
        note = "censored" if ca or cb else ""
        return SeedEffect(math.log(la / lb), note=note)

    return _on_grid((arm_a, arm_b), MAIN_LRS, f)


def lr_window(arm_a: str, arm_b: str) -> EffectFn:
    """Width in decades of the lrs within reach of each arm's best, A − B."""

    def f(v: SeedView) -> SeedEffect:
        return SeedEffect(est.lr_window_decades(v.points(arm_a)) - est.lr_window_decades(v.points(arm_b)))

    return _on_grid((arm_a, arm_b), MAIN_LRS, f)


def steps(arm_a: str, arm_b: str, *, matched: bool) -> EffectFn:
    """log(steps_a / steps_b) to CONVERGENCE_TARGET; matched: both at arm_b's best lr."""

    def f(v: SeedView) -> SeedEffect:
        lr_b = est.best_on_validation(v.points(arm_b)).lr
        lr_a = lr_b if matched else est.best_on_validation(v.points(arm_a)).lr
        ca, cb = v.curves.get((arm_a, round(lr_a, 12))), v.curves.get((arm_b, round(lr_b, 12)))
        if not ca or not cb:
            return SeedEffect(None, note="no curve")
        max_steps = max(s for s, _ in (*ca, *cb)) + CHECKPOINT_STEPS
        value, censored = est.log_steps_ratio(ca, cb, CONVERGENCE_TARGET, max_steps=max_steps)
        return SeedEffect(value, note="censored" if censored else "")

    return _on_grid((arm_a, arm_b), MAIN_LRS, f)


def fit_gap(arm_a: str, arm_b: str) -> EffectFn:
    """Train − test accuracy gap once each arm fits the training subset, A − B, in points."""

    def f(v: SeedView) -> SeedEffect:
        a, b = v.fit.get(arm_a), v.fit.get(arm_b)
        if a is None or b is None:
            return SeedEffect(None, note=CELLS_MISSING)
        if not (a.fit_reached and b.fit_reached):
            return SeedEffect(None, note="did not fit")
        gap_a = (a.fit_train_acc or 0.0) - a.test_acc
        gap_b = (b.fit_train_acc or 0.0) - b.test_acc
        return SeedEffect(100 * (gap_a - gap_b), 100 * est.binomial_se(a.test_acc, b.test_acc, v.n_test))

    return f


def _activation_arms(place: str) -> tuple[str, ...]:
    return tuple(f"{a}/{place}" for a in ("relu", *OTHER_ACTIVATIONS))


def _interaction(v: SeedView) -> SeedEffect:
    spread = {
        place: est.spread([est.tuned_test_acc(v.points(arm, ACTIVATION_LRS)) for arm in _activation_arms(place)])
        for place in ("none", "before")
    }
    return SeedEffect(100 * (spread["none"] - spread["before"]))


# Spread (best − worst) of the activations' tuned test accuracy, without BN − with BN before.
activation_interaction: EffectFn = _on_grid(
    (*_activation_arms("none"), *_activation_arms("before")), ACTIVATION_LRS, _interaction
)
