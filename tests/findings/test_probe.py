"""The stable-lr probe: bisection over grid indices, its reading of any set of points, one real probe."""

from __future__ import annotations

import math
import random

import pytest

from bnsearch.core.data import DeviceData
from bnsearch.findings._design2 import BNCNN_ARMS, LRS2, PROBE_MARGIN, Cell2, max_probe_cells
from bnsearch.findings._probe import ProbePoint, is_stable, largest_stable_lr, next_probe_index
from bnsearch.findings._train import train_probe


def _point(lr: float, stable: bool) -> ProbePoint:
    return ProbePoint(lr=lr, val_acc=0.9 if stable else 0.1, diverged=False)


def _bisect(stable_up_to: int, lrs: tuple[float, ...] = LRS2) -> list[ProbePoint]:
    """The probe points a bisection collects when every index ≤ ``stable_up_to`` is stable."""
    verdicts: dict[int, bool] = {}
    while (i := next_probe_index(verdicts, len(lrs))) is not None:
        verdicts[i] = i <= stable_up_to
    return [_point(lrs[i], ok) for i, ok in verdicts.items()]


@pytest.mark.parametrize("limit", range(-1, len(LRS2)), ids=lambda i: f"stable up to index {i}")
def test_bisection_finds_the_limit_of_a_monotone_arm_in_few_probes(limit: int) -> None:
    points = _bisect(limit)
    assert len(points) <= max_probe_cells() == 5  # ceil(log2(17)), not 16 runs
    lr, censored = largest_stable_lr(points, LRS2)
    if limit < 0:
        assert (lr, censored) == (LRS2[0], True)  # nothing on the grid trains: the limit lies below
    else:
        assert lr == LRS2[limit]
        assert censored == (limit == len(LRS2) - 1)  # stable at the top: the limit may lie above


def test_the_first_probe_is_mid_grid_and_the_bisection_ends() -> None:
    assert next_probe_index({}, 16) == 7
    assert next_probe_index({7: True}, 16) == 11
    assert next_probe_index({7: False}, 16) == 3
    assert next_probe_index({i: i <= 9 for i in (7, 11, 9, 10)}, 16) is None


def test_non_monotone_points_are_read_from_the_bottom_whatever_their_order() -> None:
    # Stable 0–3, unstable 4, stable again 5–8 (e.g. a noisy probe), unstable above.
    pattern = [i <= 3 or 5 <= i <= 8 for i in range(len(LRS2))]
    points = [_point(lr, ok) for lr, ok in zip(LRS2, pattern, strict=True)]
    expected = (LRS2[3], False)  # the first failure from the bottom ends the stable range
    assert largest_stable_lr(points, LRS2) == expected
    shuffled = list(points)
    random.Random(0).shuffle(shuffled)
    assert largest_stable_lr(shuffled, LRS2) == expected


def test_an_unfinished_probe_or_an_lr_off_the_grid_is_an_error() -> None:
    with pytest.raises(ValueError, match="unfinished"):
        largest_stable_lr([_point(LRS2[7], True), _point(LRS2[11], False)], LRS2)
    with pytest.raises(ValueError, match="unfinished"):
        largest_stable_lr([_point(LRS2[7], False)], LRS2)
    with pytest.raises(ValueError, match="not on the grid"):
        largest_stable_lr([_point(0.5, True)], LRS2)


def test_stable_means_finite_and_above_chance_by_the_margin() -> None:
    assert is_stable(val_acc=0.1 + PROBE_MARGIN, diverged=False, chance=0.1)
    assert not is_stable(val_acc=0.1 + PROBE_MARGIN - 0.01, diverged=False, chance=0.1)
    assert not is_stable(val_acc=1.0, diverged=True, chance=0.1)
    assert ProbePoint(lr=1.0, val_acc=0.8, diverged=False).stable


def test_a_real_probe_trains_at_a_small_lr_and_fails_at_a_huge_one(tiny_digits: DeviceData) -> None:
    arm = BNCNN_ARMS[0]  # no BN
    good = train_probe(Cell2(arm, 0.0215, kind="probe"), tiny_digits, seed=0, steps=30)
    bad = train_probe(Cell2(arm, 10.0, kind="probe"), tiny_digits, seed=0, steps=30)
    assert is_stable(val_acc=good.val_acc, diverged=good.diverged, chance=0.1)
    assert not is_stable(val_acc=bad.val_acc, diverged=bad.diverged, chance=0.1)
    assert math.isnan(good.test_acc)  # a probe never touches the test split
    again = train_probe(Cell2(arm, 0.0215, kind="probe"), tiny_digits, seed=0, steps=30)
    assert again.val_acc == good.val_acc
