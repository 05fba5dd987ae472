"""The training loop: SGD on tensors already on the device, one host sync per epoch.

``train()`` knows nothing of Optuna: it calls ``on_epoch(metrics)`` after every epoch and
stops when that returns True. A NaN or infinite loss ends training with ``diverged=True``.

Speed (see benchmarks/README.md): the model and each batch are channels_last (oneDNN's and
cuDNN's fast convolution layout), ``precision="bf16"`` runs forward and loss under bf16
autocast, and the optimizer step is the fused SGD kernel where the device has one.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from bnsearch.core.data import DeviceData
from bnsearch.core.model import param_groups
from bnsearch.core.seeding import torch_generator
from bnsearch.core.space import TrialParams
from bnsearch.errors import ConfigError

PRECISIONS = ("fp32", "bf16")


@dataclass(frozen=True, slots=True, kw_only=True)
class TrainConfig:
    decay_bn_params: bool = False  # apply weight decay to BN gamma/beta too
    # Examples per forward pass when measuring accuracy; None: eval_batch_size(device).
    eval_batch_size: int | None = None
    # SGD steps between checks for a non-finite loss on the CPU (a check is a host read, free
    # there); on an accelerator the loss is read once per epoch so no step waits for the host.
    divergence_check_steps: int = 16
    precision: str = "fp32"  # one of PRECISIONS: "bf16" = bf16 autocast (changes results)
    channels_last: bool = True  # NHWC memory layout for conv layers (same math, faster kernels)


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
    # train_packed, a member with early_steps: each of its first steps' loss × batch size, on the
    # device (not compared: tensors have no single truth value).
    step_losses: tuple[torch.Tensor, ...] = field(default=(), compare=False, repr=False)

    @property
    def val_acc(self) -> float:
        """Validation accuracy after the last completed epoch (0.0 if none completed)."""
        return self.history[-1].val_acc if self.history else 0.0


NATIVE_BF16_ENV = "BNSEARCH_NATIVE_BF16"  # "0" or "1" overrides the bf16 detection of CPUs and CUDA GPUs


def bf16_supported(device: torch.device | str) -> bool:
    """Whether ``device`` runs bf16 matrix math natively (emulated bf16 is slower than fp32).

    ``BNSEARCH_NATIVE_BF16=0`` (or ``1``) overrides the detection for CPUs and CUDA devices, so
    that one machine can run the fp32 path that CPUs without bf16 units get, and the bf16 path
    (emulated, hence slow, where the units are missing): the test suite runs under both.

    Raises:
        ConfigError: the override is set to something other than ``0`` or ``1``.
    """
    dev = torch.device(device)
    override = os.environ.get(NATIVE_BF16_ENV)
    if override is not None and dev.type in ("cpu", "cuda"):
        if override not in ("0", "1"):
            raise ConfigError(f"{NATIVE_BF16_ENV} must be 0 or 1, got '{override}'")
        return override == "1"
    if dev.type == "cuda":
        return bool(torch.cuda.is_bf16_supported())
    if dev.type == "cpu":
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    return False


def bf16_runs(device: torch.device | str) -> bool:
    """Whether ``device`` can train in bf16 autocast at all, natively or emulated (slower)."""
    dev = torch.device(device)
    if dev.type == "cuda":
        return bool(torch.cuda.is_bf16_supported(including_emulation=True))
    return dev.type == "cpu"  # autocast converts on any CPU; MPS support depends on the OS


def eval_batch_size(device: torch.device | str) -> int:
    """Examples per evaluation forward pass: small on a CPU, where a batch's activations must
    stay in cache (128 ran 4× faster than 2048 here), large on an accelerator."""
    return 128 if torch.device(device).type == "cpu" else 2048


def _autocast(device: torch.device, precision: str) -> torch.autocast:
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=precision == "bf16")


def _layout(x: torch.Tensor, channels_last: bool) -> torch.Tensor:
    return x.contiguous(memory_format=torch.channels_last) if channels_last and x.dim() == 4 else x


@torch.inference_mode()
def _count_correct(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    batch_size: int,
    precision: str,
    channels_last: bool,
) -> torch.Tensor:
    was_training = model.training
    model.eval()
    correct = torch.zeros((), dtype=torch.long, device=y.device)
    with _autocast(y.device, precision):
        for i in range(0, len(y), batch_size):
            out = model(_layout(x[i : i + batch_size], channels_last))
            correct += (out.argmax(1) == y[i : i + batch_size]).sum()
    model.train(was_training)
    return correct


def evaluate(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    batch_size: int | None = None,
    precision: str = "fp32",
    channels_last: bool = False,
) -> float:
    """Accuracy (0..1) of ``model`` on ``(x, y)`` in eval mode; restores the previous mode."""
    correct = _count_correct(
        model,
        x,
        y,
        batch_size=batch_size or eval_batch_size(y.device),
        precision=precision,
        channels_last=channels_last,
    )
    return correct.item() / max(len(y), 1)


def _make_optimizer(model: nn.Module, params: TrialParams, cfg: TrainConfig, device: torch.device) -> torch.optim.SGD:
    groups = param_groups(model, weight_decay=params.weight_decay, decay_bn_params=cfg.decay_bn_params)
    # One fused kernel per step instead of a loop over ~10 small tensors; same update rule.
    fused = device.type in ("cpu", "cuda")
    return torch.optim.SGD(groups, lr=params.lr, momentum=params.momentum, fused=fused)


def train(
    model: nn.Module,
    data: DeviceData,
    params: TrialParams,
    *,
    seed: int,
    cfg: TrainConfig | None = None,
    on_epoch: Callable[[EpochMetrics], bool | None] | None = None,
    on_step: Callable[[int], None] | None = None,
) -> TrainResult:
    """Train ``model`` on ``data.train_*`` with SGD, validating after every epoch.

    Args:
        model: A model on ``data.device``.
        data: Splits already on the device.
        params: lr, weight_decay, momentum, batch_size and epochs are read from here.
        seed: Seeds the batch order (a private generator; the global RNG is untouched).
        cfg: Loop settings.
        on_epoch: Called with each epoch's metrics; returning True stops training.
        on_step: Called after every SGD step with the steps taken so far (1-based, counted
            over all epochs), e.g. to evaluate a copy of the model mid-epoch.

    Returns:
        The per-epoch history and how training ended.
    """
    cfg = cfg or TrainConfig()
    start = time.perf_counter()
    device = data.device
    gen = torch_generator(seed, device)
    if cfg.channels_last:
        model.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
    opt = _make_optimizer(model, params, cfg, device)
    check_steps = cfg.divergence_check_steps if device.type == "cpu" else 0
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
            xb, yb = _layout(data.train_x[idx], cfg.channels_last), data.train_y[idx]
            with _autocast(device, cfg.precision):
                out = model(xb)
                loss = F.cross_entropy(out, yb)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            if on_step is not None:
                on_step((epoch - 1) * steps + step + 1)
            loss_sum += loss.detach() * len(idx)
            correct += (out.detach().argmax(1) == yb).sum()
            checkpoint = check_steps and (step + 1) % check_steps == 0
            if checkpoint and not torch.isfinite(loss_sum).item():
                return finish(diverged=True, reason=_diverged_reason(epoch, step + 1))
        val_correct = _count_correct(
            model,
            data.val_x,
            data.val_y,
            batch_size=cfg.eval_batch_size or eval_batch_size(device),
            precision=cfg.precision,
            channels_last=cfg.channels_last,
        )
        # The epoch's one host sync: loss, train and validation counts in a single read.
        loss_total, train_correct, n_val_correct = torch.stack(
            [loss_sum.double(), correct.double(), val_correct.double()]
        ).tolist()
        train_loss = loss_total / n_used
        if not math.isfinite(train_loss):
            return finish(diverged=True, reason=_diverged_reason(epoch, steps))
        metrics = EpochMetrics(
            epoch=epoch,
            train_loss=train_loss,
            train_acc=train_correct / n_used,
            val_acc=n_val_correct / max(len(data.val_y), 1),
            epoch_time_s=time.perf_counter() - t0,
        )
        history.append(metrics)
        if on_epoch is not None and on_epoch(metrics):
            return finish(stopped=True, reason=f"stopped after epoch {epoch}")
    return finish()


def _diverged_reason(epoch: int, step: int) -> str:
    return f"diverged: training loss became NaN or infinite in epoch {epoch} (by step {step})"
