"""The progress line of ``bnsearch run`` (plain output, as in a log file or CI)."""

from __future__ import annotations

import io

import optuna
import pytest
from _synth import make_study, mixed_specs
from optuna.trial import TrialState
from rich.console import Console

from bnsearch.cli.progress import SearchProgress


@pytest.mark.parametrize(
    ("state", "expected"),
    [
        (TrialState.COMPLETE, "(#{n}) complete, val_acc "),
        (TrialState.PRUNED, "(#{n}) pruned: pruned by MedianPruner after epoch 1"),
        (TrialState.FAIL, "(#{n}) failed: "),
    ],
    ids=["complete", "pruned", "failed"],
)
def test_each_line_names_the_trial_once(state: TrialState, expected: str) -> None:
    study = make_study(mixed_specs())
    trial = next(t for t in study.trials if t.state == state)
    out = io.StringIO()
    progress = SearchProgress(Console(file=out, width=200), total=30, label="run")
    with progress:
        progress(study, trial)
    line = out.getvalue().strip()
    assert line.startswith(f"trial 1/30 {expected.format(n=trial.number)}"), line
    assert line.count(f"#{trial.number}") == 1 + (study.best_trial.number == trial.number)
    assert f"best {study.best_value:.4f} (#{study.best_trial.number})" in line


def test_best_is_none_before_a_trial_completes() -> None:
    study = optuna.create_study(direction="maximize")
    trial = study.ask()
    study.tell(trial, state=TrialState.PRUNED)
    out = io.StringIO()
    with SearchProgress(Console(file=out, width=200), total=2, label="run") as progress:
        progress(study, study.trials[0])
    assert "| best: none yet |" in out.getvalue()
