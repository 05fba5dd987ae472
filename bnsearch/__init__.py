"""bnsearch: how should batch normalization be configured in a CNN, and which search finds out fastest."""

from __future__ import annotations

from importlib import metadata
from typing import TYPE_CHECKING, Any

try:
    __version__ = metadata.version("bnsearch")
except metadata.PackageNotFoundError:  # running from a source tree without install
    __version__ = "0.0.0"

if TYPE_CHECKING:
    from bnsearch.analysis import load_trials as load_trials
    from bnsearch.search import run_search as run_search

__all__ = ["__version__", "load_trials", "run_search"]


def __getattr__(name: str) -> Any:
    # Lazy: `import bnsearch` stays cheap (no torch/optuna import until used).
    if name == "run_search":
        from bnsearch.search import run_search

        return run_search
    if name == "load_trials":
        from bnsearch.analysis import load_trials

        return load_trials
    raise AttributeError(f"module 'bnsearch' has no attribute {name!r}")
