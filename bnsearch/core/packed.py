"""Packed training: K models of one shape trained as one fused model, each exactly as ``train()``.

The K models' parameters and BN buffers are stacked along a new leading dimension
(``torch.func.stack_module_state``) and one forward pass runs them all through
``torch.func.vmap`` + ``functional_call``: a convolution over K stacked weights becomes one
grouped convolution, the classifier one batched matmul, BatchNorm one normalisation over K×C
channels. Each member keeps everything ``train()`` gives a single model:

* its own batch order: a private generator seeded like ``train()``'s, one ``randperm`` per
  epoch, the K index rows gathered in one indexing op;
* its own lr, weight decay and momentum: a stacked SGD with per-member coefficients and the
  update rule of ``torch.optim.SGD`` (decoupled groups from ``param_groups``);
* its own BN running statistics (stacked buffers, updated in place under ``vmap``);
* its own loss: the members' mean losses are summed before ``backward``, so each member's
  gradient is the gradient of its own loss and nothing else;
* its own end: a member that diverges, is stopped by its ``on_epoch`` or reaches its epoch
  count leaves the pack (its rows are dropped from every stacked tensor); the others'
  numbers never see it.

Only models of one shape can share a pack (``shape_key``): activation, BN placement, BN
before the classifier, batch size, and the deeper nets' depth, width, norm kind and BN
momentum. Everything else may differ. A user factory may build any net from any params (its own extra
params included), so the search also compares the built nets (``net_signature``).
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call, stack_module_state, vmap

from bnsearch.core.data import DeviceData
from bnsearch.core.model import param_groups
from bnsearch.core.seeding import torch_generator
from bnsearch.core.space import TrialParams
from bnsearch.core.train import EpochMetrics, TrainConfig, TrainResult, _autocast, _diverged_reason, eval_batch_size

OnEpoch = Callable[[EpochMetrics], bool | None]


def shape_key(params: TrialParams) -> tuple[object, ...]:
    """What must be equal for two trials to train in one pack: the network's structure and
    the batch size (every member takes a step on a batch of the same shape). BN momentum is a
    module attribute, which a pack shares, so it is part of the shape."""
    key: tuple[object, ...] = (params.activation, params.bn_placement, bool(params.bn_classifier), params.batch_size)
    structure = (params.depth, params.width, params.norm, params.bn_momentum)
    return key if structure == (None, None, None, None) else (*key, *structure)


def net_signature(model: nn.Module) -> tuple[object, ...]:
    """The modules with their settings (``repr``: dropout rate, BN momentum, ...) and the
    parameter and buffer shapes of ``model``: equal for two nets that can train in one pack,
    which runs every member through one module (the first member's)."""
    tensors = tuple((k, tuple(v.shape), v.dtype) for k, v in model.state_dict().items())
    return (repr(model), tensors)


@dataclass(frozen=True, slots=True, kw_only=True)
class PackMember:
    """One model of a pack and how it trains."""

    model: nn.Module  # built by ``build_model`` on the data's device; gets the trained weights back
    params: TrialParams  # lr, weight_decay, momentum, batch_size and epochs are read from here
    seed: int  # seeds the batch order, as ``train(seed=...)`` does
    on_epoch: OnEpoch | None = None  # as ``train(on_epoch=...)``: returning True stops this member
    on_end: Callable[[TrainResult], None] | None = None  # called once, as the member leaves the pack,
    # with its trained weights already in ``model``
    early_steps: int = 0  # the loss × batch size of this many first SGD steps comes back in
    # ``TrainResult.step_losses`` (as device tensors: no host sync per step)


class _Slot:
    """The running state of one member inside the pack."""

    def __init__(self, index: int, member: PackMember, device: torch.device) -> None:
        self.index = index  # position in the caller's list
        self.member = member
        self.gen = torch_generator(member.seed, device)
        self.history: list[EpochMetrics] = []
        self.time_s = 0.0  # this member's share of the pack's wall time
        self.step_losses: list[torch.Tensor] = []  # its first ``member.early_steps`` losses × batch size


def train_packed(
    members: Sequence[PackMember],
    data: DeviceData,
    *,
    cfg: TrainConfig | None = None,
) -> list[TrainResult]:
    """Train every member's model as ``train()`` would, all at once as one packed model.

    Args:
        members: Models of one ``shape_key`` (same architecture and batch size).
        data: Splits already on the device.
        cfg: Loop settings, shared by the pack (``channels_last`` is not used: the stacked
            batch is five-dimensional).

    Returns:
        One ``TrainResult`` per member, in order; ``wall_time_s`` and ``epoch_time_s`` are the
        member's share (the pack's time divided by the members training at that moment);
        ``step_losses`` the loss × batch size of each of its first ``early_steps`` steps.

    Raises:
        ValueError: the members' shapes differ.
    """
    cfg = cfg or TrainConfig()
    if not members:
        return []
    keys = {shape_key(m.params) for m in members}
    if len(keys) > 1 or len({net_signature(m.model) for m in members}) > 1:
        raise ValueError(f"a pack needs members of one shape, got {sorted(keys, key=repr)}")
    device = data.device
    slots = [_Slot(i, m, device) for i, m in enumerate(members)]
    results: list[TrainResult | None] = [None] * len(members)
    base = copy.deepcopy(members[0].model).to("meta")
    params, buffers = stack_module_state([m.model for m in members])
    params = {k: v.detach().requires_grad_() for k, v in params.items()}
    decayed = _decayed_names(members[0].model, cfg)
    momentum_buf: dict[str, torch.Tensor] = {}
    check_steps = cfg.divergence_check_steps if device.type == "cpu" else 0
    n = len(data.train_y)
    bs = min(members[0].params.batch_size, n)
    n_used = n - 1 if n % bs == 1 else n  # as train(): a last batch of one breaks BN
    steps = math.ceil(n_used / bs)
    early_steps = max(m.early_steps for m in members)
    taken = 0  # SGD steps so far, over all epochs (every member started at the same one)

    def forward(p: dict[str, torch.Tensor], b: dict[str, torch.Tensor], x: torch.Tensor) -> torch.Tensor:
        return functional_call(base, (p, b), (x,))

    def loss_fn(p: dict[str, torch.Tensor], b: dict[str, torch.Tensor], x: torch.Tensor, y: torch.Tensor):  # type: ignore[no-untyped-def]
        out = forward(p, b, x)
        return F.cross_entropy(out, y), out

    # "different": a user net's dropout draws its own mask per member (from the global RNG, so
    # not per member seed); the built-in nets draw nothing at random here.
    train_step = vmap(loss_fn, randomness="different")
    eval_step = vmap(forward, in_dims=(0, 0, None), randomness="different")

    def finish(pos: int, **kw: object) -> None:
        """End the member at position ``pos``: its weights back into its model, then ``on_end``."""
        slot = slots[pos]
        _copy_back(slot.member.model, params, buffers, pos)
        history, losses = tuple(slot.history), tuple(slot.step_losses)
        result = results[slot.index] = TrainResult(history, slot.time_s, step_losses=losses, **kw)  # type: ignore[arg-type]
        if slot.member.on_end is not None:
            slot.member.on_end(result)

    def drop(gone: set[int]) -> None:
        """Remove the slots at positions ``gone`` (positions in ``slots``) from the pack."""
        nonlocal params, buffers, slots
        if not gone:
            return
        keep = [i for i in range(len(slots)) if i not in gone]
        if keep:
            idx = torch.tensor(keep, device=device)
            params = {k: v.detach()[idx].requires_grad_() for k, v in params.items()}
            buffers = {k: v[idx] for k, v in buffers.items()}
            for k in list(momentum_buf):
                momentum_buf[k] = momentum_buf[k][idx]
        slots = [slots[i] for i in keep]

    # Members with fewer epochs leave after their last one (epochs may be searched).
    for epoch in range(1, max(m.params.epochs for m in members) + 1):
        if not slots:
            break
        t0 = time.perf_counter()
        base.train()
        perms = torch.stack([torch.randperm(n, generator=s.gen, device=device) for s in slots])
        loss_sum = torch.zeros(len(slots), device=device)
        correct = torch.zeros(len(slots), dtype=torch.long, device=device)
        hyper = _hyper(slots, device)
        step = 0
        while step < steps and slots:
            idx = perms[:, step * bs : min((step + 1) * bs, n_used)]
            xb, yb = data.train_x[idx], data.train_y[idx]
            with _autocast(device, cfg.precision):
                losses, out = train_step(params, buffers, xb, yb)
            for v in params.values():
                v.grad = None
            losses.sum().backward()
            _sgd_step(params, momentum_buf, decayed, hyper)
            scaled = losses.detach() * idx.shape[1]
            loss_sum += scaled
            if taken < early_steps:
                # Kept per slot: a member's row in the pack moves when another leaves.
                for pos, slot in enumerate(slots):
                    if taken < slot.member.early_steps:
                        slot.step_losses.append(scaled[pos])
            taken += 1
            correct += (out.detach().argmax(-1) == yb).sum(1)
            step += 1
            if check_steps and step % check_steps == 0:
                bad = {i for i, ok in enumerate(torch.isfinite(loss_sum).tolist()) if not ok}
                if bad:
                    share = (time.perf_counter() - t0) / len(slots)
                    for i in bad:
                        slots[i].time_s += share
                        finish(i, diverged=True, reason=_diverged_reason(epoch, step))
                    t0 = time.perf_counter()  # the rest of the epoch is shared by fewer
                    keep = [i for i in range(len(slots)) if i not in bad]
                    loss_sum, correct = loss_sum[keep], correct[keep]
                    hyper = tuple(h[keep] for h in hyper)  # type: ignore[assignment]
                    perms = perms[keep]
                    drop(bad)
        if not slots:
            break
        val_correct = _count_correct_packed(eval_step, base, params, buffers, data, cfg)
        # The epoch's one host sync, as in train().
        totals = torch.stack([loss_sum.double(), correct.double(), val_correct.double()]).tolist()
        share = (time.perf_counter() - t0) / len(slots)
        gone: set[int] = set()
        for pos, slot in enumerate(slots):
            slot.time_s += share
            train_loss = totals[0][pos] / n_used
            if not math.isfinite(train_loss):
                finish(pos, diverged=True, reason=_diverged_reason(epoch, steps))
                gone.add(pos)
                continue
            metrics = EpochMetrics(
                epoch=epoch,
                train_loss=train_loss,
                train_acc=totals[1][pos] / n_used,
                val_acc=totals[2][pos] / max(len(data.val_y), 1),
                epoch_time_s=share,
            )
            slot.history.append(metrics)
            on_epoch = slot.member.on_epoch
            if on_epoch is not None and on_epoch(metrics):
                finish(pos, stopped=True, reason=f"stopped after epoch {epoch}")
                gone.add(pos)
            elif epoch >= slot.member.params.epochs:
                finish(pos)
                gone.add(pos)
        drop(gone)
    return [r if r is not None else TrainResult((), 0.0) for r in results]


def _decayed_names(model: nn.Module, cfg: TrainConfig) -> frozenset[str]:
    """Names of the parameters ``train()`` decays (the ``param_groups`` split)."""
    groups = param_groups(model, weight_decay=1.0, decay_bn_params=cfg.decay_bn_params)
    decay_ids = {id(p) for g in groups if g["name"] == "decay" for p in g["params"]}  # type: ignore[attr-defined]
    return frozenset(name for name, p in model.named_parameters() if id(p) in decay_ids)


def _hyper(slots: Sequence[_Slot], device: torch.device) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per-member lr, weight decay and momentum as (K,) tensors."""

    def col(name: str) -> torch.Tensor:
        # float64, so a float64 pack steps with exactly the lr it was given (cast down per tensor).
        return torch.tensor([float(getattr(s.member.params, name)) for s in slots], dtype=torch.float64, device=device)

    return col("lr"), col("weight_decay"), col("momentum")


@torch.no_grad()
def _sgd_step(
    params: dict[str, torch.Tensor],
    momentum_buf: dict[str, torch.Tensor],
    decayed: frozenset[str],
    hyper: tuple[torch.Tensor, torch.Tensor, torch.Tensor],
) -> None:
    """``torch.optim.SGD``'s update (no dampening, no Nesterov) with per-member coefficients:
    ``g = grad + wd·p`` (decayed params only), ``buf = momentum·buf + g`` (``buf = g`` on the
    first step), ``p -= lr·buf``."""
    lr, wd, momentum = hyper
    for name, p in params.items():
        if p.grad is None:
            continue
        shape = (-1,) + (1,) * (p.dim() - 1)
        g = p.grad
        if name in decayed:
            g = g + wd.view(shape).to(p.dtype) * p
        buf = momentum_buf.get(name)
        if buf is None:
            buf = momentum_buf[name] = g.clone()
        else:
            buf.mul_(momentum.view(shape).to(p.dtype)).add_(g)
        p.sub_(lr.view(shape).to(p.dtype) * buf)


@torch.no_grad()
def _count_correct_packed(
    eval_step: Callable[..., torch.Tensor],
    base: nn.Module,
    params: dict[str, torch.Tensor],
    buffers: dict[str, torch.Tensor],
    data: DeviceData,
    cfg: TrainConfig,
) -> torch.Tensor:
    """Per-member count of correct validation predictions, in eval mode (running BN stats)."""
    base.eval()
    k = next(iter(params.values())).shape[0]
    correct = torch.zeros(k, dtype=torch.long, device=data.device)
    batch = cfg.eval_batch_size or eval_batch_size(data.device)
    with _autocast(data.device, cfg.precision):
        for i in range(0, len(data.val_y), batch):
            out = eval_step(params, buffers, data.val_x[i : i + batch])
            correct += (out.argmax(-1) == data.val_y[i : i + batch]).sum(1)
    base.train()
    return correct


@torch.no_grad()
def _copy_back(model: nn.Module, params: dict[str, torch.Tensor], buffers: dict[str, torch.Tensor], pos: int) -> None:
    """Write row ``pos`` of the stacked state into ``model`` (the member's trained weights)."""
    for name, w in model.named_parameters():
        w.copy_(params[name][pos])
    for name, b in model.named_buffers():
        b.copy_(buffers[name][pos])
