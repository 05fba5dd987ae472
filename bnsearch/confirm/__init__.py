"""``bnsearch best --confirm``: is the best configuration of a search distinguishable from the next?

``_run`` picks the K best distinct configurations of a study, trains the cells it lacks
(configuration × fresh seed, paired) and stores each in the study; ``_train`` trains one cell
(torch, no Optuna); ``_summary`` ranks the configurations and compares the leader with the
others using ``bnsearch.stats`` (pure)::

    from bnsearch.confirm import ConfirmConfig, confirm_best
    res = confirm_best(ConfirmConfig(storage="sqlite:///studies/bnsearch.db", study="mnist5k-tpe", k=3, seeds=5))
    print(res.summary.verdict, res.test_acc)
"""

from __future__ import annotations

from bnsearch.confirm._run import (
    CellTrainer,
    ConfirmConfig,
    ConfirmResult,
    cell_attr,
    config_key,
    confirm_best,
    select_candidates,
    stored_values,
)
from bnsearch.confirm._summary import (
    Candidate,
    ConfigStats,
    ConfirmSummary,
    Difference,
    summarize,
    summary_to_dict,
)
from bnsearch.confirm._train import CellResult, CellSpec, cell_seed, train_cell

__all__ = [
    "Candidate",
    "CellResult",
    "CellSpec",
    "CellTrainer",
    "ConfigStats",
    "ConfirmConfig",
    "ConfirmResult",
    "ConfirmSummary",
    "Difference",
    "cell_attr",
    "cell_seed",
    "config_key",
    "confirm_best",
    "select_candidates",
    "stored_values",
    "summarize",
    "summary_to_dict",
    "train_cell",
]
