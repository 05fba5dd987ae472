"""The ``bnsearch`` command: ``app`` (global options, the error boundary), ``run``, ``results``.

Importing this package registers every command on ``app``; ``main`` is the console entry point.
"""

from __future__ import annotations

# isort: off
from bnsearch.cli.app import app, main, user_errors
from bnsearch.cli import run  # registers `run` first, so --help lists it first
from bnsearch.cli import results  # registers compare, best, predict, dashboard, studies, report, export
from bnsearch.cli import findings  # registers findings

# isort: on
__all__ = ["app", "findings", "main", "results", "run", "user_errors"]
