# ruff: noqa: E501  (wide report lines read better unwrapped)
"""Seconds per epoch of the deeper nets on mnist5k: bnsearch's trainer vs a naive loop on the same net.

For each net (``plain`` at depth 4 / 10 / 20 and ``resnet`` 8 / 20 at their default widths, and
the default ``bncnn`` for reference), one fixed configuration (BN before the activation for
plain, the post-activation block for resnet, relu, lr 0.05) is trained for ``--epochs`` epochs
by ``bnsearch.core.train.train`` (fp32, and bf16 where the device runs it natively) and by the
tutorial loop of ``train_throughput.py`` (DataLoader batch 32, per-batch ``loss.item()``) on an
identically initialised copy, interleaved per net so load changes hit both alike. It prints
s/epoch, the ratio, the validation accuracy reached, and an estimate of the default search's
wall time: ``bnsearch run --model NAME`` (30 trials × 4 epochs, percentile pruning, which trained
about half the epochs in benchmarks/pruning.py) in ``--workers`` processes (1, as ``bnsearch run``) of ``--threads`` threads.

    PYTHONPATH=. python benchmarks/models.py                    # CPU, 1 thread (a --workers auto worker)
    PYTHONPATH=. python benchmarks/models.py --threads 2
    PYTHONPATH=. python benchmarks/models.py --device cuda      # a GPU
"""

from __future__ import annotations

import argparse
import dataclasses
import time

import _common
import torch
from train_throughput import naive_train

from bnsearch.core.cpu import set_threads
from bnsearch.core.data import load_dataset, split_dataset, to_device
from bnsearch.core.model import ModelConfig, build_model
from bnsearch.core.space import SearchSpace
from bnsearch.core.train import TrainConfig, bf16_supported, train

NETS = (
    ("bncnn", None, "before_activation"),
    ("plain", 4, "before_activation"),
    ("plain", 10, "before_activation"),
    ("plain", 20, "before_activation"),
    ("resnet", 8, "post_activation"),
    ("resnet", 20, "post_activation"),
)
SEARCH_EPOCHS = 30 * 4 / 2  # default search: 30 trials × 4 epochs, about half of them trained


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, default=1, help="torch threads (a --workers auto worker has 1)")
    ap.add_argument(
        "--workers", type=int, default=1, help="worker processes of the default search estimate (bnsearch run: 1)"
    )
    ap.add_argument("--epochs", type=int, default=1)
    ap.add_argument("--dataset", default="mnist5k")
    ap.add_argument("--nets", default=",".join(f"{m}-{d}" if d else m for m, d, _ in NETS))
    args = ap.parse_args()
    if args.device == "cpu":
        set_threads(args.threads, 1)
    _common.header(f"s/epoch per net on {args.dataset}, {args.device}")
    splits = split_dataset(load_dataset(args.dataset), seed=0)
    data = to_device(splits, args.device)
    precisions = ["fp32", *(["bf16"] if bf16_supported(args.device) else [])]
    print(f"train examples {len(data.train_y)}, val {len(data.val_y)}; {args.epochs} epoch(s) per measurement")
    print(
        f"{'net':10} {'params':>8} {'naive s/ep':>10} "
        + " ".join(f"{p + ' s/ep':>10} {'× naive':>7}" for p in precisions)
        + f" {'val acc':>8}  default search est. ({args.workers} workers)"
    )
    wanted = set(args.nets.split(","))
    for model, depth, placement in NETS:
        name = f"{model}-{depth}" if depth else model
        if name not in wanted:
            continue
        space = SearchSpace.default(model)
        p = space.fixed_params(
            lr=0.05,
            weight_decay=1e-4,
            activation="relu",
            bn_placement=placement,
            bn_classifier=False,
            gamma_init="ones",
            beta_init="zeros",
            **({"epochs": args.epochs}),
        )
        if depth:
            p = dataclasses.replace(p, depth=depth)
        cfg = ModelConfig(model=model)

        def fresh(p=p, cfg=cfg) -> torch.nn.Module:  # type: ignore[no-untyped-def]
            return build_model(
                p, in_shape=data.in_shape, num_classes=data.num_classes, seed=1, cfg=cfg, device=args.device
            )

        n_params = sum(t.numel() for t in fresh().parameters())
        t0 = time.perf_counter()
        naive_acc, _ = naive_train(fresh(), data, p, seed=1)
        _sync(args.device)
        naive_s = (time.perf_counter() - t0) / args.epochs
        cells, acc = [], 0.0
        auto_s = 0.0  # what --precision auto trains in: the last of precisions
        for precision in precisions:
            result = train(fresh(), data, p, seed=1, cfg=TrainConfig(precision=precision))
            auto_s = result.wall_time_s / max(1, len(result.history))
            acc = result.val_acc if precision == "fp32" else acc
            cells.append(f"{auto_s:10.2f} {auto_s / naive_s:7.2f}")
        est = SEARCH_EPOCHS * auto_s / args.workers
        print(
            f"{name:10} {n_params:8d} {naive_s:10.2f} "
            + " ".join(cells)
            + f" {acc:8.3f}  ≈ {est / 60:.1f} min {precisions[-1]} (naive loop acc {naive_acc:.3f})"
        )


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


if __name__ == "__main__":
    main()
