# ruff: noqa: E501  (wide report lines read better unwrapped)
"""Shared helpers for the benchmark scripts: machine facts, peak FLOP rate, FLOP counts.

The machine is shared, so every script measures its baseline and bnsearch interleaved in one
run and reports ratios; absolute seconds move with the load average printed next to them.
"""

from __future__ import annotations

import os
import platform
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run as `python benchmarks/x.py` from a checkout
    sys.path.insert(0, str(ROOT))


def load_avg() -> str:
    one, five, fifteen = os.getloadavg()
    return f"{one:.2f} {five:.2f} {fifteen:.2f}"


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{cpu}, {os.cpu_count()} cores, torch {torch.__version__}, {torch.get_num_threads()} threads"


def header(title: str) -> None:
    print(f"# {title}")
    print(f"machine: {machine()}")
    print(
        f"load average at start (1/5/15 min): {load_avg()}  ({time.strftime('%Y-%m-%d %H:%M:%S UTC', time.gmtime())})"
    )


def matmul_peak_gflops(
    dtype: torch.dtype = torch.float32, *, n: int = 1024, reps: int = 7
) -> float:
    """Best-of-``reps`` n×n matmul rate in GFLOP/s with the current torch threads.

    Best-of, not mean: the least-disturbed run is the closest to what the CPU can do.
    """
    a = torch.randn(n, n, dtype=dtype)
    b = torch.randn(n, n, dtype=dtype)
    for _ in range(2):
        a @ b
    best = float("inf")
    for _ in range(reps):
        t0 = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - t0)
    return 2 * n**3 / best / 1e9


def train_flops_per_sample(
    model: torch.nn.Module, in_shape: tuple[int, int, int], *, batch: int = 64
) -> tuple[float, float]:
    """(forward, forward+backward) FLOPs per sample, counted by torch's FlopCounterMode."""
    from torch.utils.flop_counter import FlopCounterMode

    x = torch.randn(batch, *in_shape)
    y = torch.zeros(batch, dtype=torch.long)
    with FlopCounterMode(display=False) as fwd_counter:
        with torch.no_grad():
            model(x)
    with FlopCounterMode(display=False) as all_counter:
        loss = torch.nn.functional.cross_entropy(model(x), y)
        loss.backward()
    model.zero_grad(set_to_none=True)
    return fwd_counter.get_total_flops() / batch, all_counter.get_total_flops() / batch
