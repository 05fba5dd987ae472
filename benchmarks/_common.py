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
from typing import Any

import torch

# Environment variables that cap the instruction set of torch's, oneDNN's and MKL's kernels.
_ISA_CAPS = ("ATEN_CPU_CAPABILITY", "ONEDNN_MAX_CPU_ISA", "MKL_ENABLE_INSTRUCTIONS")

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run as `python benchmarks/x.py` from a checkout
    sys.path.insert(0, str(ROOT))


_clock = time.perf_counter


def use_cpu_time() -> None:
    """Time with this process's CPU seconds instead of the wall clock.

    On a machine whose cores other processes keep busy, a 1-thread process's CPU time leaves out
    the time it waited for a core (the shared caches and memory still slow it). With more than
    one thread it would add the threads' seconds up, so the scripts allow it with 1 thread only.
    """
    global _clock
    _clock = time.process_time


def clock() -> float:
    """Seconds on the clock the script times with: wall, or CPU after ``use_cpu_time()``."""
    return _clock()


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
    caps = f"torch CPU capability {torch.backends.cpu.get_cpu_capability()}"
    forced = [f"{k}={os.environ[k]}" for k in _ISA_CAPS if k in os.environ]
    if forced:
        caps += f" ({', '.join(forced)})"
    return f"{cpu}, {os.cpu_count()} cores, torch {torch.__version__}, {torch.get_num_threads()} threads, {caps}"


def header(title: str) -> None:
    print(f"# {title}")
    print(f"machine: {machine()}")
    print(
        f"load average at start (1/5/15 min): {load_avg()}  ({time.strftime('%Y-%m-%d %H:%M:%S UTC', time.gmtime())})"
    )


def matmul_peak_gflops(dtype: torch.dtype = torch.float32, *, n: int = 1024, reps: int = 7) -> float:
    """Best-of-``reps`` n×n matmul rate in GFLOP/s with the current torch threads.

    Best-of, not mean: the least-disturbed run is the closest to what the CPU can do.
    """
    a = torch.randn(n, n, dtype=dtype)
    b = torch.randn(n, n, dtype=dtype)
    for _ in range(2):
        a @ b
    best = float("inf")
    for _ in range(reps):
        t0 = clock()
        a @ b
        best = min(best, clock() - t0)
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


def tutorial_model(params: Any, *, in_shape: tuple[int, int, int], num_classes: int, seed: int) -> torch.nn.Module:
    """The network as a tutorial writes it: conv → [BN] → act → [BN] → maxpool, ``nn.Flatten``.

    bnsearch's model pools before a monotone activation and flattens channel-last; this one has
    its layers and weights, in bnsearch.core.model's order, with the classifier's (and BN1d's) inputs
    permuted to channel-first order, so it computes exactly the same function at init.
    """
    from torch import nn

    from bnsearch.core.model import build_model

    acts = (nn.ReLU, nn.LeakyReLU, nn.Tanh, nn.Sigmoid)
    ours = build_model(params, in_shape=in_shape, num_classes=num_classes, seed=seed)
    layers = [m for m in ours.features if isinstance(m, (nn.Conv2d, nn.BatchNorm2d, nn.MaxPool2d, *acts))]
    pool = next(i for i, m in enumerate(layers) if isinstance(m, nn.MaxPool2d))
    if isinstance(layers[pool + 1], acts):
        layers[pool], layers[pool + 1] = layers[pool + 1], layers[pool]
    c = [m for m in layers if isinstance(m, nn.Conv2d)][-1].out_channels
    h, w = in_shape[1] // 2, in_shape[2] // 2
    hwc_index = torch.arange(h * w * c).view(h, w, c).permute(2, 0, 1).reshape(-1)  # per chw slot
    bn1d = [m for m in ours.features if isinstance(m, nn.BatchNorm1d)]
    with torch.no_grad():
        ours.classifier.weight.copy_(ours.classifier.weight[:, hwc_index])
        for bn in bn1d:
            for t in (bn.weight, bn.bias, bn.running_mean, bn.running_var):
                t.copy_(t[hwc_index])
    tutorial = nn.Sequential(*layers, nn.Flatten(), *bn1d, ours.classifier)
    check = build_model(params, in_shape=in_shape, num_classes=num_classes, seed=seed).eval()
    x = torch.randn(4, *in_shape)
    with torch.no_grad():
        torch.testing.assert_close(tutorial.eval()(x), check(x))
    return tutorial.train()
