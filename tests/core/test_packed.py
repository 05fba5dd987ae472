"""Packed training: every member of a pack trains exactly as it would alone.

Tolerance: in float64, per-epoch train loss and final weights agree with unpacked training to
1e-6 (validation/train accuracies are counts and agree exactly). The packed model computes the
same sums in another order (one grouped convolution instead of K), so it is rounding apart;
at the lrs used here that stays near 1e-12. At a high lr with ReLU and max-pool, a one-ulp
change flips a near-tie and training amplifies it (unpacked training in channels_last and in
NCHW differs as much), so the equality tests keep lr ≤ 0.05.
In float32 the same comparison holds to 1e-4 on the loss after 2 epochs.
"""

from __future__ import annotations

import dataclasses
import math

import pytest
import torch

from bnsearch.core.data import DeviceData
from bnsearch.core.model import ModelConfig, build_model
from bnsearch.core.packed import PackMember, shape_key, train_packed
from bnsearch.core.space import SearchSpace, TrialParams
from bnsearch.core.train import EpochMetrics, TrainConfig, TrainResult, train

SMALL = ModelConfig(widths=(8, 16))
# lr, weight_decay, momentum, gamma_init, beta_init, seed: everything that may differ in a pack
MEMBERS = [
    (0.05, 1e-4, 0.9, "ones", "zeros", 11),
    (0.01, 1e-2, 0.5, "normal", "small", 12),
    (0.03, 1e-6, 0.0, "small", "normal", 13),
    (0.003, 1e-3, 0.95, "zeros", "zeros", 14),
]
SHAPES = [
    ("tanh", "before_activation", True),
    ("relu", "after_activation", False),
    ("leaky_relu", "none", True),
]


def _params(activation: str, placement: str, classifier: bool, lr: float, wd: float, mom: float, g: str, b: str):  # type: ignore[no-untyped-def]
    kw = dict(
        lr=lr,
        weight_decay=wd,
        momentum=mom,
        activation=activation,
        bn_placement=placement,
        bn_classifier=classifier,
        epochs=2,
        batch_size=32,
    )
    if placement != "none" or classifier:
        kw.update(gamma_init=g, beta_init=b)
    return SearchSpace.default().fixed_params(**kw)


def _model(data: DeviceData, p: TrialParams, seed: int, dtype: torch.dtype) -> torch.nn.Module:
    return build_model(p, in_shape=data.in_shape, num_classes=data.num_classes, seed=seed, cfg=SMALL).to(dtype)


def _as(data: DeviceData, dtype: torch.dtype) -> DeviceData:
    return dataclasses.replace(data, train_x=data.train_x.to(dtype), val_x=data.val_x.to(dtype))


def _pack(data: DeviceData, specs: list[tuple[TrialParams, int]], dtype: torch.dtype, **on_epoch: object):  # type: ignore[no-untyped-def]
    members = [
        PackMember(model=_model(data, p, s, dtype), params=p, seed=s, on_epoch=on_epoch.get(str(i)))  # type: ignore[arg-type]
        for i, (p, s) in enumerate(specs)
    ]
    return members, train_packed(members, data, cfg=TrainConfig())


def _specs(shape: tuple[str, str, bool]) -> list[tuple[TrialParams, int]]:
    return [(_params(*shape, lr, wd, mom, g, b), seed) for lr, wd, mom, g, b, seed in MEMBERS]


def _assert_same(a: TrainResult, b: TrainResult, tol: float) -> None:
    assert len(a.history) == len(b.history)
    for x, y in zip(a.history, b.history, strict=True):
        assert x.train_loss == pytest.approx(y.train_loss, abs=tol, rel=0)
        assert (x.train_acc, x.val_acc) == (y.train_acc, y.val_acc)
    assert (a.diverged, a.stopped, a.reason) == (b.diverged, b.stopped, b.reason)


@pytest.mark.parametrize("shape", SHAPES, ids=["-".join(map(str, s)) for s in SHAPES])
def test_pack_equals_one_by_one_in_float64(tiny_digits: DeviceData, shape: tuple[str, str, bool]) -> None:
    data = _as(tiny_digits, torch.float64)
    specs = _specs(shape)
    members, packed = _pack(data, specs, torch.float64)
    for (p, seed), member, got in zip(specs, members, packed, strict=True):
        model = _model(data, p, seed, torch.float64)
        alone = train(model, data, p, seed=seed, cfg=TrainConfig())
        assert len(alone.history) == 2
        _assert_same(got, alone, 1e-6)
        for (name, w), w_packed in zip(model.state_dict().items(), member.model.state_dict().values(), strict=True):
            assert torch.allclose(w.double(), w_packed.double(), atol=1e-6, rtol=0), name


def test_on_end_sees_the_members_trained_weights(tiny_digits: DeviceData) -> None:
    # The search saves a member's model from on_end, while the rest of the pack trains on.
    data = _as(tiny_digits, torch.float64)
    specs = [(dataclasses.replace(p, epochs=1 + i % 2), s) for i, (p, s) in enumerate(_specs(SHAPES[0]))]
    seen: dict[int, dict[str, torch.Tensor]] = {}
    members = [PackMember(model=_model(data, p, s, torch.float64), params=p, seed=s) for p, s in specs]
    members = [
        dataclasses.replace(
            m, on_end=lambda r, i=i, m=m: seen.__setitem__(i, {k: v.clone() for k, v in m.model.state_dict().items()})
        )
        for i, m in enumerate(members)
    ]
    train_packed(members, data, cfg=TrainConfig())
    assert sorted(seen) == [0, 1, 2, 3]
    for i, (p, seed) in enumerate(specs):
        model = _model(data, p, seed, torch.float64)
        train(model, data, p, seed=seed, cfg=TrainConfig())
        for name, w in model.state_dict().items():
            assert torch.allclose(w.double(), seen[i][name].double(), atol=1e-6, rtol=0), (i, name)


def test_pack_close_to_one_by_one_in_float32(tiny_digits: DeviceData) -> None:
    specs = _specs(SHAPES[0])
    _, packed = _pack(tiny_digits, specs, torch.float32)
    for (p, seed), got in zip(specs, packed, strict=True):
        alone = train(_model(tiny_digits, p, seed, torch.float32), tiny_digits, p, seed=seed)
        for x, y in zip(got.history, alone.history, strict=True):
            assert x.train_loss == pytest.approx(y.train_loss, abs=1e-4, rel=0)
            assert abs(x.val_acc - y.val_acc) <= 2 / len(tiny_digits.val_y)


def test_pruning_one_member_leaves_the_others_unchanged(tiny_digits: DeviceData) -> None:
    data = _as(tiny_digits, torch.float64)
    specs = _specs(SHAPES[1])
    seen: list[EpochMetrics] = []

    def prune_after_first(m: EpochMetrics) -> bool:
        seen.append(m)
        return True

    _, full = _pack(data, specs, torch.float64)
    _, pruned = _pack(data, specs, torch.float64, **{"1": prune_after_first})
    assert [m.epoch for m in seen] == [1]
    assert pruned[1].stopped and pruned[1].reason == "stopped after epoch 1" and len(pruned[1].history) == 1
    assert pruned[1].history[0] == dataclasses.replace(full[1].history[0], epoch_time_s=seen[0].epoch_time_s)
    for i in (0, 2, 3):
        _assert_same(pruned[i], full[i], 1e-9)


def test_divergence_of_one_member_never_touches_the_others(tiny_digits: DeviceData) -> None:
    data = _as(tiny_digits, torch.float64)
    specs = _specs(SHAPES[0])
    wild = (dataclasses.replace(specs[2][0], lr=1e6), specs[2][1])
    _, calm = _pack(data, specs, torch.float64)
    _, mixed = _pack(data, [specs[0], specs[1], wild, specs[3]], torch.float64)
    alone = train(_model(data, wild[0], wild[1], torch.float64), data, wild[0], seed=wild[1])
    assert mixed[2].diverged and mixed[2].reason is not None and mixed[2].reason.startswith("diverged:")
    assert mixed[2].reason == alone.reason
    for i in (0, 1, 3):
        _assert_same(mixed[i], calm[i], 1e-9)
        assert all(torch.isfinite(torch.tensor(m.train_loss)) for m in mixed[i].history)


def test_members_with_fewer_epochs_leave_after_their_last(tiny_digits: DeviceData) -> None:
    specs = _specs(SHAPES[2])
    specs[0] = (dataclasses.replace(specs[0][0], epochs=1), specs[0][1])
    _, packed = _pack(tiny_digits, specs, torch.float32)
    assert [len(r.history) for r in packed] == [1, 2, 2, 2]
    assert not any(r.stopped or r.diverged for r in packed)


def test_early_step_losses_follow_each_member_as_others_leave(tiny_digits: DeviceData) -> None:
    """Each member's first losses are its own, after a member ahead of it in the pack has left
    (its epoch 1 ends the pack's first epoch): each epoch's step losses add up to its loss."""
    data = _as(tiny_digits, torch.float64)
    specs = _specs(SHAPES[1])
    specs[0] = (dataclasses.replace(specs[0][0], epochs=1), specs[0][1])
    steps = math.ceil(len(data.train_y) / 32)
    members = [
        PackMember(model=_model(data, p, s, torch.float64), params=p, seed=s, early_steps=0 if i == 3 else 2 * steps)
        for i, (p, s) in enumerate(specs)
    ]
    results = train_packed(members, data, cfg=TrainConfig())
    assert [len(r.step_losses) for r in results] == [steps, 2 * steps, 2 * steps, 0]
    for r in results[:3]:
        for epoch, metrics in enumerate(r.history):
            total = sum(x.item() for x in r.step_losses[epoch * steps : (epoch + 1) * steps])
            assert total / len(data.train_y) == pytest.approx(metrics.train_loss, rel=1e-6)  # summed in fp32 there


def test_members_of_different_shapes_are_refused(tiny_digits: DeviceData) -> None:
    a = _specs(SHAPES[0])[0]
    b = _specs(SHAPES[1])[0]
    assert shape_key(a[0]) != shape_key(b[0])
    with pytest.raises(ValueError, match="one shape"):
        _pack(tiny_digits, [a, b], torch.float32)
