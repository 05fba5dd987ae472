# ruff: noqa: E501  (wide report lines read better unwrapped)
"""Driver overhead: sampler + storage seconds per trial, per strategy, as trials accumulate.

Each strategy runs ``--trials`` trials of the default space on a fresh SQLite study opened
exactly as ``bnsearch run`` opens it (WAL, heartbeats, median pruner). The objective is a stub
that does everything the real one does except training: ``space.suggest``, the same trial
attributes, one ``trial.report`` + ``should_prune`` per epoch, and the curves at the end. Its
value is a smooth synthetic function of the params, so model-based samplers have structure to
fit. A trial's time is therefore the driver's overhead, compared with the training time of one
default trial (mnist5k, 4 epochs, batch 128) measured in the same run.

The stub also records ``torch.get_num_threads()`` on entry: Optuna's GPSampler sets one
thread process-wide while it optimizes; the figure shows whether training would see it.

    PYTHONPATH=. python benchmarks/overhead.py [--trials 200 --strategies tpe,random,...]
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import os
import socket
import tempfile
import time
from pathlib import Path

import _common  # noqa: F401  (puts the checkout on sys.path)
import optuna
import torch
from train_throughput import fixed_params

from bnsearch import keys
from bnsearch.config import RunConfig, resolve_precision
from bnsearch.core.cpu import set_threads
from bnsearch.core.data import load_dataset, split_dataset, to_device
from bnsearch.core.model import build_model
from bnsearch.core.space import DEFAULT_BATCH_SIZE, SearchSpace, TrialParams
from bnsearch.core.train import TrainConfig, train
from bnsearch.samplers import strategy_names
from bnsearch.search import prepare_search

EPOCHS = 4
_ACT = {"relu": 0.0, "leaky_relu": 0.005, "tanh": -0.02, "sigmoid": -0.15}


def synthetic_curve(p: TrialParams) -> list[float]:
    """A smooth stand-in for validation accuracy per epoch (peaks near lr 0.05, wd 1e-4)."""
    top = 0.97 - 0.06 * (math.log10(p.lr) + 1.3) ** 2 - 0.01 * (math.log10(p.weight_decay) + 4) ** 2
    top += _ACT[p.activation] + (0.01 if p.bn_placement != "none" else 0.0)
    top = min(max(top, 0.1), 0.99)
    return [0.1 + (top - 0.1) * (1 - 0.5**e) / (1 - 0.5**EPOCHS) for e in range(1, EPOCHS + 1)]


class StubObjective:
    def __init__(self, space: SearchSpace) -> None:
        self.space = space
        self.threads_seen: list[int] = []

    def __call__(self, trial: optuna.Trial) -> float:
        self.threads_seen.append(torch.get_num_threads())
        p = self.space.suggest(trial)
        trial.set_user_attr(keys.TRIAL_SEED, trial.number)
        trial.set_user_attr(keys.DEVICE, "cpu")
        trial.set_user_attr(keys.WORKER, f"{socket.gethostname()}:{os.getpid()}")
        trial.set_user_attr(keys.RESOLVED_PARAMS, p.to_dict())
        curve = synthetic_curve(p)
        run: list[float] = []
        for epoch, v in enumerate(curve, start=1):
            run.append(v)
            trial.report(v, epoch)
            if trial.should_prune():
                break
        trial.set_user_attr(keys.VAL_ACC_CURVE, run)
        trial.set_user_attr(keys.TRAIN_LOSS_CURVE, [1 - v for v in run])
        trial.set_user_attr(keys.TRAIN_ACC_CURVE, run)
        trial.set_user_attr(keys.EPOCH_TIME_CURVE, [1.0] * len(run))
        trial.set_user_attr(keys.EPOCHS_RUN, len(run))
        trial.set_user_attr(keys.WALL_TIME_S, 1.0 * len(run))
        if len(run) < len(curve):
            trial.set_user_attr(keys.PRUNE_REASON, "pruned (stub)")
            raise optuna.TrialPruned()
        return run[-1]


def default_trial_seconds(precision: str) -> float:
    """Seconds of one default trial (mnist5k, 4 epochs, the default batch) in ``precision``."""
    data = to_device(split_dataset(load_dataset("mnist5k"), seed=0), "cpu")
    p = dataclasses.replace(fixed_params(EPOCHS), batch_size=DEFAULT_BATCH_SIZE)
    t0 = time.perf_counter()
    model = build_model(p, in_shape=data.in_shape, num_classes=data.num_classes, seed=0)
    train(model, data, p, seed=0, cfg=TrainConfig(precision=precision))
    return time.perf_counter() - t0


def measure(strategy: str, trials: int, tmp: Path) -> tuple[list[float], StubObjective]:
    cfg = RunConfig(
        strategy=strategy,
        trials=trials,
        dataset="digits",
        device="cpu",
        storage=f"sqlite:///{tmp / (strategy + '.db')}",
    )
    setup = prepare_search(cfg)
    stub = StubObjective(setup.space)
    stamps = [time.perf_counter()]
    setup.study.optimize(
        stub,
        n_trials=trials,
        callbacks=[lambda s, t: stamps.append(time.perf_counter())],
        catch=(Exception,),
        gc_after_trial=False,
    )
    return [b - a for a, b in zip(stamps, stamps[1:], strict=False)], stub


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--trials", type=int, default=200)
    ap.add_argument("--strategies", default=",".join(s for s in strategy_names() if s != "grid"))
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    set_threads(args.threads, 1)  # as the entry points do: subnormal floats flushed
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    _common.header("overhead")
    precision = resolve_precision("auto", ["cpu"])  # what a default run trains in here
    train_s = min(default_trial_seconds(precision) for _ in range(2))
    print(
        f"default trial training time (mnist5k, 4 epochs, batch {DEFAULT_BATCH_SIZE}, {precision}, best of 2): {train_s:.2f} s"
    )
    n = args.trials
    buckets = [(0, n // 4), (n // 4, n // 2), (n // 2, 3 * n // 4), (3 * n // 4, n)]
    print(f"\nseconds per trial (sampler + storage + stub), by trial range; last column vs {train_s:.1f} s training")
    print(
        f"{'strategy':9} "
        + " ".join(f"{f'{a}-{b}':>8}" for a, b in buckets)
        + f" {'total s':>8} {'mean':>7} {'% of trial (mean / last quarter)':>34} threads seen"
    )
    with tempfile.TemporaryDirectory() as tmp:
        for strategy in args.strategies.split(","):
            times, stub = measure(strategy, n, Path(tmp))
            per = [sum(times[a:b]) / max(b - a, 1) for a, b in buckets]
            mean = sum(times) / len(times)
            print(
                f"{strategy:9} "
                + " ".join(f"{x:8.3f}" for x in per)
                + f" {sum(times):8.1f} {mean:7.3f} {100 * mean / train_s:16.1f}% / {100 * per[-1] / train_s:5.1f}%"
                + f"   {min(stub.threads_seen)}..{max(stub.threads_seen)}",
                flush=True,
            )
    print(f"\nload average at end (1/5/15 min): {_common.load_avg()}")


if __name__ == "__main__":
    main()
