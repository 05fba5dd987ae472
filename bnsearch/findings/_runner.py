"""Running the experiment: one Optuna study per dataset × seed, topped up cell by cell.

Each cell, once trained, is added to its study as one finished trial (its lr and arm as
params, its measurements as attributes), so a run that dies loses at most the cells in
flight, and running the command again trains only the cells still missing.

Design 2 (``cfg.design == 2``) has its own studies (``findings2-<dataset>-s<seed>``), grid
cells per arm (``top_up(..., arms=...)`` trains only some arms', for seeds added to undecided
claims) and stable-lr probes, decided one after another: each probe's lr follows from the
verdicts (``probe_stable``) of the arm's probes already stored, so a killed run resumes in the
middle of a bisection.

With ``cfg.pack`` > 1 (both designs) each arm's grid cells without a curve train up to
``cfg.pack`` at a time as one packed model; everything else trains one by one.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

from bnsearch.findings._design import (
    Cell,
    FindingsConfig,
    design_cells,
    design_identity,
    epochs_for,
)
from bnsearch.findings._design2 import (
    Arm2,
    Cell2,
    design2_cells,
    design2_identity,
    epochs2,
    max_probe_cells,
    probe_arms,
    probe_lrs,
)
from bnsearch.findings._records import CellRecord

if TYPE_CHECKING:
    import optuna

    from bnsearch.core.data import DeviceData
    from bnsearch.findings._train import CellOutcome

CELL_ATTR = "findings_cell"  # trial attribute: the cell's key
PROBE_STABLE_ATTR = "probe_stable"  # trial attribute of a probe cell: the probe's verdict on its lr
OnCell = Callable[[str, int, Any, dict[str, Any]], None]  # (dataset, seed, Cell or Cell2, attrs)


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


def _distributions2() -> dict[str, Any]:
    from optuna.distributions import CategoricalDistribution, FloatDistribution

    from bnsearch.core.space import ACTIVATIONS, BN_PLACEMENTS

    return {
        "lr": FloatDistribution(1e-4, 10.0, log=True),
        "net": CategoricalDistribution(("bncnn", "plain", "resnet")),
        "activation": CategoricalDistribution(ACTIVATIONS),
        "bn_placement": CategoricalDistribution((*BN_PLACEMENTS, "post_activation")),
        "bn_classifier": CategoricalDistribution((False, True)),
        "gamma_init": CategoricalDistribution(("ones", "zero_last")),
        "twin": CategoricalDistribution((False, True)),
        "cell_kind": CategoricalDistribution(("grid", "probe")),
    }


def _identity(cfg: FindingsConfig, dataset: str, seed: int) -> dict[str, Any]:
    base = design2_identity(dataset) if cfg.design == 2 else design_identity(dataset, cfg.model)
    return {**base, "seed": seed}


def _open_study(cfg: FindingsConfig, storage: optuna.storages.BaseStorage, dataset: str, seed: int) -> optuna.Study:
    import optuna

    from bnsearch.study import create_or_resume, library_versions

    identity = _identity(cfg, dataset, seed)
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
    return {str(t.user_attrs[CELL_ATTR]) for t in _finished(study)}


def _add_cell(study: optuna.Study, cell: Cell | Cell2, attrs: dict[str, Any]) -> None:
    import optuna
    from optuna.trial import TrialState

    arm = cell.arm
    params: dict[str, Any] = {
        "lr": cell.lr,
        "activation": arm.activation,
        "bn_placement": arm.bn_placement,
        "bn_classifier": arm.bn_classifier,
        "gamma_init": arm.gamma_init,
        "cell_kind": cell.kind,
    }
    if isinstance(arm, Arm2):
        params |= {"net": arm.net, "twin": arm.twin}
    trial = optuna.trial.create_trial(
        state=TrialState.PRUNED if attrs["diverged"] else TrialState.COMPLETE,
        value=None if attrs["diverged"] else float(attrs["val_acc"]),
        params=params,
        distributions=_distributions2() if isinstance(arm, Arm2) else _distributions(),
        user_attrs={CELL_ATTR: cell.key, "arm": arm.name, **attrs},
    )
    study.add_trial(trial)


def _load_data(cfg: FindingsConfig, dataset: str, seed: int) -> DeviceData:
    from bnsearch.config import resolve_device
    from bnsearch.core.data import TEST_FRACTION, VAL_FRACTION, load_dataset, split_dataset, to_device
    from bnsearch.core.seeding import derive_seed
    from bnsearch.findings._design2 import INPUT_POOL2, TEST_FRACTION2, VAL_FRACTION2, pooled

    val, test = (VAL_FRACTION2, TEST_FRACTION2) if cfg.design == 2 else (VAL_FRACTION, TEST_FRACTION)
    ds = load_dataset(dataset)
    if cfg.design == 2:
        ds = pooled(ds, INPUT_POOL2.get(dataset, 1))
    splits = split_dataset(ds, seed=derive_seed(seed, "split"), val_fraction=val, test_fraction=test)
    return to_device(splits, resolve_device(cfg.device))


def _finished(study: optuna.Study) -> list[optuna.trial.FrozenTrial]:
    from optuna.trial import TrialState

    done = (TrialState.COMPLETE, TrialState.PRUNED)
    return [t for t in study.get_trials(deepcopy=False) if t.state in done and CELL_ATTR in t.user_attrs]


def probe_verdicts(study: optuna.Study, arm: Arm2) -> dict[int, bool]:
    """Probe-grid index → the stored verdict (stable or not) of each probe run of ``arm``."""
    from bnsearch.findings._probe import grid_index

    lrs = probe_lrs()
    return {
        grid_index(lrs, float(t.params["lr"])): bool(t.user_attrs[PROBE_STABLE_ATTR])
        for t in _finished(study)
        if t.user_attrs.get("arm") == arm.name and t.params.get("cell_kind") == "probe"
    }


def next_probe(study: optuna.Study, arm: Arm2) -> Cell2 | None:
    """The probe cell of ``arm`` to train next in ``study`` (None: its bisection is over)."""
    from bnsearch.findings._probe import next_probe_index

    lrs = probe_lrs()
    index = next_probe_index(probe_verdicts(study, arm), len(lrs))
    return None if index is None else Cell2(arm, lrs[index], kind="probe")


C = TypeVar("C", bound=Cell)


def _batches(cells: Sequence[C], pack: int) -> list[list[C]]:
    """``cells`` in the batches they train in: with ``pack`` > 1, the cells that train alone
    (curves, fitting cells) one by one, then each arm's other grid cells in packs of up to
    ``pack``; else every cell alone."""
    if pack <= 1:
        return [[c] for c in cells]
    batches: list[list[C]] = []
    by_arm: dict[str, list[C]] = {}
    for c in cells:
        if c.kind == "grid" and not c.checkpoints:
            by_arm.setdefault(c.arm.name, []).append(c)
        else:
            batches.append([c])
    for group in by_arm.values():
        batches += [group[i : i + pack] for i in range(0, len(group), pack)]
    return batches


def _cell_attrs(outcome: CellOutcome, data: DeviceData) -> dict[str, Any]:
    return {**outcome.to_attrs(), "n_test": len(data.test_y), "device": str(data.device)}


def _top_up2(
    cfg: FindingsConfig, dataset: str, seed: int, *, on_cell: OnCell | None, arms: Collection[str] | None
) -> int:
    from bnsearch.findings._probe import is_stable
    from bnsearch.findings._train import train_cell2, train_cells_packed2
    from bnsearch.storages import open_storage

    study = _open_study(cfg, open_storage(cfg.storage), dataset, seed)
    done = done_cells(study)
    grid = [c for c in design2_cells(arms) if c.key not in done]
    probed = [a for a in probe_arms(arms) if next_probe(study, a) is not None]
    if not grid and not probed:
        return 0
    data = _load_data(cfg, dataset, seed)
    chance = 1.0 / data.num_classes
    epochs = epochs2(dataset)
    trained = 0

    def store(batch: list[Cell2]) -> None:
        nonlocal trained
        if len(batch) == 1:
            outcomes = [train_cell2(batch[0], data, seed=seed, epochs=epochs)]
        else:
            outcomes = train_cells_packed2(batch, data, seed=seed, epochs=epochs)
        for cell, outcome in zip(batch, outcomes, strict=True):
            attrs = _cell_attrs(outcome, data)
            if cell.kind == "probe":
                attrs[PROBE_STABLE_ATTR] = is_stable(val_acc=outcome.val_acc, diverged=outcome.diverged, chance=chance)
            _add_cell(study, cell, attrs)
            trained += 1
            if on_cell is not None:
                on_cell(dataset, seed, cell, attrs)

    # Probes first (short, one by one): each one's lr follows from the arm's stored verdicts.
    for arm in probed:
        while (cell := next_probe(study, arm)) is not None:
            store([cell])
    for batch in _batches(grid, cfg.pack):
        store(batch)
    return trained


def missing_cells(cfg: FindingsConfig, study: optuna.Study | None, *, arms: Collection[str] | None = None) -> int:
    """Cells ``study`` (None: not created yet) still lacks; for design 2 the grid cells plus, per
    probed arm whose bisection is unfinished, the probe runs it may still need (at most)."""
    if cfg.design != 2:
        keys = {c.key for c in design_cells() if arms is None or c.arm.name in arms}
        return len(keys) - (len(done_cells(study) & keys) if study is not None else 0)
    keys = {c.key for c in design2_cells(arms)}
    grid = len(keys) - (len(done_cells(study) & keys) if study is not None else 0)
    probes = 0
    for arm in probe_arms(arms):
        verdicts = probe_verdicts(study, arm) if study is not None else {}
        if study is None or next_probe(study, arm) is not None:
            probes += max(1, max_probe_cells() - len(verdicts))
    return grid + probes


def top_up(
    cfg: FindingsConfig,
    dataset: str,
    seed: int,
    *,
    on_cell: OnCell | None = None,
    arms: Collection[str] | None = None,
) -> int:
    """Train the cells of ``dataset`` × ``seed`` that its study lacks (of ``arms`` only, when
    given: arm names of the run's design; None: every cell); return how many trained.

    Raises:
        StudyError: the study was made with another design or settings.
        KeyError: an arm name the design does not have.
    """
    if cfg.design == 2:
        return _top_up2(cfg, dataset, seed, on_cell=on_cell, arms=arms)
    from bnsearch.findings._train import train_cell, train_cells_packed
    from bnsearch.storages import open_storage

    study = _open_study(cfg, open_storage(cfg.storage), dataset, seed)
    done = done_cells(study)
    pending = [c for c in design_cells() if c.key not in done and (arms is None or c.arm.name in arms)]
    if not pending:
        return 0
    data = _load_data(cfg, dataset, seed)
    epochs = epochs_for(dataset)
    for batch in _batches(pending, cfg.pack):
        if len(batch) == 1:
            outcomes = [train_cell(batch[0], data, seed=seed, epochs=epochs, net=cfg.model)]
        else:
            outcomes = train_cells_packed(batch, data, seed=seed, epochs=epochs, net=cfg.model)
        for cell, outcome in zip(batch, outcomes, strict=True):
            attrs = _cell_attrs(outcome, data)
            _add_cell(study, cell, attrs)
            if on_cell is not None:
                on_cell(dataset, seed, cell, attrs)
    return len(pending)


Job = tuple[FindingsConfig, str, int, int, "tuple[str, ...] | None"]


def _top_up_in_worker(job: Job) -> tuple[str, int, int]:
    """Entry point of a ``--workers`` process: its torch threads, a quiet Optuna, one study."""
    import optuna

    from bnsearch.config import resolve_device
    from bnsearch.core.cpu import set_backends, set_threads

    cfg, dataset, seed, threads, arms = job
    set_threads(threads, 1)
    set_backends(resolve_device(cfg.device))
    optuna.logging.set_verbosity(optuna.logging.ERROR)  # as in `run`: no per-trial tracebacks
    return dataset, seed, top_up(cfg, dataset, seed, arms=arms)


def _check_design(study: optuna.Study, cfg: FindingsConfig) -> None:
    """Refuse a findings study of the other design with a message that says so."""
    from bnsearch import keys
    from bnsearch.errors import StudyError

    stored = study.user_attrs.get(keys.STUDY_CONFIG)
    if not isinstance(stored, dict) or stored.get("kind") != "findings":
        return
    design = stored.get("design", 1)
    if design != cfg.design:
        raise StudyError(
            f"study '{study.study_name}' holds cells of findings design {design}, this run is design "
            f"{cfg.design}; rerun findings with --design {design} or choose another --prefix"
        )


def check_studies(cfg: FindingsConfig, *, arms: Collection[str] | None = None) -> dict[tuple[str, int], int]:
    """Missing cells per dataset × seed (of ``arms`` only, when given); refuses (``StudyError``)
    a study of another design before anything trains."""
    import optuna

    from bnsearch.storages import open_storage
    from bnsearch.study import check_identity, study_names

    storage = open_storage(cfg.storage)
    existing = set(study_names(storage))
    missing: dict[tuple[str, int], int] = {}
    for dataset, seed in cfg.jobs:
        name = cfg.study_name(dataset, seed)
        if name not in existing:
            missing[(dataset, seed)] = missing_cells(cfg, None, arms=arms)
            continue
        study = optuna.load_study(study_name=name, storage=storage)
        _check_design(study, cfg)
        check_identity(study, _identity(cfg, dataset, seed), rerun="rerun findings", option="--storage")
        missing[(dataset, seed)] = missing_cells(cfg, study, arms=arms)
    return missing


def run_experiment(
    cfg: FindingsConfig,
    *,
    on_event: Callable[[str], None] | None = None,
    on_cell: OnCell | None = None,
    arms: Collection[str] | None = None,
) -> RunSummary:
    """Top up every dataset × seed study (the cells of ``arms`` only, when given), then read
    every cell back as a ``CellRecord``.

    Raises:
        BnsearchError: a bad option or storage, or a study of another design; nothing trains then.
    """
    import optuna

    from bnsearch.storages import open_storage

    cfg.validate()
    emit = on_event or (lambda _line: None)
    missing = check_studies(cfg, arms=arms)
    pending = [job for job in cfg.jobs if missing[job] > 0]
    total = missing_cells(cfg, None, arms=arms)
    for dataset, seed in cfg.jobs:
        n = missing[(dataset, seed)]
        name = cfg.study_name(dataset, seed)
        emit(f"{name}: " + ("complete" if n == 0 else f"{total - n}/{total} cells done, {n} to train"))
    ran = 0
    arm_list = None if arms is None else tuple(sorted(arms))
    if cfg.workers > 1 and len(pending) > 1:
        from bnsearch.core.cpu import default_threads
        from bnsearch.processes import run_in_processes

        n_workers = min(cfg.workers, len(pending))
        threads = cfg.threads or default_threads(n_workers)
        emit(f"{len(pending)} studies to top up in {n_workers} worker processes ({threads} threads each)")

        def done(_job: Job, result: tuple[str, int, int]) -> None:
            emit(f"{cfg.study_name(result[0], result[1])}: {result[2]} cells trained")

        jobs: list[Job] = [(cfg, d, s, threads, arm_list) for d, s in pending]
        ran = sum(r[2] for r in run_in_processes(_top_up_in_worker, jobs, workers=n_workers, on_result=done))
    else:
        for dataset, seed in pending:
            ran += top_up(cfg, dataset, seed, on_cell=on_cell, arms=arm_list)
    storage = open_storage(cfg.storage)
    records: list[CellRecord] = []
    for dataset, seed in cfg.jobs:
        study = optuna.load_study(study_name=cfg.study_name(dataset, seed), storage=storage)
        records += records_from_study(study, dataset=dataset, seed=seed)
    names = tuple(cfg.study_name(d, s) for d, s in cfg.jobs)
    return RunSummary(records=tuple(records), cells_run=ran, study_names=names)


def _optional_float(value: Any) -> float | None:
    return None if value is None else float(value)


def records_from_study(study: optuna.Study, *, dataset: str, seed: int) -> list[CellRecord]:
    """The study's finished cells as plain records (the latest trial of a cell wins)."""
    by_key: dict[str, CellRecord] = {}
    for t in sorted(_finished(study), key=lambda t: t.number):
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
            test_nll=_optional_float(a.get("test_nll")),
            early_loss=_optional_float(a.get("early_loss")),
        )
    return list(by_key.values())
