"""``bnsearch compare`` in real mode: every strategy × seed trains the CNN in its own study.

Each run is an ordinary bnsearch study named ``<prefix>-<dataset>-<strategy>-s<seed>`` in one
storage, so an interrupted compare is resumed by running it again: each study is topped up to
``trials`` finished (complete or pruned) trials.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING

from bnsearch import keys
from bnsearch.compare.runs import CompareConfig, CompareResult, counted_trials, run_from_study
from bnsearch.compare.stats import build_compare_data

if TYPE_CHECKING:
    import optuna

    from bnsearch.search.run import StudyCallback


def _existing_counts(cfg: CompareConfig, storage: optuna.storages.BaseStorage) -> dict[str, int]:
    """Counted trials of the run studies that exist already.

    Raises:
        StudyError: a run study exists with other settings (checked before any trial runs).
    """
    import optuna

    from bnsearch.config import resolve_device, resolve_precision
    from bnsearch.search.run import load_space, study_identity
    from bnsearch.study import check_identity, study_names

    existing = set(study_names(storage))
    counts: dict[str, int] = {}
    for seed in cfg.seed_list:
        for strategy in cfg.strategies:
            run_cfg = cfg.run_config(strategy, seed)
            name = run_cfg.resolved_study_name
            if name not in existing:
                continue
            study = optuna.load_study(study_name=name, storage=storage)
            stored = study.user_attrs.get(keys.STUDY_CONFIG) or {}
            precision = resolve_precision(
                run_cfg.precision,
                [resolve_device(run_cfg.device)],
                study_precision=stored.get("precision"),
            )
            run_cfg = replace(run_cfg, precision=precision)
            check_identity(
                study, study_identity(run_cfg, load_space(run_cfg)), rerun="rerun compare", option="--prefix"
            )
            counts[name] = len(counted_trials(study))
    return counts


def top_up_run(
    cfg: CompareConfig,
    strategy: str,
    seed: int,
    *,
    trial_callbacks: Sequence[StudyCallback] = (),
    on_event: Callable[[str], None] | None = None,
) -> int:
    """Bring one run's study to ``cfg.trials`` counted trials; return how many this call added."""
    import optuna
    from optuna.trial import TrialState

    from bnsearch.search.interrupts import close_interrupted, track_running_trials, worker_id
    from bnsearch.search.run import optimize, prepare_search

    run_cfg = cfg.run_config(strategy, seed)
    setup = prepare_search(run_cfg)
    done = len(counted_trials(setup.study))
    if done >= cfg.trials:
        return 0
    if on_event is not None:
        verb = "resuming at" if done else "starting,"
        on_event(f"{setup.study.study_name}: {verb} {done}/{cfg.trials} trials")
    # The study stops at the budget of counted trials; failed ones are retried.
    stop = optuna.study.MaxTrialsCallback(cfg.trials, states=(TrialState.COMPLETE, TrialState.PRUNED))
    # optimize() caps this call at run_cfg.trials; a top-up needs (budget - done).
    setup = replace(setup, cfg=replace(run_cfg, trials=cfg.trials - done))
    started = track_running_trials(setup.study)
    try:
        optimize(setup, callbacks=[*trial_callbacks, stop])
    except KeyboardInterrupt:
        # Closed as interrupted and queued again: the next compare trains that trial first.
        close_interrupted(setup.study, worker_id(), started)
        raise
    return len(counted_trials(setup.study)) - done


def _top_up_in_worker(job: tuple[CompareConfig, str, int, int]) -> tuple[str, int]:
    """Entry point of a ``--workers`` process: its torch threads, a quiet Optuna, one run."""
    import optuna

    from bnsearch.core.cpu import set_threads

    cfg, strategy, seed, threads = job
    set_threads(threads, 1)
    # As in `run`: the study records each trial; Optuna's warnings would print tracebacks.
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    return cfg.study_name(strategy, seed), top_up_run(cfg, strategy, seed)


def _top_up_parallel(cfg: CompareConfig, pending: list[tuple[int, str]], emit: Callable[[str], None]) -> int:
    """Run the pending runs in ``cfg.workers`` processes, one whole run per process."""
    from bnsearch.core.cpu import default_threads
    from bnsearch.processes import run_in_processes

    n_workers = min(cfg.workers, len(pending))
    threads = cfg.threads or default_threads(n_workers)
    emit(f"{len(pending)} runs to top up in {n_workers} worker processes ({threads} threads each)")

    def done(_job: tuple[CompareConfig, str, int, int], result: tuple[str, int]) -> None:
        emit(f"{result[0]}: {result[1]} trials run")

    jobs = [(cfg, strategy, seed, threads) for seed, strategy in pending]
    return sum(added for _, added in run_in_processes(_top_up_in_worker, jobs, workers=n_workers, on_result=done))


def run_real(
    cfg: CompareConfig,
    *,
    on_event: Callable[[str], None] | None,
    trial_callbacks: Sequence[StudyCallback],
) -> CompareResult:
    import optuna

    from bnsearch.storages import open_storage

    storage = open_storage(cfg.storage)
    counts = _existing_counts(cfg, storage)
    emit = on_event or (lambda _line: None)
    # Seeds outside, strategies inside: an interrupted compare has balanced partial results.
    pairs = [(seed, strategy) for seed in cfg.seed_list for strategy in cfg.strategies]
    pending = []
    for seed, strategy in pairs:
        name = cfg.study_name(strategy, seed)
        if counts.get(name, 0) >= cfg.trials:
            emit(f"{name}: {counts[name]}/{cfg.trials} trials already done")
        else:
            pending.append((seed, strategy))
    ran = 0
    if cfg.workers > 1 and len(pending) > 1:
        ran = _top_up_parallel(cfg, pending, emit)
    else:
        for seed, strategy in pending:
            ran += top_up_run(cfg, strategy, seed, trial_callbacks=trial_callbacks, on_event=emit)
    runs = [
        run_from_study(
            optuna.load_study(study_name=cfg.study_name(strategy, seed), storage=storage),
            strategy=strategy,
            seed=seed,
        )
        for seed, strategy in pairs
    ]
    data = build_compare_data(
        runs,
        trials=cfg.trials,
        mode="real",
        mode_note=(
            f"REAL mode: every trial trained the CNN on {cfg.dataset} "
            f"({len(cfg.strategies)} strategies × {cfg.seeds} seeds × {cfg.trials} trials, "
            f"pruner {cfg.pruner})"
        ),
    )
    names = tuple(cfg.study_name(strategy, seed) for seed, strategy in pairs)
    return CompareResult(data=data, study_names=names, trials_run=ran)
