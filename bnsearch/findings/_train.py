"""Training one cell of the experiment (torch, no Optuna): paired initial weights, BN
statistics recomputed before mid-training evaluations, fitting a small subset.

Pairing: every conv/linear layer is redrawn from its own stream (``core.model.shared_init``),
so the layers that arms share start equal.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

import torch
from torch import nn

from bnsearch.core.data import DeviceData
from bnsearch.core.model import ModelConfig, build_model, shared_init
from bnsearch.core.packed import PackMember, train_packed
from bnsearch.core.seeding import derive_seed
from bnsearch.core.train import EpochMetrics, TrainConfig, evaluate, train
from bnsearch.findings._design import (
    CHECKPOINT_STEPS,
    FIT_EXAMPLES,
    FIT_MAX_EPOCHS,
    RECALIBRATION_EXAMPLES,
    Cell,
)


@dataclass(frozen=True, slots=True, kw_only=True)
class CellOutcome:
    """What one cell measured (stored as the attributes of its trial)."""

    val_acc: float  # final validation accuracy; chance level when diverged
    test_acc: float  # test accuracy of the final net; chance level when diverged
    diverged: bool
    epochs_run: int  # epochs trained (fitting cells stop once they fit)
    curve: tuple[tuple[int, float], ...] = ()  # (step, val acc with BN recomputed): convergence cells
    fit_reached: bool | None = None  # fitting cells: reached 100% training accuracy on the subset
    fit_train_acc: float | None = None  # fitting cells: eval-mode accuracy on the subset at the end
    wall_time_s: float = 0.0

    def to_attrs(self) -> dict[str, Any]:
        return {
            "val_acc": self.val_acc,
            "test_acc": self.test_acc,
            "diverged": self.diverged,
            "epochs_run": self.epochs_run,
            "curve": [list(p) for p in self.curve],
            "fit_reached": self.fit_reached,
            "fit_train_acc": self.fit_train_acc,
            "wall_time_s": self.wall_time_s,
        }


def make_model(cell: Cell, data: DeviceData, *, seed: int, epochs: int, net: str = "bncnn") -> nn.Module:
    """The cell's network (``net``: bncnn or plain) with the seed's shared initial weights."""
    params = cell.arm.params(lr=cell.lr, epochs=epochs)
    cfg = ModelConfig(model=net)
    model = build_model(
        params, in_shape=data.in_shape, num_classes=data.num_classes, seed=derive_seed(seed, "model"), cfg=cfg
    )
    shared_init(model, seed)
    return model.to(data.device)


def recalibrated(model: nn.Module, x: torch.Tensor, *, batch_size: int = 128) -> nn.Module:
    """A copy of ``model`` whose BN running statistics are recomputed on ``x`` (the cumulative
    average over its batches), so an evaluation early in training does not read statistics
    that still hold their initial values. The original is untouched."""
    bns = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    if not bns:
        return model
    twin = copy.deepcopy(model)
    twin_bns = [m for m in twin.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    for m in twin_bns:
        m.reset_running_stats()
        m.momentum = None  # cumulative moving average
    twin.train()
    with torch.no_grad():
        for i in range(0, len(x), batch_size):
            twin(x[i : i + batch_size])
    twin.eval()
    return twin


def _chance(data: DeviceData) -> float:
    return 1.0 / data.num_classes


def train_cell(
    cell: Cell, data: DeviceData, *, seed: int, epochs: int, cfg: TrainConfig | None = None, net: str = "bncnn"
) -> CellOutcome:
    """Train one cell of ``net`` (bncnn, plain) from seed ``seed`` (split already in ``data``) and measure it."""
    if cell.kind == "fit":
        return _train_fit(cell, data, seed=seed, cfg=cfg, net=net)
    model = make_model(cell, data, seed=seed, epochs=epochs, net=net)
    params = cell.arm.params(lr=cell.lr, epochs=epochs)
    recal_x = data.train_x[:RECALIBRATION_EXAMPLES]
    curve: list[tuple[int, float]] = []

    def on_step(step: int) -> None:
        if step % CHECKPOINT_STEPS == 0:
            curve.append((step, evaluate(recalibrated(model, recal_x), data.val_x, data.val_y)))

    result = train(
        model,
        data,
        params,
        seed=derive_seed(seed, "batches"),
        cfg=cfg,
        on_step=on_step if cell.checkpoints else None,
    )
    return _outcome(
        model, data, result.diverged, result.val_acc, curve, result.wall_time_s, epochs_run=len(result.history)
    )


def _outcome(
    model: nn.Module,
    data: DeviceData,
    diverged: bool,
    val_acc: float,
    curve: Sequence[tuple[int, float]],
    wall_time_s: float,
    *,
    epochs_run: int,
) -> CellOutcome:
    if diverged:
        return CellOutcome(
            val_acc=_chance(data),
            test_acc=_chance(data),
            diverged=True,
            epochs_run=epochs_run,
            curve=tuple(curve),
            wall_time_s=wall_time_s,
        )
    return CellOutcome(
        val_acc=val_acc,
        test_acc=evaluate(model, data.test_x, data.test_y),
        diverged=False,
        epochs_run=epochs_run,
        curve=tuple(curve),
        wall_time_s=wall_time_s,
    )


def train_cells_packed(
    cells: Sequence[Cell],
    data: DeviceData,
    *,
    seed: int,
    epochs: int,
    cfg: TrainConfig | None = None,
    net: str = "bncnn",
) -> list[CellOutcome]:
    """Grid cells of one arm (no checkpoints) trained as one packed model (``--pack``)."""
    models = [make_model(c, data, seed=seed, epochs=epochs, net=net) for c in cells]
    members = [
        PackMember(model=m, params=c.arm.params(lr=c.lr, epochs=epochs), seed=derive_seed(seed, "batches"))
        for c, m in zip(cells, models, strict=True)
    ]
    results = train_packed(members, data, cfg=cfg)
    return [
        _outcome(m, data, r.diverged, r.val_acc, (), r.wall_time_s, epochs_run=len(r.history))
        for m, r in zip(models, results, strict=True)
    ]


def _train_fit(cell: Cell, data: DeviceData, *, seed: int, cfg: TrainConfig | None, net: str) -> CellOutcome:
    """Train on the first ``FIT_EXAMPLES`` training examples until the net classifies all of
    them right (eval mode, BN recomputed on the subset), then score it on test."""
    sub_x, sub_y = data.train_x[:FIT_EXAMPLES], data.train_y[:FIT_EXAMPLES]
    subset = replace(data, train_x=sub_x, train_y=sub_y)
    model = make_model(cell, subset, seed=seed, epochs=FIT_MAX_EPOCHS, net=net)
    params = cell.arm.params(lr=cell.lr, epochs=FIT_MAX_EPOCHS)
    fitted: dict[str, float] = {}

    def on_epoch(m: EpochMetrics) -> bool:
        acc = evaluate(recalibrated(model, sub_x), sub_x, sub_y)
        fitted["acc"] = acc
        return acc >= 1.0

    result = train(model, subset, params, seed=derive_seed(seed, "batches"), cfg=cfg, on_epoch=on_epoch)
    if result.diverged:
        return CellOutcome(
            val_acc=_chance(data),
            test_acc=_chance(data),
            diverged=True,
            epochs_run=len(result.history),
            fit_reached=False,
            fit_train_acc=None,
            wall_time_s=result.wall_time_s,
        )
    final = recalibrated(model, sub_x)
    return CellOutcome(
        val_acc=evaluate(final, data.val_x, data.val_y),
        test_acc=evaluate(final, data.test_x, data.test_y),
        diverged=False,
        epochs_run=len(result.history),
        fit_reached=fitted.get("acc", 0.0) >= 1.0,
        fit_train_acc=fitted.get("acc"),
        wall_time_s=result.wall_time_s,
    )
