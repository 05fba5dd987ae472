"""How many torch threads a process should run: the usable cores, less those that other
processes keep busy *now*.

Small convolutions run one OpenMP barrier per op, so a thread whose core is taken by another
process stalls all the others: on a 2-core machine with one other busy process a 2-thread
trial ran several times slower than a 1-thread one (benchmarks/README.md). A busy core must
therefore be left alone, but an idle one must be used: on an idle 2-core machine one thread
instead of two costs 1.2–1.7× per trial-epoch.

What "busy" means is measured, not remembered: the per-core CPU times in ``/proc/stat`` are
read twice, :data:`SAMPLE_S` apart, and this process's own CPU time over the same interval is
subtracted. The 1-minute load average that an earlier version used still reads ≥ 1 for a
minute after any command (a ``pip install``, a test run) has finished, and sent the default
search to one thread on an idle machine. Where ``/proc/stat`` is absent (macOS, Windows), the
load average is the best signal left; where that is absent too, the cores are split evenly.

The decision (:func:`choose_threads`) and the arithmetic on two samples (:func:`others_busy`)
are pure; the sampling is injected, so the tests feed them made-up samples.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Collection
from dataclasses import dataclass
from pathlib import Path

logger = logging.getLogger(__name__)

SAMPLE_S = 0.2  # how long the default watches the cores: ≥ 20 ticks of 100 Hz per core, short enough for a CLI start
TAKEN_FRACTION = 0.5  # another process's use of a core from which that core counts as taken
PROC_STAT = Path("/proc/stat")

# /proc/stat per-core columns (proc(5)): user nice system idle iowait irq softirq steal guest
# guest_nice. guest time is already inside user; idle and iowait are time the core was free.
_IDLE_COLUMNS = (3, 4)
_COUNTED_COLUMNS = 8  # user .. steal; steal is time the hypervisor gave the core to others


@dataclass(frozen=True, slots=True)
class CpuTimes:
    """Cumulative CPU time of the usable cores at one instant, and of this process."""

    busy_s: float  # seconds the usable cores ran anything (any process), summed over the cores
    total_s: float  # seconds the usable cores existed (busy + idle), summed over the cores
    own_s: float  # CPU seconds this process used (all its threads), user + system
    cores: int  # usable cores the sums cover


def usable_cores() -> int:
    """CPU cores this process may run on (its affinity mask, which containers narrow)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def _usable_cpu_ids() -> Collection[int] | None:
    try:
        return os.sched_getaffinity(0)
    except AttributeError:
        return None


def parse_proc_stat(text: str, cpu_ids: Collection[int] | None, *, ticks_per_s: float) -> tuple[float, float, int]:
    """``(busy_s, total_s, cores)`` summed over the ``cpuN`` lines of ``/proc/stat`` text whose
    N is in ``cpu_ids`` (every core when None).

    Per-core lines, not the aggregate ``cpu`` line: in a container limited to some cores the
    aggregate counts the whole host.
    """
    busy = total = 0
    cores = 0
    for line in text.splitlines():
        name, _, rest = line.partition(" ")
        if not name.startswith("cpu") or name == "cpu":
            continue
        if cpu_ids is not None and int(name[3:]) not in cpu_ids:
            continue
        ticks = [int(v) for v in rest.split()[:_COUNTED_COLUMNS]]
        idle = sum(ticks[i] for i in _IDLE_COLUMNS if i < len(ticks))
        total += sum(ticks)
        busy += sum(ticks) - idle
        cores += 1
    return busy / ticks_per_s, total / ticks_per_s, cores


def read_cpu_times() -> CpuTimes | None:
    """The usable cores' CPU times from ``/proc/stat`` now; None where it cannot be read."""
    try:
        text = PROC_STAT.read_text()
        ticks_per_s = float(os.sysconf("SC_CLK_TCK"))
    except (OSError, ValueError, AttributeError):
        return None
    busy_s, total_s, cores = parse_proc_stat(text, _usable_cpu_ids(), ticks_per_s=ticks_per_s)
    if cores == 0:
        return None
    own = os.times()
    return CpuTimes(busy_s=busy_s, total_s=total_s, own_s=own.user + own.system, cores=cores)


def others_busy(before: CpuTimes, after: CpuTimes) -> float:
    """Cores' worth of CPU that processes other than this one used between two samples.

    The interval is read from the cores' own clocks (total time / cores), so the wall-clock
    timing of the two reads does not matter.
    """
    total_s = after.total_s - before.total_s
    if total_s <= 0:  # no tick in between: nothing measured
        return 0.0
    interval_s = total_s / after.cores
    busy = (after.busy_s - before.busy_s) / interval_s
    own = (after.own_s - before.own_s) / interval_s
    return min(float(after.cores), max(0.0, busy - own))


def sample_others_busy(
    interval_s: float = SAMPLE_S,
    *,
    read: Callable[[], CpuTimes | None] | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> float | None:
    """Cores' worth of CPU other processes use now, watched over ``interval_s``.

    Falls back to the 1-minute load average where per-core times cannot be read (it lags by a
    minute but still tells a busy machine from an idle one), and to None where that is
    missing too. ``read`` defaults to :func:`read_cpu_times`.
    """
    read = read or read_cpu_times
    before = read()
    if before is not None:
        sleep(interval_s)
        after = read()
        if after is not None and after.cores == before.cores:
            return others_busy(before, after)
    try:
        return os.getloadavg()[0]
    except (AttributeError, OSError):  # Windows
        return None


def choose_threads(*, cores: int, workers: int, others_busy: float | None) -> int:
    """Torch threads per worker: the cores other processes leave free, split over the workers.

    Args:
        cores: CPU cores this process may use.
        workers: processes of this run that will train at the same time.
        others_busy: cores' worth of CPU other processes use (None: unknown, take the
            even split of all cores).

    Returns:
        At least 1; never more than ``cores // workers``.
    """
    share = max(1, cores // workers)
    if others_busy is None:
        return share
    free = int(cores - others_busy + TAKEN_FRACTION)  # a core is taken once others use half of it
    return max(1, min(share, free // workers))


def default_threads(
    workers: int,
    *,
    cores: int | None = None,
    sample: Callable[[], float | None] | None = None,
) -> int:
    """Torch threads per worker when ``--threads`` is not given: :func:`choose_threads` on
    ``sample()``, by default a fresh :func:`sample_others_busy`."""
    cores = cores or usable_cores()
    busy = (sample or sample_others_busy)()
    n = choose_threads(cores=cores, workers=workers, others_busy=busy)
    shown = "unknown" if busy is None else f"{busy:.2f}"
    logger.info("threads per worker: %d (%d cores, %d workers, others busy: %s cores)", n, cores, workers, shown)
    return n


def flush_denormals() -> bool:
    """Make this process's CPU math treat subnormal floats as zero (FTZ/DAZ), as TensorFlow does.

    A saturated sigmoid, or the softmax gradient of a confident prediction, yields numbers
    below float32's smallest normal one (1.2e-38); on x86 every kernel that touches them
    (matmuls, elementwise ops) runs 10-60x slower. Their contribution to any weight is below
    float32's resolution.

    It must run before torch's first parallel op: torch's OpenMP worker threads copy the
    setting from the main thread when they are created, at that first op, and never again.
    Entry points call it through :func:`set_threads`. Returns False where the CPU lacks it.
    """
    import torch

    return bool(torch.set_flush_denormal(True))


def set_threads(threads: int | None, workers: int) -> int:
    """Set up this process for training (entry points only, before any tensor work): subnormal
    floats flushed (:func:`flush_denormals`) and torch's CPU threads to ``threads``, or
    :func:`default_threads`."""
    import torch

    flush_denormals()
    n = threads or default_threads(workers)
    torch.set_num_threads(n)
    return n


def set_backends(device: str) -> None:
    """Process-wide backend settings for training on ``device`` (entry points only)."""
    import torch

    if device.startswith("cuda"):
        # Trials repeat the same few conv shapes, so autotuning pays off after the first batch.
        torch.backends.cudnn.benchmark = True
