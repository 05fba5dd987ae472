"""Per-seed effects: one seed's cells → one paired effect (arm A − arm B) for a claim.

Plain Python on ``CellRecord``s (no Optuna, no torch). Each effect is computed within a seed
(same split, batch order and initial weights) from the estimands of ``_estimands``; a seed
whose cells are not all there gives no effect (``CELLS_MISSING``), checked in one place.

Design 1 names its grid (``MAIN_LRS``, ``ACTIVATION_LRS``); design 2 passes ``lrs=RECORDED``:
each arm's grid is then the lrs its grid cells have on the dataset (any seed), so an arm
trained on a sub-range has its own edges, and a seed that lacks one of them has no effect.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace

from bnsearch.findings import _estimands as est
from bnsearch.findings._design import ACTIVATION_LRS, CHECKPOINT_STEPS, CONVERGENCE_TARGET, MAIN_LRS, OTHER_ACTIVATIONS
from bnsearch.findings._design2 import probe_lrs
from bnsearch.findings._probe import ProbePoint, largest_stable_lr
from bnsearch.findings._records import CellRecord

CELLS_MISSING = "cells missing"
EDGE_NOTE = "had an arm's best lr at the edge of the grid (its tuned accuracy a lower bound)"
RECORDED = None  # ``lrs=RECORDED``: each arm's grid as the dataset's records have it (design 2)


@dataclass(frozen=True, slots=True)
class SeedView:
    """One dataset × seed's cells, by arm."""

    grid: dict[str, list[est.GridPoint]]
    curves: dict[tuple[str, float], tuple[tuple[int, float], ...]]
    fit: dict[str, CellRecord]
    n_test: int
    probe: dict[str, list[ProbePoint]] = field(default_factory=dict)  # design 2: probe cells by arm
    lrs: dict[str, tuple[float, ...]] = field(default_factory=dict)  # each arm's grid on the dataset (all seeds)

    def grid_of(self, arm: str, lrs: Sequence[float] | None) -> tuple[float, ...]:
        """``lrs`` (design 1), or the arm's recorded grid when ``lrs`` is ``RECORDED``."""
        return self.lrs.get(arm, ()) if lrs is RECORDED else tuple(lrs)

    def points(self, arm: str, lrs: Sequence[float] = MAIN_LRS) -> list[est.GridPoint]:
        wanted = {round(x, 12) for x in lrs}
        return [p for p in self.grid.get(arm, []) if round(p.lr, 12) in wanted]

    def complete(self, arm: str, lrs: Sequence[float]) -> bool:
        return len(self.points(arm, lrs)) == len(lrs)


def seed_views(records: Sequence[CellRecord]) -> dict[str, dict[int, SeedView]]:
    """dataset → seed → that seed's cells."""
    out: dict[str, dict[int, SeedView]] = {}
    grids: dict[str, dict[str, set[float]]] = {}  # dataset → arm → the lrs of its grid cells
    for r in records:
        lrs = grids.setdefault(r.dataset, {})
        view = out.setdefault(r.dataset, {}).setdefault(r.seed, SeedView({}, {}, {}, r.n_test, lrs={}))
        if r.kind == "fit":
            view.fit[r.arm] = r
            continue
        if r.kind == "probe":
            view.probe.setdefault(r.arm, []).append(ProbePoint(lr=r.lr, val_acc=r.val_acc, diverged=r.diverged))
            continue
        lrs.setdefault(r.arm, set()).add(r.lr)
        point = est.GridPoint(lr=r.lr, val_acc=r.val_acc, test_acc=r.test_acc, diverged=r.diverged)
        view.grid.setdefault(r.arm, []).append(replace(point, test_nll=r.test_nll, early_loss=r.early_loss))
        if r.curve:
            view.curves[(r.arm, round(r.lr, 12))] = r.curve
    for dataset, seeds in out.items():
        recorded = {arm: tuple(sorted({round(x, 12) for x in xs})) for arm, xs in grids[dataset].items()}
        for view in seeds.values():
            view.lrs.update(recorded)
    return out


@dataclass(frozen=True, slots=True)
class SeedEffect:
    value: float | None  # None: this seed has no effect for the claim (cells missing, censored)
    within_se: float = 0.0  # sampling error of the value inside the seed (for the bootstrap)
    note: str = ""  # e.g. "censored"
    edge: bool = False  # an arm's best lr sat on its grid's edge (its tuned value a bound)

    @property
    def notes(self) -> tuple[str, ...]:
        """What the verdict reports of this seed: its note and the edge flag."""
        return tuple(n for n in (self.note, EDGE_NOTE if self.edge else "") if n)


EffectFn = Callable[[SeedView], SeedEffect]


def _on_grid(arms: Sequence[str], lrs: Sequence[float] | None, compute: EffectFn) -> EffectFn:
    """``compute`` on a seed whose grid cells of ``arms`` × their grids are all there, else no effect."""

    def f(v: SeedView) -> SeedEffect:
        if not all((grid := v.grid_of(arm, lrs)) and v.complete(arm, grid) for arm in arms):
            return SeedEffect(None, note=CELLS_MISSING)
        return compute(v)

    return f


def _best(v: SeedView, arm: str, lrs: Sequence[float] | None) -> tuple[est.GridPoint, bool]:
    """The arm's point at its best lr (chosen on validation), and whether that lr is on its grid's edge."""
    grid = v.grid_of(arm, lrs)
    best = est.best_on_validation(v.points(arm, grid))
    return best, est.best_lr_on_edge(best, grid)


def _acc_diff(a: est.GridPoint, b: est.GridPoint, n: int) -> SeedEffect:
    return SeedEffect(100 * (a.test_acc - b.test_acc), 100 * est.binomial_se(a.test_acc, b.test_acc, n))


def tuned(arm_a: str, arm_b: str, lrs: Sequence[float] | None = MAIN_LRS) -> EffectFn:
    """Test accuracy at each arm's best lr (chosen on validation), A − B, in points."""

    def f(v: SeedView) -> SeedEffect:
        (best_a, edge_a), (best_b, edge_b) = _best(v, arm_a, lrs), _best(v, arm_b, lrs)
        # A best lr at either end of the grid may have a better one beyond it: the tuned
        # accuracy is then a lower bound, and the verdict says how many seeds that concerns.
        return replace(_acc_diff(best_a, best_b, v.n_test), edge=edge_a or edge_b)

    return _on_grid((arm_a, arm_b), lrs, f)


def tuned_nll(arm_a: str, arm_b: str, lrs: Sequence[float] | None = RECORDED) -> EffectFn:
    """Test NLL (nats) of each arm's net at its best lr (chosen on validation accuracy), A − B."""

    def f(v: SeedView) -> SeedEffect:
        (best_a, edge_a), (best_b, edge_b) = _best(v, arm_a, lrs), _best(v, arm_b, lrs)
        nll_a, nll_b = best_a.test_nll, best_b.test_nll
        if nll_a is None or nll_b is None or not math.isfinite(nll_a - nll_b):
            return SeedEffect(None, note="no test NLL")
        return SeedEffect(nll_a - nll_b, edge=edge_a or edge_b)

    return _on_grid((arm_a, arm_b), lrs, f)


def optimal_lr(arm_a: str, arm_b: str, lrs: Sequence[float] | None = RECORDED) -> EffectFn:
    """log of the ratio of the best-validation lrs, A / B (edge-flagged: then a bound)."""

    def f(v: SeedView) -> SeedEffect:
        (best_a, edge_a), (best_b, edge_b) = _best(v, arm_a, lrs), _best(v, arm_b, lrs)
        return SeedEffect(math.log(best_a.lr / best_b.lr), edge=edge_a or edge_b)

    return _on_grid((arm_a, arm_b), lrs, f)


def stable_lr(arm_a: str, arm_b: str) -> EffectFn:
    """log of the ratio of the largest lrs the probe finds stable, A / B ("censored" when either
    sits at its grid's top or bottom)."""

    def f(v: SeedView) -> SeedEffect:
        found = []
        for arm in (arm_a, arm_b):
            points = v.probe.get(arm)
            if not points:
                return SeedEffect(None, note=CELLS_MISSING)
            try:
                found.append(largest_stable_lr(points, probe_lrs()))
            except ValueError:  # a bisection cut short: its remaining probe cells are missing
                return SeedEffect(None, note=CELLS_MISSING)
        (la, ca), (lb, cb) = found
        return SeedEffect(math.log(la / lb), note="censored" if ca or cb else "")

    return f


def failure(arm_a: str, arm_b: str, *, low: float, below: float, lrs: Sequence[float] | None = RECORDED) -> EffectFn:
    """Share of the grid's lrs ≥ ``low`` at which training failed (diverged, or validation
    accuracy below ``below``), A − B, in percentage points."""

    def f(v: SeedView) -> SeedEffect:
        rate_a = est.failure_rate(v.points(arm_a, v.grid_of(arm_a, lrs)), low=low, below=below)
        rate_b = est.failure_rate(v.points(arm_b, v.grid_of(arm_b, lrs)), low=low, below=below)
        return SeedEffect(100 * (rate_a - rate_b))

    return _on_grid((arm_a, arm_b), lrs, f)


def early_loss(arm_a: str, arm_b: str, *, lr: float, lrs: Sequence[float] | None = RECORDED) -> EffectFn:
    """log of the ratio of the training loss over the first steps, A / B, both at the
    pre-registered ``lr`` (no effect on a seed where either diverged inside those steps)."""

    def f(v: SeedView) -> SeedEffect:
        a, b = v.points(arm_a, (lr,)), v.points(arm_b, (lr,))
        if not a or not b:
            return SeedEffect(None, note=CELLS_MISSING)
        la, lb = a[0].early_loss, b[0].early_loss
        if la is None or lb is None or not (math.isfinite(la) and math.isfinite(lb)) or min(la, lb) <= 0:
            return SeedEffect(None, note=f"diverged within the first steps at lr {lr:g}")
        return SeedEffect(math.log(la / lb))

    return _on_grid((arm_a, arm_b), lrs, f)


def at_lr(arm_a: str, arm_b: str, lr: float) -> EffectFn:
    """Validation accuracy of both arms trained at one fixed ``lr``, A − B, in points."""

    def f(v: SeedView) -> SeedEffect:
        a, b = v.points(arm_a, (lr,)), v.points(arm_b, (lr,))
        if not a or not b:
            return SeedEffect(None, note=CELLS_MISSING)
        pa, pb = a[0], b[0]
        return SeedEffect(100 * (pa.val_acc - pb.val_acc), 100 * est.binomial_se(pa.val_acc, pb.val_acc, v.n_test))

    return f


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


def steps(
    arm_a: str,
    arm_b: str,
    *,
    matched: bool,
    lrs: Sequence[float] | None = MAIN_LRS,
    edge: bool = False,
    target: float = CONVERGENCE_TARGET,
) -> EffectFn:
    """log(steps_a / steps_b) to ``target`` validation accuracy; matched: both at arm_b's best lr.
    ``edge``: flag a seed whose chosen lr sits on its grid's edge (design 2)."""

    def f(v: SeedView) -> SeedEffect:
        best_b, edge_b = _best(v, arm_b, lrs)
        best_a, edge_a = (best_b, False) if matched else _best(v, arm_a, lrs)
        ca, cb = v.curves.get((arm_a, round(best_a.lr, 12))), v.curves.get((arm_b, round(best_b.lr, 12)))
        if not ca or not cb:
            return SeedEffect(None, note="no curve")
        max_steps = max(s for s, _ in (*ca, *cb)) + CHECKPOINT_STEPS
        value, censored = est.log_steps_ratio(ca, cb, target, max_steps=max_steps)
        return SeedEffect(value, note="censored" if censored else "", edge=edge and (edge_a or edge_b))

    return _on_grid((arm_a, arm_b), lrs, f)


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


def activation_arms(place: str, net: str = "") -> tuple[str, ...]:
    """The four activations' arms with BN at ``place`` (``net``: design 2's prefix, ``plain:``)."""
    return tuple(f"{net}{a}/{place}" for a in ("relu", *OTHER_ACTIVATIONS))


def interaction(net: str = "", lrs: Sequence[float] | None = ACTIVATION_LRS, *, edge: bool = False) -> EffectFn:
    """Spread (best − worst) of the activations' tuned test accuracy, without BN − with BN before.
    ``edge``: flag a seed where some arm's best lr sits on its grid's edge (design 2)."""

    def f(v: SeedView) -> SeedEffect:
        best = {place: [_best(v, arm, lrs) for arm in activation_arms(place, net)] for place in ("none", "before")}
        spread = {place: est.spread([p.test_acc for p, _ in pts]) for place, pts in best.items()}
        on_edge = edge and any(e for pts in best.values() for _, e in pts)
        return SeedEffect(100 * (spread["none"] - spread["before"]), edge=on_edge)

    return _on_grid((*activation_arms("none", net), *activation_arms("before", net)), lrs, f)


activation_interaction: EffectFn = interaction()
