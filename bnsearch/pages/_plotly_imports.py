"""The one guard around the optional plotly dependency: every page and figure imports it here."""

from __future__ import annotations

from typing import Any

from bnsearch.errors import MissingDependencyError


def plotly_go(feature: str) -> Any:
    """``plotly.graph_objects``, imported on first use.

    Args:
        feature: What needs plotly, for the error message (e.g. ``"the compare page"``).

    Raises:
        MissingDependencyError: plotly is not installed.
    """
    try:
        import plotly.graph_objects as go
    except ImportError:
        raise MissingDependencyError("plotly", feature) from None
    return go


def optuna_visualization(feature: str) -> Any:
    """``optuna.visualization``, whose plots are plotly figures.

    Raises:
        MissingDependencyError: plotly is not installed.
    """
    plotly_go(feature)
    import optuna.visualization as vis

    return vis


def plotly_js(feature: str) -> str:
    """The plotly.js bundle, to inline in a page so that it opens without network access.

    Raises:
        MissingDependencyError: plotly is not installed.
    """
    try:
        from plotly.offline import get_plotlyjs
    except ImportError:
        raise MissingDependencyError("plotly", feature) from None
    return str(get_plotlyjs())
