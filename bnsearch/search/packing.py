"""``--pack K``: ask K trials of the study at once and train them together as packed models.

Optuna's ask-and-tell drives it: ``study.ask()`` K times (each trial's params are suggested
right after its ask, so a seeded sampler draws the same params per trial number as
``study.optimize`` does, and TPE's constant liar sees the trials already in the pack), then
the trials are grouped by ``bnsearch.core.packed.shape_key`` and each group trains as one packed model
(``bnsearch.core.packed.train_packed``). Each trial is reported, pruned and told on its own: a trial that
is pruned or diverges is told at once and leaves the pack, which shrinks (its slot is not
refilled). What ``study.optimize`` does around a trial is done here for all K: stale trials
are failed first (heartbeats), every open trial sends heartbeats while its pack trains, and
the study's callbacks run after each tell.
"""

from __future__ import annotations

import logging
import time
import warnings
from collections.abc import Callable, Sequence
from contextlib import ExitStack
from typing import TYPE_CHECKING

import optuna
from optuna.trial import TrialState

from bnsearch._optuna import (
    begin_optimize_loop,
    end_optimize_loop,
    heartbeat_thread,
    heartbeats_enabled,
    request_stop,
    stop_requested,
    storage_of,
)
from bnsearch.core.packed import PackMember, net_signature, shape_key, train_packed
from bnsearch.core.train import EpochMetrics, TrainResult
from bnsearch.search.budget import BudgetReached

if TYPE_CHECKING:
    from torch import nn

    from bnsearch.core.space import TrialParams
    from bnsearch.search.objective import Objective

logger = logging.getLogger(__name__)

StudyCallback = Callable[[optuna.Study, optuna.trial.FrozenTrial], None]


def optimize_packed(
    study: optuna.Study,
    objective: Objective,
    *,
    pack: int,
    n_trials: int | None,
    timeout_s: float | None = None,
    callbacks: Sequence[StudyCallback] = (),
    take_ticket: Callable[[], bool] | None = None,
) -> None:
    """Run ``n_trials`` trials (or until ``timeout_s``) in packs of at most ``pack``.

    Args:
        study: The study to ask and tell.
        objective: Suggests, builds, reports and records each trial (as in ``study.optimize``).
        pack: Trials asked at once and trained together.
        n_trials: Trials to run; None: until the timeout, the tickets or ``study.stop()``.
        timeout_s: Start no new pack after this many seconds.
        callbacks: Called with each trial once it is told, like ``study.optimize``'s.
        take_ticket: Called before each ask; False means no more trials (``--workers``).

    Raises:
        KeyboardInterrupt: after closing every open trial of the pack as failed ("interrupted").
    """
    start = time.monotonic()
    done = 0
    notes = _Notes()
    begin_optimize_loop(study)
    try:
        while not stop_requested(study) and (n_trials is None or done < n_trials):
            if timeout_s is not None and time.monotonic() - start >= timeout_s:
                break
            k = pack if n_trials is None else min(pack, n_trials - done)
            if take_ticket is not None:
                k = next((i for i in range(k) if not take_ticket()), k)
            if k == 0:
                break
            _fail_stale(study)
            _run_pack(study, objective, k, callbacks, notes)
            done += k
    finally:
        end_optimize_loop(study)


def _fail_stale(study: optuna.Study) -> None:
    if heartbeats_enabled(storage_of(study)):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            optuna.storages.fail_stale_trials(study)


class _Notes:
    """What this run has told the user already (each note once per run)."""

    def __init__(self) -> None:
        self.split_said = False  # a pack's nets differed in shape (a user factory's nets)


class _Open:
    """One asked trial of the pack until it is told."""

    def __init__(self, trial: optuna.Trial, params: TrialParams | None = None, seed: int = 0) -> None:
        self.trial = trial
        self.params = params  # None: suggesting failed
        self.seed = seed
        self.history: list[EpochMetrics] = []
        self.told = False


def _run_pack(
    study: optuna.Study, objective: Objective, k: int, callbacks: Sequence[StudyCallback], notes: _Notes
) -> None:
    opened: list[_Open] = []
    asked: list[optuna.Trial] = []
    with ExitStack() as heartbeats:
        try:
            for _ in range(k):
                try:
                    asked.append(study.ask())
                except BudgetReached:
                    # The study holds its --max-trials: train what was asked, then stop the loop.
                    request_stop(study)
                    break
                heartbeats.enter_context(heartbeat_thread(asked[-1], storage_of(study)))
                opened.append(_Open(asked[-1], *objective.begin(asked[-1])))
        except BaseException as e:
            # A sampler error or Ctrl-C while asking: close what was asked, like optimize().
            for trial in asked[len(opened) :]:
                opened.append(_Open(trial))
            for o in opened:
                _tell_failed(study, objective, o, None, e, callbacks)
            if isinstance(e, Exception):
                logger.warning("asking the pack failed: %s", e)
                return
            raise
        groups: dict[tuple[object, ...], list[_Open]] = {}
        for o in opened:
            assert o.params is not None
            groups.setdefault(shape_key(o.params), []).append(o)
        for group in groups.values():
            _train_group(study, objective, group, callbacks, notes)


def _train_group(
    study: optuna.Study,
    objective: Objective,
    group: list[_Open],
    callbacks: Sequence[StudyCallback],
    notes: _Notes,
) -> None:
    numbers = [o.trial.number for o in group]
    members = []
    reporting: list[Callable[[], EpochMetrics | None]] = []
    try:
        for o in group:
            assert o.params is not None
            on_epoch, now = objective.reporter(o.trial, o.history)
            reporting.append(now)
            model = objective.build(o.params, o.seed)
            members.append(
                PackMember(
                    model=model,
                    params=o.params,
                    seed=o.seed,
                    on_epoch=on_epoch,
                    on_end=_teller(study, objective, o, model, callbacks),
                )
            )
        # Equal params give equal nets for the built-in models; a user factory's nets can
        # still differ, and only nets of one shape can be stacked.
        packs: dict[tuple[object, ...], list[int]] = {}
        for i, m in enumerate(members):
            packs.setdefault(net_signature(m.model), []).append(i)
        if len(packs) > 1 and not notes.split_said:
            notes.split_said = True
            logger.warning(
                "--pack: the nets of trials %s differ (a user model builds them from its params), so they "
                "train in groups of identical nets, one by one where no other trial's net matches",
                numbers,
            )
        for idx in packs.values():
            for i in idx:
                objective.mark_packed(group[i].trial, [numbers[j] for j in idx])
            train_packed([members[i] for i in idx], objective.data, cfg=objective.train_cfg)
    except BaseException as e:
        for o, now in zip(group, reporting + [lambda: None] * (len(group) - len(reporting)), strict=True):
            if not o.told:
                _tell_failed(study, objective, o, now(), e, callbacks)
        if not isinstance(e, Exception):
            raise
        logger.warning("pack %s failed: %s: %s", numbers, type(e).__name__, e)


def _teller(
    study: optuna.Study, objective: Objective, o: _Open, model: nn.Module, callbacks: Sequence[StudyCallback]
) -> Callable[[TrainResult], None]:
    """``on_end`` of a member: record the trial's result (and keep its trained ``model`` where
    ``--save-models`` wants it) and tell the study at once."""

    def on_end(result: TrainResult) -> None:
        try:
            value: float | None = objective.conclude(o.trial, result, model)
            state = TrialState.COMPLETE
        except optuna.TrialPruned:
            value, state = None, TrialState.PRUNED
        _tell(study, o, value, state, callbacks)

    return on_end


def _tell_failed(
    study: optuna.Study,
    objective: Objective,
    o: _Open,
    reporting: EpochMetrics | None,
    e: BaseException,
    callbacks: Sequence[StudyCallback],
) -> None:
    try:
        objective.record_failure(o.trial, o.history, reporting, e)
    except Exception as err:  # the storage is gone: heartbeats will fail the trial
        logger.warning("could not record why trial #%d failed: %s", o.trial.number, err)
    _tell(study, o, None, TrialState.FAIL, callbacks)


def _tell(
    study: optuna.Study,
    o: _Open,
    value: float | None,
    state: TrialState,
    callbacks: Sequence[StudyCallback],
) -> None:
    o.told = True
    try:
        frozen = study.tell(o.trial, value, state=None if state == TrialState.COMPLETE else state)
    except optuna.exceptions.UpdateFinishedTrialError:
        return  # failed meanwhile as stale (a very slow epoch); its retry is queued already
    for callback in callbacks:
        callback(study, frozen)
