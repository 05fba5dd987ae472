# ruff: noqa: E501  (wide report lines read better unwrapped)
"""Packed training (``--pack K``): how much faster than one trial at a time, on this device.

Prints, asserting nothing:

1. **Trainer**: K trials of one shape (relu, BN before the activation, batch 32; lr, weight
   decay, momentum, gamma/beta init and seeds all differ) trained for ``--epochs`` as one packed
   model vs one by one, interleaved: trial-epochs per second and the speed-up, per K.
2. **Search**: trials per minute of a whole ``bnsearch run`` (tpe, percentile pruner, batch 32)
   at each K, once on the default space (24 shapes: a pack splits into groups of one shape) and
   once on a space whose shape is fixed (every pack trains as one group), plus the best value.

One command, on a CPU or a CUDA GPU (``--device auto`` picks the GPU):

    PYTHONPATH=. python benchmarks/pack.py                      # CPU: digits, small K, ≈ 3 min
    PYTHONPATH=. python benchmarks/pack.py --dataset mnist5k --epochs 4 --trials 30 --ks 1,2,4,8,16,32   # GPU
"""

from __future__ import annotations

import argparse
import dataclasses
import tempfile
import time
from pathlib import Path

import _common
import optuna
import torch

from bnsearch.config import RunConfig, resolve_device
from bnsearch.core.cpu import set_threads
from bnsearch.core.data import load_dataset, split_dataset, to_device
from bnsearch.core.model import build_model
from bnsearch.core.packed import PackMember, train_packed
from bnsearch.core.seeding import derive_seed
from bnsearch.core.space import SearchSpace, TrialParams
from bnsearch.core.train import TrainConfig, bf16_supported, train
from bnsearch.search.run import run_search

ONE_SHAPE = 'activation = "relu"\nbn_placement = "before_activation"\nbn_classifier = true\n'
INITS = [("ones", "zeros"), ("normal", "small"), ("small", "normal"), ("ones", "normal")]


def member_params(i: int, epochs: int, batch: int) -> TrialParams:
    gamma, beta = INITS[i % len(INITS)]
    return SearchSpace.default().fixed_params(
        lr=0.01 * (1.3 ** (i % 7)),
        weight_decay=1e-5 * (2 ** (i % 5)),
        momentum=(0.9, 0.8, 0.95)[i % 3],
        activation="relu",
        bn_placement="before_activation",
        bn_classifier=True,
        gamma_init=gamma,
        beta_init=beta,
        epochs=epochs,
        batch_size=batch,
    )


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def trainer_table(data, ks: list[int], *, epochs: int, batch: int, precision: str) -> None:  # type: ignore[no-untyped-def]
    print(f"\n## 1. trainer: K trials of one shape, {epochs} epoch(s), batch {batch}, {precision}")
    print("| K | one by one: trial-epochs/s | packed: trial-epochs/s | packed ÷ one by one |")
    print("| ---: | ---: | ---: | ---: |")
    device = data.device
    cfg = TrainConfig(precision=precision)

    def member(p: TrialParams, seed: int) -> PackMember:
        model = build_model(p, in_shape=data.in_shape, num_classes=data.num_classes, seed=seed, device=device)
        return PackMember(model=model, params=p, seed=seed)

    def alone(p: TrialParams, seed: int) -> None:
        train(member(p, seed).model, data, p, seed=seed, cfg=cfg)

    # Warm-up (allocator, cuDNN autotuning, oneDNN primitive caches) for both paths.
    p0 = member_params(0, 1, batch)
    alone(p0, 0)
    train_packed([member(p0, 0), member(p0, 1)], data, cfg=cfg)
    for k in ks:
        specs = [(member_params(i, epochs, batch), derive_seed(0, "pack-bench", i)) for i in range(k)]
        sync(device)
        t0 = time.perf_counter()
        for p, s in specs:
            alone(p, s)
        sync(device)
        alone_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        train_packed([member(p, s) for p, s in specs], data, cfg=cfg)
        sync(device)
        packed_s = time.perf_counter() - t0
        n = k * epochs
        print(f"| {k} | {n / alone_s:.2f} | {n / packed_s:.2f} | {alone_s / packed_s:.2f}× |", flush=True)


def search_table(args: argparse.Namespace, ks: list[int], device: str, tmp: Path) -> None:
    (tmp / "one_shape.toml").write_text(ONE_SHAPE)
    for label, space in (
        ("default space (24 shapes)", None),
        ("one shape (relu, BN before act, BN classifier)", str(tmp / "one_shape.toml")),
    ):
        print(
            f"\n## 2. search: tpe, {args.trials} trials, {args.epochs} epochs, batch {args.batch_size}, percentile pruner, {args.dataset}, {label}"
        )
        print("| K | wall s | trials/min | × K=1 | best val acc | pruned |")
        print("| ---: | ---: | ---: | ---: | ---: | ---: |")
        base = None
        for k in ks:
            cfg = RunConfig(
                strategy="tpe",
                trials=args.trials,
                dataset=args.dataset,
                epochs=args.epochs,
                batch_size=args.batch_size,
                pruner="percentile",
                storage=f"sqlite:///{tmp / f'{k}-{space is None}.db'}",
                space_path=space,
                seed=args.seed,
                device=device,
                precision=args.precision,
                pack=k,
            )
            t0 = time.perf_counter()
            study = run_search(cfg)
            wall = time.perf_counter() - t0
            trials = study.get_trials(deepcopy=False)
            rate = 60 * len(trials) / wall
            base = base or rate
            pruned = sum(t.state == optuna.trial.TrialState.PRUNED for t in trials)
            best = max((t.value for t in trials if t.value is not None), default=float("nan"))
            print(f"| {k} | {wall:.1f} | {rate:.1f} | {rate / base:.2f}× | {best:.4f} | {pruned} |", flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--dataset", default="digits")
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--trials", type=int, default=8, help="trials per search (part 2)")
    ap.add_argument("--ks", default="1,2,4,8", help="pack sizes, comma-separated")
    ap.add_argument("--trainer-epochs", type=int, default=1)
    ap.add_argument("--precision", default="auto", help="auto, fp32 or bf16")
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--skip-search", action="store_true")
    args = ap.parse_args()
    set_threads(args.threads, 1)  # as the entry points do (None: the default thread count)
    device = resolve_device(args.device)
    precision = args.precision if args.precision != "auto" else ("bf16" if bf16_supported(device) else "fp32")
    args.precision = precision
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    if device.startswith("cuda"):
        torch.backends.cudnn.benchmark = True
    _common.header(f"packed training (--pack K) on {device}")
    if device.startswith("cuda"):
        print(f"gpu: {torch.cuda.get_device_name()}")
    else:
        print(f"cpu capability: {torch.backends.cpu.get_cpu_capability()}")
    ks = [int(k) for k in args.ks.split(",")]
    data = to_device(split_dataset(load_dataset(args.dataset), seed=derive_seed(args.seed, "split")), device)
    trainer_table(dataclasses.replace(data), ks, epochs=args.trainer_epochs, batch=args.batch_size, precision=precision)
    if not args.skip_search:
        with tempfile.TemporaryDirectory() as tmp:
            search_table(args, ks, device, Path(tmp))


if __name__ == "__main__":
    main()
