"""The words both findings speak: claim keys and verdicts.

``bnsearch findings`` (the designed experiment) and the report's exploratory findings test
the same claims of the source article; naming them here keeps the two from drifting apart.
A claim tested once per activation gets ``per_activation(key, activation)``, once per network
of design 2 ``on_net(net, key)``, and on test NLL ``nll(key)``.
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
# Design 2 (``bnsearch findings --design 2``): the optimal and the largest stable lr apart, and
# gamma 0 on the last BN of each residual branch where Goyal et al.'s claim lives.
BN_OPTIMAL_LR = "bn_optimal_lr"  # ratio of the best-validation lrs
BN_STABLE_LR = "bn_stable_lr"  # ratio of the largest lrs the short probe finds stable
GAMMA_ZERO_LAST_DIVERGENCE = "gamma_zero_last_divergence"  # share of high-lr cells that diverge
GAMMA_ZERO_LAST_EARLY_LOSS = "gamma_zero_last_early_loss"  # training loss over the first steps
# The controls of every design-2 run: not claims, but checks that the pipeline can see an effect
# known to exist and sees none where none exists.
CONTROL_POSITIVE = "control_positive"
CONTROL_NEGATIVE = "control_negative"


def per_activation(key: str, activation: str) -> str:
    """The key of ``key``'s claim tested with one activation, e.g. ``bn_accuracy_tanh``."""
    return f"{key}_{activation}"


def on_net(net: str, key: str) -> str:
    """The key of ``key``'s claim tested on one network of design 2, e.g. ``plain:bn_accuracy``
    (the prefix the arms carry)."""
    return f"{net}:{key}"


def nll(key: str) -> str:
    """The key of an accuracy claim's secondary twin on test NLL, e.g. ``plain:bn_accuracy_nll``."""
    return f"{key}_nll"
