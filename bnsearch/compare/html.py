"""``CompareData`` → plotly figures → one self-contained HTML page (plotly.js embedded, no CDN).

Only rendering lives here; every number comes from ``stats``.
"""

from __future__ import annotations

import html
import math
from pathlib import Path
from typing import TYPE_CHECKING

from bnsearch.compare.stats import TARGET_GAP, Band, CompareData, ranking_rows
from bnsearch.pages import figure_div, page_html, plotly_go, write_page, written_at

if TYPE_CHECKING:
    import plotly.graph_objects as go

_COLORS = ("#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf")
_FEATURE = "the compare page"
_CSS = """
.banner{padding:.8em 1em;border-radius:6px;font-weight:600}
.real{background:#e8f4ea;border:1px solid #2ca02c}
.bench{background:#fff4e0;border:2px solid #ff7f0e}
td,th{text-align:right}
"""


def _rgba(hex_color: str, alpha: float) -> str:
    r, g, b = (int(hex_color[i : i + 2], 16) for i in (1, 3, 5))
    return f"rgba({r},{g},{b},{alpha})"


def _pct(values: tuple[float, ...]) -> list[float | None]:
    return [100 * v if math.isfinite(v) else None for v in values]


def _band_figure(bands: dict[str, Band], *, title: str, x_title: str) -> go.Figure:
    go = plotly_go(_FEATURE)

    fig = go.Figure()
    for i, (strategy, band) in enumerate(sorted(bands.items())):
        color = _COLORS[i % len(_COLORS)]
        x = list(band.x)
        fig.add_trace(
            go.Scatter(
                x=x,
                y=_pct(band.q75),
                mode="lines",
                line={"width": 0},
                showlegend=False,
                legendgroup=strategy,
                hoverinfo="skip",
            )
        )
        fig.add_trace(
            go.Scatter(
                x=x,
                y=_pct(band.q25),
                mode="lines",
                line={"width": 0},
                fill="tonexty",
                fillcolor=_rgba(color, 0.2),
                showlegend=False,
                legendgroup=strategy,
                hoverinfo="skip",
            )
        )
        fig.add_trace(
            go.Scatter(
                x=x,
                y=_pct(band.median),
                mode="lines",
                name=strategy,
                legendgroup=strategy,
                line={"color": color, "width": 2},
            )
        )
    fig.update_layout(
        title=title,
        xaxis_title=x_title,
        yaxis_title="best validation accuracy so far (%)",
        template="plotly_white",
        hovermode="x unified",
    )
    return fig


def render_figures(data: CompareData) -> list[go.Figure]:
    """The page's figures: curves by trial and by time, final bests, trials to target.

    Raises:
        MissingDependencyError: plotly is not installed.
    """
    go = plotly_go(_FEATURE)

    tag = " [BENCHMARK: surrogate predictions]" if data.mode == "benchmark" else ""
    figs = [
        _band_figure(
            data.by_trials,
            title=f"Best so far vs trials (median, IQR over seeds){tag}",
            x_title="trial",
        ),
        _band_figure(
            data.by_time,
            title=f"Best so far vs wall time (median, IQR over seeds){tag}",
            x_title="wall time (s, simulated)" if data.mode == "benchmark" else "wall time (s)",
        ),
    ]
    order = [s.strategy for s in data.ranking]
    colors = {s: _COLORS[i % len(_COLORS)] for i, s in enumerate(sorted(order))}
    box = go.Figure()
    for s in data.ranking:
        box.add_trace(
            go.Box(
                y=_pct(s.final_bests),
                name=s.strategy,
                boxpoints="all",
                jitter=0.3,
                marker_color=colors[s.strategy],
            )
        )
    box.update_layout(
        title=f"Final best validation accuracy per seed{tag}",
        yaxis_title="val accuracy (%)",
        template="plotly_white",
        showlegend=False,
    )
    figs.append(box)
    ttt = go.Figure()
    for s in data.ranking:
        reached = [t for t in s.trials_to_target if t is not None]
        ttt.add_trace(
            go.Box(
                y=reached,
                name=f"{s.strategy} ({s.n_reached}/{len(data.seeds)} reached)",
                boxpoints="all",
                jitter=0.3,
                marker_color=colors[s.strategy],
            )
        )
    ttt.update_layout(
        title=f"Trials needed to come within {100 * TARGET_GAP:g} points of the best any "
        f"strategy found with the same seed{tag}",
        yaxis_title="trials",
        template="plotly_white",
        showlegend=False,
    )
    figs.append(ttt)
    return figs


def _table_html(data: CompareData) -> str:
    rows = ranking_rows(data)
    if not rows:
        return "<p>no runs</p>"
    head = "".join(f"<th>{html.escape(k)}</th>" for k in rows[0])
    body = "".join("<tr>" + "".join(f"<td>{html.escape(v)}</td>" for v in r.values()) + "</tr>" for r in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def write_compare_html(data: CompareData, path: str | Path) -> Path:
    """Write the comparison page to ``path`` (folders created), with plotly.js inlined.

    Raises:
        MissingDependencyError: plotly is not installed.
        BnsearchError: the file cannot be written.
    """
    figs = render_figures(data)
    banner_class = "bench" if data.mode == "benchmark" else "real"
    body = f"""<p class="banner {banner_class}">{html.escape(data.mode_note)}</p>
<p>{len(data.ranking)} strategies × {len(data.seeds)} seeds × {data.trials} trials per run.
Generated {written_at()}.
Bands are the interquartile range over seeds; a curve starts once every seed has a completed
trial (a seed with none is left out), so each curve follows the same seeds to its end.
The target of a seed is the best value any strategy found with that seed minus {100 * TARGET_GAP:g} points.</p>
<h2>Ranking</h2>
{_table_html(data)}
{"".join(f"<div>{figure_div(f)}</div>" for f in figs)}"""
    page = page_html(title=f"Which strategy wins? ({data.mode} mode)", body=body, feature=_FEATURE, css=_CSS)
    return write_page(path, page, what="compare page", example_name="compare.html")
