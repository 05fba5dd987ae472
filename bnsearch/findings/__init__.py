"""``bnsearch findings``: a designed experiment on BN, paired by seed, with intervals.

``_design`` fixes the arms, grids and budgets; ``_train`` trains one cell (torch, no Optuna);
``_runner`` keeps one Optuna study per dataset × seed and tops it up; ``_estimands`` and
``_effects`` compute each claim's per-seed effects; ``_catalogue`` lists the claims of design 1,
``_catalogue2`` those of design 2 (``catalogue(design)`` picks one); ``_controls`` judges design 2's
positive and negative controls and says whether the run can be trusted;
``_judge`` turns effects into intervals, verdicts and sentences with ``bnsearch.stats`` (pure, tested
on synthetic data), at design 2's pre-registered looks when given a plan; ``_looks`` runs design 2
look by look, adding seeds only to undecided claims; ``_html`` writes the page and the JSON. Claim
keys and verdict words are ``bnsearch.claims``'s.
"""

from __future__ import annotations

from bnsearch.findings._catalogue import Claim, claims
from bnsearch.findings._catalogue2 import catalogue, claims2
from bnsearch.findings._controls import ControlResult, Trust, check_controls
from bnsearch.findings._design import FindingsConfig, design_cells
from bnsearch.findings._html import write_findings_html, write_findings_json
from bnsearch.findings._judge import Result, judge
from bnsearch.findings._looks import LooksSummary, run_looks
from bnsearch.findings._records import CellRecord
from bnsearch.findings._runner import RunSummary, run_experiment

__all__ = [
    "CellRecord",
    "Claim",
    "ControlResult",
    "FindingsConfig",
    "LooksSummary",
    "Result",
    "RunSummary",
    "Trust",
    "catalogue",
    "check_controls",
    "claims",
    "claims2",
    "design_cells",
    "judge",
    "run_experiment",
    "run_looks",
    "write_findings_html",
    "write_findings_json",
]
