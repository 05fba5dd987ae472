# ruff: noqa: E501  (wide report lines read better unwrapped)
"""Pruning: the default search with the default pruner vs no pruner, over several seeds.

Two measurements per seed, both on the default space (4 epochs, batch 32), strategy (tpe) and
precision (auto):
  real     two searches with the same seed, one with ``--pruner median`` and one with
           ``--pruner none``; the sampler reacts to pruning, so the trials differ after the
           first prune.
  replay   each pruner (bnsearch's, and stricter candidates) replayed over the unpruned search's
           validation curves, trial by trial in order: exactly the same trials, so the
           epochs saved and the best accuracy kept are a paired comparison.

The summary gives, over the seeds, the median epochs saved and the median and worst change in
the best validation accuracy: one search of 30 trials is a lottery (whether the best trial is a
slow starter decides it), so a pruner is judged over seeds.

    PYTHONPATH=. python benchmarks/pruning.py [--dataset mnist5k --seeds 3 --threads 2]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import _common  # noqa: F401  (puts the checkout on sys.path)
import optuna

from bnsearch import keys
from bnsearch.config import RunConfig
from bnsearch.core.cpu import set_threads
from bnsearch.search import run_search
from bnsearch.search.pruners import make_pruner


def summarize(study: optuna.Study) -> tuple[int, float, int, int]:
    """(epochs trained, best val acc, complete, pruned) of a study."""
    trials = study.get_trials(deepcopy=False)
    epochs = sum(int(t.user_attrs.get(keys.EPOCHS_RUN, 0)) for t in trials)
    best = max((t.value for t in trials if t.value is not None), default=0.0)
    done = sum(t.state == optuna.trial.TrialState.COMPLETE for t in trials)
    pruned = sum(t.state == optuna.trial.TrialState.PRUNED for t in trials)
    return epochs, best, done, pruned


def replay(pruner: optuna.pruners.BasePruner, curves: list[list[float]], *, max_epochs: int) -> tuple[int, float]:
    """Epochs ``pruner`` would let these curves train, in order, and the best completed value."""
    study = optuna.create_study(direction="maximize", pruner=pruner)
    epochs = 0
    best = 0.0
    for curve in curves:
        trial = study.ask()
        pruned = False
        for step, value in enumerate(curve, start=1):
            trial.report(value, step)
            epochs += 1
            if trial.should_prune():
                pruned = True
                break
        if pruned:
            study.tell(trial, state=optuna.trial.TrialState.PRUNED)
        elif len(curve) == max_epochs:
            study.tell(trial, curve[-1])
            best = max(best, curve[-1])
        else:  # diverged in the original run: stopped early there too
            study.tell(trial, state=optuna.trial.TrialState.PRUNED)
    return epochs, best


def replay_candidates(max_epochs: int) -> dict[str, optuna.pruners.BasePruner]:
    """bnsearch's pruners plus stricter settings worth considering as the default."""
    names = ("median", "percentile", "successive-halving", "hyperband")
    out = {name: make_pruner(name, max_epochs=max_epochs) for name in names}
    out["median, startup 3"] = optuna.pruners.MedianPruner(n_startup_trials=3)
    # Optuna's percentile counts from the bad end: PercentilePruner(p) keeps the best p%.
    out["keep top 1/3"] = optuna.pruners.PercentilePruner(100 / 3, n_startup_trials=5)
    out["keep top 40%"] = optuna.pruners.PercentilePruner(40.0, n_startup_trials=5)
    return out


def one_seed(args: argparse.Namespace, seed: int) -> dict[str, tuple[float, float]]:
    """Run both searches for ``seed``; print its table; return {name: (saved, Δ best)}."""
    studies: dict[str, optuna.Study] = {}
    seconds: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for pruner in ("none", args.pruner):
            cfg = RunConfig(
                strategy=args.strategy,
                trials=args.trials,
                dataset=args.dataset,
                pruner=pruner,
                storage=f"sqlite:///{Path(tmp) / (pruner + '.db')}",
                seed=seed,
                device="cpu",
                precision=args.precision,
            )
            t0 = time.perf_counter()
            studies[pruner] = run_search(cfg)
            seconds[pruner] = time.perf_counter() - t0
    precision = studies["none"].user_attrs[keys.STUDY_CONFIG]["precision"]
    print(f"\n{args.strategy} search, {args.dataset}, default space, {args.trials} trials, seed {seed}, {precision}")
    print(f"{'pruner':20} {'epochs':>7} {'saved':>6} {'best val':>9} {'complete':>9} {'pruned':>7} {'seconds':>8}")
    base_epochs, base_best, *_ = summarize(studies["none"])
    out: dict[str, tuple[float, float]] = {}
    for pruner, study in studies.items():
        epochs, best, done, pruned = summarize(study)
        saved = 1 - epochs / base_epochs
        print(
            f"{pruner:20} {epochs:7d} {100 * saved:5.0f}% {100 * best:8.2f}% {done:9d} {pruned:7d} {seconds[pruner]:8.0f}"
        )
        if pruner != "none":
            out[f"real: {pruner}"] = (saved, best - base_best)
    curves = [list(t.user_attrs.get(keys.VAL_ACC_CURVE, [])) for t in studies["none"].get_trials(deepcopy=False)]
    max_epochs = max(len(c) for c in curves)
    print("replay: each pruner over the unpruned run's validation curves, in order (the same trials)")
    for name, pruner in replay_candidates(max_epochs).items():
        r_epochs, r_best = replay(pruner, curves, max_epochs=max_epochs)
        saved = 1 - r_epochs / base_epochs
        out[f"replay: {name}"] = (saved, r_best - base_best)
        print(
            f"  {name:20} {r_epochs:4d} epochs, saved {100 * saved:3.0f}%, "
            f"best val {100 * r_best:6.2f}% ({100 * (r_best - base_best):+.2f} points)"
        )
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dataset", default="mnist5k", help="mnist5k (the default search) or digits (fast)")
    ap.add_argument("--trials", type=int, default=30)
    ap.add_argument("--strategy", default="tpe")
    ap.add_argument("--pruner", default="median", help="the pruner of the 'real' search")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--precision", default="auto")
    ap.add_argument("--seeds", type=int, default=3, help="searches 0..N-1 (each ≈ 1.5 min on mnist5k)")
    ap.add_argument("--seed-start", type=int, default=0)
    args = ap.parse_args()
    set_threads(args.threads, 1)  # as the entry points do: subnormal floats flushed
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    _common.header("pruning")
    results: dict[str, list[tuple[float, float]]] = {}
    seeds = range(args.seed_start, args.seed_start + args.seeds)
    for seed in seeds:
        for name, r in one_seed(args, seed).items():
            results.setdefault(name, []).append(r)
    print(f"\nover seeds {seeds.start}..{seeds.stop - 1}: epochs saved and change in best val acc (points)")
    print(f"{'pruner':34} {'saved (median)':>15} {'Δ best (median)':>16} {'Δ best (worst)':>15}")
    for name, rs in results.items():
        saved = statistics.median(r[0] for r in rs)
        deltas = [100 * r[1] for r in rs]
        print(f"{name:34} {100 * saved:14.0f}% {statistics.median(deltas):+16.2f} {min(deltas):+15.2f}")
    print(f"\nload average at end (1/5/15 min): {_common.load_avg()}")


if __name__ == "__main__":
    main()
