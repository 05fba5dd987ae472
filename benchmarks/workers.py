# ruff: noqa: E501  (wide report lines read better unwrapped)
"""Workers: 2 processes × 1 torch thread vs 1 process × 2 threads, trials per minute.

Each layout runs ``bnsearch run --workers N --threads T`` as the CLI does (``prepare_workers``
then ``run_workers``: spawned processes, a shared pool of trial tickets, one SQLite study).
Every trial trains the same configuration (relu, BN before the activation and before the
classifier, lr 0.05; the default batch size and precision), so the layouts do the same work;
trials per minute = finished trials / (last trial's end − first trial's start), read from the
study, so process start-up and data loading are not counted.

Layouts alternate (1×2, 2×1, 1×2, 2×1, ...) so load changes hit both alike; then the same
pair runs again with ``--busy`` extra processes spinning on one core each, to show what
oversubscription does to each layout.

    PYTHONPATH=. python benchmarks/workers.py [--trials 16 --epochs 4 --repeats 2 --busy 1]
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

FIXED_SPACE = """
lr = 0.05
weight_decay = 1e-4
activation = "relu"
bn_placement = "before_activation"
bn_classifier = true
gamma_init = "ones"
beta_init = "zeros"
"""


def _busy(stop: Any, parent_pid: int, max_s: float = 600.0) -> None:
    """Spin one core until told to stop (or the parent is gone, or ``max_s`` passed)."""
    import torch

    torch.set_num_threads(1)
    a = torch.randn(256, 256)
    deadline = time.time() + max_s
    while not stop.is_set() and os.getppid() == parent_pid and time.time() < deadline:
        a @ a


def run_layout(processes: int, threads: int, *, trials: int, epochs: int, tmp: Path, tag: str, precision: str) -> float:
    """Trials per minute of ``processes`` workers × ``threads`` threads sharing one study."""
    import optuna

    from bnsearch.config import RunConfig
    from bnsearch.search.workers import prepare_workers, run_workers

    space = tmp / "fixed.toml"
    space.write_text(FIXED_SPACE)
    cfg = RunConfig(
        strategy="random",
        trials=trials,
        dataset="mnist5k",
        epochs=epochs,
        pruner="none",
        storage=f"sqlite:///{tmp / f'{tag}.db'}",
        study_name=tag,
        space_path=str(space),
        device="cpu",
        precision=precision,
        workers=processes,
        threads=threads,
    )
    setup, slots = prepare_workers(cfg)
    run_workers(setup, slots, verbosity=-1)
    done = setup.study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
    assert len(done) == trials, f"{len(done)} of {trials} trials completed"
    wall = max(t.datetime_complete for t in done) - min(t.datetime_start for t in done)  # type: ignore[operator,type-var]
    return 60.0 * len(done) / wall.total_seconds()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--trials", type=int, default=16, help="trials per layout (a shared pool, as --workers)")
    ap.add_argument("--epochs", type=int, default=4)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--precision", default="auto", help="auto (the default run's), fp32 or bf16")
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
                            # half the trials with a busy core: the 2-thread layout crawls there
                            trials=args.trials // 2 if n_busy else args.trials,
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
