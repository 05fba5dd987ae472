"""Signals and child processes: an interrupt as an exception, children that stop with their parent.

A bnsearch command that starts processes (``run --workers``, ``compare --workers``,
``findings --workers``, ``dashboard``) must stop them when it is stopped, however the signal
arrives: Ctrl-C in a terminal reaches the whole process group, but ``kill PID``, ``timeout``,
systemd, ``docker stop`` and a notebook's stop button signal the parent alone. So:

* ``interrupts_raise`` turns the first SIGINT or SIGTERM into ``KeyboardInterrupt`` (the
  signal is kept, for the exit code 128 + signal);
* ``stop_processes`` passes that signal on to every live child, waits, then kills what is left;
* ``die_with_parent`` (called first thing in a child) asks Linux to send the child SIGTERM if
  the parent dies without a word (SIGKILL, out of memory), so no child outlives it;
* ``run_in_processes`` is a small process pool built on these: one job per process, at most
  N at once, results back in the parent, and all of it stopped on an interrupt.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Literal, TypeVar

logger = logging.getLogger(__name__)

J = TypeVar("J")
R = TypeVar("R")

EXIT_INTERRUPTED = 130  # 128 + SIGINT, what shells report for a Ctrl-C
STOP_TIMEOUT_S = 30.0  # after passing a signal on, wait this long for children before SIGKILL
_PR_SET_PDEATHSIG = 1  # from <linux/prctl.h>


@dataclass
class Interrupt:
    """The signal that interrupted a block, if any (``interrupts_raise`` fills it in)."""

    signum: int | None = None


class Interrupted(KeyboardInterrupt):
    """The ``KeyboardInterrupt`` that ``interrupts_raise`` raises, with the signal that caused it."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


def signal_of(interrupt: KeyboardInterrupt) -> int:
    """The signal behind a ``KeyboardInterrupt``: its own for ``Interrupted``, else SIGINT."""
    return interrupt.signum if isinstance(interrupt, Interrupted) else signal.SIGINT


@contextmanager
def interrupts_raise(*, second: Literal["ignore", "default"] = "default") -> Iterator[Interrupt]:
    """Turn the first SIGINT or SIGTERM into ``KeyboardInterrupt`` (``Interrupted``, which
    carries the signal) inside the block.

    Args:
        second: What a later signal does while the first is being handled: ``"default"``
            (a second Ctrl-C kills the process at once, for a user at a terminal) or
            ``"ignore"`` (children: finish closing the trial; the parent escalates if needed).

    Yields:
        A record whose ``signum`` is the signal received, if any. Handlers are restored on exit.
    """
    state = Interrupt()
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
        raise Interrupted(signum)

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


def die_with_parent() -> None:
    """Have the kernel send this process SIGTERM when its parent dies (Linux; elsewhere nothing).

    Call it first thing in a child process started by multiprocessing. A parent that died
    before the call has already handed its child to another process; then this child stops
    at once.
    """
    if not sys.platform.startswith("linux"):
        return
    import ctypes
    import multiprocessing

    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
    except (OSError, AttributeError) as e:  # no prctl in this libc: children may outlive a killed parent
        logger.info("cannot tie this process to its parent: %s", e)
        return
    parent = multiprocessing.parent_process()
    if parent is not None and parent.pid is not None and os.getppid() != parent.pid:
        os.kill(os.getpid(), signal.SIGTERM)


def spawn_context() -> Any:
    """multiprocessing's ``spawn`` context: a fresh interpreter per child (a fork would copy
    torch's thread pools, a database connection pool and their locks)."""
    import multiprocessing

    return multiprocessing.get_context("spawn")


def stop_processes(procs: Sequence[Any], signum: int, *, timeout_s: float = STOP_TIMEOUT_S) -> None:
    """Pass ``signum`` on to each live process of ``procs``; SIGKILL any still running after
    ``timeout_s`` (multiprocessing ``Process`` objects)."""
    for p in procs:
        if p.is_alive() and p.pid is not None:
            try:
                os.kill(p.pid, signum)
            except ProcessLookupError:
                pass
    end = time.monotonic() + timeout_s
    for p in procs:
        p.join(timeout=max(0.0, end - time.monotonic()))
    for p in procs:
        if p.is_alive():
            logger.warning("process %s did not stop in %.0f s; killing it", p.name, timeout_s)
            p.kill()
            p.join()


class JobDied(Exception):  # noqa: N818 — named for what happened, like ProcessLookupError
    """A process of ``run_in_processes`` ended without sending its job's result (killed, or
    out of memory)."""


def _child(target: Callable[[Any], Any], job: Any, conn: Any) -> None:
    """A pool process: run one job and send back ``("ok", result)`` or ``("error", exception)``.

    An interrupt ends it with 128 + signal and no result: the job's own code has closed what
    it was doing (``target`` runs under ``interrupts_raise``).
    """
    die_with_parent()
    with interrupts_raise(second="ignore") as intr:
        try:
            result = target(job)
        except KeyboardInterrupt:
            sys.exit(exit_code(intr.signum))
        except Exception as e:
            try:
                conn.send(("error", e))
            except Exception:  # not picklable: send its text
                conn.send(("error", RuntimeError(f"{type(e).__name__}: {e}")))
            return
        conn.send(("ok", result))


def run_in_processes(
    target: Callable[[J], R],
    jobs: Sequence[J],
    *,
    workers: int,
    on_result: Callable[[J, R], None] | None = None,
    stop_timeout_s: float = STOP_TIMEOUT_S,
) -> list[R]:
    """Run ``target(job)`` for every job, each in a fresh process, at most ``workers`` at once.

    ``target`` must be a module-level function (spawn pickles it by name); it runs with
    SIGINT and SIGTERM raising ``KeyboardInterrupt``, so it can close what it was doing.

    Args:
        on_result: Called in this process for each job as it finishes.

    Returns:
        The results, in the order of ``jobs``.

    Raises:
        Interrupted: this process got SIGINT or SIGTERM (``.signum``); the signal was passed
            on to every running job, which stopped (or was killed after ``stop_timeout_s``).
        JobDied: a job's process ended without a result (the others are stopped).
        Exception: the first job that raised, with its own exception (the others are stopped).
    """
    from multiprocessing.connection import wait

    ctx = spawn_context()
    results: dict[int, R] = {}
    running: dict[int, tuple[Any, Any]] = {}  # job index → (process, receiving end)
    todo = list(range(len(jobs)))[::-1]
    with interrupts_raise(second="default"):
        try:
            while todo or running:
                while todo and len(running) < workers:
                    i = todo.pop()
                    recv, send = ctx.Pipe(duplex=False)
                    p = ctx.Process(target=_child, args=(target, jobs[i], send), name=f"bnsearch-job-{i}")
                    p.start()
                    send.close()
                    running[i] = (p, recv)
                ready = set(wait([p.sentinel for p, _ in running.values()]))
                for i, (p, recv) in list(running.items()):
                    if p.sentinel not in ready:
                        continue
                    try:
                        message = recv.recv() if recv.poll() else None
                    except EOFError:  # it died without a word: the pipe is closed and empty
                        message = None
                    p.join()
                    recv.close()
                    del running[i]
                    if message is None:
                        raise JobDied(f"a worker process ended without a result ({_how(p.exitcode)})")
                    status, value = message
                    if status == "error":
                        raise value
                    results[i] = value
                    if on_result is not None:
                        on_result(jobs[i], value)
        except KeyboardInterrupt as e:
            stop_processes([p for p, _ in running.values()], signal_of(e), timeout_s=stop_timeout_s)
            raise
        except BaseException:
            stop_processes([p for p, _ in running.values()], signal.SIGTERM, timeout_s=stop_timeout_s)
            raise
    return [results[i] for i in range(len(jobs))]


def _how(exitcode: int | None) -> str:
    if exitcode is not None and exitcode < 0:
        try:
            return f"killed by {signal.Signals(-exitcode).name}"
        except ValueError:
            return f"killed by signal {-exitcode}"
    return f"exit code {exitcode}"
