"""Design 2 with ``--pack``: a packed batch of grid cells measures what ``train_cell2`` measures of
each cell alone (accuracies, test NLL, early loss; a diverging member, and the twin arm with its
own batch order), a run packs only each arm's grid cells without a curve, and the rest is refused.

Tolerance: findings trains in fp32 (``design2_identity``'s ``"precision"``), pinned here so that
a CPU with bf16 units computes what one without them does. The packed model runs NCHW, so the
single cells here do too (``channels_last=False``): with channels_last the deep plain net turns
the convolutions' other rounding into a different run within a few steps (2 epochs at lr 0.01:
early loss 1% and validation accuracy 7 points apart), as unpacked training in the two layouts
differs, which is not what this file tests. Packed, the same sums still run in another order (one
grouped convolution per layer), which training amplifies at high lrs; at the lrs below the cells
agree to rounding: accuracies within one example, test NLL and early loss within 1e-4 relative.
"""

from __future__ import annotations

import math

import pytest

from bnsearch.core.data import DeviceData
from bnsearch.core.train import TrainConfig
from bnsearch.findings import _design2 as d2
from bnsearch.findings import _runner
from bnsearch.findings._design2 import PLAIN_BEFORE, PLAIN_NONE, RESNET_ARMS, Cell2
from bnsearch.findings._train import train_cell2, train_cells_packed2

FP32 = TrainConfig(precision="fp32", channels_last=False)
EPOCHS = 2  # tiny_digits has 10 steps per epoch: the early loss's 20 steps are both epochs
PLAIN_AFTER = d2.arm_by_name("plain:relu/after")  # BN, no curve
PLAIN_LEAKY_NONE = d2.arm_by_name("plain:leaky_relu/none")  # no BN, no curve
TWIN = d2.BNCNN_ARMS[4]
DIVERGING_LR = 10.0
PACKS = {
    "plain-bn": [Cell2(PLAIN_AFTER, lr) for lr in (0.001, 0.003, 0.01)],
    "plain-no-bn-one-diverges": [Cell2(PLAIN_LEAKY_NONE, lr) for lr in (0.01, 0.05, DIVERGING_LR)],
    "resnet-zero-last": [Cell2(RESNET_ARMS[1], lr) for lr in (0.01, 0.03)],
    "bncnn-twin": [Cell2(TWIN, lr) for lr in (0.01, 0.05)],
}


def _same(a: float | None, b: float | None) -> bool:
    assert a is not None and b is not None
    if math.isnan(a) or math.isinf(a):
        return (math.isnan(a) and math.isnan(b)) or a == b
    return a == pytest.approx(b, rel=1e-4)


@pytest.mark.parametrize("name", PACKS)
def test_a_packed_batch_measures_what_train_cell2_measures(tiny_digits: DeviceData, name: str) -> None:
    cells = PACKS[name]
    packed = train_cells_packed2(cells, tiny_digits, seed=0, epochs=EPOCHS, cfg=FP32)
    n_val, n_test = len(tiny_digits.val_y), len(tiny_digits.test_y)
    for cell, got in zip(cells, packed, strict=True):
        alone = train_cell2(cell, tiny_digits, seed=0, epochs=EPOCHS, cfg=FP32)
        assert (got.diverged, got.epochs_run, got.curve) == (alone.diverged, alone.epochs_run, ()), cell.key
        assert abs(got.val_acc - alone.val_acc) <= 1 / n_val + 1e-12, cell.key
        assert abs(got.test_acc - alone.test_acc) <= 1 / n_test + 1e-12, cell.key
        assert _same(got.test_nll, alone.test_nll), (cell.key, got.test_nll, alone.test_nll)
        assert _same(got.early_loss, alone.early_loss), (cell.key, got.early_loss, alone.early_loss)
        assert got.wall_time_s > 0
    if name == "plain-no-bn-one-diverges":
        blown = packed[-1]
        assert blown.diverged and blown.val_acc == blown.test_acc == 1 / tiny_digits.num_classes
        assert blown.test_nll is not None and math.isnan(blown.test_nll)
        assert not any(o.diverged for o in packed[:-1])  # the others trained on without it


@pytest.mark.parametrize(
    "cell",
    [Cell2(PLAIN_NONE, 0.01, kind="probe"), Cell2(PLAIN_BEFORE, 0.01)],
    ids=["probe", "curve"],
)
def test_probes_and_curve_cells_are_not_packed(tiny_digits: DeviceData, cell: Cell2) -> None:
    with pytest.raises(ValueError, match="train one by one"):
        train_cells_packed2([cell, Cell2(PLAIN_AFTER, 0.01)], tiny_digits, seed=0, epochs=1)


def test_a_run_packs_each_arms_grid_cells_without_a_curve() -> None:
    cells = d2.design2_cells()
    batches = _runner._batches(cells, 4)
    assert sorted(c.key for b in batches for c in b) == sorted(c.key for c in cells)
    assert all(len(b) <= 4 and len({c.arm.name for c in b}) == 1 for b in batches)
    assert all(len(b) == 1 for b in batches if any(c.checkpoints for c in b))
    for arm in d2.ARMS2:  # as few packs as the arm's cells without a curve fill
        free = [c for c in cells if c.arm == arm and not c.checkpoints]
        assert sum(b[0].arm == arm and not b[0].checkpoints for b in batches) == math.ceil(len(free) / 4)
    assert _runner._batches(cells, 1) == [[c] for c in cells]
