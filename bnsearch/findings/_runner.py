"""Running the experiment: one Optuna study per dataset × seed, topped up cell by cell.

Each cell, once trained, is added to its study as one finished trial (its lr and arm as
params, its measurements as attributes), so a run that dies loses at most the cells in
flight, and running the command again trains only the cells still missing.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from bnsearch.findings._design import (
    Cell,
    FindingsConfig,
    design_cells,
    design_identity,
    epochs_for,
)
from bnsearch.findings._records import CellRecord

if TYPE_CHECKING:
    import optuna

CELL_ATTR = "findings_cell"  # trial attribute: the cell's key
OnCell = Callable[[str, int, Cell, dict[str, Any]], None]


@dataclass(frozen=True, slots=True)
class RunSummary:
    records: tuple[CellRecord, ...]
    cells_run: int  # cells trained by this call (0 when every study was complete)
    study_names: tuple[str, ...]


def _distributions() -> dict[str, Any]:
    from optuna.distributions import CategoricalDistribution, FloatDistribution

    from bnsearch.core.space import ACTIVATIONS, BN_PLACEMENTS

    return {
        "lr": FloatDistribution(1e-4, 10.0, log=True),
        "activation": CategoricalDistribution(ACTIVATIONS),
        "bn_placement": CategoricalDistribution(BN_PLACEMENTS),
        "bn_classifier": CategoricalDistribution((False, True)),
        "gamma_init": CategoricalDistribution(("ones", "zero_last", "zeros")),
        "cell_kind": CategoricalDistribution(("grid", "fit")),
    }


def _open_study(cfg: FindingsConfig, storage: optuna.storages.BaseStorage, dataset: str, seed: int) -> optuna.Study:
    import optuna

    from bnsearch.study import create_or_resume, library_versions

    identity = {**design_identity(dataset, cfg.model), "seed": seed}
    study, _ = create_or_resume(
        storage,
        cfg.study_name(dataset, seed),
        url=cfg.storage,
        identity=identity,
        attrs={"versions": library_versions(), "command": "findings"},
        sampler=optuna.samplers.RandomSampler(seed=seed),
        pruner=optuna.pruners.NopPruner(),
    )
    return study


def done_cells(study: optuna.Study) -> set[str]:
    """Keys of the cells that have a finished trial in ``study``."""
    from optuna.trial import TrialState

    done = (TrialState.COMPLETE, TrialState.PRUNED)
    return {str(t.user_attrs[CELL_ATTR]) for t in study.get_trials(deepcopy=False) if t.state in done}


def _add_cell(study: optuna.Study, cell: Cell, attrs: dict[str, Any]) -> None:
    import optuna
    from optuna.trial import TrialState

    arm = cell.arm
    trial = optuna.trial.create_trial(
        state=TrialState.PRUNED if attrs["diverged"] else TrialState.COMPLETE,
        value=None if attrs["diverged"] else float(attrs["val_acc"]),
        params={
            "lr": cell.lr,
            "activation": arm.activation,
            "bn_placement": arm.bn_placement,
            "bn_classifier": arm.bn_classifier,
            "gamma_init": arm.gamma_init,
            "cell_kind": cell.kind,
        },
        distributions=_distributions(),
        user_attrs={CELL_ATTR: cell.key, "arm": arm.name, **attrs},
    )
    study.add_trial(trial)


def top_up(cfg: FindingsConfig, dataset: str, seed: int, *, on_cell: OnCell | None = None) -> int:
    """Train the cells of ``dataset`` × ``seed`` that its study lacks; return how many."""
    from bnsearch.core.data import load_dataset, split_dataset, to_device
    from bnsearch.core.seeding import derive_seed
    from bnsearch.findings._train import train_cell, train_cells_packed
    from bnsearch.storages import open_storage

    study = _open_study(cfg, open_storage(cfg.storage), dataset, seed)
    done = done_cells(study)
    pending = [c for c in design_cells() if c.key not in done]
    if not pending:
        return 0
    data = to_device(split_dataset(load_dataset(dataset), seed=derive_seed(seed, "split")), cfg.device)
    epochs = epochs_for(dataset)
    batches: list[list[Cell]] = []
    if cfg.pack > 1:
        by_arm: dict[str, list[Cell]] = {}
        for c in pending:
            if c.kind == "grid" and not c.checkpoints:
                by_arm.setdefault(c.arm.name, []).append(c)
            else:
                batches.append([c])
        for group in by_arm.values():
            batches += [group[i : i + cfg.pack] for i in range(0, len(group), cfg.pack)]
    else:
        batches = [[c] for c in pending]
    for batch in batches:
        if len(batch) == 1:
            outcomes = [train_cell(batch[0], data, seed=seed, epochs=epochs, net=cfg.model)]
        else:
            outcomes = train_cells_packed(batch, data, seed=seed, epochs=epochs, net=cfg.model)
        for cell, outcome in zip(batch, outcomes, strict=True):
            attrs = {**outcome.to_attrs(), "n_test": len(data.test_y)}
            _add_cell(study, cell, attrs)
            if on_cell is not None:
                on_cell(dataset, seed, cell, attrs)
    return len(pending)


def _top_up_in_worker(job: tuple[FindingsConfig, str, int, int]) -> tuple[str, int, int]:
    """Entry point of a ``--workers`` process: its torch threads, a quiet Optuna, one study."""
    import optuna

    from bnsearch.core.cpu import set_threads

    cfg, dataset, seed, threads = job
    set_threads(threads, 1)
    optuna.logging.set_verbosity(optuna.logging.ERROR)  # as in `run`: no per-trial tracebacks
    return dataset, seed, top_up(cfg, dataset, seed)


def check_studies(cfg: FindingsConfig) -> dict[tuple[str, int], int]:
    """Missing cells per dataset × seed; refuses (``StudyError``) a study of another design
    before anything trains."""
    from bnsearch.storages import open_storage
    from bnsearch.study import check_identity, study_names

    storage = open_storage(cfg.storage)
    existing = set(study_names(storage))
    total = len(design_cells())
    missing: dict[tuple[str, int], int] = {}
    for dataset, seed in cfg.jobs:
        name = cfg.study_name(dataset, seed)
        if name not in existing:
            missing[(dataset, seed)] = total
            continue
        import optuna

        study = optuna.load_study(study_name=name, storage=storage)
        check_identity(
            study, {**design_identity(dataset, cfg.model), "seed": seed}, rerun="rerun findings", option="--storage"
        )
        missing[(dataset, seed)] = total - len(done_cells(study) & {c.key for c in design_cells()})
    return missing


def run_experiment(
    cfg: FindingsConfig,
    *,
    on_event: Callable[[str], None] | None = None,
    on_cell: OnCell | None = None,
) -> RunSummary:
    """Top up every dataset × seed study, then read every cell back as a ``CellRecord``.

    Raises:
        BnsearchError: a bad option or storage, or a study of another design; nothing trains then.
    """
    import optuna

    from bnsearch.storages import open_storage

    cfg.validate()
    emit = on_event or (lambda _line: None)
    missing = check_studies(cfg)
    pending = [job for job in cfg.jobs if missing[job] > 0]
    total = len(design_cells())
    for dataset, seed in cfg.jobs:
        n = missing[(dataset, seed)]
        name = cfg.study_name(dataset, seed)
        emit(f"{name}: " + ("complete" if n == 0 else f"{total - n}/{total} cells done, {n} to train"))
    ran = 0
    if cfg.workers > 1 and len(pending) > 1:
        from bnsearch.core.cpu import default_threads
        from bnsearch.processes import run_in_processes

        n_workers = min(cfg.workers, len(pending))
        threads = cfg.threads or default_threads(n_workers)
        emit(f"{len(pending)} studies to top up in {n_workers} worker processes ({threads} threads each)")

        def done(_job: tuple[FindingsConfig, str, int, int], result: tuple[str, int, int]) -> None:
            emit(f"{cfg.study_name(result[0], result[1])}: {result[2]} cells trained")

        jobs = [(cfg, d, s, threads) for d, s in pending]
        ran = sum(r[2] for r in run_in_processes(_top_up_in_worker, jobs, workers=n_workers, on_result=done))
    else:
        for dataset, seed in pending:
            ran += top_up(cfg, dataset, seed, on_cell=on_cell)
    storage = open_storage(cfg.storage)
    records: list[CellRecord] = []
    for dataset, seed in cfg.jobs:
        study = optuna.load_study(study_name=cfg.study_name(dataset, seed), storage=storage)
        records += records_from_study(study, dataset=dataset, seed=seed)
    names = tuple(cfg.study_name(d, s) for d, s in cfg.jobs)
    return RunSummary(records=tuple(records), cells_run=ran, study_names=names)


def records_from_study(study: optuna.Study, *, dataset: str, seed: int) -> list[CellRecord]:
    """The study's finished cells as plain records (the latest trial of a cell wins)."""
    from optuna.trial import TrialState

    by_key: dict[str, CellRecord] = {}
    for t in sorted(study.get_trials(deepcopy=False), key=lambda t: t.number):
        if t.state not in (TrialState.COMPLETE, TrialState.PRUNED) or CELL_ATTR not in t.user_attrs:
            continue
        a = t.user_attrs
        by_key[a[CELL_ATTR]] = CellRecord(
            dataset=dataset,
            seed=seed,
            arm=str(a["arm"]),
            kind=str(t.params["cell_kind"]),
            lr=float(t.params["lr"]),
            val_acc=float(a["val_acc"]),
            test_acc=float(a["test_acc"]),
            diverged=bool(a["diverged"]),
            n_test=int(a["n_test"]),
            curve=tuple((int(s), float(v)) for s, v in a.get("curve") or ()),
            fit_reached=a.get("fit_reached"),
            fit_train_acc=a.get("fit_train_acc"),
        )
    return list(by_key.values())
