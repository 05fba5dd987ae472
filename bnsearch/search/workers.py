"""N worker processes on one storage: an exact trial count, a thread and device split, and a
parent that follows the whole study.

Optuna's distributed mode does the real work: every worker is a separate process that opens
the same storage, loads the same study and calls ``study.optimize``. What this module adds:

* **Tickets.** ``--trials T`` means "this run adds exactly T trials". The parent holds a
  process-shared semaphore of T tickets; a worker takes one before each trial
  (``study.optimize(n_trials=1)``), so fast workers do more trials and the total is exact.
  A trial re-queued by Optuna's heartbeat retry is popped by the next ``ask`` and uses a
  ticket like any other trial.
* **Split.** Each worker gets ``free cores // N`` torch threads (``core/cpu.py``: cores that other
  processes keep busy right now are left alone) and its own device when there are several
  GPUs (``--devices`` or round-robin over ``cuda:0..``).
* **Signals.** SIGINT / SIGTERM close the running trial as failed with the reason
  ``interrupted`` (``search.objective`` writes it) and the process exits; the parent forwards the
  signal to its workers, waits for them, and reports. A worker that dies without a word
  (SIGKILL, out of memory) leaves its trial RUNNING; heartbeats fail and retry it.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import sys
import threading
import time
from collections.abc import Callable, Collection, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, Literal

from bnsearch import keys
from bnsearch.config import RunConfig, resolve_device
from bnsearch.core.cpu import default_threads, set_threads
from bnsearch.errors import BnsearchError, ConfigError

if TYPE_CHECKING:
    import optuna

    from bnsearch.search.run import SearchSetup

logger = logging.getLogger(__name__)

TrialCallback = Callable[["optuna.Study", "optuna.trial.FrozenTrial"], None]

STOP_TIMEOUT_S = 30.0  # after forwarding a signal, wait this long for workers before SIGKILL
START_BARRIER_S = 120.0  # workers wait this long for each other before the first trial
EXIT_INTERRUPTED = 130  # 128 + SIGINT, what shells report for a Ctrl-C


@dataclass(frozen=True, slots=True)
class WorkerSlot:
    """Where one worker runs."""

    index: int  # 0..N-1; also part of its sampler seed
    device: str  # resolved torch device, e.g. "cpu" or "cuda:1"
    threads: int  # torch CPU threads (intra-op) for this worker


@dataclass(frozen=True, slots=True)
class WorkerExit:
    slot: WorkerSlot
    pid: int
    exitcode: int  # negative: killed by that signal (multiprocessing's convention)

    @property
    def how(self) -> str:
        if self.exitcode < 0:
            try:
                return f"killed by {signal.Signals(-self.exitcode).name}"
            except ValueError:
                return f"killed by signal {-self.exitcode}"
        return f"exit code {self.exitcode}"


@dataclass(frozen=True, slots=True)
class WorkersOutcome:
    """What happened to a multi-worker run."""

    exits: tuple[WorkerExit, ...]
    trials_run: int  # trials of this run that finished (complete, pruned or failed)
    signum: int | None  # the signal that interrupted the run, if any

    @property
    def failed_workers(self) -> tuple[WorkerExit, ...]:
        """Workers that ended abnormally, not counting a clean stop after an interrupt."""
        clean = {0, EXIT_INTERRUPTED, 128 + signal.SIGTERM}
        return tuple(e for e in self.exits if e.exitcode not in clean)


def plan_workers(cfg: RunConfig, devices: Sequence[str] = ()) -> tuple[WorkerSlot, ...]:
    """Give each of ``cfg.workers`` workers (at most one per trial) a device and a CPU share.

    Args:
        cfg: The run; ``workers``, ``device`` and ``threads`` are read.
        devices: Devices to spread the workers over round-robin (``--devices``). Empty: all
            visible GPUs round-robin when ``cfg.device`` is ``auto``/``cuda`` and there are
            several, otherwise ``cfg.device`` for every worker.

    Raises:
        ConfigError: a device is unknown or not available here.
    """
    if cfg.workers < 1:
        raise ConfigError(f"--workers must be ≥ 1, got {cfg.workers}")
    if devices:
        resolved = [resolve_device(d) for d in devices]
    else:
        dev = resolve_device(cfg.device)
        resolved = [dev]
        if dev == "cuda":
            import torch

            if torch.cuda.device_count() > 1:
                resolved = [f"cuda:{i}" for i in range(torch.cuda.device_count())]
    # More workers than trials would only start processes that find no ticket.
    n = min(cfg.workers, cfg.trials)
    # Split the idle cores so N workers never run more threads than there are free cores.
    threads = cfg.threads or default_threads(n)
    return tuple(WorkerSlot(i, resolved[i % len(resolved)], threads) for i in range(n))


def parse_devices(text: str | None) -> tuple[str, ...]:
    """``"cuda:0, cuda:1"`` → ``("cuda:0", "cuda:1")``; None or blank → ``()``."""
    if text is None:
        return ()
    parts = tuple(p.strip() for p in text.split(","))
    if not any(parts) or not all(parts):
        raise ConfigError(f"--devices must be a comma-separated list like cuda:0,cuda:1, got {text!r}")
    return parts


@dataclass
class _Interrupt:
    signum: int | None = None


@contextmanager
def interrupts_raise(*, second: Literal["ignore", "default"] = "default") -> Iterator[_Interrupt]:
    """Turn the first SIGINT or SIGTERM into ``KeyboardInterrupt``, so trials are closed.

    Args:
        second: What a later signal does while the first is being handled: ``"default"``
            (a second Ctrl-C kills the process at once, for a user at a terminal) or
            ``"ignore"`` (workers: finish closing the trial; the parent escalates if needed).

    Yields:
        A record whose ``signum`` is the signal received, if any. Handlers are restored on exit.
    """
    state = _Interrupt()
    watched = (signal.SIGINT, signal.SIGTERM)
    if threading.current_thread() is not threading.main_thread():
        yield state  # signal handlers can only be set from the main thread
        return
    previous = {s: signal.getsignal(s) for s in watched}

    def handler(signum: int, frame: Any) -> None:
        if state.signum is not None:
            return
        state.signum = signum
        for s in watched:
            signal.signal(s, signal.SIG_IGN if second == "ignore" else signal.SIG_DFL)
        raise KeyboardInterrupt

    for s in watched:
        signal.signal(s, handler)
    try:
        yield state
    finally:
        for s, h in previous.items():
            signal.signal(s, h)


def exit_code(signum: int | None) -> int:
    """The shell convention: 128 + the signal number (130 for SIGINT, 143 for SIGTERM)."""
    return 128 + (signum or signal.SIGINT)


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

    storage = study._storage
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
    storage = study._storage  # Optuna's public Study has no "fail this trial" call
    for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        if t._trial_id not in started and t.user_attrs.get(keys.WORKER) != worker:
            continue
        try:
            storage.set_trial_user_attr(t._trial_id, keys.FAIL_REASON, "interrupted")
            if storage.set_trial_state_values(t._trial_id, state=TrialState.FAIL):
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

    from bnsearch.study import MAX_RETRY

    trials = study.get_trials(deepcopy=False)
    retried = {n for t in trials for n in t.system_attrs.get("retry_history", [])}
    queued = []
    for t in trials:
        if (
            t.state != TrialState.FAIL
            or (t.user_attrs.get(keys.WORKER) != worker and t._trial_id not in started)
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


def prepare_workers(cfg: RunConfig, devices: Sequence[str] = ()) -> tuple[SearchSetup, tuple[WorkerSlot, ...]]:
    """Validate everything and create or resume the study once, in the parent, before any worker.

    The parent's copy of the data stays on the CPU; each worker loads its own onto its device.

    Raises:
        BnsearchError: any bad option, device, space, dataset or storage; nothing is written then.
    """
    from bnsearch.search.run import prepare_search

    cfg.validate()
    slots = plan_workers(cfg, devices)
    setup = prepare_search(replace(cfg, device="cpu"), train_devices=[s.device for s in slots])
    return setup, slots


def run_workers(
    setup: SearchSetup,
    slots: Sequence[WorkerSlot],
    *,
    on_trial: TrialCallback | None = None,
    poll_interval_s: float = 1.0,
    verbosity: int = 0,
) -> WorkersOutcome:
    """Run ``setup.cfg.trials`` trials on ``len(slots)`` worker processes sharing the study.

    Args:
        setup: From ``prepare_workers`` (the study exists, every input is valid).
        slots: One per worker.
        on_trial: Called in this process for every trial of this run that finished, found
            by polling the storage (so it sees all workers).
        poll_interval_s: How often the storage is polled.
        verbosity: Log level of the workers (-1 quiet, 0 warnings, 1 info).

    Returns:
        How the workers ended, how many trials finished, and the interrupting signal if any.
    """
    import multiprocessing as mp

    cfg = setup.cfg
    ctx = mp.get_context("spawn")  # fork after torch/SQLAlchemy initialised is unsafe
    tickets = ctx.Semaphore(cfg.trials)
    barrier = ctx.Barrier(len(slots))
    deadline = None if cfg.timeout_s is None else time.time() + cfg.timeout_s
    procs = []
    for slot in slots:
        wcfg = replace(cfg, device=slot.device, threads=slot.threads)
        p = ctx.Process(
            target=_worker_main,
            args=(wcfg, slot.index, tickets, barrier, deadline, verbosity),
            name=f"bnsearch-worker-{slot.index}",
        )
        procs.append(p)
    watch = _Watch(setup.study, on_trial=on_trial)
    signum = None
    with interrupts_raise(second="default") as intr:
        try:
            for p in procs:
                p.start()
            watch.workers = {worker_id(p.pid) for p in procs}
            while any(p.is_alive() for p in procs):
                for p in procs:
                    p.join(timeout=poll_interval_s / len(procs))
                watch.poll()
        except KeyboardInterrupt:
            signum = intr.signum or signal.SIGINT
            _stop(procs, signum)
    watch.poll()
    exits = tuple(
        WorkerExit(s, p.pid or 0, p.exitcode if p.exitcode is not None else -9)
        for s, p in zip(slots, procs, strict=True)
    )
    return WorkersOutcome(exits=exits, trials_run=watch.seen_count, signum=signum)


def _stop(procs: Sequence[Any], signum: int) -> None:
    """Forward ``signum`` to live workers; SIGKILL any still running after ``STOP_TIMEOUT_S``."""
    for p in procs:
        if p.is_alive() and p.pid is not None:
            try:
                os.kill(p.pid, signum)
            except ProcessLookupError:
                pass
    end = time.monotonic() + STOP_TIMEOUT_S
    for p in procs:
        p.join(timeout=max(0.0, end - time.monotonic()))
    for p in procs:
        if p.is_alive():
            logger.warning("worker %s did not stop in %.0f s; killing it", p.name, STOP_TIMEOUT_S)
            p.kill()
            p.join()


class _Watch:
    """Polls the storage for trials of this run that finished and passes them to ``on_trial``."""

    def __init__(self, study: optuna.Study, *, on_trial: TrialCallback | None) -> None:
        self.study = study
        self.on_trial = on_trial
        self.workers: set[str] = set()
        self.seen: set[int] = set()

    @property
    def seen_count(self) -> int:
        return len(self.seen)

    def poll(self) -> None:
        from optuna.trial import TrialState

        finished = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)
        try:
            trials = self.study.get_trials(deepcopy=False, states=finished)
        except Exception as e:  # a busy or briefly unreachable database: try again next poll
            logger.info("could not poll the study: %s", e)
            return
        for t in sorted(trials, key=lambda t: t.number):
            if t.number in self.seen or t.user_attrs.get(keys.WORKER) not in self.workers:
                continue
            self.seen.add(t.number)
            if self.on_trial is not None:
                self.on_trial(self.study, t)


def set_backends(device: str) -> None:
    """Process-wide backend settings for training on ``device`` (entry points only)."""
    import torch

    if device.startswith("cuda"):
        # Trials repeat the same few conv shapes, so autotuning pays off after the first batch.
        torch.backends.cudnn.benchmark = True


def _worker_main(
    cfg: RunConfig,
    index: int,
    tickets: Any,
    barrier: Any,
    deadline: float | None,
    verbosity: int,
) -> None:
    """A worker process: open the study, then run one trial per ticket until none are left.

    This is a process entry point (like the CLI), so it owns the process: it sets threads
    and logging, and it exits with 2 on bad input and 128 + signal after an interrupt.
    """
    study: optuna.Study | None = None
    # Handlers first, before the slow imports: a Ctrl-C during start-up then ends the worker
    # quietly instead of printing an import traceback.
    with interrupts_raise(second="ignore") as intr:
        try:
            import optuna

            logging.basicConfig(
                level=logging.WARNING if verbosity <= 0 else logging.INFO,
                format=f"%(levelname)s worker {index}: %(message)s",
            )
            optuna.logging.set_verbosity(optuna.logging.INFO if verbosity > 0 else optuna.logging.ERROR)
            set_threads(cfg.threads or 1, 1)
            from bnsearch.config import resolve_pack
            from bnsearch.search.budget import BudgetReached
            from bnsearch.search.run import make_objective, optimize, prepare_search, run_callbacks

            setup = prepare_search(cfg, worker_index=index)
            set_backends(str(setup.data.device))
            study = setup.study
            started = track_running_trials(study)
            objective = make_objective(setup)
            callbacks = run_callbacks(setup)
            try:
                # Start together, so one fast starter does not take every ticket.
                barrier.wait(timeout=START_BARRIER_S)
            except threading.BrokenBarrierError:
                pass

            def take_ticket() -> bool:
                return (deadline is None or time.time() < deadline) and bool(tickets.acquire(block=False))

            packed = resolve_pack(setup.cfg.pack, setup.data.device.type) > 1
            while packed or take_ticket():
                try:
                    if packed:  # asks for tickets itself, K at a time
                        optimize(setup, take_ticket=take_ticket)
                        break
                    study.optimize(objective, n_trials=1, catch=(Exception,), callbacks=callbacks, gc_after_trial=False)
                except BudgetReached:
                    break  # the study holds --max-trials: a clean stop
                except Exception as e:
                    if intr.signum is None:
                        raise
                    # Interrupted while Optuna was recording the trial (e.g. the database was
                    # busy with the other workers closing theirs): close it below, one line.
                    logger.warning("interrupted while recording a trial: %s", str(e).splitlines()[0])
                    raise KeyboardInterrupt from None
        except KeyboardInterrupt:
            if study is not None:
                close_interrupted(study, worker_id(), started)
            sys.exit(exit_code(intr.signum))
        except BnsearchError as e:
            barrier.abort()
            print(f"error: worker {index}: {e}", file=sys.stderr)
            sys.exit(2)
