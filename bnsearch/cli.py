"""The ``bnsearch`` command: options → RunConfig, progress display, and the one error boundary."""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, Optional

import typer
from rich.console import Console
from rich.table import Table

from bnsearch import __version__
from bnsearch.config import DEFAULT_DATASET, DEFAULT_STORAGE, DEFAULT_TRIALS, RunConfig
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


def set_threads(threads: int | None, workers: int) -> int:
    """Torch CPU threads for this process: ``threads`` or the cores split over the workers."""
    import torch

    n = threads or max(1, (os.cpu_count() or 1) // workers)
    torch.set_num_threads(n)
    return n


def set_backends(device: str) -> None:
    """Process-wide backend settings for training on ``device`` (entry points only)."""
    import torch

    if device.startswith("cuda"):
        # Trials repeat the same few conv shapes, so autotuning pays off after the first batch.
        torch.backends.cudnn.benchmark = True


@app.command()
def run(
    strategy: Annotated[str, typer.Option(help=_strategy_help())] = "tpe",
    trials: Annotated[int, typer.Option(help="Trials to add to the study in this run.")] = DEFAULT_TRIALS,
    timeout: Annotated[Optional[float], typer.Option(help="Stop starting new trials after this many seconds.")] = None,
    dataset: Annotated[str, typer.Option(help="digits, mnist5k, or a path to an .npz file / MNIST IDX folder / CIFAR-10 folder.")] = DEFAULT_DATASET,
    epochs: Annotated[Optional[int], typer.Option(help="Epochs per trial (fixes the space's epochs; default 4).")] = None,
    batch_size: Annotated[Optional[int], typer.Option(help="Batch size (fixes the space's batch_size; default 128).")] = None,
    pruner: Annotated[str, typer.Option(help="Pruner: " + ", ".join(PRUNER_NAMES) + ".")] = "median",
    storage: Annotated[str, typer.Option(help="SQLAlchemy URL of the study database.")] = DEFAULT_STORAGE,
    study_name: Annotated[Optional[str], typer.Option(help="Study to create or resume [default: <dataset>-<strategy>].")] = None,
    space: Annotated[Optional[str], typer.Option(help="TOML file that fixes, narrows or extends the search space.")] = None,
    seed: Annotated[int, typer.Option(help="Root seed: splits, initialisation, batch order, sampler.")] = 0,
    device: Annotated[str, typer.Option(help="auto (cuda, then mps, then cpu), cpu, cuda, cuda:N or mps.")] = "auto",
    threads: Annotated[Optional[int], typer.Option(help="Torch CPU threads [default: all cores].")] = None,
    precision: Annotated[str, typer.Option(help="fp32, or bf16 (autocast; faster where the device has bf16 units; part of the study).")] = "fp32",
) -> None:
    """Run a search and store every trial in an Optuna study (resumes a study of the same name)."""
    with user_errors():
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
            precision=precision,
        )
        _configure_logging(_opts.verbosity)
        cfg.validate()
        n_threads = set_threads(cfg.threads, cfg.workers)
        from bnsearch.progress import SearchProgress
        from bnsearch.search import optimize, prepare_search

        setup = prepare_search(cfg)
        set_backends(str(setup.data.device))
        study = setup.study
        verb = "resuming" if setup.resumed else "created"
        console.print(
            f"{verb} study [bold]{study.study_name}[/] ({setup.n_existing} trials so far) in {cfg.storage} · "
            f"{cfg.strategy}, pruner {cfg.pruner}, {cfg.dataset} on {setup.data.device}"
            f"{f' ({n_threads} threads)' if setup.data.device.type == 'cpu' else ''}",
            highlight=False,
        )
        with SearchProgress(console, total=cfg.trials, label=study.study_name) as progress:
            optimize(setup, callbacks=[progress])
        _print_summary(study, elapsed_s=progress.elapsed_s)


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
