from __future__ import annotations

import itertools

import pytest
import torch
from torch import nn

from bnsearch.core.model import BNCNN, FlattenHWC, ModelConfig, build_model, param_groups
from bnsearch.core.space import ACTIVATIONS, BETA_INITS, BN_PLACEMENTS, GAMMA_INITS, TrialParams

_ACT_TYPES = {"relu": nn.ReLU, "leaky_relu": nn.LeakyReLU, "tanh": nn.Tanh, "sigmoid": nn.Sigmoid}
_CASES = list(itertools.product(BN_PLACEMENTS, ACTIVATIONS, (False, True)))


def make_params(**kw: object) -> TrialParams:
    base: dict[str, object] = dict(
        lr=0.05,
        weight_decay=1e-4,
        momentum=0.9,
        batch_size=32,
        epochs=1,
        activation="relu",
        bn_placement="before_activation",
        bn_classifier=False,
        gamma_init="ones",
        beta_init="zeros",
    )
    base.update(kw)
    if base["bn_placement"] == "none" and not base["bn_classifier"]:
        base["gamma_init"] = base["beta_init"] = None
    return TrialParams(**base)  # type: ignore[arg-type]


def small_model(p: TrialParams, seed: int = 0) -> BNCNN:
    return build_model(p, in_shape=(1, 8, 8), num_classes=10, seed=seed, cfg=ModelConfig(widths=(4, 8)))


@pytest.mark.parametrize(
    ("placement", "activation", "bn_classifier"), _CASES, ids=[f"{p}-{a}-cls{int(c)}" for p, a, c in _CASES]
)
def test_structure_and_shapes(placement: str, activation: str, bn_classifier: bool) -> None:
    p = make_params(bn_placement=placement, activation=activation, bn_classifier=bn_classifier)
    model = small_model(p)
    out = model(torch.randn(5, 1, 8, 8))
    assert out.shape == (5, 10)
    kinds = [type(m) for m in model.features]
    # Expected order of layers in each conv block, per placement.
    block = {
        "none": [nn.Conv2d, _ACT_TYPES[activation]],
        "before_activation": [nn.Conv2d, nn.BatchNorm2d, _ACT_TYPES[activation]],
        "after_activation": [nn.Conv2d, _ACT_TYPES[activation], nn.BatchNorm2d],
    }[placement]
    # A monotone activation right before the pool runs after it (same function, less work).
    first = block[:-1] + [nn.MaxPool2d, block[-1]] if block[-1] is _ACT_TYPES[activation] else block + [nn.MaxPool2d]
    expected = first + block + [FlattenHWC] + ([nn.BatchNorm1d] if bn_classifier else [])
    assert kinds == expected
    n_bn2d = sum(isinstance(m, nn.BatchNorm2d) for m in model.modules())
    assert n_bn2d == (0 if placement == "none" else 2)


@pytest.mark.parametrize("gamma", GAMMA_INITS)
@pytest.mark.parametrize("beta", BETA_INITS)
def test_gamma_beta_hold_their_init(gamma: str, beta: str) -> None:
    model = small_model(make_params(bn_classifier=True, gamma_init=gamma, beta_init=beta))
    bns = model.bn_layers()
    assert len(bns) == 3
    for bn in bns:
        w, b = bn.weight.detach(), bn.bias.detach()
        if gamma == "ones":
            assert torch.all(w == 1)
        elif gamma == "zeros":
            assert torch.all(w == 0)
        elif gamma == "small":
            assert torch.allclose(w, torch.full_like(w, 0.1))
        else:
            assert not torch.all(w == 1) and abs(w.mean().item() - 1.0) < 0.15
        if beta == "zeros":
            assert torch.all(b == 0)
        elif beta == "small":
            assert torch.allclose(b, torch.full_like(b, 0.1))
        else:
            assert not torch.all(b == 0) and abs(b.mean().item()) < 0.15


def test_normal_init_has_the_documented_spread() -> None:
    model = build_model(
        make_params(bn_classifier=True, gamma_init="normal", beta_init="normal"),
        in_shape=(1, 8, 8),
        num_classes=10,
        seed=0,
    )
    gamma = model.bn_layers()[-1].weight.detach()  # BN1d over 64*4*4 features
    beta = model.bn_layers()[-1].bias.detach()
    assert abs(gamma.mean().item() - 1.0) < 0.02 and abs(gamma.std().item() - 0.1) < 0.02
    assert abs(beta.mean().item()) < 0.02 and abs(beta.std().item() - 0.1) < 0.02


def test_same_seed_same_weights_and_global_rng_untouched() -> None:
    p = make_params(gamma_init="normal", beta_init="normal")
    torch.manual_seed(123)
    before = torch.rand(3)
    torch.manual_seed(123)
    a = small_model(p, seed=7)
    after = torch.rand(3)
    b = small_model(p, seed=7)
    c = small_model(p, seed=8)
    assert torch.equal(before, after)
    for (na, ta), (_, tb) in zip(a.state_dict().items(), b.state_dict().items(), strict=True):
        assert torch.equal(ta, tb), na
    assert not torch.equal(a.features[0].weight, c.features[0].weight)


@pytest.mark.parametrize("decay_bn", [False, True])
@pytest.mark.parametrize("placement", BN_PLACEMENTS)
def test_every_parameter_in_exactly_one_group(placement: str, decay_bn: bool) -> None:
    model = small_model(make_params(bn_placement=placement, bn_classifier=True))
    groups = param_groups(model, weight_decay=1e-3, decay_bn_params=decay_bn)
    ids = [id(p) for g in groups for p in g["params"]]  # type: ignore[attr-defined]
    assert sorted(ids) == sorted(id(p) for p in model.parameters())
    assert len(ids) == len(set(ids))
    decay = {id(p) for p in groups[0]["params"]}  # type: ignore[attr-defined]
    for bn in model.bn_layers():
        assert (id(bn.weight) in decay) == decay_bn
    conv = model.features[0]
    assert id(conv.weight) in decay
    assert groups[1]["weight_decay"] == 0.0


def test_conv_bias_dropped_only_before_bn() -> None:
    assert small_model(make_params(bn_placement="before_activation")).features[0].bias is None
    assert small_model(make_params(bn_placement="after_activation")).features[0].bias is not None


@pytest.mark.parametrize("placement", BN_PLACEMENTS)
def test_one_training_step_reduces_loss_on_a_fixed_batch(placement: str) -> None:
    p = make_params(bn_placement=placement, bn_classifier=placement != "none")
    model = small_model(p)
    gen = torch.Generator().manual_seed(0)
    x, y = torch.randn(32, 1, 8, 8, generator=gen), torch.randint(0, 10, (32,), generator=gen)
    opt = torch.optim.SGD(param_groups(model, weight_decay=0.0), lr=0.05, momentum=0.0)
    model.train()
    loss0 = nn.functional.cross_entropy(model(x), y)
    opt.zero_grad()
    loss0.backward()
    opt.step()
    loss1 = nn.functional.cross_entropy(model(x), y)
    assert loss1.item() < loss0.item()


def _design_order(model: BNCNN) -> nn.Sequential:
    """The model's own layers (shared weights) in the documented order (bnsearch.core.model's docstring), built from its params."""
    layers = list(model.features)
    convs = [m for m in layers if isinstance(m, nn.Conv2d)]
    bns = iter(m for m in layers if isinstance(m, nn.BatchNorm2d))
    act = next(m for m in layers if isinstance(m, tuple(_ACT_TYPES.values())))
    placement = model.params.bn_placement
    seq: list[nn.Module] = []
    for i, conv in enumerate(convs):
        seq.append(conv)
        if placement == "before_activation":
            seq.append(next(bns))
        seq.append(act)  # stateless: the same module may appear twice
        if placement == "after_activation":
            seq.append(next(bns))
        if i == 0:
            seq.append(nn.MaxPool2d(2))
    seq += [m for m in layers if isinstance(m, FlattenHWC)]
    seq += [m for m in layers if isinstance(m, nn.BatchNorm1d)]
    return nn.Sequential(*seq, model.classifier)


@pytest.mark.parametrize(
    ("placement", "activation", "bn_classifier"), _CASES, ids=[f"{p}-{a}-cls{int(c)}" for p, a, c in _CASES]
)
def test_pooling_before_the_activation_is_the_network_of_the_design(
    placement: str, activation: str, bn_classifier: bool
) -> None:
    p = make_params(
        bn_placement=placement,
        activation=activation,
        bn_classifier=bn_classifier,
        gamma_init="normal" if placement != "none" or bn_classifier else None,
        beta_init="normal" if placement != "none" or bn_classifier else None,
    )
    x = torch.randn(16, 1, 8, 8, dtype=torch.float64)
    y = torch.randint(0, 10, (16,))
    ours = small_model(p).double()
    reference = _design_order(small_model(p).double())
    grads = []
    for net in (ours, reference):  # two copies: BN running stats update on each forward
        net.zero_grad()
        out = net(x)
        torch.nn.functional.cross_entropy(out, y).backward()
        grads.append((out.detach(), [q.grad.clone() for q in net.parameters()]))
    (out_a, g_a), (out_b, g_b) = grads
    torch.testing.assert_close(out_a, out_b)
    for a, b in zip(g_a, g_b, strict=True):
        torch.testing.assert_close(a, b)


def test_flattening_a_channels_last_map_copies_nothing() -> None:
    x = torch.randn(4, 6, 5, 3).contiguous(memory_format=torch.channels_last)
    flat = FlattenHWC()(x)
    assert flat.data_ptr() == x.data_ptr() and flat.shape == (4, 5 * 3 * 6)
    torch.testing.assert_close(flat[1].view(5, 3, 6), x[1].permute(1, 2, 0))


def test_chw_feature_order_is_torchs_flatten() -> None:
    model = build_model(
        make_params(), in_shape=(1, 8, 8), num_classes=10, seed=0, cfg=ModelConfig(widths=(4, 8), feature_order="chw")
    )
    assert sum(isinstance(m, nn.Flatten) for m in model.features) == 1
    assert not any(isinstance(m, FlattenHWC) for m in model.features)
