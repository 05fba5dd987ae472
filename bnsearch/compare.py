"""``bnsearch compare``: every strategy × seed as its own study, then curves and a ranking.

Real mode trains the CNN in every trial; each run is an ordinary bnsearch study named
``<prefix>-<dataset>-<strategy>-s<seed>`` in one storage, so an interrupted compare is
resumed by running it again: each study is topped up to ``trials`` finished (complete or
pruned) trials. Benchmark mode (``bnsearch.benchmark``) runs the same samplers against a
cheap stand-in objective instead. Both end in ``compare_stats.build_compare_data``.

Runs of one seed share the root seed, hence the data split and each trial number's init
and batch-order seed, so strategies are compared in pairs within a seed.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

from bnsearch import keys
from bnsearch.compare_stats import CompareData, Run, build_compare_data
from bnsearch.config import DEFAULT_DATASET, DEFAULT_PRUNER, DEFAULT_STORAGE, RunConfig, default_study_name
from bnsearch.errors import ConfigError, StudyError
from bnsearch.samplers import get_strategy

if TYPE_CHECKING:
    import optuna

logger = logging.getLogger(__name__)

DEFAULT_STRATEGIES = ("random", "tpe", "gp")
DEFAULT_SEEDS = 5
DEFAULT_COMPARE_TRIALS = 40
DEFAULT_PREFIX = "compare"

StudyCallback = Callable[["optuna.Study", "optuna.trial.FrozenTrial"], None]


@dataclass(frozen=True, slots=True, kw_only=True)
class CompareConfig:
    """One comparison: which strategies, how many seeds, and the settings every run shares."""

    strategies: tuple[str, ...] = DEFAULT_STRATEGIES  # names from bnsearch.samplers
    seeds: int = DEFAULT_SEEDS  # runs per strategy, with root seeds first_seed, first_seed+1, ...
    first_seed: int = 0  # root seed of the first run of each strategy
    trials: int = DEFAULT_COMPARE_TRIALS  # finished trials per run (the shared budget)
    dataset: str = DEFAULT_DATASET  # built-in name or path (real mode)
    epochs: int | None = None  # fixes the space's epochs (real mode)
    batch_size: int | None = None  # fixes the space's batch_size (real mode)
    pruner: str = DEFAULT_PRUNER  # the same pruner for every run
    storage: str = DEFAULT_STORAGE  # where the runs' studies live (benchmark: where sources are)
    space_path: str | None = None  # TOML space file (real mode)
    device: str = "auto"
    widths: tuple[int, int] = (32, 64)  # conv channels (real mode)
    prefix: str = DEFAULT_PREFIX  # first part of every run's study name
    benchmark: bool = False  # stand-in objective instead of training
    from_studies: tuple[str, ...] = ()  # benchmark: studies whose trials fit the surrogate
    workers: int = 1  # real mode: runs topped up at the same time, each in its own process
    threads: int | None = None  # torch threads per worker process; default: cores / workers

    def validate(self) -> None:
        """Check every option; raise ``ConfigError`` naming the first bad one."""
        if not self.strategies:
            raise ConfigError("--strategies is empty; give a comma-separated list, e.g. random,tpe,gp")
        for name in self.strategies:
            get_strategy(name)
        dupes = sorted({s for s in self.strategies if self.strategies.count(s) > 1})
        if dupes:
            raise ConfigError(f"--strategies names {dupes[0]} twice; list each strategy once")
        for opt, value in (
            ("--seeds", self.seeds),
            ("--trials", self.trials),
            ("--workers", self.workers),
        ):
            if value < 1:
                raise ConfigError(f"{opt} must be ≥ 1, got {value}")
        if not self.prefix.strip() or "/" in self.prefix:
            raise ConfigError(f"--prefix must be a non-empty name without '/', got {self.prefix!r}")
        if self.from_studies and not self.benchmark:
            raise ConfigError("--from-study only applies with --benchmark")
        if self.benchmark:
            given = [
                o
                for o, v in (
                    ("--epochs", self.epochs),
                    ("--batch-size", self.batch_size),
                    ("--space", self.space_path),
                )
                if v is not None
            ]
            if given:
                raise ConfigError(
                    f"{given[0]} does not apply with --benchmark: the search space, epochs "
                    "included, is the one of the studies the surrogate is fitted to"
                )
        self.run_config(self.strategies[0], self.first_seed).validate()

    @property
    def seed_list(self) -> list[int]:
        return list(range(self.first_seed, self.first_seed + self.seeds))

    def study_name(self, strategy: str, seed: int) -> str:
        """``compare-digits-tpe-s0``: the strategy and the seed are in the name."""
        return f"{self.prefix}-{default_study_name(self.dataset, strategy)}-s{seed}"

    def run_config(self, strategy: str, seed: int) -> RunConfig:
        """The ``bnsearch run`` configuration of one run (its trials are the whole budget)."""
        return RunConfig(
            strategy=strategy,
            trials=self.trials,
            dataset=self.dataset,
            epochs=self.epochs,
            batch_size=self.batch_size,
            pruner=self.pruner,
            storage=self.storage,
            study_name=self.study_name(strategy, seed),
            space_path=self.space_path,
            seed=seed,
            device=self.device,
            widths=self.widths,
            threads=self.threads,
        )

    def default_out_path(self) -> Path:
        """``compare-<dataset>.html``; in benchmark mode ``…-benchmark.html``."""
        stem = Path(default_study_name(self.dataset, "x")).name[: -len("-x")]
        if self.benchmark and self.from_studies:
            stem = self.from_studies[0]
        return Path(f"{self.prefix}-{stem}{'-benchmark' if self.benchmark else ''}.html")


@dataclass(frozen=True, slots=True)
class CompareResult:
    data: CompareData
    study_names: tuple[str, ...]  # every run's study (in-memory ones in benchmark mode)
    trials_run: int  # trials this call ran (0 when every study was already complete)


def counted_trials(study: optuna.Study) -> list[optuna.trial.FrozenTrial]:
    """Trials that use up the budget: complete or pruned, in the order they ran.

    Failed trials (an interrupt, a crash) are not counted, so a resumed compare runs them
    again; waiting or running ones are not finished yet.
    """
    from optuna.trial import TrialState

    done = (TrialState.COMPLETE, TrialState.PRUNED)
    return sorted((t for t in study.get_trials(deepcopy=False) if t.state in done), key=lambda t: t.number)


def run_from_study(study: optuna.Study, *, strategy: str, seed: int) -> Run:
    """A study's counted trials as a plain ``Run`` (value None for pruned trials).

    A trial's time is its wall duration (sampler time included) plus, in benchmark mode, the
    training time its stand-in objective represents.
    """
    from optuna.trial import TrialState

    values: list[float | None] = []
    times: list[float] = []
    for t in counted_trials(study):
        values.append(float(t.value) if t.state == TrialState.COMPLETE and t.value is not None else None)
        elapsed = t.duration.total_seconds() if t.duration is not None else 0.0
        times.append(elapsed + float(t.user_attrs.get(keys.SIMULATED_TIME_S, 0.0)))
    return Run(strategy=strategy, seed=seed, values=tuple(values), times_s=tuple(times))


def _existing_counts(cfg: CompareConfig, storage: optuna.storages.BaseStorage) -> dict[str, int]:
    """Counted trials of the run studies that exist already.

    Raises:
        StudyError: a run study exists with other settings (checked before any trial runs).
    """
    from dataclasses import replace

    import optuna

    from bnsearch.config import resolve_device, resolve_precision
    from bnsearch.search import load_space, study_identity
    from bnsearch.study import describe_mismatch, identity_mismatches, study_names

    existing = set(study_names(storage))
    counts: dict[str, int] = {}
    for seed in cfg.seed_list:
        for strategy in cfg.strategies:
            run_cfg = cfg.run_config(strategy, seed)
            name = run_cfg.resolved_study_name
            if name not in existing:
                continue
            study = optuna.load_study(study_name=name, storage=storage)
            stored = study.user_attrs.get(keys.STUDY_CONFIG)
            if stored is None:
                raise StudyError(f"study '{name}' was not created by bnsearch; choose another --prefix")
            precision = resolve_precision(
                run_cfg.precision,
                [resolve_device(run_cfg.device)],
                study_precision=stored.get("precision"),
            )
            run_cfg = replace(run_cfg, precision=precision)
            wanted = study_identity(run_cfg, load_space(run_cfg))
            diff = identity_mismatches(stored, wanted)
            if diff:
                details = "; ".join(describe_mismatch(k, stored.get(k), wanted.get(k)) for k in diff)
                raise StudyError(
                    f"study '{name}' was created with different settings ({details}); "
                    "rerun compare with the original settings or choose another --prefix"
                )
            counts[name] = len(counted_trials(study))
    return counts


def run_compare(
    cfg: CompareConfig,
    *,
    on_event: Callable[[str], None] | None = None,
    trial_callbacks: Sequence[StudyCallback] = (),
) -> CompareResult:
    """Run (or resume) every strategy × seed and compute the comparison.

    Args:
        cfg: The comparison.
        on_event: Called with one line per run (started, resumed, already complete).
        trial_callbacks: Optuna callbacks added to every run (e.g. a progress display).

    Returns:
        The curves and ranking, the run studies' names and how many trials this call ran.

    Raises:
        BnsearchError: a bad option, dataset, storage or source study; nothing runs then.
    """
    cfg.validate()
    if cfg.benchmark:
        from bnsearch.benchmark import run_benchmark_compare

        return run_benchmark_compare(cfg, on_event=on_event, trial_callbacks=trial_callbacks)
    return _run_real(cfg, on_event=on_event, trial_callbacks=trial_callbacks)


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

    from bnsearch.search import optimize, prepare_search

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
    optimize(setup, callbacks=[*trial_callbacks, stop])
    return len(counted_trials(setup.study)) - done


def _top_up_in_worker(job: tuple[CompareConfig, str, int, int]) -> tuple[str, int]:
    """Entry point of a ``--workers`` process: its torch threads, a quiet Optuna, one run."""
    import optuna
    import torch

    cfg, strategy, seed, threads = job
    torch.set_num_threads(threads)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    return cfg.study_name(strategy, seed), top_up_run(cfg, strategy, seed)


def _top_up_parallel(cfg: CompareConfig, pending: list[tuple[int, str]], emit: Callable[[str], None]) -> int:
    """Run the pending runs in ``cfg.workers`` processes, one whole run per task."""
    import multiprocessing
    import os
    from concurrent.futures import ProcessPoolExecutor, as_completed

    n_workers = min(cfg.workers, len(pending))
    threads = cfg.threads or max(1, (os.cpu_count() or 1) // n_workers)
    emit(f"{len(pending)} runs to top up in {n_workers} worker processes ({threads} threads each)")
    ran = 0
    # spawn: a fresh interpreter per worker (fork would copy torch's thread pools and locks).
    ctx = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=n_workers, mp_context=ctx) as pool:
        jobs = [pool.submit(_top_up_in_worker, (cfg, strategy, seed, threads)) for seed, strategy in pending]
        for job in as_completed(jobs):
            name, added = job.result()
            emit(f"{name}: {added} trials run")
            ran += added
    return ran


def _run_real(
    cfg: CompareConfig,
    *,
    on_event: Callable[[str], None] | None,
    trial_callbacks: Sequence[StudyCallback],
) -> CompareResult:
    import optuna

    from bnsearch.study import open_storage

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
