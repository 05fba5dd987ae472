"""The training loop: SGD on tensors already on the device, one host sync per epoch.

``train()`` knows nothing of Optuna: it calls ``on_epoch(metrics)`` after every epoch and
stops when that returns True. A NaN or infinite loss ends training with ``diverged=True``.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from bnsearch.data import DeviceData
from bnsearch.model import param_groups
from bnsearch.seeding import torch_generator
from bnsearch.space import TrialParams


@dataclass(frozen=True, slots=True, kw_only=True)
class TrainConfig:
    decay_bn_params: bool = False  # apply weight decay to BN gamma/beta too
    eval_batch_size: int = 2048  # examples per forward pass when measuring accuracy
    divergence_check_steps: int = 16  # SGD steps between checks for a non-finite loss


@dataclass(frozen=True, slots=True)
class EpochMetrics:
    epoch: int  # 1-based
    train_loss: float  # mean cross-entropy over the epoch's steps
    train_acc: float  # accuracy (0..1) on the training batches as they were trained
    val_acc: float  # accuracy (0..1) on the validation split after the epoch
    epoch_time_s: float  # wall seconds for the epoch, evaluation included


@dataclass(frozen=True, slots=True)
class TrainResult:
    history: tuple[EpochMetrics, ...]
    wall_time_s: float
    diverged: bool = False  # the loss became NaN or infinite
    stopped: bool = False  # on_epoch asked to stop (e.g. the trial was pruned)
    reason: str | None = None  # why training ended early

    @property
    def val_acc(self) -> float:
        """Validation accuracy after the last completed epoch (0.0 if none completed)."""
        return self.history[-1].val_acc if self.history else 0.0


@torch.inference_mode()
def evaluate(model: nn.Module, x: torch.Tensor, y: torch.Tensor, *, batch_size: int = 2048) -> float:
    """Accuracy (0..1) of ``model`` on ``(x, y)`` in eval mode; restores the previous mode."""
    was_training = model.training
    model.eval()
    correct = torch.zeros((), dtype=torch.long, device=y.device)
    for i in range(0, len(y), batch_size):
        correct += (model(x[i : i + batch_size]).argmax(1) == y[i : i + batch_size]).sum()
    model.train(was_training)
    return correct.item() / max(len(y), 1)


def train(
    model: nn.Module,
    data: DeviceData,
    params: TrialParams,
    *,
    seed: int,
    cfg: TrainConfig | None = None,
    on_epoch: Callable[[EpochMetrics], bool | None] | None = None,
) -> TrainResult:
    """Train ``model`` on ``data.train_*`` with SGD, validating after every epoch.

    Args:
        model: A model on ``data.device``.
        data: Splits already on the device.
        params: lr, weight_decay, momentum, batch_size and epochs are read from here.
        seed: Seeds the batch order (a private generator; the global RNG is untouched).
        cfg: Loop settings.
        on_epoch: Called with each epoch's metrics; returning True stops training.

    Returns:
        The per-epoch history and how training ended.
    """
    cfg = cfg or TrainConfig()
    start = time.perf_counter()
    device = data.device
    gen = torch_generator(seed, device)
    opt = torch.optim.SGD(
        param_groups(model, weight_decay=params.weight_decay, decay_bn_params=cfg.decay_bn_params),
        lr=params.lr,
        momentum=params.momentum,
    )
    n = len(data.train_y)
    bs = min(params.batch_size, n)
    # A final batch of one example breaks BatchNorm's batch statistics; skip it.
    n_used = n - 1 if n % bs == 1 else n
    steps = math.ceil(n_used / bs)
    history: list[EpochMetrics] = []
    model.train()

    def finish(**kw: object) -> TrainResult:
        return TrainResult(tuple(history), time.perf_counter() - start, **kw)  # type: ignore[arg-type]

    for epoch in range(1, params.epochs + 1):
        t0 = time.perf_counter()
        perm = torch.randperm(n, generator=gen, device=device)
        # Accumulate on the device; read back once per epoch (or per check) to avoid syncs.
        loss_sum = torch.zeros((), device=device)
        correct = torch.zeros((), dtype=torch.long, device=device)
        for step in range(steps):
            idx = perm[step * bs : min((step + 1) * bs, n_used)]
            xb, yb = data.train_x[idx], data.train_y[idx]
            out = model(xb)
            loss = F.cross_entropy(out, yb)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            loss_sum += loss.detach() * len(idx)
            correct += (out.detach().argmax(1) == yb).sum()
            if (step + 1) % cfg.divergence_check_steps == 0 and not torch.isfinite(loss_sum).item():
                return finish(diverged=True, reason=_diverged_reason(epoch, step + 1))
        train_loss = loss_sum.item() / n_used
        if not math.isfinite(train_loss):
            return finish(diverged=True, reason=_diverged_reason(epoch, steps))
        val_acc = evaluate(model, data.val_x, data.val_y, batch_size=cfg.eval_batch_size)
        metrics = EpochMetrics(
            epoch=epoch,
            train_loss=train_loss,
            train_acc=correct.item() / n_used,
            val_acc=val_acc,
            epoch_time_s=time.perf_counter() - t0,
        )
        history.append(metrics)
        if on_epoch is not None and on_epoch(metrics):
            return finish(stopped=True, reason=f"stopped after epoch {epoch}")
    return finish()


def _diverged_reason(epoch: int, step: int) -> str:
    return f"diverged: training loss became NaN or infinite in epoch {epoch} (by step {step})"
