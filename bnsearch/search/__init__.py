"""Run a search: ``run`` (config → space → data → study → optimize), the Optuna ``objective``,
the ``pruners``, ``packing`` (``--pack``: K trials asked at once and trained together) and
the ``workers`` that share one study.

The names below load on first use, so ``import bnsearch.search.pruners`` (the CLI's option
help) does not import Optuna or torch.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from bnsearch.search.run import SearchSetup as SearchSetup
    from bnsearch.search.run import StudyCallback as StudyCallback
    from bnsearch.search.run import optimize as optimize
    from bnsearch.search.run import prepare_search as prepare_search
    from bnsearch.search.run import run_search as run_search

__all__ = ["SearchSetup", "StudyCallback", "optimize", "prepare_search", "run_search"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from bnsearch.search import run

        return getattr(run, name)
    raise AttributeError(f"module 'bnsearch.search' has no attribute {name!r}")
