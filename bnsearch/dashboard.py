"""optuna-dashboard on a bnsearch storage, through optuna-dashboard's own ``run_server``.

``start_dashboard`` checks the storage and the address here, then starts
``optuna_dashboard.run_server`` (with the study's artifact store, so each trial's saved model
is listed) in a child process and waits until it answers; ``Dashboard.url`` is then the
address to open (``port=0`` picks a free port first). ``wait_until_interrupted`` returns on
SIGINT or SIGTERM to this process (Ctrl-C, ``kill``, ``timeout``, ``docker stop``), after the
server process has stopped; a server whose parent dies without a word stops too.

A child process rather than a thread: ``run_server`` serves in the thread that calls it, with
no way to stop it from outside, and its wsgiref server writes a line to stderr for every
request (the dashboard page polls every few seconds); in the child, those lines go to
``logging`` (visible with -v), and stopping it is stopping the process.
"""

from __future__ import annotations

import contextlib
import io
import logging
import socket
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from bnsearch.config import default_storage
from bnsearch.errors import ConfigError, MissingDependencyError

if TYPE_CHECKING:
    from multiprocessing.process import BaseProcess
    from pathlib import Path

logger = logging.getLogger(__name__)

START_TIMEOUT_S = 60  # the server process must answer within this long
STOP_TIMEOUT_S = 5  # after SIGTERM, wait this long for the server process before SIGKILL


def _check_dashboard_installed() -> None:
    try:
        import optuna_dashboard  # noqa: F401
    except ImportError:
        raise MissingDependencyError("optuna-dashboard", "bnsearch dashboard") from None


def _free_port(host: str, port: int) -> int:
    """``port`` if it can be bound on ``host`` (a free one for 0), checked by binding it."""
    if not 0 <= port <= 65535:
        raise ConfigError(f"--port must be between 0 and 65535, got {port}")
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    try:
        with socket.socket(family, socket.SOCK_STREAM) as s:
            s.bind((host, port))
            return int(s.getsockname()[1])
    except OSError as e:
        raise ConfigError(f"cannot listen on {host}:{port}: {e.strerror or e}; choose another --port") from None


class _LogLines(io.TextIOBase):
    """A text stream that passes each line written to it to ``logger.info``."""

    def write(self, text: str) -> int:
        for line in text.splitlines():
            if line.strip():
                logger.info("%s", line)
        return len(text)


def _serve(storage: str, host: str, port: int, artifacts: str | None, log_level: int) -> None:
    """The server process: optuna-dashboard's ``run_server`` until SIGINT or SIGTERM."""
    from bnsearch.processes import die_with_parent

    die_with_parent()
    import optuna_dashboard

    from bnsearch.model_folder import AtomicFileSystemArtifactStore
    from bnsearch.storages import open_storage

    logging.basicConfig(level=log_level, format="%(levelname)s %(name)s: %(message)s")
    store = AtomicFileSystemArtifactStore(artifacts) if artifacts is not None else None
    rdb = open_storage(storage, create=False, heartbeat=False)
    with contextlib.redirect_stderr(_LogLines()):  # bottle's banner and one line per request
        optuna_dashboard.run_server(rdb, host=host, port=port, artifact_store=store)


@dataclass
class Dashboard:
    """A running optuna-dashboard server process."""

    process: BaseProcess
    host: str
    port: int
    artifacts: Path | None  # the artifact store it serves, if the folder exists

    @property
    def url(self) -> str:
        """The URL a browser on this machine opens."""
        shown = "127.0.0.1" if self.host in ("", "0.0.0.0") else "::1" if self.host == "::" else self.host
        if ":" in shown:
            shown = f"[{shown}]"
        return f"http://{shown}:{self.port}/dashboard/"

    def stop(self) -> None:
        """Stop the server process (SIGTERM, then SIGKILL) and wait for it."""
        if self.process.is_alive():
            self.process.terminate()
            self.process.join(STOP_TIMEOUT_S)
        if self.process.is_alive():
            self.process.kill()
            self.process.join()

    def wait_until_interrupted(self) -> int | None:
        """Wait until SIGINT or SIGTERM reaches this process (or the server process ends), then
        stop the server process; return the signal, None if the server ended by itself."""
        from bnsearch.processes import interrupts_raise

        with interrupts_raise() as intr:
            try:
                while self.process.is_alive():
                    self.process.join(0.5)
            except KeyboardInterrupt:
                logger.info("stopping the dashboard")
            finally:
                self.stop()
        return intr.signum


def start_dashboard(
    storage: str | None = None,
    *,
    host: str = "127.0.0.1",
    port: int = 8080,
    artifacts: str | None = None,
    log_level: int = logging.WARNING,
) -> Dashboard:
    """Start optuna-dashboard on ``storage`` in a child process; return once it answers.

    Args:
        storage: Storage URL (an existing database; nothing is created); default
            ``bnsearch.config.default_storage()`` ($BNSEARCH_STORAGE, $OPTUNA_STORAGE or the SQLite file).
        host: Interface to listen on (127.0.0.1: this machine only; 0.0.0.0: all).
        port: TCP port; 0 picks a free one (read it back from ``Dashboard.port``).
        artifacts: Artifact-store folder (``--artifacts``); default as for ``run``. Served
            when the folder exists, so the trials' saved models are listed.
        log_level: Logging level of the server process (INFO shows each request).

    Raises:
        ConfigError: bad port, or the address is in use / not available.
        StudyError: the database does not exist or cannot be opened.
        MissingDependencyError: optuna-dashboard is not installed.
    """
    from bnsearch.model_folder import artifacts_dir
    from bnsearch.processes import spawn_context
    from bnsearch.storages import open_storage

    _check_dashboard_installed()
    url = storage or default_storage()
    open_storage(url, create=False, heartbeat=False)  # a missing database is an error here
    folder = artifacts_dir(url, artifacts)
    served = folder if folder.is_dir() else None
    port = _free_port(host, port)
    ctx = spawn_context()
    args = (url, host, port, None if served is None else str(served), log_level)
    process = ctx.Process(target=_serve, args=args, name="bnsearch-dashboard", daemon=True)
    process.start()
    dashboard = Dashboard(process=process, host=host, port=port, artifacts=served)
    try:
        _wait_until_answering(dashboard)
    except BaseException:
        dashboard.stop()
        raise
    return dashboard


def _wait_until_answering(dashboard: Dashboard) -> None:
    host = "127.0.0.1" if dashboard.host in ("", "0.0.0.0") else "::1" if dashboard.host == "::" else dashboard.host
    deadline = time.monotonic() + START_TIMEOUT_S
    while True:
        if not dashboard.process.is_alive():
            raise ConfigError(
                f"optuna-dashboard stopped while starting (exit code {dashboard.process.exitcode}); "
                f"rerun with -v to see why (is {dashboard.host}:{dashboard.port} taken?)"
            )
        try:
            with socket.create_connection((host, dashboard.port), timeout=1):
                return
        except OSError:
            if time.monotonic() > deadline:
                raise ConfigError(f"optuna-dashboard did not answer within {START_TIMEOUT_S} s") from None
            time.sleep(0.2)


def make_app(storage: str | None = None, *, artifacts: str | None = None) -> Any:
    """The optuna-dashboard WSGI app on ``storage`` with its artifact store, for a WSGI server
    of your own (gunicorn, uWSGI); ``bnsearch dashboard`` uses ``run_server`` instead.

    Raises:
        StudyError: the database does not exist or cannot be opened.
        MissingDependencyError: optuna-dashboard is not installed.
    """
    from bnsearch.model_folder import AtomicFileSystemArtifactStore, artifacts_dir
    from bnsearch.storages import open_storage

    _check_dashboard_installed()
    import optuna_dashboard

    url = storage or default_storage()
    rdb = open_storage(url, create=False, heartbeat=False)
    folder = artifacts_dir(url, artifacts)
    store = AtomicFileSystemArtifactStore(folder) if folder.is_dir() else None
    return optuna_dashboard.wsgi(rdb, artifact_store=store)
