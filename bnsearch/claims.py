"""The words both findings speak: claim keys and verdicts.

``bnsearch findings`` (the designed experiment) and the report's exploratory findings test
the same claims of the source article; naming them here keeps the two from drifting apart.
A claim tested once per activation gets ``per_activation(key, activation)``.
"""

from __future__ import annotations

# Verdicts. The exploratory findings, which have no interval, never say EQUIVALENT.
SUPPORTED = "supported"
CONTRADICTED = "contradicted"
EQUIVALENT = "equivalent"  # the 95% interval lies within the claim's margin
INCONCLUSIVE = "inconclusive"  # neither a difference nor its absence is shown
NOT_ESTIMABLE = "not estimable"  # too few seeds, cells or trials to judge

# Claim keys.
BN_ACCURACY = "bn_accuracy"
BN_CONVERGENCE = "bn_convergence"
BN_HIGHER_LR = "bn_higher_lr"
BN_OVERFITTING = "bn_overfitting"
BN_PLACEMENT = "bn_placement"
BN_CLASSIFIER = "bn_classifier"
GAMMA_ZERO_LAST = "gamma_zero_last"  # gamma 0 on the last BN only (Goyal et al.)
GAMMA_ZEROS = "gamma_zeros_degenerate"  # gamma 0 in every BN layer: the output starts constant
ACTIVATION_INTERACTION = "activation_interaction"
BN_ACCURACY_GRID_MEAN = "bn_accuracy_grid_mean"
BN_LR_WINDOW = "bn_lr_window"
BN_CONVERGENCE_TUNED = "bn_convergence_tuned"


def per_activation(key: str, activation: str) -> str:
    """The key of ``key``'s claim tested with one activation, e.g. ``bn_accuracy_tanh``."""
    return f"{key}_{activation}"
