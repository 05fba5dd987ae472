"""The ``bnsearch`` Typer app: global options, logging, torch threads, and the one error boundary.

The commands live in ``run`` (the search) and ``results`` (compare, best, predict, dashboard,
studies, report, export); both hang on ``app`` and catch errors with ``user_errors``.
"""

from __future__ import annotations

import logging
import os
import signal
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Annotated

import typer
from rich.console import Console

from bnsearch import __version__
from bnsearch.config import DEFAULT_STORAGE, default_storage, storage_origin
from bnsearch.errors import BnsearchError

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
class GlobalOptions:
    debug: bool = False
    verbosity: int = 0


options = GlobalOptions()

MlflowOpt = Annotated[
    str | None,
    typer.Option(
        help='MLflow tracking URI (e.g. http://127.0.0.1:5000): one MLflow run per trial in an experiment named after the study; needs pip install -e ".[tracking]".'
    ),
]
ArtifactsOpt = Annotated[
    str | None,
    typer.Option(
        help="Folder of the artifact store holding saved models [default: $BNSEARCH_ARTIFACTS, else artifacts/ beside a SQLite database, else studies/artifacts]."
    ),
]
STORAGE_HELP = (
    "Study storage: a SQLAlchemy URL (sqlite:///file.db, postgresql+psycopg://user:pw@host/db) or an "
    f"Optuna journal file (journal:///file.log). [default: $BNSEARCH_STORAGE, else $OPTUNA_STORAGE, else {DEFAULT_STORAGE}]"
)
StorageOpt = Annotated[str | None, typer.Option(help=STORAGE_HELP, show_default=False)]


def storage_url(storage: str | None) -> str:
    """``--storage`` as given, else the default from the environment."""
    return default_storage() if storage is None else storage


def storage_text(url: str) -> str:
    """The storage for a printed line: password masked, and the variable it came from."""
    from bnsearch.urls import mask_url

    return mask_url(url) + storage_origin(url)


@contextmanager
def user_errors() -> Iterator[None]:
    """Turn library errors into one line on stderr and exit code 2 (``--debug`` re-raises)."""
    try:
        yield
    except BnsearchError as e:
        if options.debug:
            raise
        typer.echo(f"error: {e}", err=True)
        raise typer.Exit(code=2) from None
    except KeyboardInterrupt:  # Ctrl-C before a study was open (a search handles its own)
        if options.debug:
            raise
        typer.echo("interrupted", err=True)
        raise typer.Exit(code=130) from None


@contextmanager
def stopped_by_signals() -> Iterator[None]:
    """SIGINT and SIGTERM stop the block (and the processes it started) with one line and exit
    code 128 + signal; what finished is kept, so running the same command again continues."""
    from bnsearch.processes import exit_code, interrupts_raise, signal_of

    try:
        with interrupts_raise():
            yield
    except KeyboardInterrupt as e:
        if options.debug:
            raise
        name = signal.Signals(signal_of(e)).name
        typer.echo(f"interrupted by {name}; run the same command again to continue where it stopped", err=True)
        raise typer.Exit(code=exit_code(signal_of(e))) from None


def configure_logging(verbosity: int) -> None:
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
    verbose: Annotated[
        int, typer.Option("--verbose", "-v", count=True, help="More log output (Optuna's per-trial log).")
    ] = 0,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Only errors.")] = False,
    debug: Annotated[bool, typer.Option("--debug", help="Show the full traceback of errors.")] = False,
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version.")
    ] = False,
) -> None:
    options.debug = debug or os.environ.get("BNSEARCH_DEBUG") == "1"
    options.verbosity = -1 if quiet else verbose


def main() -> None:
    """Console entry point."""
    app(prog_name="bnsearch")
