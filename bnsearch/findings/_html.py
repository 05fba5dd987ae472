"""The findings page and JSON: results → plotly figures → one self-contained HTML file.

Only rendering lives here; every number comes from ``_judge.judge``, ``_controls.check_controls``
and the cell records. A design-2 run passes its controls (``trust``): they head the page and the
JSON, and a failed one marks the whole run untrustworthy in red, with the reason, at the very top.
"""

from __future__ import annotations

import html
import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from bnsearch.findings._controls import Trust
from bnsearch.findings._design import MAIN_LRS
from bnsearch.findings._effects import seed_views
from bnsearch.findings._judge import Result
from bnsearch.findings._records import CellRecord
from bnsearch.pages import figure_div, page_html, plotly_go, write_page, written_at

if TYPE_CHECKING:
    import plotly.graph_objects as go

_COLORS = ("#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd")
_FEATURE = "the findings page"
_CSS = """
.claim{border-left:4px solid #ddd;padding:.2em 1em;margin:1em 0}
.lit{color:#555;font-size:.95em}
.untrustworthy{background:#fde8e8;border:2px solid #c00;color:#a00;padding:.5em 1em}
.trustworthy{border-left:4px solid #2a2;padding:.2em 1em}
"""
DESIGN1_ARMS = ("relu/none", "relu/before", "relu/after", "relu/before+bn1d", "relu/after/zero_last")
DESIGN2_ARMS = (
    "plain:relu/none",
    "plain:relu/before",
    "plain:relu/after",
    "resnet:relu/post",
    "resnet:relu/post/zero_last",
)


def _normalised(r: Result, x: float) -> float | None:
    """An effect in units of its claim's margin (ratios on a log scale), so claims share an axis."""
    if not math.isfinite(x):
        return None
    if r.unit.startswith("×"):
        return math.log(x) / math.log(r.margin) if x > 0 else None
    return x / r.margin


def forest_figure(results: Sequence[Result]) -> go.Figure:
    """Each claim's effect and 95% interval per dataset, in units of its margin.

    Raises:
        MissingDependencyError: plotly is not installed.
    """
    go = plotly_go(_FEATURE)
    fig = go.Figure()
    datasets = sorted({r.dataset for r in results})
    for i, d in enumerate(datasets):
        rows = [r for r in results if r.dataset == d]
        x = [_normalised(r, r.effect) for r in rows]
        lo = [_normalised(r, r.ci_low) for r in rows]
        hi = [_normalised(r, r.ci_high) for r in rows]
        fig.add_trace(
            go.Scatter(
                x=x,
                y=[f"{r.key}{'' if r.primary else ' (secondary)'}" for r in rows],
                mode="markers",
                name=d,
                marker={"color": _COLORS[i % len(_COLORS)], "size": 9},
                error_x={
                    "type": "data",
                    "symmetric": False,
                    "array": [None if a is None or b is None else b - a for a, b in zip(x, hi, strict=True)],
                    "arrayminus": [None if a is None or b is None else a - b for a, b in zip(x, lo, strict=True)],
                },
                text=[r.sentence for r in rows],
                hoverinfo="text",
            )
        )
    for v in (-1, 0, 1):
        fig.add_vline(x=v, line_dash="dot" if v else "solid", line_color="#999")
    fig.update_layout(
        title="Effects with 95% intervals, in units of each claim's margin (dotted: ±margin)",
        xaxis_title="effect / margin (ratios: log effect / log margin)",
        height=300 + 28 * len({r.key for r in results}),
        yaxis={"autorange": "reversed"},
    )
    return fig


def lr_figure(records: Sequence[CellRecord], arms: Sequence[str] = DESIGN1_ARMS, *, design: int = 1) -> go.Figure:
    """Evidence: mean test accuracy vs lr of ``arms`` per dataset (seeds averaged), on design 1's
    grid or (design 2) on each arm's recorded grid.

    Raises:
        MissingDependencyError: plotly is not installed.
    """
    go = plotly_go(_FEATURE)

    fig = go.Figure()
    views = seed_views(records)
    for di, (dataset, seeds) in enumerate(sorted(views.items())):
        for ai, arm in enumerate(arms):
            lrs = MAIN_LRS if design == 1 else next(iter(seeds.values())).lrs.get(arm, ())
            ys = []
            for lr in lrs:
                vals = [p.test_acc for v in seeds.values() for p in v.points(arm, (lr,))]
                ys.append(100 * sum(vals) / len(vals) if vals else None)
            fig.add_trace(
                go.Scatter(
                    x=list(lrs),
                    y=ys,
                    mode="lines+markers",
                    name=f"{dataset}: {arm}",
                    line={"color": _COLORS[ai % len(_COLORS)], "dash": "solid" if di == 0 else "dash"},
                )
            )
    fig.update_layout(
        title="Test accuracy vs learning rate (mean over seeds; diverged nets at chance)",
        xaxis={"type": "log", "title": "learning rate"},
        yaxis_title="test accuracy (%)",
        height=480,
    )
    return fig


def _fmt(x: float, unit: str) -> str:
    if not math.isfinite(x):
        return "n/a"
    return f"{x:.2f}{unit}" if unit.startswith("×") else f"{x:+.2f}"


def _table(results: Sequence[Result]) -> str:
    cols = ("claim", "dataset", "effect", "95% CI", "bootstrap", "unit", "seeds", "verdict", "replicated")
    head = "<tr>" + "".join(f"<th>{c}</th>" for c in cols) + "</tr>"
    body = []
    for r in results:
        cls = r.verdict.replace(" ", "-")
        cells = (
            html.escape(r.key) + ("" if r.primary else " <i>(secondary)</i>"),
            html.escape(r.dataset),
            _fmt(r.effect, r.unit),
            f"{_fmt(r.ci_low, r.unit)} … {_fmt(r.ci_high, r.unit)}",
            f"{_fmt(r.boot_low, r.unit)} … {_fmt(r.boot_high, r.unit)}",
            html.escape(r.unit),
            str(r.n_seeds),
            f"<span class='{cls}'>{html.escape(r.verdict)}</span>",
            "yes" if r.replicated else "no",
        )
        body.append("<tr>" + "".join(f"<td>{c}</td>" for c in cells) + "</tr>")
    return f"<table>{head}{''.join(body)}</table>"


def _claims_html(results: Sequence[Result]) -> str:
    parts = []
    for key in dict.fromkeys(r.key for r in results):
        rows = [r for r in results if r.key == key]
        first = rows[0]
        sentences = "".join(f"<li class='{r.verdict.replace(' ', '-')}'>{html.escape(r.sentence)}</li>" for r in rows)
        parts.append(
            f"<div class='claim'><h3>{html.escape(first.claim)}{'' if first.primary else ' (secondary)'}</h3>"
            f"<p><b>Estimand:</b> {html.escape(first.estimand)}. "
            f"<b>Margin:</b> {first.margin:g} {html.escape(first.unit)}.</p>"
            f"<ul>{sentences}</ul>"
            f"<p class='lit'><b>Literature:</b> {html.escape(first.literature)} "
            f"<b>Here:</b> {html.escape(first.agreement)}.</p></div>"
        )
    return "".join(parts)


def _trust_html(trust: Trust) -> str:
    """The run's trust mark (red when a control failed, with every reason) and the controls' table."""
    if trust.trustworthy:
        mark = (
            "<p class='trustworthy'><b>Controls passed:</b> the positive control came out supported "
            "and the negative control did not differ.</p>"
        )
    else:
        reasons = "".join(f"<li>{html.escape(r)}</li>" for r in trust.reasons)
        mark = (
            "<div class='untrustworthy'><b>This run is untrustworthy: a control failed.</b> "
            f"Its verdicts below cannot be taken at face value.<ul>{reasons}</ul></div>"
        )
    rows = "".join(
        f"<tr><td>{html.escape(c.result.key)}</td><td>{html.escape(c.result.dataset)}</td>"
        f"<td>{html.escape(c.requirement)}</td><td>{html.escape(c.result.verdict)}</td>"
        f"<td>{'passed' if c.passed else '<b>failed</b>'}</td><td>{html.escape(c.result.sentence)}</td></tr>"
        for c in trust.controls
    )
    head = "".join(f"<th>{c}</th>" for c in ("control", "dataset", "requirement", "verdict", "result", "measured"))
    return f"{mark}<h2>Controls</h2><table><tr>{head}</tr>{rows}</table>"


def write_findings_html(
    results: Sequence[Result],
    records: Sequence[CellRecord],
    path: str | Path,
    *,
    note: str,
    trust: Trust | None = None,
) -> Path:
    """Write the findings page to ``path``, plotly.js inlined. ``trust`` (design 2): the
    controls, which head the page, a failed one marking the run untrustworthy in red.

    Raises:
        MissingDependencyError: plotly is not installed.
        BnsearchError: the file cannot be written.
    """
    evidence = lr_figure(records) if trust is None else lr_figure(records, DESIGN2_ARMS, design=2)
    figs = [forest_figure(results), evidence]
    divs = "".join(f"<div>{figure_div(f)}</div>" for f in figs)
    controls = "" if trust is None else _trust_html(trust)
    body = f"""{controls}<p>{html.escape(note)} Generated {written_at()}.</p>
<p>{_METHOD_SEQUENTIAL if trust is not None else _METHOD_FIXED}</p>
<h2>Verdicts</h2>{_table(results)}
{divs}
<h2>Claims</h2>{_claims_html(results)}"""
    page = page_html(title="Batch normalization: designed findings", body=body, feature=_FEATURE, css=_CSS)
    return write_page(path, page, what="findings page", example_name="findings.html")


_METHOD_FIXED = """Each effect is paired by seed (same split, batch order and shared initial weights) and its interval
is a 95% t-interval over the per-seed effects (the bootstrap column resamples seeds and each seed's
test-set noise, as a check). Verdicts of the primary claims are Holm-corrected over the primary claims
of each dataset; secondary claims are judged at 5% each. <i>Replicated</i>: every dataset gave this verdict."""
_METHOD_SEQUENTIAL = """Each effect is paired by seed (same split, batch order and shared initial weights). Seeds were
added look by look, only to the arms of primary claims still undecided; a claim keeps the verdict of the
look that decided it, and <i>seeds</i> is the number it used. Its interval is a repeated 95% confidence
interval, valid at whichever look it stopped (the bootstrap column resamples seeds and each seed's
test-set noise, as a check). Verdicts of the primary claims are tested with alpha spending over the looks
and Holm's correction over the primary claims of each dataset; secondary claims are judged at 5% each,
with their own looks. <i>Replicated</i>: every dataset gave this verdict."""


def _clean(row: dict[str, object]) -> dict[str, object]:
    """NaN and inf (no interval, no effect) as JSON null."""

    def clean(v: object) -> object:
        return None if isinstance(v, float) and not math.isfinite(v) else v

    return {k: ([clean(x) for x in v] if isinstance(v, list) else clean(v)) for k, v in row.items()}


def write_findings_json(results: Sequence[Result], path: str | Path, *, trust: Trust | None = None) -> Path:
    """Design 1 (``trust`` None): a list, one object per claim × dataset (key, claim, estimand,
    dataset, effect, ci_low, ci_high, unit, n_seeds, verdict, replicated, and the evidence behind
    them). Design 2: ``{"design": 2, "trustworthy", "reasons", "controls": [...], "claims": [...]}``,
    the controls first, each claim row with ``look`` and ``seeds_used`` as well."""
    rows = [_clean(r.to_json(sequential=trust is not None)) for r in results]
    doc: object = rows
    if trust is not None:
        doc = {
            "design": 2,
            "trustworthy": trust.trustworthy,
            "reasons": list(trust.reasons),
            "controls": [_clean(c.to_json()) for c in trust.controls],
            "claims": rows,
        }
    text = json.dumps(doc, indent=2, ensure_ascii=False) + "\n"
    return write_page(path, text, what="findings JSON", example_name="findings.json")
