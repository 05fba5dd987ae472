"""A command that starts processes stops them all when it is stopped by a signal to its own pid.

``kill PID`` (SIGTERM: what ``timeout``, systemd, ``docker stop`` and a notebook's stop button
send) and ``kill -INT PID`` reach the parent alone, unlike Ctrl-C in a terminal, which reaches
the whole process group. Each command must pass the signal on, exit within a few seconds, leave
no process behind and, for searches, leave no trial RUNNING.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import optuna
import pytest
from _synth import make_study, mixed_specs
from optuna.trial import TrialState

from bnsearch import keys
from bnsearch.storages import open_storage

pytestmark = pytest.mark.slow

STOP_WITHIN_S = 15.0  # a few seconds is the aim; this leaves room for a loaded CI machine
QUICK = ("--dataset", "digits", "--strategy", "random", "--pruner", "none", "--save-models", "none", "--workers", "1")


def _children() -> dict[int, list[int]]:
    """Every process's children, from /proc."""
    out: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        out.setdefault(ppid, []).append(int(entry.name))
    return out


def descendants(pid: int) -> set[int]:
    children = _children()
    found: set[int] = set()
    todo = [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            if child not in found:
                found.add(child)
                todo.append(child)
    return found


def alive(pid: int) -> bool:
    """Running (a zombie waiting for its reaper counts as gone)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def _port_free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _start(args: list[str], cwd: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "bnsearch", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        cwd=cwd,
    )


def _wait_until(check: object, timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)


def stop_and_check(
    proc: subprocess.Popen[str], signum: int, *, children: int, busy: Callable[[], bool] = lambda: True
) -> str:
    """Wait for ``children`` child processes and until they are ``busy``, send ``signum`` to
    ``proc`` alone, and check that it exits within ``STOP_WITHIN_S`` and leaves no process behind."""
    _wait_until(lambda: len(descendants(proc.pid)) >= children or proc.poll() is not None, 120, "the children")
    family = descendants(proc.pid)
    _wait_until(lambda: busy() or proc.poll() is not None, 120, "the children to get to work")
    assert proc.poll() is None, proc.communicate()[0]
    family |= descendants(proc.pid)
    sent = time.monotonic()
    os.kill(proc.pid, signum)
    try:
        out, _ = proc.communicate(timeout=STOP_WITHIN_S + 30)
    except subprocess.TimeoutExpired:
        proc.kill()
        for pid in descendants(proc.pid) | family:
            if alive(pid):
                os.kill(pid, signal.SIGKILL)
        raise
    took = time.monotonic() - sent
    _wait_until(lambda: not any(alive(p) for p in family), 5, "the children to be gone")
    assert took < STOP_WITHIN_S, f"took {took:.1f} s to stop\n{out}"
    print(f"stopped in {took:.1f} s")  # shown with -s: the figure docs/cluster.md quotes
    assert "Traceback" not in out, out
    return out


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_dashboard_stopped_by_a_signal_to_its_pid_leaves_no_server(signum: int, tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 's.db'}"
    make_study(mixed_specs(), storage=url, name="mixed")
    port = _free_port()
    proc = _start(["dashboard", "--storage", url, "--port", str(port)], tmp_path)
    _wait_until(lambda: not _port_free(port) or proc.poll() is not None, 60, "the server")
    out = stop_and_check(proc, signum, children=1)
    assert proc.returncode == 0, out
    assert _port_free(port)


def _trials(url: str, state: TrialState) -> list[optuna.trial.FrozenTrial]:
    """The trials in ``state`` of every study in ``url`` (none while the file does not exist)."""
    if not Path(url.removeprefix("sqlite:///")).exists():
        return []
    try:
        storage = open_storage(url, create=False, heartbeat=False)
        studies = [optuna.load_study(study_name=s.study_name, storage=storage) for s in storage.get_all_studies()]
    except Exception:  # StudyError while the first process creates the tables
        return []
    return [t for study in studies for t in study.get_trials(deepcopy=False, states=(state,))]


def _all_trials(url: str) -> list[optuna.trial.FrozenTrial]:
    return [t for state in TrialState for t in _trials(url, state)]


def _two_trials_running(url: str) -> Callable[[], bool]:
    return lambda: len(_trials(url, TrialState.RUNNING)) >= 2


def _nothing_lost(url: str) -> None:
    """No trial left RUNNING, and each interrupted one queued again (the next run trains it)."""
    assert not _trials(url, TrialState.RUNNING)
    interrupted = [t for t in _trials(url, TrialState.FAIL) if t.user_attrs.get(keys.FAIL_REASON) == "interrupted"]
    everything = [(t.number, t.state.name, t.user_attrs.get(keys.FAIL_REASON)) for t in _all_trials(url)]
    assert interrupted, f"no trial was interrupted: {everything}"
    queued = {t.system_attrs.get("failed_trial") for t in _trials(url, TrialState.WAITING)}
    assert {t.number for t in interrupted} <= queued


# Searches whose trials are long enough (20 epochs) that the signal lands mid-trial.
_SEARCHES = {
    "run": ["run", *QUICK, "--epochs", "20", "--trials", "40", "--workers", "2", "--study", "w"],
    "compare": ["compare", "--strategies", "random,tpe", "--seeds", "1", "--trials", "40", "--epochs", "20"]
    + ["--dataset", "digits", "--pruner", "none", "--workers", "2"],
}


@pytest.mark.parametrize("command", list(_SEARCHES))
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_a_search_with_workers_stopped_by_a_signal_to_its_pid_loses_nothing(
    command: str, signum: int, tmp_path: Path
) -> None:
    url = f"sqlite:///{tmp_path / 's.db'}"
    proc = _start([*_SEARCHES[command], "--storage", url], tmp_path)
    out = stop_and_check(proc, signum, children=2, busy=_two_trials_running(url))
    assert proc.returncode == 128 + signum, out
    assert f"interrupted by {signal.Signals(signum).name}" in out
    _nothing_lost(url)


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_findings_with_workers_stopped_by_a_signal_to_its_pid(signum: int, tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 's.db'}"
    args = [
        "findings",
        "--design",
        "1",
        "--quick",
        "--seeds",
        "2",
        "--workers",
        "2",
        "--storage",
        url,
        "--out",
        "f.html",
    ]
    proc = _start(args, tmp_path)
    # Cells are stored only once trained: nothing to watch for, so give the workers time to start.
    start = time.monotonic()
    out = stop_and_check(proc, signum, children=2, busy=lambda: time.monotonic() - start > 8)
    assert proc.returncode == 128 + signum, out
    assert f"interrupted by {signal.Signals(signum).name}" in out
