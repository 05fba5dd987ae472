"""The HTML report of one study: ``data`` → ``figures`` → ``html``.

``data.build_report_data`` computes everything (numbers, importances, the exploratory
findings of ``findings``, judged by the pure statistics of ``verdicts``) as plain data that
tests and notebooks read; ``figures.render_*`` turn it into plotly figures; ``html`` writes
one self-contained file.
"""

from __future__ import annotations

from bnsearch.report.data import MIN_TRIALS_FOR_IMPORTANCE, HistoryPoint, ReportData, build_report_data
from bnsearch.report.figures import (
    all_figures,
    render_findings,
    render_history,
    render_importances,
    render_learning_curves,
    render_parallel,
    render_slices,
)
from bnsearch.report.html import write_html, write_report

__all__ = [
    "MIN_TRIALS_FOR_IMPORTANCE",
    "HistoryPoint",
    "ReportData",
    "all_figures",
    "build_report_data",
    "render_findings",
    "render_history",
    "render_importances",
    "render_learning_curves",
    "render_parallel",
    "render_slices",
    "write_html",
    "write_report",
]
