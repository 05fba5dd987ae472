"""Design 2 (issue 24): arms and grids, identity, pairing, the measurements of a cell, the cost estimate."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from bnsearch.core.data import DeviceData
from bnsearch.core.model import ModelConfig, build_model
from bnsearch.core.resnet import ResNet
from bnsearch.core.seeding import derive_seed
from bnsearch.core.train import train
from bnsearch.errors import ConfigError
from bnsearch.findings import _design2 as d2
from bnsearch.findings._design import QUICK_SEEDS2, FindingsConfig, design_identity
from bnsearch.findings._design2 import (
    LRS2,
    PLAIN_BEFORE,
    PLAIN_NONE,
    POSITIVE_CONTROL_LR,
    RESNET_ARMS,
    RESNET_EARLY_LR,
    Cell2,
    design2_cells,
    design2_identity,
    estimate_wall_s,
    grid_lrs,
)
from bnsearch.findings._train import EarlyLoss, make_model, train_cell2

SPEC_ARMS = {
    "bncnn:relu/none",
    "bncnn:relu/before",
    "bncnn:relu/after",
    "bncnn:relu/before+bn1d",
    "bncnn:relu/before#twin",
    "plain:relu/none",
    "plain:relu/before",
    "plain:relu/after",
    *(f"plain:{a}/{p}" for a in ("leaky_relu", "tanh", "sigmoid") for p in ("none", "before")),
    "resnet:relu/post",
    "resnet:relu/post/zero_last",
}


def test_the_grid_spans_1e_4_to_10_three_per_decade() -> None:
    assert len(LRS2) == 16 and LRS2[0] == 1e-4 and LRS2[-1] == 10.0
    assert LRS2[1:4] == (2.15e-4, 4.64e-4, 1e-3)
    steps = [math.log10(b / a) for a, b in zip(LRS2, LRS2[1:], strict=False)]
    assert all(abs(s - 1 / 3) < 0.01 for s in steps)


def test_the_arms_are_the_specs_and_each_trains_on_a_contiguous_sub_grid() -> None:
    assert {a.name for a in d2.ARMS2} == SPEC_ARMS and len(d2.ARMS2) == len(SPEC_ARMS)
    for arm in d2.ARMS2:
        lrs = grid_lrs(arm.name)
        start = LRS2.index(lrs[0])
        assert lrs == LRS2[start : start + len(lrs)] and len(lrs) >= 7
    assert POSITIVE_CONTROL_LR in grid_lrs("plain:relu/none") and POSITIVE_CONTROL_LR in grid_lrs("plain:relu/before")
    assert all(RESNET_EARLY_LR in grid_lrs(a) for a in RESNET_ARMS)
    with pytest.raises(KeyError, match="no design-2 arm named 'relu/before'"):
        grid_lrs("relu/before")


def test_cells_are_one_per_arm_and_grid_lr_and_can_be_limited_to_arms() -> None:
    cells = design2_cells()
    assert len({c.key for c in cells}) == len(cells) == sum(len(grid_lrs(a)) for a in d2.ARMS2)
    assert all(c.kind == "grid" for c in cells)
    assert {c.arm.name for c in cells if c.checkpoints} == {"plain:relu/none", "plain:relu/before"}
    some = design2_cells(["resnet:relu/post", "plain:relu/none"])
    assert {c.arm.name for c in some} == {"resnet:relu/post", "plain:relu/none"}
    assert len(some) == len(grid_lrs("resnet:relu/post")) + len(grid_lrs("plain:relu/none"))
    assert Cell2(PLAIN_BEFORE, 0.1, kind="probe").key == "probe:plain:relu/before:lr=0.1"
    assert not Cell2(PLAIN_BEFORE, 0.1, kind="probe").checkpoints
    assert d2.probe_arms(["resnet:relu/post"]) == ()
    with pytest.raises(KeyError):
        design2_cells(["plain:relu/nonsense"])


def test_the_identity_says_design_2_and_design_1_is_unchanged() -> None:
    ident = design2_identity("digits")
    assert ident["design"] == 2 and ident["kind"] == "findings"
    assert ident["splits"] == {"val": 0.25, "test": 0.35}
    assert ident["nets"]["plain"]["depth"] >= 12
    assert set(ident["arms"]) == SPEC_ARMS
    assert "design" not in design_identity("digits")


def test_design_2_config_names_its_studies_and_refuses_what_it_does_not_do() -> None:
    cfg = FindingsConfig(design=2)
    cfg.validate()
    assert cfg.study_name("digits", 0) == "findings2-digits-s0"
    assert FindingsConfig().study_name("digits", 0) == "findings-digits-s0"
    assert FindingsConfig.quick(design=2).seeds == QUICK_SEEDS2
    for kw, message in (
        ({"design": 3}, "--design must be one of: 1, 2, got 3"),
        ({"design": 2, "model": "plain"}, "--model plain applies to --design 1 only"),
        ({"design": 2, "device": "nosuch"}, "unknown device 'nosuch'"),
    ):
        with pytest.raises(ConfigError, match=message):
            FindingsConfig(**kw).validate()  # type: ignore[arg-type]


def _weights(model: nn.Module) -> list[torch.Tensor]:
    return [m.weight.detach().clone() for m in model.modules() if isinstance(m, nn.Conv2d | nn.Linear)]


def test_plain_arms_share_their_initial_weights_and_the_net_is_deep(tiny_digits: DeviceData) -> None:
    a = make_model(Cell2(PLAIN_NONE, 0.1), tiny_digits, seed=3, epochs=1, net="plain")
    b = make_model(Cell2(PLAIN_BEFORE, 1.0), tiny_digits, seed=3, epochs=1, net="plain")
    assert sum(isinstance(m, nn.Conv2d) for m in a.modules()) == d2.PLAIN_DEPTH >= 12
    for wa, wb in zip(_weights(a), _weights(b), strict=True):
        assert torch.equal(wa, wb)


def test_resnet_zero_last_zeroes_the_last_bn_of_each_branch_only() -> None:
    params = RESNET_ARMS[1].params(lr=0.1, epochs=1)
    model = build_model(params, in_shape=(1, 8, 8), num_classes=10, seed=0, cfg=ModelConfig(model="resnet"))
    assert isinstance(model, ResNet)
    last = model.branch_last_norms()
    assert last and all(torch.all(m.weight == 0) for m in last)  # type: ignore[union-attr]
    others = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d) and all(m is not x for x in last)]
    assert others and all(torch.all(m.weight == 1) for m in others)


def test_early_loss_replays_the_batches_train_draws(tiny_digits: DeviceData) -> None:
    """Over two whole epochs the early loss is the mean of ``train()``'s own two epoch losses."""
    cell = Cell2(d2.BNCNN_ARMS[1], 0.05)
    model = make_model(cell, tiny_digits, seed=0, epochs=2)
    params = cell.arm.params(lr=cell.lr, epochs=2)
    steps = math.ceil(len(tiny_digits.train_y) / params.batch_size)
    early = EarlyLoss(model, tiny_digits, params, seed=derive_seed(0, "batches"), steps=2 * steps)
    result = train(model, tiny_digits, params, seed=derive_seed(0, "batches"))
    epoch_mean = (result.history[0].train_loss + result.history[1].train_loss) / 2
    assert early.value(diverged=False) == pytest.approx(epoch_mean, rel=1e-5)
    cut = EarlyLoss(model, tiny_digits, params, seed=derive_seed(0, "batches"), steps=3 * steps)
    train(model, tiny_digits, params, seed=derive_seed(0, "batches"))  # 2 of the 3 epochs
    assert cut.value(diverged=True) == math.inf  # stopped by a divergence inside the early steps


def test_a_grid_cell_records_test_nll_early_loss_and_a_curve(tiny_digits: DeviceData) -> None:
    out = train_cell2(Cell2(PLAIN_BEFORE, 0.05), tiny_digits, seed=1, epochs=3)
    assert out.test_nll is not None and 0 < out.test_nll < 10
    assert out.early_loss is not None and 0 < out.early_loss < 10
    assert [s for s, _ in out.curve] == [20]  # 300 × 0.7 / 32 → 7 steps per epoch, 21 in all
    assert {"test_nll", "early_loss"} <= set(out.to_attrs())
    blown = train_cell2(Cell2(d2.BNCNN_ARMS[0], 10.0), tiny_digits, seed=1, epochs=3)
    assert blown.early_loss is not None and blown.early_loss > 100  # no BN at lr 10: the loss explodes
    assert (blown.test_nll is not None and math.isnan(blown.test_nll)) == blown.diverged


def test_the_twin_differs_from_its_original_only_in_batch_order(tiny_digits: DeviceData) -> None:
    original, twin = d2.BNCNN_ARMS[1], d2.BNCNN_ARMS[4]
    assert twin.twin and twin.params(lr=0.1, epochs=1) == original.params(lr=0.1, epochs=1)
    a = make_model(Cell2(original, 0.1), tiny_digits, seed=0, epochs=1)
    b = make_model(Cell2(twin, 0.1), tiny_digits, seed=0, epochs=1)
    assert all(torch.equal(x, y) for x, y in zip(_weights(a), _weights(b), strict=True))
    ra = train_cell2(Cell2(original, 0.05), tiny_digits, seed=0, epochs=1)
    rb = train_cell2(Cell2(twin, 0.05), tiny_digits, seed=0, epochs=1)
    assert ra.early_loss != rb.early_loss


def test_the_wall_time_estimate_hands_jobs_to_free_workers() -> None:
    seconds = {key: 0.0 for key in d2.CELL_SECONDS}
    seconds[("bncnn", "digits")] = 1.0
    seconds[("bncnn", "mnist5k")] = 3.0
    per_seed = len(design2_cells(["bncnn:relu/none"]))
    one = FindingsConfig(datasets=("digits", "mnist5k"), seeds=2, workers=1, design=2)
    two = FindingsConfig(datasets=("digits", "mnist5k"), seeds=2, workers=2, design=2)
    arms = ["bncnn:relu/none"]
    assert estimate_wall_s(one, arms=arms, cell_seconds=seconds) == 8 * per_seed
    # jobs d, m, d, m on two workers: [1+1+3, 3] → the busier worker takes 5 per-seed units
    assert estimate_wall_s(two, arms=arms, cell_seconds=seconds) == 5 * per_seed
    assert estimate_wall_s(two, seeds=[7], arms=arms, cell_seconds=seconds) == 3 * per_seed


def test_pooled_images_average_pixel_blocks_and_keep_labels() -> None:
    import numpy as np

    from bnsearch.core.data import Dataset

    x = np.arange(2 * 1 * 4 * 4, dtype=np.float32).reshape(2, 1, 4, 4)
    ds = Dataset(name="t", x=x, y=np.array([0, 1]), num_classes=2)
    small = d2.pooled(ds, 2)
    assert small.x.shape == (2, 1, 2, 2) and small.x.dtype == np.float32
    assert small.x[0, 0, 0, 0] == x[0, 0, :2, :2].mean()
    assert small.y is ds.y and d2.pooled(ds, 1) is ds
    assert design2_identity("mnist5k")["input_pool"] == 2 and design2_identity("digits")["input_pool"] == 1


def test_plain_nets_start_he_initialised_and_bncnn_as_in_design_1(tiny_digits: DeviceData) -> None:
    plain = make_model(Cell2(PLAIN_NONE, 0.1), tiny_digits, seed=0, epochs=1, net="plain")
    conv2 = [m for m in plain.modules() if isinstance(m, nn.Conv2d)][1]
    bound = (6 / conv2.weight[0].numel()) ** 0.5
    assert 0.9 * bound < conv2.weight.abs().max().item() <= bound
    bncnn = make_model(Cell2(d2.BNCNN_ARMS[0], 0.1), tiny_digits, seed=0, epochs=1)
    conv2 = [m for m in bncnn.modules() if isinstance(m, nn.Conv2d)][1]
    assert conv2.weight.abs().max().item() <= 1 / conv2.weight[0].numel() ** 0.5
