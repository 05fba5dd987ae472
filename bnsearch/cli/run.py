"""``bnsearch run``: options → ``RunConfig`` → one search (or ``--workers`` processes) with a
progress line, then a summary of the study."""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table

from bnsearch.cli.app import (
    ArtifactsOpt,
    MlflowOpt,
    StorageOpt,
    app,
    configure_logging,
    console,
    options,
    storage_text,
    storage_url,
    user_errors,
)
from bnsearch.config import DEFAULT_DATASET, DEFAULT_PRUNER, DEFAULT_SAVE_MODE, DEFAULT_TRIALS, RunConfig
from bnsearch.core.cpu import set_threads
from bnsearch.samplers import strategies
from bnsearch.search.pruners import PRUNER_NAMES
from bnsearch.urls import mask_url

if TYPE_CHECKING:
    import optuna


PACK_HELP = (
    "Trials asked at once and trained together as one packed model (per worker): a count, or "
    "auto (1, no packing, until measured faster on the device). Trials of different shape "
    "(activation, BN placement, BN before the classifier, batch size) train as separate groups."
)


MODEL_HELP = (
    "The network: bncnn (the article's two-conv BN-CNN), plain (a VGG-style plain CNN; depth and width "
    "in the space), resnet (a small residual net, depth 6n+2), or your own: package.module:function or "
    "path/file.py:function, called with (params, in_shape, num_classes) and returning an nn.Module. "
    "Part of the study. [default: bncnn]"
)


def _strategy_help() -> str:
    parts = [f"{s.name}{' (experimental)' if s.experimental else ''}" for s in strategies()]
    return "Search strategy: " + ", ".join(parts) + "."


@app.command()
def run(
    strategy: Annotated[str | None, typer.Option(help=_strategy_help() + " [default: tpe]")] = None,
    trials: Annotated[
        int | None,
        typer.Option(
            help=f"Trials to add to the study in this run. [default: {DEFAULT_TRIALS}; with --max-trials, no "
            "limit of its own]"
        ),
    ] = None,
    max_trials: Annotated[
        int | None,
        typer.Option(
            help="Study-wide budget: stop once the study holds this many trials, however many processes "
            "and machines run it (exact; running and retried trials count)."
        ),
    ] = None,
    timeout: Annotated[float | None, typer.Option(help="Stop starting new trials after this many seconds.")] = None,
    dataset: Annotated[
        str | None,
        typer.Option(
            help=f"digits, mnist5k, or a path to an .npz file / MNIST IDX folder / CIFAR-10 folder. [default: {DEFAULT_DATASET}]"
        ),
    ] = None,
    epochs: Annotated[int | None, typer.Option(help="Epochs per trial (fixes the space's epochs; default 4).")] = None,
    batch_size: Annotated[
        int | None, typer.Option(help="Batch size (fixes the space's batch_size; default 32).")
    ] = None,
    pruner: Annotated[
        str | None,
        typer.Option(
            help="Pruner: "
            + ", ".join(PRUNER_NAMES)
            + f". [default: {DEFAULT_PRUNER}: keep the best 25% at each epoch]"
        ),
    ] = None,
    storage: StorageOpt = None,
    study_name: Annotated[
        str | None,
        typer.Option("--study-name", "--study", help="Study to create or resume [default: <dataset>-<strategy>]."),
    ] = None,
    space: Annotated[
        str | None, typer.Option(help="TOML file that fixes, narrows or extends the search space.")
    ] = None,
    seed: Annotated[
        int | None,
        typer.Option(
            help="Root seed: splits, initialisation, batch order, sampler. Given, the run is reproducible: "
            "--workers auto then starts one worker. [default: 0]"
        ),
    ] = None,
    device: Annotated[str, typer.Option(help="auto (cuda, then mps, then cpu), cpu, cuda, cuda:N or mps.")] = "auto",
    threads: Annotated[
        int | None,
        typer.Option(
            help="Torch CPU threads per worker [default: the cores other processes leave idle right now, split over the workers]."
        ),
    ] = None,
    skopt_estimator: Annotated[
        str | None, typer.Option(help="--strategy skopt: surrogate model GP, RF, ET or GBRT [default: GP].")
    ] = None,
    skopt_acq: Annotated[
        str | None,
        typer.Option(help="--strategy skopt: acquisition function gp_hedge, EI, PI or LCB [default: gp_hedge]."),
    ] = None,
    preset: Annotated[
        str | None,
        typer.Option(
            help="Named settings, e.g. 'findings' (enough trials for every BN finding of the report); options given here override it."
        ),
    ] = None,
    workers: Annotated[
        str,
        typer.Option(
            help="Worker processes sharing the study on this machine, or auto: on a CPU one 1-thread worker per "
            "core that other processes leave idle right now, on GPUs one per device; one when --seed is given "
            "(a seeded run stays reproducible)."
        ),
    ] = "auto",
    devices: Annotated[
        str | None,
        typer.Option(
            help="Comma-separated devices the workers take round-robin, e.g. cuda:0,cuda:1 [default: every GPU when --device is auto/cuda]."
        ),
    ] = None,
    precision: Annotated[
        str,
        typer.Option(
            help="auto: bf16 autocast where the device has native bf16 (recent x86 CPUs, CUDA GPUs since Ampere), else fp32; a resumed study keeps its own. Or fp32, bf16 to choose (part of the study)."
        ),
    ] = "auto",
    save_models: Annotated[
        str,
        typer.Option(
            help="Trained models to keep in Optuna's artifact store, linked to their trials: best (each trial that beat the study's best when it finished), all (every complete trial) or none."
        ),
    ] = DEFAULT_SAVE_MODE,
    artifacts: ArtifactsOpt = None,
    mlflow_uri: MlflowOpt = None,
    pack: Annotated[str, typer.Option(help=PACK_HELP)] = "auto",
    model: Annotated[str, typer.Option(help=MODEL_HELP)] = "bncnn",
) -> None:
    """Run a search and store every trial in an Optuna study (resumes a study of the same name)."""
    with user_errors():
        from bnsearch import presets

        chosen = presets.resolve(
            preset,
            {
                "strategy": "tpe",
                # With a study-wide budget a run needs no count of its own: the budget stops it.
                "trials": max_trials or DEFAULT_TRIALS,
                "dataset": DEFAULT_DATASET,
                "pruner": DEFAULT_PRUNER,
            },
            strategy=strategy,
            trials=trials,
            dataset=dataset,
            pruner=pruner,
            epochs=epochs,
            study_name=study_name,
            space=space,
            threads=threads,
        )
        strategy, trials, dataset, pruner = chosen["strategy"], chosen["trials"], chosen["dataset"], chosen["pruner"]
        epochs, study_name, space, threads = chosen["epochs"], chosen["study_name"], chosen["space"], chosen["threads"]
        cfg = RunConfig(
            strategy=strategy,
            trials=trials,
            max_trials=max_trials,
            timeout_s=timeout,
            dataset=dataset,
            epochs=epochs,
            batch_size=batch_size,
            pruner=pruner,
            storage=storage_url(storage),
            study_name=study_name,
            space_path=space,
            seed=0 if seed is None else seed,
            device=device,
            threads=threads,
            strategy_options={
                k: v for k, v in (("skopt_estimator", skopt_estimator), ("skopt_acq", skopt_acq)) if v is not None
            },
            workers=1,  # decided below, once the other options are known to be valid
            precision=precision,
            save_models=save_models,
            artifacts=artifacts,
            mlflow_uri=mlflow_uri,
            pack=pack,
            model=model,
        )
        configure_logging(options.verbosity)
        cfg.validate()
        from bnsearch.search.workers import auto_workers, parse_devices, parse_workers

        device_list = parse_devices(devices)
        n_workers = parse_workers(workers)
        if n_workers is None:
            # More workers than trials would only start processes that find no ticket.
            n_workers = min(cfg.trials, auto_workers(cfg.device, seeded=seed is not None, devices=device_list))
        cfg = replace(cfg, workers=n_workers)
        if cfg.workers > 1:
            _run_workers(cfg, device_list)
            return
        if device_list:
            cfg = replace(cfg, device=device_list[0])
            cfg.validate()
        n_threads = set_threads(cfg.threads, cfg.workers)
        from bnsearch.cli.progress import SearchProgress
        from bnsearch.core.cpu import set_backends
        from bnsearch.processes import interrupts_raise
        from bnsearch.search.interrupts import close_interrupted, track_running_trials, worker_id
        from bnsearch.search.run import optimize, prepare_search

        setup = prepare_search(cfg)
        set_backends(str(setup.data.device))
        study = setup.study
        started = track_running_trials(study)
        verb = "resuming" if setup.resumed else "created"
        console.print(
            f"{verb} study [bold]{study.study_name}[/] ({setup.n_existing} trials so far) in {storage_text(cfg.storage)} · "
            f"{cfg.strategy}, pruner {cfg.pruner}, {_model_note(cfg)}{cfg.dataset} on {setup.data.device}"
            f"{f' ({n_threads} thread' + ('s' if n_threads > 1 else '') + ')' if setup.data.device.type == 'cpu' else ''}"
            f", {setup.cfg.precision}{_tracking_note(cfg)}",
            highlight=False,
        )
        with interrupts_raise() as intr:
            try:
                with SearchProgress(
                    console, total=cfg.trials, label=study.study_name, study_total=cfg.max_trials
                ) as progress:
                    optimize(setup, callbacks=[progress])
            except KeyboardInterrupt:
                close_interrupted(study, worker_id(), started)
                _interrupted(study, intr.signum)
        _print_summary(study, elapsed_s=progress.elapsed_s, max_trials=cfg.max_trials)


def _model_note(cfg: RunConfig) -> str:
    return "" if cfg.model == "bncnn" else f"model {cfg.model} on "


def _tracking_note(cfg: RunConfig) -> str:
    return f" · MLflow {mask_url(cfg.mlflow_uri)}" if cfg.mlflow_uri else ""


def _interrupted(study: optuna.Study, signum: int | None) -> None:
    """One line for a stopped run, then exit 128 + signal (130 for Ctrl-C, 143 for SIGTERM)."""
    import signal

    from bnsearch.processes import exit_code

    name = signal.Signals(signum).name if signum else "SIGINT"
    n = len(study.get_trials(deepcopy=False))
    typer.echo(
        f"interrupted by {name}: running trials were closed as failed (reason 'interrupted') and queued again; "
        f"{n} trials in study '{study.study_name}'; rerun the same command to resume",
        err=True,
    )
    raise typer.Exit(code=exit_code(signum))


def _run_workers(cfg: RunConfig, devices: tuple[str, ...]) -> None:
    """``run --workers N``: N processes on one storage, progress of the whole study."""
    from bnsearch.cli.progress import SearchProgress
    from bnsearch.search.workers import prepare_workers, run_workers

    setup, slots = prepare_workers(cfg, devices)
    study = setup.study
    verb = "resuming" if setup.resumed else "created"
    placement = ", ".join(sorted({s.device for s in slots}))
    console.print(
        f"{verb} study [bold]{study.study_name}[/] ({setup.n_existing} trials so far) "
        f"in {storage_text(cfg.storage)} · "
        f"{cfg.strategy}, pruner {cfg.pruner}, {_model_note(cfg)}{cfg.dataset} · {len(slots)} workers on {placement} "
        f"({slots[0].threads} thread{'s' if slots[0].threads > 1 else ''} each), {setup.cfg.precision}"
        f"{_tracking_note(cfg)}",
        highlight=False,
    )
    with SearchProgress(console, total=cfg.trials, label=study.study_name, study_total=cfg.max_trials) as progress:
        outcome = run_workers(setup, slots, on_trial=progress, verbosity=options.verbosity)
    if outcome.signum is not None:
        _interrupted(study, outcome.signum)
    _print_summary(study, elapsed_s=progress.elapsed_s, max_trials=cfg.max_trials)
    if outcome.failed_workers:
        for e in outcome.failed_workers:
            typer.echo(
                f"warning: worker {e.slot.index} (pid {e.pid}) {e.how}; a trial it was running "
                "is marked failed once its heartbeat goes stale and is retried by a later trial "
                "or the next run",
                err=True,
            )
        raise typer.Exit(code=1)


def _print_summary(study: optuna.Study, *, elapsed_s: float, max_trials: int | None = None) -> None:
    from optuna.trial import TrialState

    from bnsearch import keys
    from bnsearch.search.budget import counted_trials

    trials = study.get_trials(deepcopy=False)
    counts = {s: sum(t.state == s for t in trials) for s in (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)}
    budget = "" if max_trials is None else f" ({counted_trials(trials)} of --max-trials {max_trials})"
    console.print(
        f"{len(trials)} trials in study{budget}: {counts[TrialState.COMPLETE]} complete, "
        f"{counts[TrialState.PRUNED]} pruned, {counts[TrialState.FAIL]} failed; this run took {elapsed_s:.0f}s",
        highlight=False,
    )
    if counts[TrialState.COMPLETE] == 0:
        console.print("no trial completed yet", highlight=False)
        return
    best = study.best_trial
    table = Table(title=f"best trial #{best.number}: val_acc {best.value:.4f}", show_header=True)
    table.add_column("param")
    table.add_column("value")
    resolved = best.user_attrs.get(keys.RESOLVED_PARAMS) or best.params
    for name in sorted(resolved):
        value = resolved[name]
        table.add_row(name, f"{value:.4g}" if isinstance(value, float) else str(value))
    wall = best.user_attrs.get(keys.WALL_TIME_S)
    if wall is not None:
        table.add_row("wall_time_s", f"{wall:.1f}")
    console.print(table)
