"""The experiment's design and its training cells: pairing by seed, zero_last, BN recomputation."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from bnsearch.core.data import DeviceData
from bnsearch.core.model import build_model
from bnsearch.core.space import GAMMA_INITS, SearchSpace, TrialParams
from bnsearch.errors import ConfigError
from bnsearch.findings._catalogue import claims
from bnsearch.findings._design import (
    BN_BEFORE,
    BN_BEFORE_BN1D,
    CONVERGENCE_ARMS,
    GAMMA_ZERO_LAST,
    NO_BN,
    Cell,
    FindingsConfig,
    design_cells,
)
from bnsearch.findings._train import make_model, recalibrated, train_cell


def _weights(model: nn.Module) -> list[torch.Tensor]:
    return [m.weight.detach().clone() for m in model.modules() if isinstance(m, nn.Conv2d | nn.Linear)]


def test_arms_of_one_seed_share_their_initial_weights(tiny_digits: DeviceData) -> None:
    # relu/none has conv biases, relu/before has none: build_model alone would draw different
    # conv2 weights for them from one seed.
    a = make_model(Cell(NO_BN, 0.1), tiny_digits, seed=3, epochs=1)
    b = make_model(Cell(BN_BEFORE, 1.0), tiny_digits, seed=3, epochs=1)
    c = make_model(Cell(BN_BEFORE_BN1D, 0.01), tiny_digits, seed=3, epochs=1)
    for wa, wb, wc in zip(_weights(a), _weights(b), _weights(c), strict=True):
        assert torch.equal(wa, wb) and torch.equal(wa, wc)
    other_seed = make_model(Cell(NO_BN, 0.1), tiny_digits, seed=4, epochs=1)
    assert not torch.equal(_weights(a)[0], _weights(other_seed)[0])


def test_shared_init_keeps_pytorchs_default_scale(tiny_digits: DeviceData) -> None:
    model = make_model(Cell(NO_BN, 0.1), tiny_digits, seed=0, epochs=1)
    conv2 = [m for m in model.modules() if isinstance(m, nn.Conv2d)][1]
    bound = 1 / (32 * 9) ** 0.5
    assert conv2.weight.abs().max().item() <= bound
    assert conv2.weight.abs().max().item() > 0.9 * bound


def _params(**kw: object) -> TrialParams:
    base: dict[str, object] = dict(
        lr=0.1,
        weight_decay=0.0,
        momentum=0.9,
        batch_size=32,
        epochs=1,
        activation="relu",
        bn_placement="after_activation",
        bn_classifier=False,
        gamma_init="zero_last",
        beta_init="zeros",
    )
    base.update(kw)
    return TrialParams(**base)  # type: ignore[arg-type]


@pytest.mark.parametrize("bn_classifier", [False, True], ids=["conv BN last", "BN1d last"])
def test_zero_last_zeroes_only_the_last_bn(bn_classifier: bool) -> None:
    model = build_model(_params(bn_classifier=bn_classifier), in_shape=(1, 8, 8), num_classes=10, seed=0)
    layers = model.bn_layers()
    assert len(layers) == (3 if bn_classifier else 2)
    assert torch.all(layers[-1].weight == 0)
    for m in layers[:-1]:
        assert torch.all(m.weight == 1)
    if bn_classifier:
        assert isinstance(layers[-1], nn.BatchNorm1d)


def test_zero_last_is_accepted_by_space_files_but_not_in_the_default_space() -> None:
    space = SearchSpace.from_mapping({"gamma_init": {"choices": ["zero_last", "ones"]}})
    assert space.params["gamma_init"].choices == ("zero_last", "ones")  # type: ignore[union-attr]
    assert SearchSpace.default().params["gamma_init"].choices == GAMMA_INITS  # type: ignore[union-attr]
    assert "zero_last" not in GAMMA_INITS


def test_recalibration_replaces_running_statistics_on_a_copy(tiny_digits: DeviceData) -> None:
    model = make_model(Cell(BN_BEFORE, 0.1), tiny_digits, seed=0, epochs=1)
    bn = model.bn_layers()[0]  # type: ignore[operator]
    before = bn.running_mean.clone()
    twin = recalibrated(model, tiny_digits.train_x[:128], batch_size=128)
    assert torch.equal(bn.running_mean, before)  # the original is untouched
    conv1 = model.features[0]  # type: ignore[index]
    with torch.no_grad():
        expected = conv1(tiny_digits.train_x[:128]).mean(dim=(0, 2, 3))
    twin_bn = twin.bn_layers()[0]  # type: ignore[operator]
    assert torch.allclose(twin_bn.running_mean, expected, atol=1e-5)
    assert not twin.training


def test_a_cell_is_reproducible_and_convergence_cells_record_curves(tiny_digits: DeviceData) -> None:
    cell = Cell(BN_BEFORE, 0.05)
    assert cell.checkpoints and BN_BEFORE in CONVERGENCE_ARMS
    a = train_cell(cell, tiny_digits, seed=1, epochs=3)
    b = train_cell(cell, tiny_digits, seed=1, epochs=3)
    assert a.val_acc == b.val_acc and a.test_acc == b.test_acc and a.curve == b.curve
    assert [s for s, _ in a.curve] == [20]  # 300 × 0.7 / 32 → 7 steps per epoch, 21 in all
    assert not Cell(GAMMA_ZERO_LAST, 0.05).checkpoints


def test_a_fitting_cell_stops_once_it_fits(tiny_digits: DeviceData) -> None:
    out = train_cell(Cell(BN_BEFORE, 0.03, kind="fit"), tiny_digits, seed=0, epochs=1)
    assert out.fit_reached is True and out.fit_train_acc == 1.0
    assert out.epochs_run < 60


def test_cells_are_unique_and_cover_every_claims_arms() -> None:
    cells = design_cells()
    assert len({c.key for c in cells}) == len(cells)
    arms = {c.arm.name for c in cells}
    for needed in ("relu/none", "relu/before", "relu/after", "relu/before+bn1d", "relu/after/zero_last"):
        assert needed in arms
    for act in ("leaky_relu", "tanh", "sigmoid"):
        assert {f"{act}/none", f"{act}/before", f"{act}/after"} <= arms


def test_the_bn1d_comparison_only_holds_nets_with_conv_bn() -> None:
    """Both arms of the classifier claim have BN in the conv blocks (no BN-free nets in it)."""
    assert BN_BEFORE_BN1D.bn_placement != "none" and BN_BEFORE.bn_placement != "none"
    (claim,) = [c for c in claims() if c.key == "bn_classifier"]
    assert claim.kind == "not_higher"


@pytest.mark.parametrize(
    ("kw", "message"),
    [
        ({"datasets": ()}, "--datasets is empty"),
        ({"datasets": ("cifar",)}, "unknown dataset 'cifar'"),
        ({"datasets": ("digits", "digits")}, "twice"),
        ({"seeds": 1}, "--seeds must be ≥ 2"),
        ({"workers": 0}, "--workers must be ≥ 1"),
        ({"pack": 0}, "--pack must be ≥ 1"),
        ({"prefix": "a/b"}, "--prefix"),
    ],
    ids=["no datasets", "unknown dataset", "duplicate", "one seed", "no workers", "no pack", "bad prefix"],
)
def test_bad_options_are_refused(kw: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        FindingsConfig(**kw).validate()  # type: ignore[arg-type]


def test_findings_model_plain_names_its_studies_and_builds_plain_nets(digits_splits) -> None:  # type: ignore[no-untyped-def]
    from bnsearch.core.data import to_device
    from bnsearch.core.plain import PlainCNN
    from bnsearch.errors import ConfigError
    from bnsearch.findings._design import MAIN_ARMS, Cell, FindingsConfig, design_identity
    from bnsearch.findings._train import make_model
    from bnsearch.study import identity_mismatches

    cfg = FindingsConfig.quick(model="plain")
    cfg.validate()
    assert cfg.study_name("digits", 0) == "findings-plain-digits-s0"
    assert FindingsConfig.quick().study_name("digits", 0) == "findings-digits-s0"
    with pytest.raises(ConfigError, match="findings --model must be one of: bncnn, plain, got 'resnet'"):
        FindingsConfig.quick(model="resnet").validate()
    data = to_device(digits_splits, "cpu")
    assert isinstance(make_model(Cell(MAIN_ARMS[1], 0.1), data, seed=0, epochs=1, net="plain"), PlainCNN)
    # A findings study made before --model (no model key) is a bncnn study.
    old = {k: v for k, v in design_identity("digits").items() if k != "model"}
    assert identity_mismatches(old, design_identity("digits")) == []
    assert identity_mismatches(old, design_identity("digits", "plain")) == ["model"]
