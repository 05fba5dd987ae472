"""The ``bnsearch`` command: options → RunConfig, progress display, and the one error boundary."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.table import Table

from bnsearch import __version__
from bnsearch.config import DEFAULT_DATASET, DEFAULT_PRUNER, DEFAULT_STORAGE, DEFAULT_TRIALS, RunConfig
from bnsearch.errors import BnsearchError
from bnsearch.pruners import PRUNER_NAMES
from bnsearch.samplers import strategies

if TYPE_CHECKING:
    import optuna

app = typer.Typer(
    name="bnsearch",
    help="Search batch-normalization settings of a small CNN with Optuna.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)
console = Console(soft_wrap=True)
err_console = Console(stderr=True)


@dataclass
class _GlobalOptions:
    debug: bool = False
    verbosity: int = 0


_opts = _GlobalOptions()


@contextmanager
def user_errors() -> Iterator[None]:
    """Turn library errors into one line on stderr and exit code 2 (``--debug`` re-raises)."""
    try:
        yield
    except BnsearchError as e:
        if _opts.debug:
            raise
        typer.echo(f"error: {e}", err=True)
        raise typer.Exit(code=2) from None
    except KeyboardInterrupt:  # Ctrl-C before a study was open (a search handles its own)
        if _opts.debug:
            raise
        typer.echo("interrupted", err=True)
        raise typer.Exit(code=130) from None


def _configure_logging(verbosity: int) -> None:
    import optuna

    level = {-1: logging.ERROR, 0: logging.WARNING}.get(verbosity, logging.INFO)
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")
    # Our progress line reports pruned/failed trials; Optuna's own log would add tracebacks.
    optuna.logging.set_verbosity(optuna.logging.INFO if verbosity > 0 else optuna.logging.ERROR)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"bnsearch {__version__}")
        raise typer.Exit()


@app.callback()
def _main(
    verbose: Annotated[int, typer.Option("--verbose", "-v", count=True, help="More log output (Optuna's per-trial log).")] = 0,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Only errors.")] = False,
    debug: Annotated[bool, typer.Option("--debug", help="Show the full traceback of errors.")] = False,
    version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version.")] = False,
) -> None:
    _opts.debug = debug or os.environ.get("BNSEARCH_DEBUG") == "1"
    _opts.verbosity = -1 if quiet else verbose


def _strategy_help() -> str:
    parts = [f"{s.name}{' (experimental)' if s.experimental else ''}" for s in strategies()]
    return "Search strategy: " + ", ".join(parts) + "."


def default_threads(workers: int, *, cores: int | None = None, load: float | None = None) -> int:
    """Torch threads per worker when ``--threads`` is not given: the cores split over the
    workers, but never more than the cores other processes leave idle.

    Small convolutions run one OpenMP barrier per op: a thread whose core is taken by another
    process stalls all the others, and a 2-thread trial was measured 3–10× slower than a
    1-thread one on a busy 2-core machine (benchmarks/README.md), so a busy machine gets 1.
    """
    cores = cores or os.cpu_count() or 1
    share = max(1, cores // workers)
    if load is None:
        try:
            load = os.getloadavg()[0]
        except OSError:  # not available on this platform
            return share
    idle = int(cores - load + 0.5)
    return max(1, min(share, idle))


def set_threads(threads: int | None, workers: int) -> int:
    """Torch CPU threads for this process: ``threads`` or ``default_threads(workers)``."""
    import torch

    n = threads or default_threads(workers)
    torch.set_num_threads(n)
    return n


@app.command()
def run(
    strategy: Annotated[str | None, typer.Option(help=_strategy_help() + " [default: tpe]")] = None,
    trials: Annotated[int | None, typer.Option(help=f"Trials to add to the study in this run. [default: {DEFAULT_TRIALS}]")] = None,
    timeout: Annotated[float | None, typer.Option(help="Stop starting new trials after this many seconds.")] = None,
    dataset: Annotated[str | None, typer.Option(help=f"digits, mnist5k, or a path to an .npz file / MNIST IDX folder / CIFAR-10 folder. [default: {DEFAULT_DATASET}]")] = None,
    epochs: Annotated[int | None, typer.Option(help="Epochs per trial (fixes the space's epochs; default 4).")] = None,
    batch_size: Annotated[int | None, typer.Option(help="Batch size (fixes the space's batch_size; default 32).")] = None,
    pruner: Annotated[str | None, typer.Option(help="Pruner: " + ", ".join(PRUNER_NAMES) + f". [default: {DEFAULT_PRUNER}: keep the best 25% at each epoch]")] = None,
    storage: Annotated[str, typer.Option(help="SQLAlchemy URL of the study database.")] = DEFAULT_STORAGE,
    study_name: Annotated[str | None, typer.Option(help="Study to create or resume [default: <dataset>-<strategy>].")] = None,
    space: Annotated[str | None, typer.Option(help="TOML file that fixes, narrows or extends the search space.")] = None,
    seed: Annotated[int, typer.Option(help="Root seed: splits, initialisation, batch order, sampler.")] = 0,
    device: Annotated[str, typer.Option(help="auto (cuda, then mps, then cpu), cpu, cuda, cuda:N or mps.")] = "auto",
    threads: Annotated[int | None, typer.Option(help="Torch CPU threads per worker [default: cores / workers, fewer when other processes keep cores busy].")] = None,
    skopt_estimator: Annotated[str | None, typer.Option(help="--strategy skopt: surrogate model GP, RF, ET or GBRT [default: GP].")] = None,
    skopt_acq: Annotated[str | None, typer.Option(help="--strategy skopt: acquisition function gp_hedge, EI, PI or LCB [default: gp_hedge].")] = None,
    preset: Annotated[str | None, typer.Option(help="Named settings, e.g. 'findings' (enough trials for every BN finding of the report); options given here override it.")] = None,
    workers: Annotated[int, typer.Option(help="Worker processes sharing the study on this machine (one per GPU is a good start).")] = 1,
    devices: Annotated[str | None, typer.Option(help="Comma-separated devices the workers take round-robin, e.g. cuda:0,cuda:1 [default: every GPU when --device is auto/cuda].")] = None,
    precision: Annotated[str, typer.Option(help="auto: bf16 autocast where the device has native bf16 (recent x86 CPUs, CUDA GPUs since Ampere), else fp32; a resumed study keeps its own. Or fp32, bf16 to choose (part of the study).")] = "auto",
) -> None:
    """Run a search and store every trial in an Optuna study (resumes a study of the same name)."""
    with user_errors():
        from bnsearch import presets

        chosen = presets.resolve(
            preset,
            {"strategy": "tpe", "trials": DEFAULT_TRIALS, "dataset": DEFAULT_DATASET, "pruner": DEFAULT_PRUNER},
            strategy=strategy, trials=trials, dataset=dataset, pruner=pruner, epochs=epochs,
            study_name=study_name, space=space, threads=threads,
        )
        strategy, trials, dataset, pruner = chosen["strategy"], chosen["trials"], chosen["dataset"], chosen["pruner"]
        epochs, study_name, space, threads = chosen["epochs"], chosen["study_name"], chosen["space"], chosen["threads"]
        cfg = RunConfig(
            strategy=strategy,
            trials=trials,
            timeout_s=timeout,
            dataset=dataset,
            epochs=epochs,
            batch_size=batch_size,
            pruner=pruner,
            storage=storage,
            study_name=study_name,
            space_path=space,
            seed=seed,
            device=device,
            threads=threads,
            strategy_options={
                k: v for k, v in (("skopt_estimator", skopt_estimator), ("skopt_acq", skopt_acq)) if v is not None
            },
            workers=workers,
            precision=precision,
        )
        _configure_logging(_opts.verbosity)
        cfg.validate()
        from bnsearch.workers import parse_devices

        device_list = parse_devices(devices)
        if cfg.workers > 1:
            _run_workers(cfg, device_list)
            return
        if device_list:
            cfg = replace(cfg, device=device_list[0])
            cfg.validate()
        n_threads = set_threads(cfg.threads, cfg.workers)
        from bnsearch.progress import SearchProgress
        from bnsearch.search import optimize, prepare_search
        from bnsearch.workers import close_interrupted, interrupts_raise, worker_id

        setup = prepare_search(cfg)
        from bnsearch.workers import set_backends

        set_backends(str(setup.data.device))
        study = setup.study
        verb = "resuming" if setup.resumed else "created"
        console.print(
            f"{verb} study [bold]{study.study_name}[/] ({setup.n_existing} trials so far) in {cfg.storage} · "
            f"{cfg.strategy}, pruner {cfg.pruner}, {cfg.dataset} on {setup.data.device}"
            f"{f' ({n_threads} thread' + ('s' if n_threads > 1 else '') + ')' if setup.data.device.type == 'cpu' else ''}"
            f", {setup.cfg.precision}",
            highlight=False,
        )
        with interrupts_raise() as intr:
            try:
                with SearchProgress(console, total=cfg.trials, label=study.study_name) as progress:
                    optimize(setup, callbacks=[progress])
            except KeyboardInterrupt:
                close_interrupted(study, worker_id())
                _interrupted(study, intr.signum)
        _print_summary(study, elapsed_s=progress.elapsed_s)


def _interrupted(study: optuna.Study, signum: int | None) -> None:
    """One line for a stopped run, then exit 128 + signal (130 for Ctrl-C, 143 for SIGTERM)."""
    import signal

    from bnsearch.workers import exit_code

    name = signal.Signals(signum).name if signum else "SIGINT"
    n = len(study.get_trials(deepcopy=False))
    typer.echo(
        f"interrupted by {name}: running trials were closed as failed (reason 'interrupted'); "
        f"{n} trials in study '{study.study_name}'; rerun the same command to resume",
        err=True,
    )
    raise typer.Exit(code=exit_code(signum))


def _run_workers(cfg: RunConfig, devices: tuple[str, ...]) -> None:
    """``run --workers N``: N processes on one storage, progress of the whole study."""
    from bnsearch.progress import SearchProgress
    from bnsearch.workers import prepare_workers, run_workers

    setup, slots = prepare_workers(cfg, devices)
    study = setup.study
    verb = "resuming" if setup.resumed else "created"
    placement = ", ".join(sorted({s.device for s in slots}))
    console.print(
        f"{verb} study [bold]{study.study_name}[/] ({setup.n_existing} trials so far) "
        f"in {cfg.storage} · "
        f"{cfg.strategy}, pruner {cfg.pruner}, {cfg.dataset} · {len(slots)} workers on {placement} "
        f"({slots[0].threads} thread{'s' if slots[0].threads > 1 else ''} each), {setup.cfg.precision}",
        highlight=False,
    )
    with SearchProgress(console, total=cfg.trials, label=study.study_name) as progress:
        outcome = run_workers(setup, slots, on_trial=progress, verbosity=_opts.verbosity)
    if outcome.signum is not None:
        _interrupted(study, outcome.signum)
    _print_summary(study, elapsed_s=progress.elapsed_s)
    if outcome.failed_workers:
        for e in outcome.failed_workers:
            typer.echo(
                f"warning: worker {e.slot.index} (pid {e.pid}) {e.how}; a trial it was running "
                "is marked failed once its heartbeat goes stale and is retried by a later trial "
                "or the next run",
                err=True,
            )
        raise typer.Exit(code=1)


def _print_summary(study: optuna.Study, *, elapsed_s: float) -> None:
    from optuna.trial import TrialState

    from bnsearch import keys

    trials = study.get_trials(deepcopy=False)
    counts = {s: sum(t.state == s for t in trials) for s in (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)}
    console.print(
        f"{len(trials)} trials in study: {counts[TrialState.COMPLETE]} complete, "
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


def main() -> None:
    """Console entry point."""
    app(prog_name="bnsearch")


@app.command()
def compare(
    strategies: Annotated[str, typer.Option(help="Comma-separated strategies to compare, e.g. random,tpe,gp.")] = "random,tpe,gp",
    seeds: Annotated[int, typer.Option(help="Runs per strategy (root seeds --first-seed, --first-seed+1, ...).")] = 5,
    trials: Annotated[int, typer.Option(help="Finished trials per run (the same budget for every run).")] = 40,
    dataset: Annotated[str, typer.Option(help="digits, mnist5k, or a dataset path (as for run).")] = DEFAULT_DATASET,
    epochs: Annotated[int | None, typer.Option(help="Epochs per trial (fixes the space's epochs; default 4).")] = None,
    batch_size: Annotated[int | None, typer.Option(help="Batch size (fixes the space's batch_size).")] = None,
    pruner: Annotated[str, typer.Option(help="Pruner for every run: " + ", ".join(PRUNER_NAMES) + ".")] = DEFAULT_PRUNER,
    storage: Annotated[str, typer.Option(help="SQLAlchemy URL holding every run's study.")] = DEFAULT_STORAGE,
    space: Annotated[str | None, typer.Option(help="TOML file that fixes, narrows or extends the search space.")] = None,
    out: Annotated[str | None, typer.Option(help="HTML page to write [default: compare-<dataset>[-benchmark].html].")] = None,
    benchmark: Annotated[bool, typer.Option("--benchmark", help="Run against a surrogate of finished trials instead of training (seconds, not hours).")] = False,
    from_study: Annotated[list[str] | None, typer.Option(help="With --benchmark: study whose trials fit the surrogate (repeatable) [default: this dataset's compare studies].")] = None,
    first_seed: Annotated[int, typer.Option(help="Root seed of each strategy's first run.")] = 0,
    prefix: Annotated[str, typer.Option(help="First part of the run studies' names: <prefix>-<dataset>-<strategy>-s<seed>.")] = "compare",
    device: Annotated[str, typer.Option(help="auto (cuda, then mps, then cpu), cpu, cuda, cuda:N or mps.")] = "auto",
    threads: Annotated[int | None, typer.Option(help="Torch CPU threads [default: all cores].")] = None,
    widths: Annotated[str | None, typer.Option(hidden=True, help="Conv channels as W1,W2 (advanced; part of each study's identity).")] = None,
    workers: Annotated[int, typer.Option(help="Runs trained at the same time, each in its own process (real mode).")] = 1,
) -> None:
    """Run every strategy with every seed (resumable), then rank them and write an HTML page."""
    with user_errors():
        from bnsearch.compare import CompareConfig, run_compare
        from bnsearch.compare_report import write_compare_html
        from bnsearch.compare_stats import ranking_rows
        from bnsearch.errors import ConfigError

        try:
            width_pair = tuple(int(w) for w in widths.split(",")) if widths else (32, 64)
        except ValueError:
            raise ConfigError(f"--widths must be two integers like 32,64, got {widths!r}") from None
        if len(width_pair) != 2:
            raise ConfigError(f"--widths must be two integers like 32,64, got {widths!r}")
        cfg = CompareConfig(
            strategies=tuple(s.strip() for s in strategies.split(",") if s.strip()),
            seeds=seeds,
            first_seed=first_seed,
            trials=trials,
            dataset=dataset,
            epochs=epochs,
            batch_size=batch_size,
            pruner=pruner,
            storage=storage,
            space_path=space,
            device=device,
            widths=width_pair,
            prefix=prefix,
            benchmark=benchmark,
            from_studies=tuple(from_study or ()),
            workers=workers,
            threads=threads,
        )
        _configure_logging(_opts.verbosity)
        cfg.validate()
        set_threads(threads, workers)
        def trial_line(study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
            value = f" val_acc {trial.value:.4f}" if trial.value is not None else ""
            console.print(f"  {study.study_name} #{trial.number} {trial.state.name.lower()}{value}", highlight=False)

        try:
            result = run_compare(
                cfg,
                on_event=lambda line: console.print(line, highlight=False),
                trial_callbacks=[trial_line] if _opts.verbosity >= 0 else [],
            )
        except KeyboardInterrupt:
            typer.echo("interrupted; run the same command again to continue where it stopped", err=True)
            raise typer.Exit(code=130) from None
        data = result.data
        console.print(f"[bold]{data.mode_note}[/]", highlight=False)
        console.print(f"ranking ({data.mode} mode, {data.trials} trials × {len(data.seeds)} seeds):", highlight=False)
        rows = ranking_rows(data)
        if rows:
            # Plain aligned text: stays readable in logs and pipes, where rich tables get squeezed.
            widths_ = {k: max(len(k), *(len(r[k]) for r in rows)) for k in rows[0]}
            for line in [dict(zip(rows[0], rows[0], strict=True)), *rows]:
                console.print("  ".join(line[k].ljust(widths_[k]) for k in widths_).rstrip(), highlight=False)
        path = write_compare_html(data, out or cfg.default_out_path())
        console.print(f"wrote {path} ({result.trials_run} trials run now)", highlight=False)


@app.command()
def best(
    study: Annotated[str, typer.Option(help="Study whose best trial to show (and retrain).")],
    storage: Annotated[str, typer.Option(help="SQLAlchemy URL of the study database.")] = DEFAULT_STORAGE,
    retrain: Annotated[bool, typer.Option("--retrain", help="Train the best configuration on train+validation, test once, save the model.")] = False,
    out: Annotated[str | None, typer.Option(help="Model folder for --retrain [default: models/<study>].")] = None,
    device: Annotated[str, typer.Option(help="auto (cuda, then mps, then cpu), cpu, cuda, cuda:N or mps.")] = "auto",
    threads: Annotated[int | None, typer.Option(help="Torch CPU threads [default: all cores].")] = None,
) -> None:
    """Show a study's best trial; with --retrain, retrain it and write model.pt, config.json, metrics.json."""
    with user_errors():
        from bnsearch.best import find_best, retrain_best

        found = find_best(storage, study)
        table = Table(title=f"best trial #{found.number} of {study}: val_acc {found.val_acc:.4f} ({found.n_complete} complete trials)")
        table.add_column("param")
        table.add_column("value")
        for name in sorted(found.params):
            value = found.params[name]
            table.add_row(name, f"{value:.4g}" if isinstance(value, float) else str(value))
        if found.wall_time_s is not None:
            table.add_row("wall_time_s", f"{found.wall_time_s:.1f}")
        console.print(table)
        if not retrain:
            return
        set_threads(threads, 1)
        folder = out or f"models/{study}"
        console.print(f"retraining on train+validation for {found.params['epochs']} epochs ...", highlight=False)
        res = retrain_best(found, folder, device=device)
        console.print(
            f"test accuracy {res.test_acc:.4f} (validation in the search {found.val_acc:.4f}); "
            f"wrote {res.out_dir}/model.pt, config.json, metrics.json\n"
            f"load it with: bnsearch.best.load_model({str(res.out_dir)!r})",
            highlight=False,
        )


@app.command()
def predict(
    images: Annotated[str, typer.Argument(help=".npz file with x: raw images (N,H,W), (N,C,H,W) or (N,H,W,C); y optional.")],
    model: Annotated[str, typer.Option(help="Model folder written by bnsearch best --retrain.")],
    out: Annotated[str | None, typer.Option(help="CSV file for index,label,confidence [default: print to stdout].")] = None,
    device: Annotated[str, typer.Option(help="auto, cpu, cuda, cuda:N or mps.")] = "cpu",
) -> None:
    """Predict labels for new images with a saved model (same normalisation as in training)."""
    with user_errors():
        from bnsearch.best import load_model, read_images, write_predictions_csv

        loaded = load_model(model, device=device)
        x, y = read_images(images)
        proba = loaded.predict_proba(x)
        labels = loaded.predict(x)
        if out is None:
            typer.echo("index,label,confidence")
            for i, (lab, p) in enumerate(zip(labels.tolist(), proba.max(axis=1).tolist(), strict=True)):
                typer.echo(f"{i},{lab},{p:.6f}")
        else:
            path = write_predictions_csv(out, labels, proba)
            console.print(f"wrote {len(labels)} predictions to {path}", highlight=False)
        if y is not None:
            # Printed to stderr so that stdout stays a clean CSV.
            err_console.print(f"accuracy against y in {images}: {float((labels == y).mean()):.4f}", highlight=False)


# ---- results: dashboard, studies, report, export (issue 5) ----

_STORAGE_HELP = "SQLAlchemy URL of the study database."
_STUDY_HELP = "Name of the study (see `bnsearch studies`)."
StorageOpt = Annotated[str, typer.Option(help=_STORAGE_HELP)]
StudyOpt = Annotated[str, typer.Option(help=_STUDY_HELP)]


@app.command()
def dashboard(
    storage: StorageOpt = DEFAULT_STORAGE,
    host: Annotated[str, typer.Option(help="Interface to listen on (0.0.0.0: all).")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port (0: any free port).")] = 8080,
) -> None:
    """Browse the studies with optuna-dashboard (in this process; Ctrl-C stops it)."""
    with user_errors():
        _configure_logging(_opts.verbosity)
        from bnsearch.dashboard import make_server, serve_until_interrupted, server_url

        server = make_server(storage, host=host, port=port)
        url = server_url(server, host)
        console.print(f"optuna-dashboard on {storage}: {url}  (Ctrl-C to stop)", highlight=False)
        serve_until_interrupted(server)
        console.print("dashboard stopped", highlight=False)


@app.command()
def studies(
    storage: StorageOpt = DEFAULT_STORAGE,
) -> None:
    """List the studies in a storage: strategy, dataset, trial counts, best value, last update."""
    with user_errors():
        from bnsearch.analysis import study_summaries

        rows = study_summaries(storage)
        if not rows:
            console.print(f"no studies in {storage}", highlight=False)
        for s in rows:
            best = "-" if s.best_value is None else f"{s.best_value:.4f}"
            last = "-" if s.last_update is None else s.last_update.strftime("%Y-%m-%d %H:%M:%S")
            running = f", {s.n_running} running" if s.n_running else ""
            console.print(
                f"{s.name}  strategy={s.strategy or '-'}  dataset={s.dataset or '-'}  "
                f"complete={s.n_complete} pruned={s.n_pruned} failed={s.n_failed}{running}  "
                f"best={best}  last_update={last}",
                highlight=False, markup=False,
            )


@app.command()
def report(
    study: StudyOpt,
    storage: StorageOpt = DEFAULT_STORAGE,
    out: Annotated[
        str | None, typer.Option(help="HTML file to write [default: <study>-report.html].")
    ] = None,
) -> None:
    """Write one self-contained HTML report (figures and BN findings; opens offline)."""
    with user_errors():
        from bnsearch.report import write_report

        path = write_report(study, storage, out=out)
        console.print(f"wrote {path}", highlight=False, markup=False)


@app.command()
def export(
    study: StudyOpt,
    fmt: Annotated[str, typer.Option("--format", help="csv, parquet or json.")] = "csv",
    storage: StorageOpt = DEFAULT_STORAGE,
    out: Annotated[
        str | None, typer.Option(help="File to write [default: <study>.<format>].")
    ] = None,
) -> None:
    """Export one row per trial: settings, state, value, duration and per-epoch curves."""
    with user_errors():
        from bnsearch.analysis import export_trials

        path = export_trials(study, storage, fmt=fmt, out=out)
        console.print(f"wrote {path}", highlight=False, markup=False)
