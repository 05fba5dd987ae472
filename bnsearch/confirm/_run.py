"""``bnsearch best --confirm``: the K best distinct configurations of a study retrained on fresh
paired seeds, stored in the study, judged with ``bnsearch.stats``.

Storage: every finished (configuration, seed) cell is one study user attribute
(``keys.CONFIRM_CELL_PREFIX`` + ``<config key>:<seed index>``), written the moment it finishes,
by whichever process trained it; the search's trials are not touched, so samplers, pruners,
budgets and ``study.best_trial`` see the search alone. An interrupted confirm therefore resumes
where it stopped, and a second call with more seeds trains only the cells it lacks. The latest
summary (leader, intervals, the leader's one test score) is ``keys.CONFIRM_RESULT``, which
``find_best`` reads, so ``best --retrain`` after a confirm retrains the confirmed leader.
"""

from __future__ import annotations

import json
import time
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from bnsearch import keys
from bnsearch.confirm._summary import Candidate, ConfirmSummary, summarize, summary_to_dict
from bnsearch.confirm._train import CellResult, CellSpec, cell_seed, train_cell
from bnsearch.errors import ConfigError, StudyError

if TYPE_CHECKING:
    import optuna

CellTrainer = Callable[..., CellResult]  # (spec, *, score_test) → result; module-level for --workers


@dataclass(frozen=True, slots=True, kw_only=True)
class ConfirmConfig:
    """The options of one confirm."""

    storage: str  # storage URL of the study
    study: str  # the study's name
    k: int  # configurations to confirm: the K best distinct ones by search validation accuracy
    seeds: int = 5  # fresh paired seeds per configuration (≥ 2: an interval needs two)
    dataset: str | None = None  # when given, the study must be of this dataset
    model: str | None = None  # when given, the study's --model, or where its module:function factory is now
    device: str = "auto"  # auto, cpu, cuda, cuda:N or mps
    workers: int = 1  # cells trained at the same time, each in its own process
    threads: int | None = None  # torch CPU threads per worker; None: the idle cores split over the workers
    pack: int = 1  # cells trained together as one model: not supported yet (1 only)

    def validate(self) -> None:
        """Raises ConfigError on a bad option (before anything is opened or trained)."""
        if self.k < 1:
            raise ConfigError(f"--confirm must be ≥ 1, got {self.k}")
        if self.seeds < 2:
            raise ConfigError(f"--seeds must be ≥ 2 (an interval needs two seeds), got {self.seeds}")
        if self.workers < 1:
            raise ConfigError(f"--workers must be ≥ 1, got {self.workers}")
        if self.threads is not None and self.threads < 1:
            raise ConfigError(f"--threads must be ≥ 1, got {self.threads}")
        if self.pack != 1:
            raise ConfigError(f"--pack is not supported by best --confirm yet (only 1), got {self.pack}")


@dataclass(frozen=True, slots=True)
class ConfirmResult:
    """What ``confirm_best`` found and did."""

    summary: ConfirmSummary
    test_acc: float  # the leader's accuracy (0..1) on the held-out test split, measured once
    test_scored_now: bool  # False: the leader was scored by an earlier call (not again)
    cells_run: int  # cells trained by this call
    cells_total: int  # K × S
    wall_time_s: float  # this call's seconds
    n_complete: int  # complete trials in the study


def config_key(params: dict[str, Any]) -> str:
    """A stable name for a configuration: the CRC-32 of its settings as sorted JSON."""
    text = json.dumps(params, sort_keys=True, default=str)
    return f"c{zlib.crc32(text.encode()):08x}"


def _trial_params(trial: optuna.trial.FrozenTrial, identity: dict[str, Any]) -> dict[str, Any] | None:
    params = trial.user_attrs.get(keys.RESOLVED_PARAMS)
    if params is None and "space" in identity:
        from bnsearch.core.space import SearchSpace

        params = SearchSpace.from_dict(identity["space"]).fixed_params(**trial.params).to_dict()
    return None if params is None else dict(params)


def select_candidates(study: optuna.Study, k: int) -> tuple[list[Candidate], int]:
    """The ``k`` best distinct configurations among the complete trials (best validation
    accuracy first; a configuration is represented by its best trial), and the complete count.

    Raises:
        StudyError: fewer complete trials, or distinct configurations, than ``k``.
    """
    from optuna.trial import TrialState

    identity = study.user_attrs.get(keys.STUDY_CONFIG) or {}
    complete = [t for t in study.get_trials(deepcopy=False) if t.state == TrialState.COMPLETE and t.value is not None]
    if len(complete) < k:
        raise StudyError(
            f"study '{study.study_name}' has {len(complete)} complete trial{'s' if len(complete) != 1 else ''}; "
            f"--confirm {k} needs at least {k}"
        )
    found: dict[str, Candidate] = {}
    for t in sorted(complete, key=lambda t: (-float(t.value), t.number)):  # type: ignore[arg-type]
        params = _trial_params(t, identity)
        if params is None:
            continue
        key = config_key(params)
        if key not in found:
            found[key] = Candidate(key=key, number=t.number, search_val_acc=float(t.value), params=params)  # type: ignore[arg-type]
        if len(found) == k:
            break
    if len(found) < k:
        raise StudyError(
            f"study '{study.study_name}' has {len(complete)} complete trials but {len(found)} distinct "
            f"configurations with stored settings; --confirm {k} needs {k}"
        )
    return list(found.values()), len(complete)


def cell_attr(key: str, seed_index: int) -> str:
    """The study attribute that holds one cell."""
    return f"{keys.CONFIRM_CELL_PREFIX}{key}:{seed_index}"


def stored_n_val(attrs: dict[str, Any], candidates: Sequence[Candidate], seeds: int) -> int | None:
    """Validation examples per seed, as the stored cells recorded it (None for cells stored
    before it was recorded)."""
    for c in candidates:
        for s in range(seeds):
            cell = attrs.get(cell_attr(c.key, s))
            if isinstance(cell, dict) and cell.get("n_val"):
                return int(cell["n_val"])
    return None


def stored_values(attrs: dict[str, Any], candidates: Sequence[Candidate], seeds: int) -> dict[str, list[float]]:
    """Configuration key → validation accuracies of seeds 0..seeds−1 that the study holds (a
    list stops at the first missing seed)."""
    out: dict[str, list[float]] = {}
    for c in candidates:
        vals: list[float] = []
        for s in range(seeds):
            cell = attrs.get(cell_attr(c.key, s))
            if not isinstance(cell, dict):
                break
            vals.append(float(cell["val_acc"]))
        out[c.key] = vals
    return out


@dataclass(frozen=True, slots=True)
class _CellJob:
    storage: str
    study: str
    candidate: Candidate
    spec: CellSpec
    threads: int | None  # set in a worker process; None in this one
    trainer: CellTrainer


def _run_cell(job: _CellJob) -> float:
    """Train one cell and store it on the study at once (so nothing finished is lost)."""
    import optuna

    from bnsearch.storages import open_storage

    res = job.trainer(job.spec, score_test=False)
    study = optuna.load_study(study_name=job.study, storage=open_storage(job.storage, create=False, heartbeat=False))
    attrs = {
        "trial": job.candidate.number,
        "key": job.candidate.key,
        "seed_index": job.spec.seed_index,
        "seed": cell_seed(job.spec.root_seed, job.spec.seed_index),
        "device": job.spec.device,
        "precision": job.spec.precision,
        **res.to_attrs(),
    }
    study.set_user_attr(cell_attr(job.candidate.key, job.spec.seed_index), attrs)
    return res.val_acc


def _cell_in_worker(job: _CellJob) -> float:
    """Entry point of a ``--workers`` process: its torch threads, a quiet Optuna, one cell."""
    import optuna

    from bnsearch.core.cpu import set_threads

    set_threads(job.threads, 1)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    return _run_cell(job)


def confirm_best(
    cfg: ConfirmConfig,
    *,
    trainer: CellTrainer | None = None,
    on_event: Callable[[str], None] | None = None,
) -> ConfirmResult:
    """Confirm the K best distinct configurations of ``cfg.study`` on ``cfg.seeds`` fresh paired
    seeds; score the leader (chosen on validation) once on the test split.

    Args:
        cfg: The options.
        trainer: Trains one cell, ``trainer(spec, score_test=...)``; default
            ``bnsearch.confirm.train_cell``. With ``workers > 1`` it must be a module-level function.
        on_event: Called with one line per step (cells to train, each cell done, the test score).

    Returns:
        The summary, the leader's test accuracy and what this call trained.

    Raises:
        BnsearchError: a bad option, no such storage or study, a study of another dataset or
            model, too few complete trials; all checked before anything trains.
    """
    from bnsearch.config import resolve_device, resolve_precision
    from bnsearch.storages import open_storage
    from bnsearch.study import load_existing

    t0 = time.perf_counter()
    cfg.validate()
    emit = on_event or (lambda _line: None)
    train = trainer or train_cell
    storage = open_storage(cfg.storage, create=False, heartbeat=False)
    study = load_existing(storage, cfg.study)
    identity = study.user_attrs.get(keys.STUDY_CONFIG)
    if not isinstance(identity, dict) or "dataset" not in identity or "seed" not in identity:
        raise StudyError(f"study '{cfg.study}' was not created by bnsearch; it has no stored dataset and seed")
    if cfg.dataset is not None and str(identity["dataset"]) != cfg.dataset:
        raise StudyError(f"study '{cfg.study}' is of dataset {identity['dataset']}, not {cfg.dataset} (--dataset)")
    from bnsearch.model_folder import study_model

    net = study_model(identity, cfg.study, cfg.model)
    candidates, n_complete = select_candidates(study, cfg.k)
    device = resolve_device(cfg.device)
    base = CellSpec(
        params={},
        dataset=str(identity["dataset"]),
        root_seed=int(identity["seed"]),
        seed_index=0,
        model=net,
        widths=tuple(identity.get("widths", (32, 64))),
        decay_bn_params=bool(identity.get("decay_bn_params")),
        precision=resolve_precision("auto", [device], study_precision=identity.get("precision", "fp32")),
        device=device,
    )
    # Seeds outside, configurations inside: an interrupted confirm has whole seeds, and a
    # process reuses one seed's split for every configuration.
    jobs = [
        _CellJob(cfg.storage, cfg.study, c, replace(base, params=c.params, seed_index=s), None, train)
        for s in range(cfg.seeds)
        for c in candidates
        if not isinstance(study.user_attrs.get(cell_attr(c.key, s)), dict)
    ]
    total = cfg.k * cfg.seeds
    emit(
        f"confirming {cfg.k} configurations ({', '.join(c.label for c in candidates)}) on {cfg.seeds} seeds: "
        f"{total - len(jobs)}/{total} cells stored, {len(jobs)} to train on {device}"
    )

    def done(job: _CellJob, val_acc: float) -> None:
        emit(f"  {job.candidate.label} seed {job.spec.seed_index}: val_acc {val_acc:.4f}")

    if cfg.workers > 1 and len(jobs) > 1:
        from bnsearch.core.cpu import default_threads
        from bnsearch.processes import run_in_processes

        n = min(cfg.workers, len(jobs))
        threads = cfg.threads or default_threads(n)
        emit(f"{len(jobs)} cells in {n} worker processes ({threads} thread{'s' if threads > 1 else ''} each)")
        run_in_processes(_cell_in_worker, [replace(j, threads=threads) for j in jobs], workers=n, on_result=done)
    else:
        for job in jobs:
            done(job, _run_cell(job))
    attrs = load_existing(storage, cfg.study).user_attrs
    values = stored_values(attrs, candidates, cfg.seeds)
    summary = summarize(candidates, values, n_val=stored_n_val(attrs, candidates, cfg.seeds))
    leader = summary.leader
    previous = attrs.get(keys.CONFIRM_RESULT)
    scored: dict[str, float] = dict(previous.get("test_scored", {})) if isinstance(previous, dict) else {}
    scored_now = leader.key not in scored
    if scored_now:
        # The test split is looked at once per configuration, and only for a leader: the one
        # chosen on validation, trained again on seed 0 (its cell's split, weights and batches).
        emit(f"scoring the leader {leader.label} once on the test split ...")
        scored_cell = train(replace(base, params=leader.params), score_test=True)
        if scored_cell.test_acc is None:
            raise RuntimeError("the cell trainer returned no test accuracy although asked for one")
        scored[leader.key] = float(scored_cell.test_acc)
    result = {
        **summary_to_dict(summary),
        "test_acc": scored[leader.key],
        "test_scored": scored,
        "n_complete": n_complete,
    }
    study.set_user_attr(keys.CONFIRM_RESULT, result)
    return ConfirmResult(
        summary=summary,
        test_acc=scored[leader.key],
        test_scored_now=scored_now,
        cells_run=len(jobs),
        cells_total=total,
        wall_time_s=time.perf_counter() - t0,
        n_complete=n_complete,
    )
