"""``bnsearch findings``: a designed experiment on BN, paired by seed, with intervals.

``_design`` fixes the arms, grids and budgets; ``_train`` trains one cell (torch, no Optuna);
``_runner`` keeps one Optuna study per dataset × seed and tops it up; ``_estimands`` and
``_claims`` compute each claim's per-seed effects; ``_stats`` holds the statistics (pure,
tested on synthetic data); ``_html`` writes the page and the JSON.
"""

from __future__ import annotations

from bnsearch.findings._claims import Claim, Result, claims, judge
from bnsearch.findings._design import FindingsConfig, design_cells
from bnsearch.findings._html import write_findings_html, write_findings_json
from bnsearch.findings._records import CellRecord
from bnsearch.findings._runner import RunSummary, run_experiment

__all__ = [
    "CellRecord",
    "Claim",
    "FindingsConfig",
    "Result",
    "RunSummary",
    "claims",
    "design_cells",
    "judge",
    "run_experiment",
    "write_findings_html",
    "write_findings_json",
]
