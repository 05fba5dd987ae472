"""The report's data model: study → ``ReportData`` (numbers and verdicts), computed once.

Following Optuna's visualization split, ``build_report_data`` does all the computing and
returns plain data that tests can check; ``figures`` turns it into plotly figures and
``html`` writes them into one file.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from bnsearch import keys
from bnsearch.analysis import learning_curves, load_trials, open_study
from bnsearch.report.findings import Finding, all_findings

if TYPE_CHECKING:
    import optuna
    import pandas as pd

logger = logging.getLogger(__name__)

MIN_TRIALS_FOR_IMPORTANCE = 3  # complete trials before parameter importances are computed


@dataclass(frozen=True, slots=True, kw_only=True)
class HistoryPoint:
    number: int  # trial number
    value: float  # final validation accuracy of the complete trial
    best_so_far: float  # best value among complete trials up to this one


@dataclass(frozen=True, slots=True, kw_only=True, eq=False)
class ReportData:
    """Everything the report shows, computed once from the study."""

    study_name: str
    strategy: str | None  # from the study's attributes (None: not created by bnsearch)
    dataset: str | None
    counts: dict[str, int]  # trial state name → number of trials
    best_number: int | None  # best complete trial (None when none completed)
    best_value: float | None
    best_params: dict[str, Any] = field(default_factory=dict)  # every setting of the best trial
    history: tuple[HistoryPoint, ...] = ()  # complete trials in trial order
    searchable: tuple[str, ...] = ()  # params some sampler chose, sorted
    importances: dict[str, float] | None = None  # param → importance (sums to 1)
    importance_note: str = ""  # why importances are missing, or how they were computed
    findings: tuple[Finding, ...] = ()
    # The latest ``best --confirm`` (keys.CONFIRM_RESULT): leader, per-config intervals, sentences.
    confirm: dict[str, Any] | None = None
    trials: pd.DataFrame | None = None  # analysis.load_trials
    curves: pd.DataFrame | None = None  # analysis.learning_curves
    study: optuna.Study | None = None  # in-memory copy of the study's trials, for Optuna's plots


def _history(trials: pd.DataFrame) -> tuple[HistoryPoint, ...]:
    out: list[HistoryPoint] = []
    best = -math.inf
    done = trials[(trials["state"] == "COMPLETE") & trials["value"].notna()].sort_values("number")
    for number, value in zip(done["number"], done["value"], strict=True):
        best = max(best, float(value))
        out.append(HistoryPoint(number=int(number), value=float(value), best_so_far=best))
    return tuple(out)


def _importances(study: optuna.Study, n_complete: int) -> tuple[dict[str, float] | None, str]:
    import optuna

    if n_complete < MIN_TRIALS_FOR_IMPORTANCE:
        return None, (
            f"parameter importances need at least {MIN_TRIALS_FOR_IMPORTANCE} complete trials; "
            f"this study has {n_complete}"
        )
    try:
        # fANOVA (Optuna's default) over params every complete trial has, so conditional
        # gamma/beta are left out when some nets have no BN.
        imp = optuna.importance.get_param_importances(
            study, evaluator=optuna.importance.FanovaImportanceEvaluator(seed=0)
        )
    except (ValueError, RuntimeError, ZeroDivisionError) as e:
        return None, f"parameter importances could not be computed: {e}"
    if not imp:
        return (
            None,
            "no parameter was searched in every complete trial, so there is nothing to rank",
        )
    return {k: float(v) for k, v in imp.items()}, (
        "fANOVA importances (Optuna) over the parameters every complete trial has"
    )


def build_report_data(study: str | optuna.Study, storage: str | None = None) -> ReportData:
    """Compute everything the report shows.

    Args:
        study: An ``optuna.Study`` or the name of one in ``storage`` (opened read-only).
        storage: Storage URL; default ``bnsearch.config.default_storage()``.

    Raises:
        StudyError: no such database or study.
    """
    st = open_study(study, storage)
    trials = load_trials(st)
    curves = learning_curves(st)
    counts = {str(k): int(v) for k, v in trials["state"].value_counts().sort_index().items()}
    history = _history(trials)
    best_number = best_value = None
    best_params: dict[str, Any] = {}
    if history:
        best = max(history, key=lambda h: (h.value, -h.number))
        best_number, best_value = best.number, best.value
        ft = next(t for t in st.get_trials(deepcopy=False) if t.number == best.number)
        best_params = dict(ft.user_attrs.get(keys.RESOLVED_PARAMS) or ft.params)
    importances, note = _importances(st, len(history))
    attrs = st.user_attrs
    return ReportData(
        study_name=st.study_name,
        strategy=attrs.get(keys.STUDY_STRATEGY),
        dataset=attrs.get(keys.STUDY_DATASET),
        counts=counts,
        best_number=best_number,
        best_value=best_value,
        best_params=best_params,
        history=history,
        searchable=tuple(trials.attrs["searchable"]),
        importances=importances,
        importance_note=note,
        findings=all_findings(trials),
        confirm=attrs.get(keys.CONFIRM_RESULT) if isinstance(attrs.get(keys.CONFIRM_RESULT), dict) else None,
        trials=trials,
        curves=curves,
        study=_memory_copy(st),
    )


def _memory_copy(study: optuna.Study) -> optuna.Study | None:
    """The study's trials in an in-memory study, so that figures never read the database."""
    import optuna

    if len(study.directions) != 1:
        return None  # Optuna's single-objective plots do not apply
    copy = optuna.create_study(direction=study.direction, study_name=study.study_name)
    copy.add_trials(study.get_trials(deepcopy=False))
    return copy
