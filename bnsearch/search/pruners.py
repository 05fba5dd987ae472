"""Pruner names → Optuna pruners. Steps are epochs, counted from 1.

Optuna is imported when a pruner is built, so the CLI and ``RunConfig.validate`` can read
``PRUNER_NAMES`` without loading it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from bnsearch.errors import ConfigError

if TYPE_CHECKING:
    import optuna

PRUNER_NAMES = ("median", "percentile", "successive-halving", "hyperband", "none")
N_STARTUP_TRIALS = 5  # trials that finish before median/percentile pruning starts


def make_pruner(name: str, *, max_epochs: int) -> optuna.pruners.BasePruner:
    """Build the named pruner for trials of up to ``max_epochs`` epochs.

    Raises:
        ConfigError: ``name`` is not one of ``PRUNER_NAMES``.
    """
    import optuna

    if name == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=N_STARTUP_TRIALS, n_warmup_steps=0)
    if name == "percentile":
        # Keep trials in the best 25% at each epoch.
        return optuna.pruners.PercentilePruner(25.0, n_startup_trials=N_STARTUP_TRIALS, n_warmup_steps=0)
    if name == "successive-halving":
        return optuna.pruners.SuccessiveHalvingPruner(min_resource=1, reduction_factor=3)
    if name == "hyperband":
        return optuna.pruners.HyperbandPruner(min_resource=1, max_resource=max(max_epochs, 1), reduction_factor=3)
    if name == "none":
        return optuna.pruners.NopPruner()
    raise ConfigError(f"unknown pruner '{name}'; choose one of: {', '.join(PRUNER_NAMES)}")
