"""``bnsearch compare``: every strategy × seed as its own study, then curves and a ranking.

``runs`` holds the configuration and the result; ``real`` trains the CNN in every trial;
``surrogate`` (``--benchmark``) runs the same samplers and pruner against a stand-in fitted
to finished trials; ``stats`` ranks the runs; ``html`` writes the page.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from bnsearch.compare.html import write_compare_html
from bnsearch.compare.real import run_real
from bnsearch.compare.runs import CompareConfig, CompareResult, counted_trials, run_from_study
from bnsearch.compare.stats import CompareData, Run, build_compare_data, ranking_rows
from bnsearch.compare.surrogate import run_benchmark_compare

if TYPE_CHECKING:
    from bnsearch.search.run import StudyCallback

__all__ = [
    "CompareConfig",
    "CompareData",
    "CompareResult",
    "Run",
    "build_compare_data",
    "counted_trials",
    "ranking_rows",
    "run_compare",
    "run_from_study",
    "write_compare_html",
]


def run_compare(
    cfg: CompareConfig,
    *,
    on_event: Callable[[str], None] | None = None,
    trial_callbacks: Sequence[StudyCallback] = (),
) -> CompareResult:
    """Run (or resume) every strategy × seed and compute the comparison.

    Args:
        cfg: The comparison.
        on_event: Called with one line per run (started, resumed, already complete).
        trial_callbacks: Optuna callbacks added to every run (e.g. a progress display).

    Returns:
        The curves and ranking, the run studies' names and how many trials this call ran.

    Raises:
        BnsearchError: a bad option, dataset, storage or source study; nothing runs then.
    """
    cfg.validate()
    if cfg.benchmark:
        return run_benchmark_compare(cfg, on_event=on_event, trial_callbacks=trial_callbacks)
    return run_real(cfg, on_event=on_event, trial_callbacks=trial_callbacks)
