"""The default thread count: decided from what the cores do now, on made-up CPU samples; and
the entry points' flushing of subnormal floats.

Every case where the machine has just gone idle also sets a high 1-minute load average: the
default must not follow it (it lags a minute behind, and sent the default search to one thread
on an idle machine).
"""

from __future__ import annotations

import platform
import subprocess
import sys
from collections.abc import Iterator

import pytest
import torch

from bnsearch.config import RunConfig
from bnsearch.core import cpu
from bnsearch.core.cpu import (
    CpuTimes,
    choose_threads,
    default_threads,
    others_busy,
    parse_proc_stat,
    sample_others_busy,
)
from bnsearch.search.workers import plan_workers

HZ = 100.0

PROC_STAT = """\
cpu  300 10 60 1000 20 0 5 5 0 0
cpu0 100 0 20 500 10 0 2 3 0 0
cpu1 200 10 40 500 10 0 3 2 0 0
intr 281875 0 0
ctxt 1234
procs_running 3
"""


def _times(busy_s: float, own_s: float = 0.0, *, wall_s: float, cores: int = 2) -> CpuTimes:
    """Cumulative times ``wall_s`` into a run in which ``busy_s`` core-seconds were busy."""
    return CpuTimes(busy_s=busy_s, total_s=wall_s * cores, own_s=own_s, cores=cores)


def _scripted(*samples: CpuTimes | None) -> Iterator[CpuTimes | None]:
    yield from samples


@pytest.fixture
def load_average_says_busy(monkeypatch: pytest.MonkeyPatch) -> None:
    """The 1-minute load average right after a minute of work on both cores."""
    monkeypatch.setattr("os.getloadavg", lambda: (1.9, 0.9, 0.4))


# --- parsing and arithmetic -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("cpu_ids", "busy_s", "total_s", "cores"),
    [(None, 3.8, 14.0, 2), ({1}, 2.55, 7.65, 1), ({0}, 1.25, 6.35, 1)],
    ids=["all-cores", "only-cpu1", "only-cpu0"],
)
def test_parse_proc_stat_sums_the_usable_cores(
    cpu_ids: set[int] | None, busy_s: float, total_s: float, cores: int
) -> None:
    # busy = user+nice+system+irq+softirq+steal; idle and iowait are free time.
    assert parse_proc_stat(PROC_STAT, cpu_ids, ticks_per_s=HZ) == pytest.approx((busy_s, total_s, cores))


def test_read_cpu_times_reads_this_machine() -> None:
    if not cpu.PROC_STAT.exists():
        pytest.skip("no /proc/stat here")
    before = cpu.read_cpu_times()
    sum(i * i for i in range(2_000_000))  # burn ≈ 0.1 s of CPU in this process (10 ms ticks)
    after = cpu.read_cpu_times()
    assert before is not None and after is not None
    assert after.cores == cpu.usable_cores()
    assert after.total_s >= before.total_s and after.own_s > before.own_s


@pytest.mark.parametrize(
    ("busy_s", "own_s", "expected"),
    [(0.02, 0.0, 0.1), (0.2, 0.0, 1.0), (0.4, 0.0, 2.0), (0.4, 0.2, 1.0), (0.2, 0.2, 0.0), (0.0, 0.05, 0.0)],
    ids=["idle", "one-other-busy", "two-others-busy", "self-busy-not-counted", "only-self", "clock-skew"],
)
def test_others_busy_counts_cores_used_by_other_processes(busy_s: float, own_s: float, expected: float) -> None:
    before = _times(1000.0, 5.0, wall_s=600.0)
    after = _times(1000.0 + busy_s, 5.0 + own_s, wall_s=600.2)
    assert others_busy(before, after) == pytest.approx(expected)


def test_others_busy_without_a_tick_in_between_is_zero() -> None:
    t = _times(1000.0, wall_s=600.0)
    assert others_busy(t, t) == 0.0


# --- the decision -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("cores", "workers", "busy", "expected"),
    [
        (2, 1, 0.0, 2),
        (2, 1, 0.3, 2),
        (2, 1, 0.8, 1),
        (2, 1, 1.0, 1),
        (2, 1, 2.0, 1),
        (2, 2, 0.0, 1),
        (16, 1, 4.2, 12),
        (16, 4, 0.5, 4),
        (16, 4, 8.0, 2),
        (16, 4, 15.0, 1),
        (8, 3, None, 2),
        (1, 1, 0.0, 1),
    ],
    ids=[
        "idle",
        "background-noise",
        "one-core-mostly-taken",
        "one-other-busy",
        "two-others-busy",
        "two-workers",
        "big-partly-busy",
        "big-four-workers",
        "four-workers-share-free-cores",
        "four-workers-nearly-full",
        "unknown-even-split",
        "one-core",
    ],
)
def test_choose_threads_leaves_busy_cores_alone(cores: int, workers: int, busy: float | None, expected: int) -> None:
    assert choose_threads(cores=cores, workers=workers, others_busy=busy) == expected


@pytest.mark.usefixtures("load_average_says_busy")
@pytest.mark.parametrize(
    ("busy_now", "expected"),
    [(0.05, 2), (1.0, 1), (2.0, 1)],
    ids=["idle-after-a-burst", "one-other-busy", "two-others-busy"],
)
def test_default_follows_the_cores_now_not_the_load_average(busy_now: float, expected: int) -> None:
    samples = _scripted(_times(5000.0, wall_s=3000.0), _times(5000.0 + 0.2 * busy_now, wall_s=3000.2))
    slept: list[float] = []

    def sample() -> float | None:
        return sample_others_busy(read=lambda: next(samples), sleep=slept.append)

    assert default_threads(1, cores=2, sample=sample) == expected
    assert slept == [cpu.SAMPLE_S]


def test_set_threads_uses_both_idle_cores_right_after_a_burst(
    monkeypatch: pytest.MonkeyPatch, load_average_says_busy: None
) -> None:
    """What ``bnsearch run`` does without ``--threads`` on an idle 2-core machine that was busy
    a moment ago: torch gets 2 threads, not 1."""
    samples = _scripted(_times(5000.0, wall_s=3000.0), _times(5000.01, wall_s=3000.2))
    monkeypatch.setattr(cpu, "read_cpu_times", lambda: next(samples))
    monkeypatch.setattr(cpu, "usable_cores", lambda: 2)
    monkeypatch.setattr(cpu.time, "sleep", lambda s: None)
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        assert cpu.set_threads(None, 1) == 2
        assert torch.get_num_threads() == 2
        assert cpu.set_threads(1, 1) == 1  # an explicit --threads wins
    finally:
        torch.set_num_threads(before)


def test_workers_split_the_free_cores(monkeypatch: pytest.MonkeyPatch, load_average_says_busy: None) -> None:
    """``run --workers 2`` on 8 cores of which 4 are busy now: 2 threads each, not 4."""
    samples = _scripted(_times(0.0, wall_s=100.0, cores=8), _times(0.8, wall_s=100.2, cores=8))
    monkeypatch.setattr(cpu, "read_cpu_times", lambda: next(samples))
    monkeypatch.setattr(cpu, "usable_cores", lambda: 8)
    monkeypatch.setattr(cpu.time, "sleep", lambda s: None)
    slots = plan_workers(RunConfig(workers=2, device="cpu"))
    assert [s.threads for s in slots] == [2, 2]


# --- fallbacks ------------------------------------------------------------------------------------


def test_without_proc_stat_the_load_average_is_used(load_average_says_busy: None) -> None:
    assert sample_others_busy(read=lambda: None, sleep=lambda s: None) == 1.9


def test_without_proc_stat_or_load_average_the_cores_are_split(monkeypatch: pytest.MonkeyPatch) -> None:
    def no_loadavg() -> tuple[float, float, float]:
        raise OSError("not here")

    monkeypatch.setattr("os.getloadavg", no_loadavg)
    assert sample_others_busy(read=lambda: None, sleep=lambda s: None) is None
    assert default_threads(2, cores=8, sample=lambda: None) == 4


def test_a_core_going_offline_mid_sample_falls_back(load_average_says_busy: None) -> None:
    samples = _scripted(_times(0.0, wall_s=10.0, cores=4), _times(0.0, wall_s=10.2, cores=3))
    assert sample_others_busy(read=lambda: next(samples), sleep=lambda s: None) == 1.9


_SUBNORMAL_PROBE = """
import sys
import torch
from bnsearch.core.cpu import set_threads
if sys.argv[1] == "entry":
    set_threads(2, 1)
else:
    torch.set_num_threads(2)
tiny = torch.full((1 << 20,), 0x00010000, dtype=torch.int32).view(torch.float32)  # 2**-133: subnormal
print(int((tiny * 1.0).count_nonzero()))
"""


@pytest.mark.skipif(platform.machine() not in ("x86_64", "AMD64"), reason="torch flushes subnormal floats on x86 only")
def test_an_entry_point_flushes_subnormal_floats_in_every_torch_thread() -> None:
    # Subnormal floats made the classifier's backward and saturated sigmoids 10-60x slower.
    # torch's OpenMP workers copy the setting when created, so it must precede the first
    # parallel op; the probe's multiplication runs on both threads.
    def probe(mode: str) -> int:
        out = subprocess.run([sys.executable, "-c", _SUBNORMAL_PROBE, mode], capture_output=True, text=True, check=True)
        return int(out.stdout)

    assert probe("plain") == 1 << 20  # the probe sees subnormals where nothing flushes them
    assert probe("entry") == 0
