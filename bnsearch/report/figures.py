"""``ReportData`` → plotly figures: the report's charts, also usable one by one in a notebook.

Every ``render_*`` takes the data ``report.build_report_data`` computed and returns a
``plotly.graph_objects.Figure``; none reads the database. The search figures (history,
parallel coordinates, importances, slices, EDF, timeline) are Optuna's own
(``optuna.visualization``, the look optuna-dashboard has), drawn from the in-memory copy of
the study in ``ReportData.study``; the learning curves by trial state and the findings
figures are bnsearch's. A figure without data to show
(e.g. no complete trial yet) is an empty chart with a note, so a report always renders.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from bnsearch.pages import optuna_visualization, plotly_go

if TYPE_CHECKING:
    from collections.abc import Callable

    import optuna
    import pandas as pd
    import plotly.graph_objects as go

    from bnsearch.report.data import ReportData

_STATE_STYLE = {  # line dash and colour of a trial's learning curve by its state
    "COMPLETE": ("solid", "rgba(31,119,180,0.55)"),
    "PRUNED": ("dot", "rgba(214,39,40,0.7)"),
    "FAIL": ("dash", "rgba(0,0,0,0.7)"),
    "RUNNING": ("dashdot", "rgba(44,160,44,0.8)"),
}
BN_COLORS = {True: "#1f77b4", False: "#ff7f0e"}


def _go() -> Any:
    return plotly_go("report figures")


def _empty(title: str, note: str) -> go.Figure:
    go = _go()
    fig = go.Figure()
    fig.update_layout(
        title=title,
        xaxis={"visible": False},
        yaxis={"visible": False},
        annotations=[{"text": note, "showarrow": False, "font": {"size": 14}}],
    )
    return fig


def _trials(data: ReportData) -> pd.DataFrame:
    assert data.trials is not None
    return data.trials


def _visualization() -> Any:
    return optuna_visualization("report figures")


def _optuna_plot(data: ReportData, title: str, draw: Callable[[Any, optuna.Study, str], go.Figure]) -> go.Figure:
    """One of Optuna's own plots (``optuna.visualization``) of the study's in-memory copy."""
    if data.study is None or not data.history:
        return _empty(title, "no complete trial yet")
    target = "val_acc" if data.strategy is not None else "Objective Value"
    return draw(_visualization(), data.study, target)


def render_history(data: ReportData) -> go.Figure:
    """Optuna's optimization history: each complete trial's value and the best so far."""
    return _optuna_plot(
        data, "Optimization History Plot", lambda vis, st, target: vis.plot_optimization_history(st, target_name=target)
    )


def render_learning_curves(data: ReportData) -> go.Figure:
    """Per-epoch validation accuracy of every trial; pruned (dotted red, ✕ at the stop),
    failed (dashed black) and running (green) trials are drawn differently from complete ones."""
    go = _go()
    title = "Learning curves (validation accuracy per epoch)"
    curves = data.curves
    if curves is None or curves.empty:
        return _empty(title, "no trial has finished an epoch yet")
    fig = go.Figure()
    shown: set[str] = set()
    for trial, g in curves.groupby("trial", sort=True):
        state = str(g["state"].iloc[0])
        dash, color = _STATE_STYLE.get(state, ("solid", "grey"))
        fig.add_trace(
            go.Scatter(
                x=g["epoch"],
                y=g["val_acc"],
                mode="lines",
                name=state.lower(),
                legendgroup=state,
                showlegend=state not in shown,
                line={"dash": dash, "color": color, "width": 1.5},
                hovertemplate=(f"trial {trial} ({state.lower()})<br>epoch %{{x}}: %{{y:.4f}}<extra></extra>"),
            )
        )
        shown.add(state)
        if state == "PRUNED":
            fig.add_trace(
                go.Scatter(
                    x=[g["epoch"].iloc[-1]],
                    y=[g["val_acc"].iloc[-1]],
                    mode="markers",
                    legendgroup=state,
                    showlegend=False,
                    marker={"symbol": "x", "color": color, "size": 8},
                    hovertemplate=f"trial {trial} pruned here<extra></extra>",
                )
            )
    fig.update_layout(
        title=title,
        xaxis_title="epoch",
        yaxis_title="validation accuracy",
        legend_title="trial state",
    )
    return fig


def render_parallel(data: ReportData) -> go.Figure:
    """Optuna's parallel-coordinate plot of the searched params and the objective."""
    title = "Parallel Coordinate Plot"
    if not data.searchable:
        return _empty(title, "no parameter was searched")
    params = list(data.searchable)
    return _optuna_plot(
        data, title, lambda vis, st, target: vis.plot_parallel_coordinate(st, params=params, target_name=target)
    )


def render_importances(data: ReportData) -> go.Figure:
    """Optuna's importance bars, of the fANOVA importances ``build_report_data`` computed."""
    title = "Hyperparameter Importances"
    importances = data.importances
    if not importances:
        return _empty(title, data.importance_note or "no importances")
    evaluator = _precomputed_evaluator(importances)
    return _optuna_plot(
        data,
        title,
        lambda vis, st, target: vis.plot_param_importances(
            st, evaluator=evaluator, params=list(importances), target_name=target
        ),
    )


def _precomputed_evaluator(importances: dict[str, float]) -> Any:
    """An Optuna importance evaluator that answers with importances computed once already."""
    from optuna.importance import BaseImportanceEvaluator

    class _Precomputed(BaseImportanceEvaluator):
        def evaluate(self, study: Any, params: Any = None, *, target: Any = None) -> dict[str, float]:
            return dict(sorted(importances.items(), key=lambda kv: kv[1], reverse=True))

    return _Precomputed()


def render_slices(data: ReportData) -> go.Figure:
    """Optuna's slice plot: one panel per searched param against the objective."""
    title = "Slice Plot"
    if not data.searchable:
        return _empty(title, "no parameter was searched")
    params = list(data.searchable)
    return _optuna_plot(data, title, lambda vis, st, target: vis.plot_slice(st, params=params, target_name=target))


def render_edf(data: ReportData) -> go.Figure:
    """Optuna's empirical distribution function of the complete trials' objective values."""
    return _optuna_plot(
        data, "Empirical Distribution Function Plot", lambda vis, st, target: vis.plot_edf(st, target_name=target)
    )


def render_timeline(data: ReportData) -> go.Figure:
    """Optuna's timeline: when each trial ran and how it ended (workers show as overlaps)."""
    title = "Timeline Plot"
    if data.study is None or not data.counts:
        return _empty(title, "no trial yet")
    return _visualization().plot_timeline(data.study)


def _box(go: Any, frame: pd.DataFrame, column: str, name: str, color: str | None = None) -> Any:
    return go.Box(
        y=frame[column],
        name=name,
        boxpoints="all",
        jitter=0.4,
        pointpos=0,
        marker_color=color,
        hovertext=[f"trial {n}" for n in frame["number"]],
    )


def render_findings(data: ReportData) -> dict[str, go.Figure]:
    """The figures the Findings section refers to (``Finding.figure`` keys)."""
    from bnsearch.report.findings import outcome_frame, standard_init

    go = _go()
    df = _trials(data)
    every = outcome_frame(df)  # all inits: for the gamma figure
    o = standard_init(every)  # BN nets with gamma ≈ 1, as the findings count them
    bn = {True: o[o["has_bn"] == True], False: o[o["has_bn"] == False]}  # noqa: E712
    figs: dict[str, Any] = {}

    fig = go.Figure([_box(go, bn[b], "outcome", "with BN" if b else "without BN", BN_COLORS[b]) for b in (True, False)])
    fig.update_layout(title="Outcome val_acc with BN (gamma ≈ 1) vs without (diverged = 0)", yaxis_title="val_acc")
    figs["findings_bn"] = fig

    ran = standard_init(df[df["state"].isin(["COMPLETE", "PRUNED"]) & df["has_bn"].notna()])
    curves = data.curves
    fig = go.Figure()
    if curves is not None and not curves.empty:
        c = curves[curves["trial"].isin(ran["number"])]
        for b in (True, False):
            g = c[c["has_bn"] == b].groupby("epoch")["val_acc"].median()
            fig.add_trace(
                go.Scatter(
                    x=list(g.index),
                    y=list(g.values),
                    mode="lines+markers",
                    name="with BN" if b else "without BN",
                    line={"color": BN_COLORS[b]},
                )
            )
    fig.update_layout(
        title="Median val_acc per epoch, BN (gamma ≈ 1) vs none (convergence)",
        xaxis_title="epoch",
        yaxis_title="median val_acc",
    )
    figs["findings_convergence"] = fig

    fig = go.Figure()
    for b in (True, False):
        g = bn[b]
        fig.add_trace(
            go.Scatter(
                x=g["lr"],
                y=g["outcome"],
                mode="markers",
                name="with BN" if b else "without BN",
                marker={
                    "color": BN_COLORS[b],
                    "symbol": ["x" if d else "circle" for d in g["diverged"]],
                },
                hovertext=[f"trial {n}" for n in g["number"]],
            )
        )
    fig.update_layout(
        title="Learning rate vs outcome val_acc, BN at gamma ≈ 1 (✕ = diverged)",
        xaxis_type="log",
        xaxis_title="lr",
        yaxis_title="val_acc",
    )
    figs["findings_lr"] = fig

    done = standard_init(df[(df["state"] == "COMPLETE") & df["has_bn"].notna()])
    fig = go.Figure(
        [
            _box(
                go,
                done[done["has_bn"] == b],
                "train_val_gap",
                "with BN" if b else "without BN",
                BN_COLORS[b],
            )
            for b in (True, False)
        ]
    )
    fig.update_layout(
        title="Train − validation accuracy gap, BN at gamma ≈ 1 (complete trials)",
        yaxis_title="gap",
    )
    figs["findings_gap"] = fig

    fig = go.Figure()
    for label, sel in (
        ("before activation", o["bn_placement"] == "before_activation"),
        ("after activation", o["bn_placement"] == "after_activation"),
        ("no conv BN", o["bn_placement"] == "none"),
        ("BN before classifier", o["bn_classifier"].eq(True)),
        ("no BN before classifier", o["bn_classifier"].eq(False)),
    ):
        fig.add_trace(_box(go, o[sel.fillna(False)], "outcome", label))
    fig.update_layout(title="Where BN goes: outcome val_acc (gamma ≈ 1)", yaxis_title="val_acc", showlegend=False)
    figs["findings_placement"] = fig

    fig = go.Figure()
    with_bn = every[every["has_bn"] == True]  # noqa: E712
    for gamma in ("zeros", "ones"):
        g = with_bn[with_bn["gamma_init"] == gamma]
        fig.add_trace(
            go.Box(
                x=g["activation"],
                y=g["outcome"],
                name=f"gamma = {'0' if gamma == 'zeros' else '1'}",
                boxpoints="all",
                jitter=0.4,
                pointpos=0,
            )
        )
    fig.update_layout(
        title="gamma init 0 vs 1 per activation (nets with BN)",
        boxmode="group",
        yaxis_title="val_acc",
    )
    figs["findings_gamma"] = fig

    fig = go.Figure()
    for b in (True, False):
        g = bn[b]
        fig.add_trace(
            go.Box(
                x=g["activation"],
                y=g["outcome"],
                name="with BN" if b else "without BN",
                marker_color=BN_COLORS[b],
                boxpoints="all",
                jitter=0.4,
                pointpos=0,
            )
        )
    fig.update_layout(title="Activation × BN (gamma ≈ 1): outcome val_acc", boxmode="group", yaxis_title="val_acc")
    figs["findings_activation"] = fig
    return figs


def all_figures(data: ReportData) -> dict[str, go.Figure]:
    """Every report figure by key, in display order (search figures, then findings)."""
    return {
        "history": render_history(data),
        "learning_curves": render_learning_curves(data),
        "parallel": render_parallel(data),
        "importances": render_importances(data),
        "slices": render_slices(data),
        "edf": render_edf(data),
        "timeline": render_timeline(data),
        **render_findings(data),
    }
