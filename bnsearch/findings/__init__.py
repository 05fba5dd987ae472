"""``bnsearch findings``: a designed experiment on BN, paired by seed, with intervals.

``_design`` fixes the arms, grids and budgets; ``_train`` trains one cell (torch, no Optuna);
``_runner`` keeps one Optuna study per dataset × seed and tops it up; ``_estimands`` and
``_effects`` compute each claim's per-seed effects; ``_catalogue`` lists the claims;
``_judge`` turns effects into intervals, verdicts and sentences with ``bnsearch.stats`` (pure, tested
on synthetic data); ``_html`` writes the page and the JSON. Claim keys and verdict words are
``bnsearch.claims``'s.
"""

from __future__ import annotations

from bnsearch.findings._catalogue import Claim, claims
from bnsearch.findings._design import FindingsConfig, design_cells
from bnsearch.findings._html import write_findings_html, write_findings_json
from bnsearch.findings._judge import Result, judge
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
