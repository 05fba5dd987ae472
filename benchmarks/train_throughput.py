# ruff: noqa: E501  (wide report lines read better unwrapped)
"""Seconds per trial-epoch: bnsearch's trainer vs a naive reference loop, and % of matmul peak.

Part 1 runs the same random search (same space, trials, epochs, sampler seed, no pruning) in
each variant below, trial by trial interleaved so load changes hit all of them alike:
  naive    the loop as tutorials write it: DataLoader(TensorDataset) batch 32, shuffle,
           per-batch ``loss.item()``, eval through a DataLoader under no_grad; same network,
           same lr / weight decay / momentum / init per trial.
  before   the trainer as it was before issue 7 (commit d2b2aab: NCHW, plain SGD), batch
           128; its source is read from git so both run in one process.
  fp32     bnsearch's Objective → train() (the default space's batch size, 32).
  bf16     the same with TrainConfig(precision="bf16").
``--precision fp32`` times only naive and fp32 (what ``--precision auto`` picks on a CPU without
bf16 units); ``--precision bf16`` only naive and bf16; the default, both.
It prints seconds per trial-epoch (epochs actually run) and the best validation accuracy.

Part 2 trains one fixed configuration per dataset and prints throughput as a fraction of
this CPU's measured float32 matmul peak: FLOPs per epoch (train samples × forward+backward
FLOPs + validation samples × forward FLOPs, counted by torch's FlopCounterMode) / seconds.

    PYTHONPATH=. python benchmarks/train_throughput.py [--trials 16 --epochs 2 --threads 2]
    PYTHONPATH=. python benchmarks/train_throughput.py --precision fp32

To run torch's, oneDNN's and MKL's AVX2 kernels on an AVX-512 CPU (the fp32 figures of an
AVX2-only CPU, as far as kernels go; the header prints the capability torch used):

    ATEN_CPU_CAPABILITY=avx2 ONEDNN_MAX_CPU_ISA=AVX2 MKL_ENABLE_INSTRUCTIONS=AVX2 \
        PYTHONPATH=. python benchmarks/train_throughput.py --precision fp32
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import statistics
import subprocess
import sys
import types
from collections.abc import Callable

import _common  # noqa: F401  (puts the checkout on sys.path)
import optuna
import torch
from torch.utils.data import DataLoader, TensorDataset

from bnsearch.core.cpu import set_threads
from bnsearch.core.data import DeviceData, load_dataset, split_dataset, to_device
from bnsearch.core.model import build_model, param_groups
from bnsearch.core.seeding import derive_seed
from bnsearch.core.space import DEFAULT_BATCH_SIZE, SearchSpace, TrialParams
from bnsearch.core.train import TrainConfig, TrainResult, train
from bnsearch.search.objective import Objective

NAIVE_BATCH = 32
BEFORE_COMMIT = "d2b2aab"  # the foundation's trainer, for the before/after table


def load_before_train() -> Callable[..., TrainResult] | None:
    """``train`` from the trainer at BEFORE_COMMIT, or None when git or the commit is missing."""
    try:
        src = subprocess.run(
            ["git", "show", f"{BEFORE_COMMIT}:bnsearch/train.py"],
            cwd=_common.ROOT,
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    except (OSError, subprocess.CalledProcessError):
        return None
    # The modules it imports (data, model, seeding, space) now live in bnsearch.core.
    src = src.replace("from bnsearch.", "from bnsearch.core.")
    module = types.ModuleType("bnsearch_train_before")
    sys.modules[module.__name__] = module  # dataclasses look their module up
    exec(compile(src, f"{BEFORE_COMMIT}:bnsearch/train.py", "exec"), module.__dict__)
    return module.train  # type: ignore[no-any-return]


def network(variant: str, p: TrialParams, data: DeviceData, *, seed: int) -> torch.nn.Module:
    """bnsearch's model, or for the naive loop and the pre-issue-7 trainer the network as a
    tutorial (and bnsearch before) wrote it: the same function, layer order of bnsearch.core.model."""
    if variant.startswith(("naive", "before")):
        return _common.tutorial_model(p, in_shape=data.in_shape, num_classes=data.num_classes, seed=seed)
    return build_model(p, in_shape=data.in_shape, num_classes=data.num_classes, seed=seed)


def naive_train(model: torch.nn.Module, data: DeviceData, p: TrialParams, *, seed: int) -> tuple[float, int]:
    """The tutorial loop. Returns (final val accuracy, epochs run)."""
    torch.manual_seed(seed)  # a tutorial seeds the global RNG; DataLoader shuffles with it
    loader = DataLoader(TensorDataset(data.train_x, data.train_y), batch_size=NAIVE_BATCH, shuffle=True)
    val_loader = DataLoader(TensorDataset(data.val_x, data.val_y), batch_size=1000)
    opt = torch.optim.SGD(param_groups(model, weight_decay=p.weight_decay), lr=p.lr, momentum=p.momentum)
    criterion = torch.nn.CrossEntropyLoss()
    acc = 0.0
    for _epoch in range(p.epochs):
        model.train()
        running_loss = 0.0
        for xb, yb in loader:
            if len(yb) < 2:  # BatchNorm needs two examples
                continue
            opt.zero_grad()
            loss = criterion(model(xb), yb)
            loss.backward()
            opt.step()
            running_loss += loss.item()
        model.eval()
        correct = 0
        with torch.no_grad():
            for xb, yb in val_loader:
                correct += (model(xb).argmax(1) == yb).sum().item()
        acc = correct / len(data.val_y)
    return (acc if math.isfinite(running_loss) else 0.0), p.epochs


def same_search(
    data: DeviceData,
    *,
    trials: int,
    epochs: int,
    seed: int,
    with_before: bool,
    precisions: tuple[str, ...],
    batch_size: int | None = None,
) -> None:
    space = SearchSpace.default().with_fixed(epochs=epochs, batch_size=batch_size)
    before = load_before_train() if with_before else None
    variants = ("naive", *(("before",) if before else ()), *precisions)
    studies = {
        v: optuna.create_study(
            direction="maximize",
            sampler=optuna.samplers.RandomSampler(seed=seed),
            pruner=optuna.pruners.NopPruner(),
        )
        for v in variants
    }
    objectives = {
        v: Objective(space=space, data=data, root_seed=seed, train_cfg=TrainConfig(precision=v)) for v in precisions
    }
    seconds = dict.fromkeys(variants, 0.0)
    epochs_run = dict.fromkeys(variants, 0)
    per_trial_ratio: list[float] = []
    for i in range(trials):
        t_trial: dict[str, float] = {}
        for v in variants:
            study = studies[v]
            trial = study.ask()
            t0 = _common.clock()
            if v == "naive":
                params = space.suggest(trial)
                seed_i = derive_seed(seed, "trial", trial.number)
                model = network("naive", params, data, seed=seed_i)
                value, n_ep = naive_train(model, data, params, seed=seed_i)
                study.tell(trial, value)
            elif v == "before":
                assert before is not None
                params = space.suggest(trial)
                seed_i = derive_seed(seed, "trial", trial.number)
                model = network("before", params, data, seed=seed_i)
                result = before(model, data, params, seed=seed_i)
                value = 0.0 if result.diverged else result.val_acc
                n_ep = len(result.history) + (1 if result.diverged else 0)
                study.tell(trial, value)
            else:
                try:
                    value = objectives[v](trial)
                    study.tell(trial, value)
                except optuna.TrialPruned:  # diverged: stopped early, counts as 0
                    study.tell(trial, state=optuna.trial.TrialState.PRUNED)
                    value = 0.0
                last = study.trials[-1]
                diverged = last.state == optuna.trial.TrialState.PRUNED  # no pruner: only divergence
                n_ep = min(int(last.user_attrs.get("epochs_run", epochs)) + diverged, epochs)
            dt = _common.clock() - t0
            t_trial[v] = dt / max(n_ep, 1)
            seconds[v] += dt
            epochs_run[v] += n_ep
        per_trial_ratio.append(t_trial[precisions[0]] / t_trial["naive"])
        print(
            f"  trial {i}: "
            + "  ".join(f"{v} {t_trial[v]:.2f}s/ep" for v in variants)
            + f"  (params {studies['naive'].trials[-1].params.get('activation')}, lr {studies['naive'].trials[-1].params.get('lr'):.3g})",
            flush=True,
        )
    print(
        f"\nsame random search: {trials} trials × {epochs} epochs, default space (bnsearch batch {batch_size or DEFAULT_BATCH_SIZE}), mnist5k-like data "
        f"({len(data.train_y)} train / {len(data.val_y)} val), no pruning"
    )
    print(f"{'variant':8} {'s/trial-epoch':>14} {'× naive':>8} {'best val acc':>13} {'mean of top 3':>14}")
    base = seconds["naive"] / epochs_run["naive"]
    for v in variants:
        s = seconds[v] / epochs_run[v]
        values = sorted((t.value for t in studies[v].trials if t.value is not None), reverse=True)
        best = values[0] if values else 0.0
        top3 = sum(values[:3]) / max(len(values[:3]), 1)
        print(f"{v:8} {s:14.3f} {s / base:8.2f} {100 * best:12.2f}% {100 * top3:13.2f}%")
    print(f"median per-trial time ratio {precisions[0]}/naive: {statistics.median(per_trial_ratio):.2f}")


def fixed_params(epochs: int) -> TrialParams:
    return TrialParams(
        lr=0.05,
        weight_decay=1e-4,
        momentum=0.9,
        batch_size=128,
        epochs=epochs,
        activation="relu",
        bn_placement="before_activation",
        bn_classifier=True,
        gamma_init="ones",
        beta_init="zeros",
    )


def peak_fraction(
    name: str, data: DeviceData, *, peak_gflops: float, repeats: int, epochs: int, precisions: tuple[str, ...]
) -> None:
    p = fixed_params(epochs)
    model = build_model(p, in_shape=data.in_shape, num_classes=data.num_classes, seed=0)
    fwd, fwd_bwd = _common.train_flops_per_sample(model, data.in_shape)
    flops_epoch = len(data.train_y) * fwd_bwd + len(data.val_y) * fwd
    best: dict[str, float] = {}
    before = load_before_train()
    for _ in range(repeats):  # interleaved; best-of per variant
        for v in ("naive b32", "before b128", *(f"{pr} b{bs}" for bs in (32, 128) for pr in precisions)):
            pv = dataclasses.replace(p, batch_size=int(v.split("b")[-1]))
            m = network(v, pv, data, seed=0)
            t0 = _common.clock()
            if v.startswith("naive"):
                naive_train(m, data, pv, seed=0)
            elif v.startswith("before"):
                if before is None:
                    continue
                before(m, data, pv, seed=0)
            else:
                train(m, data, pv, seed=0, cfg=TrainConfig(precision=v.split()[0]))
            best[v] = min(best.get(v, float("inf")), (_common.clock() - t0) / epochs)
    print(
        f"\n{name}: {fwd_bwd / 1e6:.2f} MFLOP/sample fwd+bwd, {fwd / 1e6:.2f} fwd; "
        f"{len(data.train_y)} train + {len(data.val_y)} val per epoch; best of {repeats}"
    )
    for v, s in best.items():
        gflops = flops_epoch / s / 1e9
        print(f"  {v:10} {s:7.3f} s/epoch  {gflops:6.1f} GFLOP/s  {100 * gflops / peak_gflops:5.1f}% of fp32 peak")


def precision_accuracy(data: DeviceData, *, seeds: int, epochs: int) -> None:
    """fp32 vs bf16 validation accuracy of one good configuration over several seeds."""
    p = fixed_params(epochs)
    acc: dict[str, list[float]] = {"fp32": [], "bf16": []}
    for seed in range(seeds):
        for precision in acc:
            m = build_model(p, in_shape=data.in_shape, num_classes=data.num_classes, seed=seed)
            acc[precision].append(train(m, data, p, seed=seed, cfg=TrainConfig(precision=precision)).val_acc)
    diffs = [b - a for a, b in zip(acc["fp32"], acc["bf16"], strict=True)]
    print(f"\nbf16 vs fp32 accuracy, mnist5k, relu + BN, lr 0.05, batch 128, {epochs} epochs, seeds 0..{seeds - 1}:")
    for precision, values in acc.items():
        print(
            f"  {precision}: "
            + " ".join(f"{100 * v:.2f}%" for v in values)
            + f"  mean {100 * statistics.mean(values):.2f}%"
        )
    print(f"  bf16 − fp32: mean {100 * statistics.mean(diffs):+.2f} points, worst {100 * min(diffs):+.2f}")


def lr_sweep(data: DeviceData, *, lrs: tuple[float, ...] = (0.02, 0.05, 0.1, 0.2, 0.4), epochs: int = 2) -> None:
    """Val accuracy and s/epoch per lr: naive batch 32 vs the trainer at batch 64 / 128, fp32 / bf16."""

    print(f"\nlr sweep, mnist5k, relu + BN, {epochs} epochs, seed 1: val acc and s/epoch")
    for lr in lrs:
        row = []
        for v in ("naive b32", "fp32 b64", "fp32 b128", "bf16 b64", "bf16 b128"):
            bs = int(v.split("b")[-1])
            p = dataclasses.replace(fixed_params(epochs), lr=lr, batch_size=bs)
            m = network(v, p, data, seed=1)
            t0 = _common.clock()
            if v.startswith("naive"):
                acc, _ = naive_train(m, data, p, seed=1)
            else:
                acc = train(m, data, p, seed=1, cfg=TrainConfig(precision=v.split()[0])).val_acc
            row.append(f"{v} {100 * acc:5.1f}% {(_common.clock() - t0) / epochs:5.2f}s")
        print(f"  lr {lr:<5} " + " | ".join(row), flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--trials", type=int, default=16)
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument(
        "--batch-size", type=int, default=None, help="bnsearch's batch size in the search (default: the space's)"
    )
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--repeats", type=int, default=3, help="repeats of the peak-fraction timing")
    ap.add_argument("--skip-search", action="store_true")
    ap.add_argument("--lr-sweep", action="store_true", help="also print accuracy per lr and batch size (~1-2 min)")
    ap.add_argument("--accuracy-seeds", type=int, default=3, help="seeds for the fp32 vs bf16 accuracy check (0: skip)")
    ap.add_argument("--with-before", action="store_true", help="also run the pre-issue-7 trainer in the search")
    ap.add_argument(
        "--precision",
        choices=("both", "fp32", "bf16"),
        default="both",
        help="bnsearch variants to time against the naive loop (fp32: what a CPU without bf16 units gets)",
    )
    ap.add_argument(
        "--cpu-time",
        action="store_true",
        help="time with the process's CPU seconds, not the wall clock (needs --threads 1; for a busy machine)",
    )
    ap.add_argument(
        "--subnormals",
        choices=("flush", "keep"),
        default="flush",
        help="flush: as bnsearch's entry points set the process (FTZ/DAZ); keep: as before issue 12 (for the before/after)",
    )
    args = ap.parse_args()
    if args.cpu_time:
        if args.threads != 1:
            ap.error("--cpu-time needs --threads 1 (CPU seconds of several threads add up)")
        _common.use_cpu_time()
    precisions = ("fp32", "bf16") if args.precision == "both" else (args.precision,)
    if args.subnormals == "flush":
        set_threads(args.threads, 1)  # as bnsearch's entry points do; the naive loop runs under it too
    else:
        torch.set_num_threads(args.threads)
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    _common.header("train_throughput")
    print(f"clock: {'process CPU time' if args.cpu_time else 'wall'}; subnormal floats: {args.subnormals}")
    peak = _common.matmul_peak_gflops(torch.float32)
    peaks = f"fp32 {peak:.0f} GFLOP/s"
    if "bf16" in precisions:
        peaks += f", bf16 {_common.matmul_peak_gflops(torch.bfloat16):.0f} GFLOP/s"
    print(f"matmul peak (1024², best of 7): {peaks}")
    mnist = to_device(split_dataset(load_dataset("mnist5k"), seed=derive_seed(args.seed, "split")), "cpu")
    digits = to_device(split_dataset(load_dataset("digits"), seed=derive_seed(args.seed, "split")), "cpu")
    if not args.skip_search:
        same_search(
            mnist,
            trials=args.trials,
            epochs=args.epochs,
            seed=args.seed,
            with_before=args.with_before,
            precisions=precisions,
            batch_size=args.batch_size,
        )
    for name, data, epochs in (("mnist5k", mnist, 1), ("digits", digits, 2)):
        peak_fraction(name, data, peak_gflops=peak, repeats=args.repeats, epochs=epochs, precisions=precisions)
    if args.lr_sweep:
        lr_sweep(mnist)
    if args.accuracy_seeds and len(precisions) == 2:
        precision_accuracy(mnist, seeds=args.accuracy_seeds, epochs=4)
    print(f"\nload average at end (1/5/15 min): {_common.load_avg()}")


if __name__ == "__main__":
    main()
