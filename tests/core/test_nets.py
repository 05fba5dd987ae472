"""The networks of ``--model``: bncnn unchanged, plain and resnet structure, norms, inits, and BN's effect."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
import torch
from torch import nn

from bnsearch.config import resolve_precision
from bnsearch.core.blocks import conv_norm_act, init_norms, norm_layers
from bnsearch.core.data import load_dataset, split_dataset, to_device
from bnsearch.core.model import ModelConfig, build_model, param_groups
from bnsearch.core.plain import PlainCNN, stage_depths
from bnsearch.core.resnet import BasicBlock, ResNet
from bnsearch.core.space import SearchSpace, TrialParams
from bnsearch.core.train import TrainConfig, train

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"


def params_for(family: str, **kw: object) -> TrialParams:
    values: dict[str, object] = {
        "lr": 0.05,
        "weight_decay": 1e-4,
        "activation": "relu",
        "bn_placement": "before_activation" if family != "resnet" else "post_activation",
        "bn_classifier": False,
        "gamma_init": "ones",
        "beta_init": "zeros",
    }
    structure = {k: kw.pop(k) for k in ("depth", "width", "norm", "bn_momentum") if k in kw}
    values.update(kw)
    p = SearchSpace.default(family).fixed_params(**values)
    return dataclasses.replace(p, **structure)


def build(family: str, p: TrialParams, in_shape: tuple[int, int, int] = (1, 8, 8), seed: int = 0) -> nn.Module:
    return build_model(p, in_shape=in_shape, num_classes=10, seed=seed, cfg=ModelConfig(model=family))


def kinds(seq: nn.Module) -> list[str]:
    """Layer types of a plain net's features, conv blocks flattened, as short names."""
    short = {"Conv2d": "conv", "BatchNorm2d": "bn", "BatchNorm1d": "bn1d", "GroupNorm": "gn", "ReLU": "act"}
    out = []
    for m in seq.children():
        for leaf in m.children() if isinstance(m, nn.Sequential) else [m]:
            out.append(short.get(type(leaf).__name__, type(leaf).__name__))
    return out


def test_bncnn_is_bit_for_bit_what_it_was() -> None:
    """Weights and outputs of the default net equal those the code before --model produced."""
    reference = json.loads((FIXTURES / "bncnn_reference.json").read_text())
    for case in reference.values():
        p = TrialParams(lr=0.1, weight_decay=1e-4, momentum=0.9, batch_size=32, epochs=1, **case["params"])
        model = build_model(p, in_shape=(1, 8, 8), num_classes=10, seed=1234)
        x = torch.randn(4, 1, 8, 8, generator=torch.Generator().manual_seed(0))
        logits = model(x).detach()  # in training mode: the BN running stats move, as in the fixture
        state = {
            k: [list(v.shape), float(v.double().sum()), float((v.double() ** 2).sum())]
            for k, v in model.state_dict().items()
        }
        assert state.keys() == case["state"].keys()
        params = {name for name, _ in model.named_parameters()}
        for k, (shape, total, squares) in case["state"].items():
            if k in params:  # the initial weights: drawn from the seed, equal to the last bit
                assert state[k] == [shape, total, squares], k
            else:  # BN running stats after a forward: reductions round by thread count and CPU
                assert state[k][0] == shape and state[k][1:] == pytest.approx([total, squares], rel=1e-5, abs=1e-6), k
        assert [type(m).__name__ for m in model.features] == case["modules"]
        assert logits.flatten()[:20].tolist() == pytest.approx(case["logits"], abs=2e-5)


@pytest.mark.parametrize("depth", [2, 3, 7, 20])
@pytest.mark.parametrize("placement", ["none", "before_activation", "after_activation"])
def test_plain_has_depth_convs_with_norms_where_the_placement_says(depth: int, placement: str) -> None:
    p = params_for("plain", bn_placement=placement, bn_classifier=True, depth=depth, width=4)
    model = build("plain", p)
    assert isinstance(model, PlainCNN)
    assert model(torch.randn(3, 1, 8, 8)).shape == (3, 10)
    layers = kinds(model.features)
    assert layers.count("conv") == depth
    block = {
        "none": ["conv", "act"],
        "before_activation": ["conv", "bn", "act"],
        "after_activation": ["conv", "act", "bn"],
    }
    convs = [i for i, k in enumerate(layers) if k == "conv"]
    for i in convs:
        assert layers[i : i + len(block[placement])] == block[placement]
    assert layers.count("MaxPool2d") == len(stage_depths(depth, (8, 8))) - 1
    assert layers[-1] == "bn1d"  # bn_classifier
    widths = [m.out_channels for m in model.modules() if isinstance(m, nn.Conv2d)]
    assert widths[0] == 4 and widths[-1] == 4 * 2 ** (len(stage_depths(depth, (8, 8))) - 1)


def test_plain_stages_split_depth_evenly_and_fit_the_image() -> None:
    assert stage_depths(20, (28, 28)) == [7, 7, 6]
    assert stage_depths(2, (28, 28)) == [1, 1]
    assert stage_depths(9, (4, 4)) == [5, 4]  # a 4×4 image takes one pool only
    assert sum(stage_depths(13, (8, 8))) == 13


@pytest.mark.parametrize("depth", [8, 14, 20])
@pytest.mark.parametrize("placement", ["none", "post_activation", "pre_activation"])
def test_resnet_blocks_and_norm_positions(depth: int, placement: str) -> None:
    p = params_for("resnet", bn_placement=placement, depth=depth, width=4)
    model = build("resnet", p, in_shape=(1, 28, 28))
    assert isinstance(model, ResNet)
    assert model(torch.randn(2, 1, 28, 28)).shape == (2, 10)
    blocks = [b for b in model.blocks if isinstance(b, BasicBlock)]
    assert len(blocks) == 3 * (depth - 2) // 6
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d) and m.kernel_size == (3, 3)]
    assert len(convs) == depth - 1  # with the classifier: depth weighted layers
    n_bn = sum(isinstance(m, nn.BatchNorm2d) for m in model.modules())
    if placement == "none":
        assert n_bn == 0
    elif placement == "post_activation":
        # stem + 2 per block + one per projection shortcut (two stage changes)
        assert n_bn == 1 + 2 * len(blocks) + 2
        assert all(isinstance(b.norm1, nn.BatchNorm2d) and b.norm1.num_features == b.conv1.out_channels for b in blocks)
    else:
        # 2 per block (the first normalises the block's input) + the head's
        assert n_bn == 2 * len(blocks) + 1
        assert all(b.norm1.num_features == b.conv1.in_channels for b in blocks)
        assert isinstance(model.head[0], nn.BatchNorm2d)


@pytest.mark.parametrize("placement", ["post_activation", "pre_activation"])
def test_resnet_zero_last_zeroes_exactly_the_last_bn_of_each_branch(placement: str) -> None:
    p = params_for("resnet", bn_placement=placement, bn_classifier=True, gamma_init="zero_last", depth=14)
    model = build("resnet", p)
    assert isinstance(model, ResNet)
    last = {id(b.norm2) for b in model.blocks}
    assert len(last) == 6
    zeroed = {id(m) for m in norm_layers(model) if torch.all(m.weight == 0)}
    assert zeroed == last
    assert all(torch.all(m.weight == 1) for m in norm_layers(model) if id(m) not in last)
    if placement == "post_activation":
        # Each block starts as the identity plus an activation (Goyal et al.'s point).
        block = model.blocks[0].eval()
        x = torch.randn(2, 16, 8, 8)
        assert torch.allclose(block(x), torch.relu(x))


def test_plain_zero_last_zeroes_only_the_last_norm_of_the_net() -> None:
    model = build("plain", params_for("plain", gamma_init="zero_last", depth=5))
    layers = norm_layers(model)
    assert [bool(torch.all(m.weight == 0)) for m in layers] == [False] * 4 + [True]


@pytest.mark.parametrize("family", ["plain", "resnet"])
def test_group_norm_and_no_norm(family: str) -> None:
    gn = build(family, params_for(family, norm="group", bn_classifier=True, gamma_init="small"))
    assert not any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in gn.modules())
    groups = [m for m in gn.modules() if isinstance(m, nn.GroupNorm)]
    assert groups and all(torch.all(m.weight == 0.1) for m in groups)
    p_none = params_for(family, norm="none", bn_classifier=True)
    assert not p_none.has_bn
    assert norm_layers(build(family, p_none)) == []


@pytest.mark.parametrize("family", ["bncnn", "plain", "resnet"])
def test_bn_momentum_reaches_every_bn(family: str) -> None:
    p = dataclasses.replace(params_for(family, bn_classifier=True), bn_momentum=0.01)
    bns = [m for m in build(family, p).modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    assert bns and all(m.momentum == 0.01 for m in bns)


@pytest.mark.parametrize("decay_bn", [False, True])
@pytest.mark.parametrize(
    ("family", "norm"),
    [("bncnn", None), ("plain", "batch"), ("plain", "group"), ("resnet", "batch"), ("resnet", "group")],
)
def test_param_groups_cover_every_parameter_once(family: str, norm: str | None, decay_bn: bool) -> None:
    kw = {} if norm is None else {"norm": norm}
    model = build(family, params_for(family, bn_classifier=True, **kw))
    groups = param_groups(model, weight_decay=1e-3, decay_bn_params=decay_bn)
    ids = [id(p) for g in groups for p in g["params"]]  # type: ignore[attr-defined]
    assert sorted(ids) == sorted(id(p) for p in model.parameters())
    decayed = {id(p) for p in groups[0]["params"]}  # type: ignore[attr-defined]
    norm_ids = {id(p) for m in norm_layers(model) for p in m.parameters()}
    assert (norm_ids <= decayed) if decay_bn else not (norm_ids & decayed)


@pytest.mark.parametrize(
    ("placement", "order"),
    [
        ("before_activation", ["Conv2d", "BatchNorm2d", "ReLU"]),
        ("after_activation", ["Conv2d", "ReLU", "BatchNorm2d"]),
        ("none", ["Conv2d", "ReLU"]),
    ],
)
def test_conv_norm_act_block_honours_placement_and_inits(placement: str, order: list[str]) -> None:
    p = params_for("plain", bn_placement=placement, gamma_init="small", beta_init="small")
    block = conv_norm_act(3, 8, p, stride=2)
    assert [type(m).__name__ for m in block] == order
    assert block[0].bias is None if placement == "before_activation" else block[0].bias is not None
    assert block(torch.randn(2, 3, 8, 8)).shape == (2, 8, 4, 4)
    for m in norm_layers(block):
        assert torch.all(m.weight == 0.1) and torch.all(m.bias == 0.1)
    net = init_norms(nn.Sequential(block, conv_norm_act(8, 8, p)), dataclasses.replace(p, gamma_init="zero_last"))
    assert [float(m.weight[0].detach()) for m in norm_layers(net)] == ([1.0, 0.0] if placement != "none" else [])


@pytest.mark.slow  # 15-60 s on 2 shared cores
def test_positive_control_bn_trains_a_deep_plain_net_that_does_not_train_without_it(digits_data) -> None:  # type: ignore[no-untyped-def]
    """BN's effect, which this issue exists for: at depth 20 and one lr (0.05, 8 epochs of 40
    steps), a plain net without BN stays at chance on digits while with BN it trains. Seen on
    an AMD EPYC (fp32 and bf16, seeds 0-2): without BN train acc ≤ 0.10 and val 0.10; with BN
    final train acc 0.85-0.90 and val 0.77-0.93. The thresholds leave wide margins."""
    precision = resolve_precision("auto", ["cpu"])  # bf16 or fp32, as BNSEARCH_NATIVE_BF16 says
    finals = {}
    for placement in ("none", "before_activation"):
        p = params_for("plain", bn_placement=placement, depth=20, width=8, epochs=8, weight_decay=0.0)
        model = build("plain", p, in_shape=digits_data.in_shape, seed=0)
        result = train(model, digits_data, p, seed=0, cfg=TrainConfig(precision=precision))
        assert not result.diverged
        finals[placement] = result.history[-1]
        best_val = max(m.val_acc for m in result.history)
        if placement == "none":
            assert finals[placement].train_acc < 0.2 and best_val < 0.2, result.history
        else:
            assert finals[placement].train_acc > 0.5 and best_val > 0.5, result.history


@pytest.fixture(scope="module")
def digits_data():  # type: ignore[no-untyped-def]
    return to_device(split_dataset(load_dataset("digits"), seed=0), "cpu")
