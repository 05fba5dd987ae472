"""The report's HTML: ``ReportData`` and its figures → one self-contained file (plotly.js inline,
so it opens offline)."""

from __future__ import annotations

import html
from pathlib import Path
from typing import TYPE_CHECKING

from bnsearch.pages import figure_div, page_html, write_page, written_at
from bnsearch.report.data import ReportData, build_report_data
from bnsearch.report.figures import all_figures
from bnsearch.report.verdicts import MIN_CLIFFS_DELTA, MIN_DIFF, MIN_TRIALS, Finding

if TYPE_CHECKING:
    import optuna
    import plotly.graph_objects as go


_CSS = """
.finding{border-left:4px solid #ddd;padding:.2em 1em;margin:1em 0}
"""


_FINDINGS_INTRO = (
    "Exploratory: these verdicts read whatever trials this search sampled, and adaptive sampling "
    "and pruning make them observational (one seed, no intervals); run bnsearch findings for the "
    "designed experiment, paired by seed, with 95% intervals. "
    "Each claim of the source article, tested on this study's trials. Outcome accuracy is the "
    "final validation accuracy of complete trials; trials whose loss diverged count as 0 and "
    "trials stopped by the pruner are left out. Nets with BN count only with gamma initialised "
    "near 1 (ones or normal), except in the gamma findings. A group needs at least "
    f"{MIN_TRIALS} trials; a difference counts when |Cliff's delta| ≥ {MIN_CLIFFS_DELTA} and the "
    f"medians differ by ≥ {MIN_DIFF}."
)


def _findings_html(findings: tuple[Finding, ...]) -> str:
    parts = []
    for f in findings:
        cls = f.verdict.replace(" ", "-")
        rows = "".join(
            f"<tr><td>{html.escape(g.label)}</td><td>{g.n}</td>"
            f"<td>{'' if g.median is None else f'{g.median:.4g}'}</td>"
            f"<td>{html.escape(g.note)}</td></tr>"
            for g in f.groups
        )
        effect = "" if f.effect is None else f"<br>effect: {html.escape(f.effect_label)} = {f.effect:+.3g}"
        parts.append(
            f'<div class="finding" id="finding-{html.escape(f.key)}">'
            f"<p><b>Claim:</b> {html.escape(f.claim)}</p>"
            f'<p class="verdict {cls}">Verdict: {html.escape(f.verdict)}</p>'
            f"<p>{html.escape(f.summary)}</p><table><tr><th>group</th><th>trials</th>"
            f"<th>{html.escape(f.metric)} (median)</th><th>note</th></tr>"
            f"{rows}</table><small>figure: {html.escape(f.figure)}{effect}</small></div>"
        )
    return "\n".join(parts)


def _summary_html(data: ReportData) -> str:
    counts = ", ".join(f"{n} {s.lower()}" for s, n in data.counts.items()) or "no trials"
    best = "no trial completed yet"
    if data.best_number is not None and data.best_value is not None:
        settings = ", ".join(
            f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in sorted(data.best_params.items())
        )
        best = f"best trial #{data.best_number}: val_acc {data.best_value:.4f} ({html.escape(settings)})"
    return (
        f"<p>strategy: {html.escape(str(data.strategy))} · "
        f"dataset: {html.escape(str(data.dataset))} · trials: {counts}</p><p>{best}</p>"
    )


def _confirm_html(data: ReportData) -> str:
    """The latest ``best --confirm``: each configuration's mean over fresh seeds, the verdict."""
    c = data.confirm
    if not c:
        return ""
    rows = "".join(
        f"<tr><td>#{r['trial']}</td><td>{r['search_val_acc']:.4f}</td>"
        f"<td>{r['val_acc']['mean']:.4f} [{r['val_acc']['low']:.4f}, {r['val_acc']['high']:.4f}]</td></tr>"
        for r in c.get("configs", ())
    )
    sentences = "".join(f"<li>{html.escape(d['sentence'])}</li>" for d in c.get("differences", ()))
    return (
        f"<h2>Confirmed winner (best --confirm, {c.get('seeds')} fresh paired seeds)</h2>"
        f"<table><tr><th>config</th><th>val_acc in the search</th><th>mean val_acc [95% CI]</th></tr>{rows}</table>"
        f"<ul>{sentences}</ul><p>{html.escape(str(c.get('verdict', '')))}; test accuracy of the leader "
        f"#{c.get('leader_trial')}: {float(c.get('test_acc', float('nan'))):.4f} (scored once); "
        "bnsearch best --retrain retrains it.</p>"
    )


def write_html(data: ReportData, figures: dict[str, go.Figure], path: str | Path) -> Path:
    """Write one self-contained HTML file: summary, figures and the Findings section.

    plotly.js is embedded once, inline, so the file opens without network access.

    Args:
        data: From ``build_report_data``.
        figures: Section title → figure, in display order (``figures.all_figures``); the
            figures whose keys start with ``findings_`` go in the Findings section.
        path: Target ``.html`` file; its folder is created.

    Raises:
        ConfigError: ``path`` is a folder.
        MissingDependencyError: plotly is not installed.
        BnsearchError: the file cannot be written.
    """

    def fig_div(key: str, fig: go.Figure) -> str:
        return f'<section id="{html.escape(key)}">{figure_div(fig, div_id=f"fig-{key}")}</section>'

    main = [fig_div(k, f) for k, f in figures.items() if not k.startswith("findings_")]
    extra = [fig_div(k, f) for k, f in figures.items() if k.startswith("findings_")]
    body = (
        f"<p><small>written {written_at()}</small></p>"
        f"{_summary_html(data)}{_confirm_html(data)}<h2>Search</h2>{''.join(main)}"
        f"<p><small>{html.escape(data.importance_note)}</small></p>"
        f"<h2>Findings (exploratory)</h2><p>{_FINDINGS_INTRO}</p>{_findings_html(data.findings)}"
        f"{''.join(extra)}"
    )
    doc = page_html(title=f"bnsearch report: {data.study_name}", body=body, feature="the HTML report", css=_CSS)
    return write_page(path, doc, what="report", example_name="report.html")


def write_report(study: str | optuna.Study, storage: str | None = None, *, out: str | Path | None = None) -> Path:
    """Build, render and write the report of ``study``; default file ``<study>-report.html``.

    Raises:
        StudyError: no such database or study. ConfigError: ``out`` is a folder.
    """
    data = build_report_data(study, storage)
    path = Path(out) if out is not None else Path(f"{data.study_name}-report.html")
    return write_html(data, all_figures(data), path)
