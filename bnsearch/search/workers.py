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
  ``interrupted`` and queue it again (``search.interrupts``), and the process exits; the parent
  passes the signal on to its workers, waits for them, and reports (``bnsearch.processes``). A
  worker that dies without a word (SIGKILL, out of memory) leaves its trial RUNNING; heartbeats
  fail and retry it. A parent that dies without a word takes its workers with it.
"""

from __future__ import annotations

import logging
import signal
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from bnsearch import keys
from bnsearch.config import RunConfig, resolve_device
from bnsearch.core.cpu import default_threads, set_backends, set_threads
from bnsearch.errors import BnsearchError, ConfigError
from bnsearch.processes import (
    EXIT_INTERRUPTED,
    die_with_parent,
    exit_code,
    interrupts_raise,
    spawn_context,
    stop_processes,
)
from bnsearch.search.interrupts import close_interrupted, track_running_trials, worker_id

if TYPE_CHECKING:
    import optuna

    from bnsearch.search.run import SearchSetup

logger = logging.getLogger(__name__)

TrialCallback = Callable[["optuna.Study", "optuna.trial.FrozenTrial"], None]

START_BARRIER_S = 120.0  # workers wait this long for each other before the first trial


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


AUTO = "auto"


def parse_workers(text: str) -> int | None:
    """``--workers``: a count ≥ 1, or ``auto`` (None: decide with :func:`auto_workers`).

    Raises:
        ConfigError: neither.
    """
    if text.strip().lower() == AUTO:
        return None
    try:
        n = int(text)
    except ValueError:
        raise ConfigError(f"--workers must be a count ≥ 1 or auto, got {text!r}") from None
    if n < 1:
        raise ConfigError(f"--workers must be ≥ 1, got {n}")
    return n


def auto_workers(
    device: str,
    *,
    seeded: bool,
    devices: Sequence[str] = (),
    cores: int | None = None,
    sample: Callable[[], float | None] | None = None,
) -> int:
    """``--workers auto``: how many worker processes a run starts.

    - A seeded run (``--seed`` given) gets one worker: with several, which trial samples which
      settings depends on the order the workers finish in, so a rerun would differ.
    - On GPUs, one worker per device (``--devices``, or every visible GPU for ``auto``/``cuda``).
    - On a CPU, one 1-thread worker per core that other processes leave idle right now, decided
      as the thread default is (``core.cpu.default_threads``: the same sample, the same rule): a
      batch-32 step keeps a second thread only partly busy, so two 1-thread processes do more
      trials per minute than one 2-thread process.

    Args:
        device: ``--device`` (auto, cpu, cuda, cuda:N, mps).
        seeded: ``--seed`` was given.
        devices: ``--devices``.
        cores, sample: As for ``default_threads`` (tests inject a CPU load).
    """
    if seeded:
        return 1
    if devices:
        return len(devices)
    dev = resolve_device(device)
    if dev == "cuda":
        import torch

        return max(1, torch.cuda.device_count())
    if dev != "cpu":  # one named GPU, or mps
        return 1
    # default_threads(1) is the idle cores (at least 1, at most the usable ones).
    return default_threads(1, cores=cores, sample=sample)


def parse_devices(text: str | None) -> tuple[str, ...]:
    """``"cuda:0, cuda:1"`` → ``("cuda:0", "cuda:1")``; None or blank → ``()``."""
    if text is None:
        return ()
    parts = tuple(p.strip() for p in text.split(","))
    if not any(parts) or not all(parts):
        raise ConfigError(f"--devices must be a comma-separated list like cuda:0,cuda:1, got {text!r}")
    return parts


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
    cfg = setup.cfg
    ctx = spawn_context()
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
            stop_processes(procs, signum)
    watch.poll()
    exits = tuple(
        WorkerExit(s, p.pid or 0, p.exitcode if p.exitcode is not None else -9)
        for s, p in zip(slots, procs, strict=True)
    )
    return WorkersOutcome(exits=exits, trials_run=watch.seen_count, signum=signum)


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
    die_with_parent()
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
