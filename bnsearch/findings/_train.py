"""Training one cell of the experiment (torch, no Optuna): paired initial weights, BN
statistics recomputed before mid-training evaluations, fitting a small subset; design 2's
grid cells (test NLL, early loss; packed ones too) and stable-lr probes.

Pairing: every conv/linear layer is redrawn from its own stream (``core.model.shared_init``),
so the layers that arms share start equal.
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

import torch
import torch.nn.functional as F
from torch import nn

from bnsearch.core.data import DeviceData
from bnsearch.core.model import ModelConfig, build_model, shared_init
from bnsearch.core.packed import PackMember, train_packed
from bnsearch.core.seeding import derive_seed, torch_generator
from bnsearch.core.space import TrialParams
from bnsearch.core.train import EpochMetrics, TrainConfig, TrainResult, eval_batch_size, evaluate, train
from bnsearch.findings._design import (
    CHECKPOINT_STEPS,
    FIT_EXAMPLES,
    FIT_MAX_EPOCHS,
    RECALIBRATION_EXAMPLES,
    Cell,
)
from bnsearch.findings._design2 import EARLY_STEPS, HE_INIT_NETS, PROBE_STEPS, Arm2

if TYPE_CHECKING:
    from bnsearch.findings._design2 import Cell2


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
    test_nll: float | None = None  # design 2: mean test NLL (nats) of the final net; NaN when diverged
    early_loss: float | None = None  # design 2 grid cells: mean training loss of the first EARLY_STEPS steps

    def to_attrs(self) -> dict[str, Any]:
        attrs = {
            "val_acc": self.val_acc,
            "test_acc": self.test_acc,
            "diverged": self.diverged,
            "epochs_run": self.epochs_run,
            "curve": [list(p) for p in self.curve],
            "fit_reached": self.fit_reached,
            "fit_train_acc": self.fit_train_acc,
            "wall_time_s": self.wall_time_s,
        }
        # Design 2's measurements only where measured: a design-1 trial keeps its attributes.
        for key in ("test_nll", "early_loss"):
            if getattr(self, key) is not None:
                attrs[key] = getattr(self, key)
        return attrs


def make_model(cell: Cell | Cell2, data: DeviceData, *, seed: int, epochs: int, net: str = "bncnn") -> nn.Module:
    """The cell's network (``net``: bncnn or plain) with the seed's shared initial weights."""
    params = cell.arm.params(lr=cell.lr, epochs=epochs)
    cfg = ModelConfig(model=net)
    model = build_model(
        params, in_shape=data.in_shape, num_classes=data.num_classes, seed=derive_seed(seed, "model"), cfg=cfg
    )
    shared_init(model, seed)
    if isinstance(cell.arm, Arm2) and cell.arm.net in HE_INIT_NETS:
        he_init(model)
    return model.to(data.device)


def he_init(model: nn.Module) -> None:
    """Scale every conv layer's weights from PyTorch's default uniform ±1/√fan_in to He et
    al.'s ±√(6/fan_in) (gain √2, the init of deep ReLU nets), keeping the shared draws.

    With the default bound each ReLU layer keeps a sixth of its input's second moment, so a
    12-layer plain net without BN starts with no signal at all and trains at no lr (design 2's
    first pilot): a comparison with BN would then measure the init, not BN."""
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.Conv2d):
                m.weight.mul_(math.sqrt(6.0))


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
    results = _train_pack(
        cells, models, data, epochs=epochs, cfg=cfg, batch_seeds=[derive_seed(seed, "batches")] * len(cells)
    )
    return [
        _outcome(m, data, r.diverged, r.val_acc, (), r.wall_time_s, epochs_run=len(r.history))
        for m, r in zip(models, results, strict=True)
    ]


def _train_pack(
    cells: Sequence[Cell | Cell2],
    models: Sequence[nn.Module],
    data: DeviceData,
    *,
    epochs: int,
    cfg: TrainConfig | None,
    batch_seeds: Sequence[int],
    early_steps: int = 0,
) -> list[TrainResult]:
    members = [
        PackMember(model=m, params=c.arm.params(lr=c.lr, epochs=epochs), seed=s, early_steps=early_steps)
        for c, m, s in zip(cells, models, batch_seeds, strict=True)
    ]
    return train_packed(members, data, cfg=cfg)


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


# ---- design 2 ----------------------------------------------------------------------------


@torch.inference_mode()
def test_nll(model: nn.Module, x: torch.Tensor, y: torch.Tensor, *, batch_size: int | None = None) -> float:
    """Mean negative log-likelihood (nats) of ``model`` on ``(x, y)`` in eval mode; restores the mode."""
    was_training = model.training
    model.eval()
    bs = batch_size or eval_batch_size(y.device)
    total = torch.zeros((), dtype=torch.float64, device=y.device)
    for i in range(0, len(y), bs):
        total += F.cross_entropy(model(x[i : i + bs]).float(), y[i : i + bs], reduction="sum").double()
    model.train(was_training)
    return total.item() / max(len(y), 1)


class EarlyLoss:
    """The mean training loss of ``train()``'s first ``steps`` SGD steps, read off the model.

    ``train()`` reports losses per epoch only. A forward hook keeps the logits of each training
    forward pass (train mode, gradients on: not an evaluation or a BN recomputation), and the
    labels are those of the batches ``train()`` draws: its permutations, one per epoch, replayed
    from the same seed and cut as it cuts them (tests/findings/test_findings_design2.py checks it
    against ``train()``'s own epoch loss). Weighted by batch size, as ``train()`` averages.
    """

    def __init__(self, model: nn.Module, data: DeviceData, params: TrialParams, *, seed: int, steps: int) -> None:
        n = len(data.train_y)
        gen = torch_generator(seed, data.device)
        labels: list[torch.Tensor] = []
        for start, end in _batch_bounds(n, params.batch_size, steps):
            if start == 0:  # one permutation per epoch, drawn in order from one generator
                perm = torch.randperm(n, generator=gen, device=data.device)
            labels.append(data.train_y[perm[start:end]])
        losses: list[torch.Tensor] = []
        self._labels, self._losses = labels, losses

        # A closure, not a bound method: a deepcopy of the model (BN recomputation) copies it as is.
        def hook(module: nn.Module, _inputs: object, output: torch.Tensor) -> None:
            if module.training and torch.is_grad_enabled() and len(losses) < len(labels):
                k = len(losses)
                losses.append(F.cross_entropy(output.detach().float(), labels[k]) * len(labels[k]))

        self._handle = model.register_forward_hook(hook)

    def value(self, *, diverged: bool) -> float:
        """The mean loss; inf when any of the steps had a NaN or infinite loss, or training
        ``diverged`` before the last of them (a run shorter than ``steps`` that did not diverge:
        the mean over its steps). Removes the hook."""
        self._handle.remove()
        return _mean_early_loss(self._losses, [len(y) for y in self._labels], diverged=diverged)


def _batch_bounds(n: int, batch_size: int, steps: int) -> list[tuple[int, int]]:
    """Where each of ``train()``'s first ``steps`` SGD steps cuts its epoch's permutation of
    ``n`` examples: batches of ``batch_size``, a last batch of one dropped, as ``train()`` does."""
    bs = min(batch_size, n)
    n_used = n - 1 if n % bs == 1 else n
    per_epoch = math.ceil(n_used / bs)
    return [((k % per_epoch) * bs, min((k % per_epoch + 1) * bs, n_used)) for k in range(steps)]


def _mean_early_loss(losses: Sequence[torch.Tensor], sizes: Sequence[int], *, diverged: bool) -> float:
    """The mean training loss of the first ``len(sizes)`` steps from ``losses`` (each step's
    loss × its batch size ``sizes[k]``, as many as were taken); inf when any was NaN or infinite,
    or training ``diverged`` before the last of them (a run shorter than that which did not
    diverge: the mean over its steps)."""
    if not losses or (diverged and len(losses) < len(sizes)):
        return math.inf
    total = torch.stack(list(losses)).sum().item() / sum(sizes[: len(losses)])
    return total if math.isfinite(total) else math.inf


def _batch_seed(cell: Cell2, seed: int) -> int:
    # The twin arm draws its batch order from a stream of its own: the same net as its
    # original, differing only by seed noise (the negative control).
    return derive_seed(seed, "batches", "twin") if cell.arm.twin else derive_seed(seed, "batches")


def train_cell2(
    cell: Cell2, data: DeviceData, *, seed: int, epochs: int, cfg: TrainConfig | None = None
) -> CellOutcome:
    """Train one design-2 cell (a grid cell, or a probe run when ``cell.kind == "probe"``) of
    ``cell.arm.net`` from seed ``seed`` (split already in ``data``) and measure it."""
    if cell.kind == "probe":
        return train_probe(cell, data, seed=seed, cfg=cfg)
    net = cell.arm.net
    model = make_model(cell, data, seed=seed, epochs=epochs, net=net)
    params = cell.arm.params(lr=cell.lr, epochs=epochs)
    batch_seed = _batch_seed(cell, seed)
    recal_x = data.train_x[:RECALIBRATION_EXAMPLES]
    curve: list[tuple[int, float]] = []

    def on_step(step: int) -> None:
        if step % CHECKPOINT_STEPS == 0:
            curve.append((step, evaluate(recalibrated(model, recal_x), data.val_x, data.val_y)))

    early = EarlyLoss(model, data, params, seed=batch_seed, steps=EARLY_STEPS)
    result = train(model, data, params, seed=batch_seed, cfg=cfg, on_step=on_step if cell.checkpoints else None)
    return _outcome2(model, data, result, curve, early_loss=early.value(diverged=result.diverged))


def _outcome2(
    model: nn.Module, data: DeviceData, result: TrainResult, curve: Sequence[tuple[int, float]], *, early_loss: float
) -> CellOutcome:
    outcome = _outcome(
        model, data, result.diverged, result.val_acc, curve, result.wall_time_s, epochs_run=len(result.history)
    )
    nll = math.nan if result.diverged else test_nll(model, data.test_x, data.test_y)
    return replace(outcome, test_nll=nll, early_loss=early_loss)


def train_cells_packed2(
    cells: Sequence[Cell2], data: DeviceData, *, seed: int, epochs: int, cfg: TrainConfig | None = None
) -> list[CellOutcome]:
    """Design-2 grid cells without a curve (each arm of one shape) trained as one packed model
    (``--pack``), each from its own batch seed: what ``train_cell2`` measures of each.

    Raises:
        ValueError: a probe cell or a cell that records a curve (those train one by one), or
            cells of nets of different shapes.
    """
    if any(c.kind != "grid" or c.checkpoints for c in cells):
        raise ValueError("only grid cells without a curve train in a pack; probes and curve cells train one by one")
    if not cells:
        return []
    models = [make_model(c, data, seed=seed, epochs=epochs, net=c.arm.net) for c in cells]
    batch_seeds = [_batch_seed(c, seed) for c in cells]
    results = _train_pack(cells, models, data, epochs=epochs, cfg=cfg, batch_seeds=batch_seeds, early_steps=EARLY_STEPS)
    batch_size = cells[0].arm.params(lr=cells[0].lr, epochs=epochs).batch_size  # one for the pack (its shape)
    sizes = [end - start for start, end in _batch_bounds(len(data.train_y), batch_size, EARLY_STEPS)]
    return [
        _outcome2(m, data, r, (), early_loss=_mean_early_loss(r.step_losses, sizes, diverged=r.diverged))
        for m, r in zip(models, results, strict=True)
    ]


class _ProbeDone(Exception):
    """Raised from ``on_step`` to end a probe run after ``PROBE_STEPS`` steps."""


def train_probe(
    cell: Cell2, data: DeviceData, *, seed: int, cfg: TrainConfig | None = None, steps: int = PROBE_STEPS
) -> CellOutcome:
    """Train ``cell.arm`` for ``steps`` SGD steps at ``cell.lr`` (the grid cells' batch order),
    then measure validation accuracy with BN recomputed (chance level when it diverged). The
    test split is not touched (``test_acc`` NaN)."""
    start = time.perf_counter()
    n = len(data.train_y)
    batch_size = min(cell.arm.params(lr=cell.lr, epochs=1).batch_size, n)
    epochs = math.ceil(steps / max(1, n // batch_size)) + 1  # enough epochs; on_step ends it
    model = make_model(cell, data, seed=seed, epochs=epochs, net=cell.arm.net)
    params = cell.arm.params(lr=cell.lr, epochs=epochs)

    def on_step(step: int) -> None:
        if step >= steps:
            raise _ProbeDone

    diverged = False
    try:
        diverged = train(model, data, params, seed=_batch_seed(cell, seed), cfg=cfg, on_step=on_step).diverged
    except _ProbeDone:
        pass
    # NaN and inf persist in the weights: a loss that blew up since the last check shows here.
    diverged = diverged or not all(bool(torch.isfinite(p).all()) for p in model.parameters())
    val_acc = _chance(data)
    if not diverged:
        val_acc = evaluate(recalibrated(model, data.train_x[:RECALIBRATION_EXAMPLES]), data.val_x, data.val_y)
    return CellOutcome(
        val_acc=val_acc, test_acc=math.nan, diverged=diverged, epochs_run=0, wall_time_s=time.perf_counter() - start
    )
