from __future__ import annotations

import math

import torch

from bnsearch.core.data import DeviceData
from bnsearch.core.model import ModelConfig, build_model
from bnsearch.core.space import SearchSpace, TrialParams
from bnsearch.core.train import EpochMetrics, evaluate, train

SMALL = ModelConfig(widths=(8, 16))


def params(**kw: object) -> TrialParams:
    base = dict(
        lr=0.05,
        weight_decay=1e-4,
        activation="relu",
        bn_placement="before_activation",
        bn_classifier=False,
        gamma_init="ones",
        beta_init="zeros",
        epochs=2,
        batch_size=32,
    )
    base.update(kw)
    return SearchSpace.default().fixed_params(**base)


def run(data: DeviceData, p: TrialParams, seed: int = 0, **kw: object):  # type: ignore[no-untyped-def]
    model = build_model(p, in_shape=data.in_shape, num_classes=data.num_classes, seed=seed, cfg=SMALL)
    return model, train(model, data, p, seed=seed, **kw)  # type: ignore[arg-type]


def test_loss_falls_and_accuracy_beats_chance(tiny_digits: DeviceData) -> None:
    _, r = run(tiny_digits, params(epochs=3))
    losses = [m.train_loss for m in r.history]
    assert len(r.history) == 3 and not r.diverged and not r.stopped
    assert losses[-1] < losses[0]
    assert r.val_acc > 0.5  # chance is 0.1


def test_same_seed_identical_metrics(tiny_digits: DeviceData) -> None:
    _, a = run(tiny_digits, params(), seed=5)
    _, b = run(tiny_digits, params(), seed=5)
    _, c = run(tiny_digits, params(), seed=6)
    strip = lambda r: [(m.train_loss, m.train_acc, m.val_acc) for m in r.history]  # noqa: E731
    assert strip(a) == strip(b)
    assert strip(a) != strip(c)


def test_on_epoch_runs_once_per_epoch_and_can_stop(tiny_digits: DeviceData) -> None:
    seen: list[EpochMetrics] = []
    _, r = run(tiny_digits, params(epochs=3), on_epoch=lambda m: seen.append(m) or False)
    assert [m.epoch for m in seen] == [1, 2, 3] and list(r.history) == seen
    _, r = run(tiny_digits, params(epochs=3), on_epoch=lambda m: m.epoch == 1)
    assert r.stopped and len(r.history) == 1 and r.reason == "stopped after epoch 1"


def test_huge_learning_rate_diverges_with_reason(tiny_digits: DeviceData) -> None:
    p = params(lr=1e6, bn_placement="none", activation="relu", weight_decay=0.0, epochs=3)
    _, r = run(tiny_digits, p)
    assert r.diverged and r.reason is not None and "NaN or infinite" in r.reason
    assert len(r.history) < 3
    assert all(math.isfinite(m.train_loss) for m in r.history)


def test_evaluate_restores_mode(tiny_digits: DeviceData) -> None:
    model, _ = run(tiny_digits, params(epochs=1))
    model.train()
    acc = evaluate(model, tiny_digits.val_x, tiny_digits.val_y, batch_size=7)
    assert model.training and 0.0 <= acc <= 1.0
    model.eval()
    assert evaluate(model, tiny_digits.val_x, tiny_digits.val_y) == acc and not model.training


def test_global_rng_untouched(tiny_digits: DeviceData) -> None:
    torch.manual_seed(0)
    expected = torch.rand(2)
    torch.manual_seed(0)
    run(tiny_digits, params(epochs=1))
    assert torch.equal(torch.rand(2), expected)
