"""The process pool and the signal plumbing every command with children shares (processes.py).

The jobs are standard-library functions, so the children start without torch in a second.
"""

from __future__ import annotations

import math
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from bnsearch.processes import Interrupted, JobDied, exit_code, run_in_processes, signal_of

ROOT = Path(__file__).resolve().parents[1]


def _gone(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return True
    return state == "Z"  # a zombie waiting for its reaper has stopped


def test_results_come_back_in_the_order_of_the_jobs() -> None:
    seen: list[int] = []
    results = run_in_processes(math.factorial, [5, 3, 6, 1], workers=2, on_result=lambda job, r: seen.append(job))
    assert results == [120, 6, 720, 1]
    assert sorted(seen) == [1, 3, 5, 6]


def test_a_job_that_raises_raises_its_own_error_in_the_parent() -> None:
    with pytest.raises(ValueError, match="factorial"):
        run_in_processes(math.factorial, [3, -1], workers=2)


def test_a_job_whose_process_dies_is_reported() -> None:
    with pytest.raises(JobDied, match=r"ended without a result \(exit code 3\)"):
        run_in_processes(os._exit, [3], workers=1)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="signals and /proc as on Linux")
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_a_signal_to_the_parent_stops_every_job(signum: int) -> None:
    # A real signal to this process's pid alone, as `kill PID` sends; the pool must pass it on.
    pids: list[int] = []

    def children() -> list[int]:
        """This process's job processes (not multiprocessing's resource tracker, which stays)."""
        out = subprocess.run(
            ["ps", "-ww", "-o", "pid=,args=", "--ppid", str(os.getpid())], capture_output=True, text=True
        )
        rows = [line.split(None, 1) for line in out.stdout.splitlines() if line.strip()]
        return [int(pid) for pid, args in rows if "spawn_main" in args]

    def interrupt_later() -> None:
        deadline = time.monotonic() + 30
        while len(children()) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        pids.extend(children())
        time.sleep(0.5)
        os.kill(os.getpid(), signum)

    threading.Thread(target=interrupt_later, daemon=True).start()
    start = time.monotonic()
    with pytest.raises(Interrupted) as caught:
        run_in_processes(time.sleep, [60.0, 60.0], workers=2)
    assert signal_of(caught.value) == signum and exit_code(caught.value.signum) == 128 + signum
    assert time.monotonic() - start < 20, "the jobs were not stopped"
    assert pids and all(_gone(p) for p in pids)


_ORPHAN = """
import sys, time
from bnsearch.processes import die_with_parent, spawn_context

def child() -> None:
    die_with_parent()
    time.sleep(60)

if __name__ == "__main__":
    p = spawn_context().Process(target=child)
    p.start()
    print(p.pid, flush=True)
    time.sleep(60)
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux's")
def test_a_child_dies_with_a_parent_killed_without_a_word(tmp_path: Path) -> None:
    script = tmp_path / "parent.py"
    script.write_text(_ORPHAN)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    parent = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, text=True, env=env)
    assert parent.stdout is not None
    child = int(parent.stdout.readline())
    time.sleep(1.0)  # the child has called die_with_parent by now (it does so first)
    assert not _gone(child)
    parent.kill()
    parent.wait()
    deadline = time.monotonic() + 10
    while not _gone(child) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert _gone(child)
