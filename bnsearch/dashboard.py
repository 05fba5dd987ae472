"""optuna-dashboard on a bnsearch storage, served in this process (stdlib wsgiref server).

``make_server`` binds the socket and returns the server without serving, so the caller can
print the real URL (``port=0`` picks a free port); ``serve_until_interrupted`` then serves
until Ctrl-C.

Requests are handled in worker threads, never in the thread that waits for Ctrl-C:
wsgiref's handler catches *every* exception raised while it runs the app, so a
KeyboardInterrupt landing in the middle of a request (the dashboard page polls the API
every few seconds) would be turned into an HTTP 500 and the server would keep running.
"""

from __future__ import annotations

import logging
import threading
from socketserver import ThreadingMixIn
from typing import TYPE_CHECKING, Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer
from wsgiref.simple_server import make_server as _wsgiref_server

from bnsearch.config import default_storage
from bnsearch.errors import ConfigError, MissingDependencyError

if TYPE_CHECKING:
    from collections.abc import Callable

logger = logging.getLogger(__name__)


class _QuietHandler(WSGIRequestHandler):
    """Log requests through ``logging`` (visible with -v) instead of one stderr line each."""

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 (stdlib signature)
        logger.info("%s " + format, self.address_string(), *args)


class _ThreadingWSGIServer(ThreadingMixIn, WSGIServer):
    daemon_threads = True  # an unfinished request does not keep the process alive


def make_app(storage: str | None = None) -> Callable[..., Any]:
    """The optuna-dashboard WSGI app on ``storage`` (an existing database; nothing created).

    Raises:
        StudyError: the database does not exist or cannot be opened.
        MissingDependencyError: optuna-dashboard is not installed.
    """
    from bnsearch.study import open_storage

    try:
        import optuna_dashboard
    except ImportError:
        raise MissingDependencyError("optuna-dashboard", "bnsearch dashboard") from None
    rdb = open_storage(storage or default_storage(), create=False, heartbeat=False)
    return optuna_dashboard.wsgi(rdb)


def make_server(storage: str | None = None, *, host: str = "127.0.0.1", port: int = 8080) -> WSGIServer:
    """Bind optuna-dashboard on ``host:port``; call ``serve_forever()`` on the result.

    Args:
        storage: Storage URL; default ``bnsearch.config.default_storage()``
            ($BNSEARCH_STORAGE, $OPTUNA_STORAGE or the SQLite file).
        host: Interface to listen on (127.0.0.1: this machine only; 0.0.0.0: all).
        port: TCP port; 0 picks a free one (read it back from ``server.server_port``).

    Raises:
        ConfigError: bad port, or the address is in use / not available.
        StudyError: the database does not exist or cannot be opened.
    """
    if not 0 <= port <= 65535:
        raise ConfigError(f"--port must be between 0 and 65535, got {port}")
    app = make_app(storage)
    try:
        return _wsgiref_server(host, port, app, server_class=_ThreadingWSGIServer, handler_class=_QuietHandler)
    except OSError as e:
        raise ConfigError(f"cannot listen on {host}:{port}: {e.strerror or e}; choose another --port") from None


def server_url(server: WSGIServer, host: str) -> str:
    """The URL a browser on this machine opens for ``server``."""
    shown = "127.0.0.1" if host in ("", "0.0.0.0") else host
    if ":" in shown:
        shown = f"[{shown}]"
    return f"http://{shown}:{server.server_port}/dashboard/"


def serve_until_interrupted(server: WSGIServer) -> None:
    """Serve in a background thread until Ctrl-C (KeyboardInterrupt) reaches this thread.

    The server is shut down and its socket closed before this returns.
    """
    thread = threading.Thread(target=server.serve_forever, name="bnsearch-dashboard", daemon=True)
    thread.start()
    try:
        while thread.is_alive():
            thread.join(0.5)
    except KeyboardInterrupt:
        logger.info("Ctrl-C: stopping the dashboard")
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
