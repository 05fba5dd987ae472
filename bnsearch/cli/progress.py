"""Progress of a search drawn from Optuna callbacks: a live bar on a terminal, a line per trial
otherwise (logs, CI, pipes). Shell code: only the CLI uses it."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from optuna.trial import TrialState
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn, TimeElapsedColumn

from bnsearch import keys
from bnsearch.search.budget import counted_trials

if TYPE_CHECKING:
    import optuna


class SearchProgress:
    """An Optuna callback that shows trial n/N, best so far and elapsed time.

    With ``study_total`` (``--max-trials``) the count is the whole study's: finished trials of
    every process and machine out of the study-wide budget.
    """

    def __init__(self, console: Console, *, total: int, label: str, study_total: int | None = None) -> None:
        self.console = console
        self.study_total = study_total
        self.total = total if study_total is None else study_total
        self.done = 0
        self.start = time.perf_counter()
        self.live = console.is_terminal
        self._progress: Progress | None = None
        self._task: TaskID | None = None
        self.label = label

    def __enter__(self) -> SearchProgress:
        if self.live:
            self._progress = Progress(
                TextColumn("[bold]{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
                TextColumn("{task.fields[status]}"),
                console=self.console,
            )
            self._progress.start()
            self._task = self._progress.add_task(self.label, total=self.total, status="")
        return self

    def __exit__(self, *exc: object) -> None:
        if self._progress is not None:
            self._progress.stop()

    @property
    def elapsed_s(self) -> float:
        return time.perf_counter() - self.start

    def __call__(self, study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        self.done += 1
        status = _best_text(study)
        note = _trial_text(trial)
        count = f"{self.done}/{self.total}"
        if self.study_total is not None:
            finished = study.get_trials(
                deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)
            )
            in_study = counted_trials(finished)
            count, status = f"{self.done}", f"study {in_study}/{self.study_total} | {status}"
        if self._progress is not None and self._task is not None:
            if self.study_total is None:
                self._progress.update(self._task, advance=1, status=status)
            else:
                self._progress.update(self._task, completed=in_study, status=status)
            if trial.state != TrialState.COMPLETE:
                self._progress.console.print(f"  trial #{trial.number} {note}", highlight=False)
        else:
            elapsed = time.perf_counter() - self.start
            self.console.print(
                f"trial {count} (#{trial.number}) {note} | {status} | {elapsed:.0f}s",
                highlight=False,
            )


def _best_text(study: optuna.Study) -> str:
    try:
        best = study.best_trial
    except ValueError:
        return "best: none yet"
    return f"best {best.value:.4f} (#{best.number})"


def _trial_text(trial: optuna.trial.FrozenTrial) -> str:
    if trial.state == TrialState.COMPLETE:
        return f"complete, val_acc {trial.value:.4f}"
    if trial.state == TrialState.PRUNED:
        return f"pruned: {trial.user_attrs.get(keys.PRUNE_REASON, 'pruned')}"
    if trial.state == TrialState.FAIL:
        return f"failed: {trial.user_attrs.get(keys.FAIL_REASON, 'unknown error')}"
    return trial.state.name.lower()
