# ruff: noqa: E501  (wide report lines read better unwrapped)
"""GPU figures for issue 7 (run on a CUDA machine; prints everything, asserts nothing).

1. matmul peak of the card (fp32/tf32 and bf16);
2. seconds per epoch on mnist5k for one fixed configuration: the naive tutorial loop
   (DataLoader batch 32, per-batch ``loss.item()``) vs bnsearch's trainer (fp32 / bf16,
   batch 128 / 512), with samples/s and the fraction of the bf16 matmul peak;
3. torch.compile: compile time vs per-epoch gain, and how many trials pay for it;
4. a whole default-shaped search on the GPU (tpe, median pruner, 4 epochs): trials/min.

    PYTHONPATH=. python benchmarks/gpu.py [--trials 20]
"""

from __future__ import annotations

import argparse
import statistics
import time

import _common
import optuna
import torch
from train_throughput import fixed_params, naive_train

from bnsearch.config import RunConfig
from bnsearch.core.data import load_dataset, split_dataset, to_device
from bnsearch.core.model import build_model
from bnsearch.core.seeding import derive_seed
from bnsearch.core.train import TrainConfig, train
from bnsearch.search import run_search


def gpu_peak(dtype: torch.dtype, n: int = 8192, reps: int = 10) -> float:
    a = torch.randn(n, n, device="cuda", dtype=dtype)
    b = torch.randn(n, n, device="cuda", dtype=dtype)
    for _ in range(3):
        a @ b
    torch.cuda.synchronize()
    t0 = time.perf_counter()
    for _ in range(reps):
        a @ b
    torch.cuda.synchronize()
    return 2 * n**3 * reps / (time.perf_counter() - t0) / 1e12


def epoch_seconds(
    data, *, batch: int, precision: str, epochs: int = 4, compile_model: bool = False
) -> tuple[float, float, float]:
    """(median s/epoch after the first, first epoch s, final val acc) for the fixed config."""
    p = fixed_params(epochs)
    from dataclasses import replace

    p = replace(p, batch_size=batch)
    model = build_model(p, in_shape=data.in_shape, num_classes=data.num_classes, seed=0, device=data.device)
    if compile_model:
        model = torch.compile(model)  # type: ignore[assignment]
    r = train(model, data, p, seed=0, cfg=TrainConfig(precision=precision))
    times = [m.epoch_time_s for m in r.history]
    return statistics.median(times[1:]), times[0], r.val_acc


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--trials", type=int, default=20)
    args = ap.parse_args()
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    torch.backends.cudnn.benchmark = True
    print(f"# GPU benchmark: {torch.cuda.get_device_name(0)}, torch {torch.__version__}")
    fp32_tf = gpu_peak(torch.float32)
    bf16_tf = gpu_peak(torch.bfloat16)
    print(
        f"matmul peak: fp32 (tf32 {'on' if torch.backends.cuda.matmul.allow_tf32 else 'off'}) {fp32_tf:.1f} TFLOP/s, bf16 {bf16_tf:.1f} TFLOP/s"
    )

    splits = split_dataset(load_dataset("mnist5k"), seed=derive_seed(0, "split"))
    data = to_device(splits, "cuda")
    model = build_model(fixed_params(1), in_shape=data.in_shape, num_classes=data.num_classes, seed=0)
    fwd, fwd_bwd = _common.train_flops_per_sample(model, data.in_shape)
    flops_epoch = len(data.train_y) * fwd_bwd + len(data.val_y) * fwd

    print("\n## seconds per epoch, mnist5k (3,500 train / 750 val), fixed config (relu, BN before act + BN1d)")
    p = fixed_params(4)
    m = _common.tutorial_model(p, in_shape=data.in_shape, num_classes=data.num_classes, seed=0).to("cuda")
    naive_train(m, data, fixed_params(1), seed=0)  # warm-up
    torch.cuda.synchronize()
    t0 = time.perf_counter()
    naive_acc, _ = naive_train(m, data, p, seed=0)
    torch.cuda.synchronize()
    naive_s = (time.perf_counter() - t0) / 4
    print(f"{'variant':28} {'s/epoch':>8} {'× naive':>8} {'samples/s':>10} {'% bf16 peak':>11} {'val acc':>8}")
    print(
        f"{'naive (DataLoader bs32)':28} {naive_s:8.4f} {1.0:8.2f} {len(data.train_y) / naive_s:10.0f} {100 * flops_epoch / naive_s / (bf16_tf * 1e12):10.3f}% {naive_acc:8.4f}"
    )
    for batch in (128, 512):
        for precision in ("fp32", "bf16"):
            s, _first, acc = epoch_seconds(data, batch=batch, precision=precision)
            print(
                f"{f'bnsearch {precision} bs{batch}':28} {s:8.4f} {s / naive_s:8.2f} {len(data.train_y) / s:10.0f} {100 * flops_epoch / s / (bf16_tf * 1e12):10.3f}% {acc:8.4f}"
            )

    print("\n## torch.compile (bs128, bf16)")
    try:
        eager, eager_first, _ = epoch_seconds(data, batch=128, precision="bf16")
        comp, comp_first, _ = epoch_seconds(data, batch=128, precision="bf16", compile_model=True)
        gain = eager - comp
        cost = comp_first - eager_first
        pays = (
            f"pays off after {cost / gain:.0f} epochs per compiled model"
            if gain > 0
            else "never pays off (no per-epoch gain)"
        )
        print(
            f"eager {eager:.4f} s/epoch (first {eager_first:.2f}); compiled {comp:.4f} s/epoch (first, with compile, {comp_first:.2f}); {pays}"
        )
    except Exception as e:  # compile needs a working triton toolchain; report, don't fail
        print(f"torch.compile failed: {type(e).__name__}: {str(e)[:200]}")

    print(f"\n## a default-shaped search on the GPU: tpe, median pruner, mnist5k, 4 epochs, {args.trials} trials")
    for precision in ("fp32", "bf16"):
        t0 = time.perf_counter()
        study = run_search(
            RunConfig(
                strategy="tpe",
                trials=args.trials,
                storage=f"sqlite:////tmp/gpu-{precision}.db",
                device="cuda",
                precision=precision,
                study_name=f"gpu-{precision}",
            )
        )
        wall = time.perf_counter() - t0
        states = [t.state.name for t in study.trials]
        print(
            f"{precision}: {wall:.1f}s wall ({60 * args.trials / wall:.0f} trials/min), best val_acc {study.best_value:.4f}, "
            f"{states.count('COMPLETE')} complete / {states.count('PRUNED')} pruned / {states.count('FAIL')} failed"
        )


if __name__ == "__main__":
    main()
