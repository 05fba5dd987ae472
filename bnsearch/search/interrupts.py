"""Closing the trials of an interrupted search, so nothing is lost.

An interrupt (Ctrl-C, SIGTERM from ``kill``, ``scancel`` or a deleted pod, a preemption) says
nothing about the trial that was running: the trial is closed as failed with the reason
``interrupted`` and queued again with the same parameters, the way Optuna retries a trial
whose process died. ``bnsearch.processes`` turns the signal into an exception; this module
does the closing, for a single ``bnsearch run`` and for every worker process alike.
"""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Collection
from typing import TYPE_CHECKING, Any

from bnsearch import keys
from bnsearch._optuna import storage_of, trial_id_of

if TYPE_CHECKING:
    import optuna

logger = logging.getLogger(__name__)


def worker_id(pid: int | None = None) -> str:
    """``host:pid``, as the objective writes it in the ``worker`` trial attribute."""
    return f"{socket.gethostname()}:{os.getpid() if pid is None else pid}"


def track_running_trials(study: optuna.Study) -> set[int]:
    """The ids of the trials that this process's ``study`` sets RUNNING from now on.

    Optuna makes a trial RUNNING (a new one, or a waiting retry it pops) before the sampler runs
    and before the objective writes the worker attribute; an interrupt in that window would
    otherwise leave a RUNNING trial that nobody closes until heartbeats fail it. Wraps this
    study object's storage calls; nothing else sees the wrapper.
    """
    from optuna.trial import TrialState

    storage = storage_of(study)
    running: set[int] = set()
    create, set_state = storage.create_new_trial, storage.set_trial_state_values

    def create_new_trial(study_id: int, template_trial: Any = None) -> int:
        trial_id = create(study_id, template_trial)
        if template_trial is None or template_trial.state == TrialState.RUNNING:
            running.add(trial_id)
        return trial_id

    def set_trial_state_values(trial_id: int, state: Any, values: Any = None) -> bool:
        changed = set_state(trial_id, state, values)
        if changed and state == TrialState.RUNNING:
            running.add(trial_id)
        return changed

    storage.create_new_trial = create_new_trial  # type: ignore[method-assign]
    storage.set_trial_state_values = set_trial_state_values  # type: ignore[method-assign]
    return running


def close_interrupted(study: optuna.Study, worker: str, started: Collection[int] = ()) -> list[int]:
    """Fail this worker's trials still RUNNING after an interrupt, with the reason ``interrupted``,
    then queue every trial it interrupted again (``requeue_interrupted``).

    Optuna closes the trial itself when the interrupt arrives inside the objective; this
    covers an interrupt that lands in Optuna's own code: between trials, or after a trial was
    made RUNNING and before the objective wrote its worker attribute (``started``, from
    ``track_running_trials``).

    Returns:
        Numbers of the trials closed here.
    """
    from optuna.trial import TrialState

    closed = []
    storage = storage_of(study)  # Optuna's public Study has no "fail this trial" call
    for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        if trial_id_of(t) not in started and t.user_attrs.get(keys.WORKER) != worker:
            continue
        try:
            storage.set_trial_user_attr(trial_id_of(t), keys.FAIL_REASON, "interrupted")
            if storage.set_trial_state_values(trial_id_of(t), state=TrialState.FAIL):
                closed.append(t.number)
        except Exception as e:  # finished meanwhile, or the storage is gone: heartbeats will see to it
            logger.warning("could not close trial #%d: %s", t.number, e)
    try:
        requeue_interrupted(study, worker, started)
    except Exception as e:  # the storage is gone: the trials stay failed, nothing else is lost
        logger.warning("could not queue the interrupted trials again: %s", e)
    return closed


def requeue_interrupted(study: optuna.Study, worker: str, started: Collection[int] = ()) -> list[int]:
    """Queue again, WAITING with the same parameters, the trials ``worker`` closed as interrupted
    (``started``: ids of trials it started, closed before the objective named the worker).

    An interrupt (Ctrl-C, SIGTERM from ``scancel``, a pod deleted, a preemption) says nothing
    about the trial, so it is retried the way Optuna retries a trial whose process died
    (``RetryHeartbeatStaleTrialCallback``: ``failed_trial`` and ``retry_history`` system
    attributes, at most ``MAX_RETRY`` times): the next ``ask`` anywhere, here or on another
    machine, or the next run, trains it again, and ``--max-trials`` counts it once.

    Returns:
        Numbers of the interrupted trials queued again.
    """
    import optuna
    from optuna.trial import TrialState

    from bnsearch.storages import MAX_RETRY

    trials = study.get_trials(deepcopy=False)
    retried = {n for t in trials for n in t.system_attrs.get("retry_history", [])}
    queued = []
    for t in trials:
        if (
            t.state != TrialState.FAIL
            or (t.user_attrs.get(keys.WORKER) != worker and trial_id_of(t) not in started)
            or t.user_attrs.get(keys.FAIL_REASON) != "interrupted"
            or t.number in retried
        ):
            continue
        history = [*t.system_attrs.get("retry_history", []), t.number]
        if len(history) > MAX_RETRY:
            continue
        # Params only: the retry's own attributes (worker, curves, reasons) are written when it runs.
        retry = optuna.trial.create_trial(
            state=TrialState.WAITING,
            params=t.params,
            distributions=t.distributions,
            system_attrs={"failed_trial": t.system_attrs.get("failed_trial", t.number), "retry_history": history},
        )
        study.add_trial(retry)
        queued.append(t.number)
    return queued
