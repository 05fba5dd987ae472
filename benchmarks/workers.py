# ruff: noqa: E501  (wide report lines read better unwrapped)
"""Workers: 2 processes × 1 torch thread vs 1 process × 2 threads, trials per minute.

Every configuration runs the same workload: ``--trials`` random-search trials (default space,
``--epochs`` epochs, no pruner) on mnist5k, all on one SQLite study file, as
``bnsearch run --workers N`` would (each process calls ``prepare_search(cfg, worker_index=i)``
on the shared storage, then ``optimize``). The processes are started and load their data
first; the clock runs from the moment all of them start optimizing until the last finishes.

Configurations alternate (1×2, 2×1, 1×2, 2×1, ...) so load changes hit both alike; then the
same pair runs again with ``--busy`` extra processes spinning on one core each, to show what
oversubscription does to each layout.

    PYTHONPATH=. python benchmarks/workers.py [--trials 8 --epochs 1 --repeats 2 --busy 1]
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import _common  # noqa: F401  (puts the checkout on sys.path)


def _worker(cfg_kwargs: dict[str, Any], threads: int, index: int, barrier: Any, out: Any) -> None:
    import optuna
    import torch

    from bnsearch.config import RunConfig
    from bnsearch.search import optimize, prepare_search

    torch.set_num_threads(threads)  # this is the worker entry point
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    setup = prepare_search(RunConfig(**cfg_kwargs), worker_index=index)
    barrier.wait()
    t0 = time.time()
    optimize(setup)
    out.put((t0, time.time()))


def _busy(stop: Any, parent_pid: int, max_s: float = 600.0) -> None:
    """Spin one core until told to stop (or the parent is gone, or ``max_s`` passed)."""
    import torch

    torch.set_num_threads(1)
    a = torch.randn(256, 256)
    deadline = time.time() + max_s
    while not stop.is_set() and os.getppid() == parent_pid and time.time() < deadline:
        a @ a


def run_layout(
    processes: int, threads: int, *, trials: int, epochs: int, tmp: Path, tag: str, precision: str = "fp32"
) -> float:
    """Trials per minute of ``processes`` workers × ``threads`` threads sharing one study."""
    from bnsearch.config import RunConfig
    from bnsearch.search import prepare_search

    ctx = mp.get_context("spawn")
    cfg = dict(
        strategy="random",
        trials=trials // processes,
        dataset="mnist5k",
        epochs=epochs,
        pruner="none",
        storage=f"sqlite:///{tmp / f'{tag}.db'}",
        study_name=tag,
        device="cpu",
        precision=precision,
    )
    prepare_search(RunConfig(**cfg))  # create the study once, as the parent of --workers does
    barrier = ctx.Barrier(processes)
    out = ctx.Queue()
    procs = [
        ctx.Process(target=_worker, args=(cfg, threads, i, barrier, out)) for i in range(processes)
    ]
    for p in procs:
        p.start()
    spans = [out.get() for _ in procs]
    for p in procs:
        p.join()
    wall = max(b for _, b in spans) - min(a for a, _ in spans)
    done = (trials // processes) * processes
    return 60.0 * done / wall


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument(
        "--trials", type=int, default=8, help="trials per configuration (split over workers)"
    )
    ap.add_argument("--epochs", type=int, default=1)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--precision", default="fp32", help="fp32 or bf16")
    ap.add_argument(
        "--busy",
        type=int,
        default=1,
        help="spinning processes for the oversubscribed run (0: skip)",
    )
    args = ap.parse_args()
    import optuna

    optuna.logging.set_verbosity(optuna.logging.ERROR)
    _common.header("workers")
    layouts = [(1, 2), (2, 1)]
    ctx = mp.get_context("spawn")
    conditions = [("as is", 0)] + ([(f"+{args.busy} busy", args.busy)] if args.busy else [])
    with tempfile.TemporaryDirectory() as tmp:
        for label, n_busy in conditions:
            stop = ctx.Event()
            hogs = [ctx.Process(target=_busy, args=(stop, os.getpid()), daemon=True) for _ in range(n_busy)]
            for h in hogs:
                h.start()
            rates: dict[tuple[int, int], list[float]] = {lay: [] for lay in layouts}
            try:
                for r in range(args.repeats):
                    for procs, threads in layouts:
                        tag = f"w{procs}x{threads}-{n_busy}-{r}"
                        rate = run_layout(
                            procs,
                            threads,
                            trials=args.trials,
                            epochs=args.epochs,
                            tmp=Path(tmp),
                            tag=tag,
                            precision=args.precision,
                        )
                        rates[(procs, threads)].append(rate)
                        print(
                            f"  [{label}] {procs} proc × {threads} thr: {rate:6.2f} trials/min "
                            f"(load {_common.load_avg()})",
                            flush=True,
                        )
            finally:
                stop.set()
                for h in hogs:
                    h.join()
            one, two = (statistics.median(rates[lay]) for lay in layouts)
            pairs = [b / a for a, b in zip(rates[(1, 2)], rates[(2, 1)], strict=True)]
            print(
                f"{label}: 1×2 {one:.2f} trials/min, 2×1 {two:.2f} trials/min, "
                f"speed-up 2×1 / 1×2 = {two / one:.2f} (per pair: {', '.join(f'{x:.2f}' for x in pairs)})\n"
            )
    print(f"load average at end (1/5/15 min): {_common.load_avg()}")


if __name__ == "__main__":
    main()
