"""ReportData and the HTML report on hand-made studies (complete/pruned/failed/running)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from _synth import make_study, mixed_specs

from bnsearch.claims import NOT_ESTIMABLE
from bnsearch.report import MIN_TRIALS_FOR_IMPORTANCE, build_report_data, write_html, write_report
from bnsearch.report.figures import all_figures, render_learning_curves


@pytest.fixture(scope="module")
def mixed():  # type: ignore[no-untyped-def]
    study = make_study(mixed_specs())
    study.ask()  # a RUNNING trial
    return study


def test_report_data_of_a_mixed_study(mixed) -> None:  # type: ignore[no-untyped-def]
    data = build_report_data(mixed)
    assert data.counts == {"COMPLETE": 4, "FAIL": 1, "PRUNED": 2, "RUNNING": 1}
    assert (data.best_number, data.best_value) == (6, 0.95)
    assert data.best_params["bn_classifier"] is True and data.best_params["momentum"] == 0.9
    assert [(h.number, h.value, h.best_so_far) for h in data.history] == [
        (0, 0.9, 0.9),
        (1, 0.8, 0.9),
        (2, 0.85, 0.9),
        (6, 0.95, 0.95),
    ]
    # Conditional gamma/beta are searchable but not in every complete trial: not ranked.
    assert "gamma_init" in data.searchable
    assert data.importances is not None and "gamma_init" not in data.importances
    assert sum(data.importances.values()) == pytest.approx(1.0)
    assert {f.verdict for f in data.findings} == {NOT_ESTIMABLE}
    assert {f.figure for f in data.findings} <= set(all_figures(data))


def test_single_trial_study_renders(tmp_path: Path) -> None:
    data = build_report_data(make_study([{"val": (0.5, 0.8)}]))
    assert data.counts == {"COMPLETE": 1} and data.best_value == 0.8
    assert data.importances is None
    assert f"at least {MIN_TRIALS_FOR_IMPORTANCE} complete trials" in data.importance_note
    path = write_html(data, all_figures(data), tmp_path / "one.html")
    assert "Findings" in path.read_text()


def test_empty_and_running_only_study_render(tmp_path: Path) -> None:
    study = make_study([])
    study.ask()
    data = build_report_data(study)
    assert data.best_number is None and data.history == () and data.counts == {"RUNNING": 1}
    assert write_report(study, out=tmp_path / "r.html").exists()


def test_learning_curves_mark_pruned_trials(mixed) -> None:  # type: ignore[no-untyped-def]
    fig = render_learning_curves(build_report_data(mixed))
    dashes = {t.name: t.line.dash for t in fig.data if t.mode == "lines"}
    assert dashes["pruned"] != dashes["complete"]
    assert any(t.mode == "markers" and t.marker.symbol == "x" for t in fig.data)


def test_html_is_self_contained(mixed, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    out = write_report(mixed, out=tmp_path / "sub" / "report.html")
    text = out.read_text(encoding="utf-8")
    assert not re.search(r"<script[^>]*\bsrc\s*=", text, flags=re.I)
    assert not re.search(r"<link[^>]*href\s*=\s*[\"']?https?:", text, flags=re.I)
    assert "Plotly.newPlot" in text and len(text) > 1_000_000  # plotly.js is inline
    for key in (
        "history",
        "learning_curves",
        "parallel",
        "importances",
        "slices",
        "edf",
        "timeline",
        "findings_gamma",
    ):
        assert f'id="{key}"' in text
    assert 'id="finding-bn_accuracy"' in text and "not estimable" in text


def test_search_figures_are_optunas_own(mixed) -> None:  # type: ignore[no-untyped-def]
    """History, parallel coordinates, importances, slices, EDF and timeline come from
    optuna.visualization, drawn from an in-memory copy of the study."""
    data = build_report_data(mixed)
    assert data.study is not None and data.study is not mixed
    assert len(data.study.trials) == len(mixed.trials)
    figs = all_figures(data)
    titles = {k: figs[k].layout.title.text for k in ("history", "parallel", "importances", "slices", "edf", "timeline")}
    assert titles == {
        "history": "Optimization History Plot",
        "parallel": "Parallel Coordinate Plot",
        "importances": "Hyperparameter Importances",
        "slices": "Slice Plot",
        "edf": "Empirical Distribution Function Plot",
        "timeline": "Timeline Plot",
    }
    history = {t.name: dict(zip(t.x, t.y, strict=True)) for t in figs["history"].data}
    assert history["val_acc"] == {h.number: h.value for h in data.history}
    assert {h.number: history["Best Value"][h.number] for h in data.history} == {
        h.number: h.best_so_far for h in data.history
    }
    # The importances drawn are the fANOVA ones of ReportData, not recomputed by another method.
    bars = figs["importances"].data[0]
    assert dict(zip(bars.y, bars.x, strict=True)) == pytest.approx(data.importances, abs=0.01)
    # The timeline has one bar per trial, complete, pruned, failed and running alike.
    assert {t.name for t in figs["timeline"].data} == {"COMPLETE", "PRUNED", "FAIL", "RUNNING"}
    assert sum(len(t.x) for t in figs["timeline"].data) == len(mixed.trials)


def test_report_of_a_study_not_made_by_bnsearch(tmp_path: Path) -> None:
    """Any Optuna study renders: its own params become columns; findings lack data."""
    import optuna

    study = optuna.create_study(direction="maximize")
    study.optimize(
        lambda t: t.suggest_float("x", 0, 1) + (t.suggest_categorical("c", ["a", "b"]) == "a"),
        n_trials=4,
    )
    data = build_report_data(study)
    assert data.searchable == ("c", "x") and data.trials is not None
    assert list(data.trials["x"]) == [t.params["x"] for t in study.trials]
    assert data.strategy is None and {f.verdict for f in data.findings} == {NOT_ESTIMABLE}
    assert write_html(data, all_figures(data), tmp_path / "other.html").exists()
