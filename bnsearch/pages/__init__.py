"""What every HTML page bnsearch writes shares: the frame and CSS, the plotly guard, writing the file.

The report, the compare page and the findings page build their body and figures; this package
wraps them in one self-contained document (plotly.js inline, so a page opens offline).
"""

from __future__ import annotations

from bnsearch.pages._frame import CSS, figure_div, page_html, write_page, written_at
from bnsearch.pages._plotly_imports import optuna_visualization, plotly_go, plotly_js

__all__ = [
    "CSS",
    "figure_div",
    "optuna_visualization",
    "page_html",
    "plotly_go",
    "plotly_js",
    "write_page",
    "written_at",
]
