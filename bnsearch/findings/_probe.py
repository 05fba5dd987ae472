"""The stable-lr probe: the largest lr at which a net trains, found by bisection (pure, no torch).

A **probe** is a short run (``PROBE_STEPS`` SGD steps) of one arm at one grid lr. The lr is
**stable** when the loss stayed finite and the net then beats chance by ``PROBE_MARGIN`` on
validation. The probe searches the largest stable lr of the grid by bisection over the grid's
indices, so an arm needs about log2(len(grid) + 1) runs instead of one per lr.

Assumption: stability is monotone in the lr (every lr below a stable one is stable, every lr
above an unstable one is unstable). Bisection only samples the grid, so a non-monotone arm
(e.g. an lr too small to beat chance in ``PROBE_STEPS`` steps below a stable one) is not
detected where it was not probed. ``largest_stable_lr`` reads any set of probed points the
same deterministic way (see there), so the answer never depends on the order they arrived in.

Bisection makes the next probe depend on the earlier ones: ``next_probe_index`` replays it from
the verdicts stored so far, so an interrupted run resumes in the middle of a bisection.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from bnsearch.findings._design2 import PROBE_MARGIN, PROBE_STEPS

__all__ = [
    "PROBE_MARGIN",
    "PROBE_STEPS",
    "ProbePoint",
    "is_stable",
    "largest_stable_lr",
    "next_probe_index",
]


@dataclass(frozen=True, slots=True, kw_only=True)
class ProbePoint:
    """One probe run: an arm trained ``PROBE_STEPS`` steps at ``lr``."""

    lr: float
    val_acc: float  # validation accuracy after the probe (BN recomputed); chance when diverged
    diverged: bool
    chance: float = 0.1  # accuracy of guessing: 1 / number of classes

    @property
    def stable(self) -> bool:
        return is_stable(val_acc=self.val_acc, diverged=self.diverged, chance=self.chance)


def is_stable(*, val_acc: float, diverged: bool, chance: float, margin: float = PROBE_MARGIN) -> bool:
    """The probe's verdict on one lr: the loss stayed finite and validation beat chance by ``margin``."""
    return not diverged and val_acc >= chance + margin


def next_probe_index(verdicts: Mapping[int, bool], n: int) -> int | None:
    """The grid index to probe next, given the verdicts so far (index → stable), or None when
    the bisection is over. Both ends start open (no lr of the grid assumed stable or unstable),
    so a grid of ``n`` lrs takes at most ceil(log2(n + 1)) probes."""
    lo, hi = -1, n  # largest index known stable, smallest known unstable
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if mid not in verdicts:
            return mid
        if verdicts[mid]:
            lo = mid
        else:
            hi = mid
    return None


def grid_index(lrs: Sequence[float], lr: float) -> int:
    """The index of ``lr`` in the grid ``lrs`` (equal to 1e-9 relative).

    Raises:
        ValueError: ``lr`` is not on the grid.
    """
    for i, x in enumerate(lrs):
        if abs(x - lr) <= 1e-9 * max(abs(x), abs(lr)):
            return i
    raise ValueError(f"probe lr {lr:g} is not on the grid {', '.join(f'{x:g}' for x in lrs)}")


def verdicts_by_index(points: Sequence[ProbePoint], lrs: Sequence[float]) -> dict[int, bool]:
    """Grid index → stable, for the probed points (``lrs`` ascending; each point's lr on it)."""
    return {grid_index(lrs, p.lr): p.stable for p in points}


def largest_stable_lr(points: Sequence[ProbePoint], lrs: Sequence[float]) -> tuple[float, bool]:
    """The largest stable lr of the grid ``lrs`` (ascending) from the probed ``points``, and
    whether it is censored: no lr of the grid was unstable above it (it is the grid's top, and
    the true limit may lie higher) or none was stable (the grid's bottom is returned, and the
    true limit lies lower).

    The rule, for any set of points: the smallest unstable probed index ``u`` ends the stable
    range, and the answer is the largest stable probed index below ``u``. On points from a
    bisection that is the bisection's result. On non-monotone data (a stable lr above an
    unstable one) the first failure from the bottom wins: a conservative, order-free reading.

    Raises:
        ValueError: a point's lr is not on the grid, or the points do not settle the answer
            (the stable and unstable indices around it are not neighbours: an unfinished probe).
    """
    if not lrs:
        raise ValueError("empty lr grid")
    verdicts = verdicts_by_index(points, lrs)
    n = len(lrs)
    u = min((i for i, ok in verdicts.items() if not ok), default=n)
    s = max((i for i, ok in verdicts.items() if ok and i < u), default=-1)
    if u - s != 1:
        raise ValueError(
            f"the probe is unfinished: stable up to lr {lrs[s]:g} and unstable from "
            f"{lrs[u]:g}, with untried lrs between"
            if 0 <= s and u < n
            else "the probe is unfinished: the points do not pin the largest stable lr to neighbouring grid lrs"
        )
    if s < 0:
        return lrs[0], True
    return lrs[s], s == n - 1
