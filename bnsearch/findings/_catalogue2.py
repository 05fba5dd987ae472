"""The claims of design 2 (``bnsearch findings --design 2``): tested on the nets where the effect
can exist, the optimal and the largest stable lr apart, gamma 0 where Goyal et al.'s claim lives.

Arm names carry their net (``plain:relu/before``); each arm's lr grid is read from its records
(``_effects.RECORDED``). Every claim lists the arms its effect reads (``Claim.arms``), so the
sequential driver adds seeds only to the cells of claims still undecided. Design 1's catalogue
(``_catalogue.claims``) is untouched; ``catalogue(design)`` picks one.
"""

from __future__ import annotations

import math
from dataclasses import replace

from bnsearch import claims as ck
from bnsearch.findings import _effects as eff
from bnsearch.findings._catalogue import _LITERATURE, ACC_MARGIN, LR_MARGIN, STEPS_MARGIN, STEPS_RESOLUTION, Claim
from bnsearch.findings._catalogue import claims as design1_claims
from bnsearch.findings._design import CHECKPOINT_STEPS, OTHER_ACTIVATIONS
from bnsearch.findings._design2 import CONVERGENCE_TARGET2, PROBE_MARGIN, RESNET_ARMS, RESNET_EARLY_LR, grid_lrs

DESIGNS = (1, 2)
# The spec's grid LRS2: 1e-4 … 10, three per decade. The effects read each arm's grid from its
# records; these numbers only size the resolutions and name the span in the estimands.
LR_SPAN = "lr 1e-4–10, three per decade"
LR_RESOLUTION = math.log(10) / 3  # one grid step of a log lr ratio
HIGH_LR = 0.1  # the failure rate counts the resnet grid's lrs from this one up
# The resnet grid's lrs ≥ HIGH_LR: one cell is 100 / this many points of the rate.
HIGH_LR_CELLS = sum(lr >= HIGH_LR for lr in grid_lrs(RESNET_ARMS[0]))
# Training failed at an lr when the loss diverged or validation accuracy stayed below this: the
# probe's rule for an unstable lr (chance on 10 classes + PROBE_MARGIN). Resnets that fail at
# high lr mostly sit at chance with a finite loss rather than overflow (seen in the pilots).
FAILED_BELOW = 0.1 + PROBE_MARGIN
DIVERGENCE_MARGIN = 10.0  # points of the rate: less than one cell in six, no practical interest
NLL_MARGIN = 0.02  # nats of test NLL: about what a 0.5-point accuracy difference moves it by
EARLY_LOSS_MARGIN = 1.2  # ratio of early training losses (20%)
TRAINING = "design 2's epochs, constant lr without warm-up"

_NETS = {
    "plain": "the deep plain VGG-style CNN (depth ≥ 12)",
    "resnet": "the residual net (depth 6n+2, BN after each conv)",
    "bncnn": "the article's 2-conv ReLU CNN (32–64 channels)",
}
_NLL_KIND = {"increase": "decrease", "decrease": "increase", "not_higher": "not_lower", "not_lower": "not_higher"}
LITERATURE = {
    **_LITERATURE,
    "optimal_lr": (
        "De & Smith 2020 (Batch normalization biases residual blocks towards the identity function in deep "
        "networks): the larger learning rates BN makes stable pay off only at large batch sizes; at small "
        "batches (here 32) the optimal lr is about the same with and without BN."
    ),
    "stable_lr": _LITERATURE["lr"]
    + " De & Smith 2020: BN does raise the largest lr that trains stably, by 10× or more, at any batch size.",
    "zero_last": (
        "Goyal et al. 2017 set gamma to 0 on the last BN of each residual block, so that every block starts "
        "as the identity through its skip path and the net trains like a shallower one at first, which eases "
        "optimisation at the start; they pair it with a gradual warm-up at high learning rates. Here it is "
        "measured at high lr without warm-up, where early instability shows: divergence and early loss."
    ),
}


def _arms(net: str, a: str, b: str) -> tuple[str, str]:
    return f"{net}:{a}", f"{net}:{b}"


def _claim(
    net: str,
    key: str,
    arms: tuple[str, ...],
    *,
    claim: str,
    estimand: str,
    kind: str,
    unit: str,
    margin: float,
    effect: eff.EffectFn,
    literature: str,
    primary: bool = True,
    log_scale: bool = False,
    resolution: float = 0.0,
    training: str = TRAINING,
) -> Claim:
    """A claim of design 2 on ``net``: its key and network named after the net, the arms it reads."""
    return Claim(
        key=ck.on_net(net, key),
        claim=claim,
        estimand=estimand,
        network=_NETS[net],
        kind=kind,
        unit=unit,
        margin=margin,
        primary=primary,
        effect=effect,
        log_scale=log_scale,
        resolution=resolution,
        literature=literature,
        training=training,
        expected=ck.SUPPORTED,  # every design-2 claim is one the literature predicts (see LITERATURE)
        arms=arms,
    )


def _tuned(
    net: str, key: str, a: str, b: str, *, kind: str, claim: str, versus: str, literature: str, primary: bool = True
) -> tuple[Claim, Claim]:
    """A tuned test-accuracy claim (A − B, ``versus`` names the two) and its secondary twin on test NLL."""
    arms = _arms(net, a, b)
    accuracy = _claim(
        net,
        key,
        arms,
        claim=claim,
        estimand=f"test accuracy at each arm's best lr (chosen on validation, {LR_SPAN}), {versus}",
        kind=kind,
        unit="points",
        margin=ACC_MARGIN,
        effect=eff.tuned(*arms, eff.RECORDED),
        literature=literature,
        primary=primary,
    )
    nll = replace(
        accuracy,
        key=ck.nll(accuracy.key),
        claim=f"{claim} (test NLL)",
        estimand=f"test NLL of each arm's net at its best lr (chosen on validation accuracy), {versus}",
        kind=_NLL_KIND[kind],
        unit="nats",
        margin=NLL_MARGIN,
        primary=False,
        effect=eff.tuned_nll(*arms),
    )
    return accuracy, nll


# The two lr claims, apart (De & Smith 2020): key, kind, effect, what is claimed, estimand,
# literature, how the nets trained.
_LR_RATIOS = (
    (ck.BN_OPTIMAL_LR, "not_higher", eff.optimal_lr,
     "BN does not raise the optimal learning rate at small batch (batch 32).",
     f"lr of the best validation accuracy ({LR_SPAN}); ratio BN / no BN", "optimal_lr", TRAINING),
    (ck.BN_STABLE_LR, "increase", eff.stable_lr,
     "BN raises the largest learning rate that trains stably.",
     "largest lr at which a short probe trains without diverging and beats chance by a margin, with every "
     f"probed lr below it stable too (bisection on {LR_SPAN}); ratio BN / no BN",
     "stable_lr", "short probe runs at one lr each"),
)  # fmt: skip


def _plain_lr_claims() -> tuple[Claim, ...]:
    arms = _arms("plain", "relu/before", "relu/none")
    return (
        _claim(
            "plain",
            ck.BN_CONVERGENCE,
            arms,
            claim="BN speeds up convergence.",
            estimand=(
                f"steps to {CONVERGENCE_TARGET2:.0%} validation accuracy (BN statistics recomputed before each "
                f"check, every {CHECKPOINT_STEPS} steps), both at the no-BN arm's best lr; ratio BN / no BN"
            ),
            kind="decrease",
            unit="× steps",
            margin=STEPS_MARGIN,
            effect=eff.steps(*arms, matched=True, lrs=eff.RECORDED, edge=True, target=CONVERGENCE_TARGET2),
            literature=LITERATURE["convergence"],
            log_scale=True,
            resolution=STEPS_RESOLUTION,
        ),
        *(
            _claim(
                "plain",
                key,
                arms,
                claim=claim,
                estimand=estimand,
                kind=kind,
                unit="× lr",
                margin=LR_MARGIN,
                effect=effect(*arms),
                literature=LITERATURE[lit],
                log_scale=True,
                resolution=LR_RESOLUTION,
                training=training,
            )
            for key, kind, effect, claim, estimand, lit, training in _LR_RATIOS
        ),  # fmt: skip
    )


def _resnet_claims() -> tuple[Claim, ...]:
    names = ("relu/post/zero_last", "relu/post")
    arms = _arms("resnet", *names)
    versus = "gamma 0 on the last BN of each branch − gamma 1"
    accuracy, nll = _tuned(
        "resnet",
        ck.GAMMA_ZERO_LAST,
        *names,
        kind="not_lower",
        claim="Gamma = 0 on the last BN of each residual branch trains as well as gamma = 1 (tuned accuracy).",
        versus=versus,
        literature=LITERATURE["zero_last"],
        primary=False,
    )
    return (
        _claim(
            "resnet",
            ck.GAMMA_ZERO_LAST_DIVERGENCE,
            arms,
            claim=(
                "Gamma = 0 on the last BN of each residual branch makes training at high learning rates fail "
                "less often."
            ),
            estimand=(
                f"share of the grid's lrs ≥ {HIGH_LR:g} at which training failed (the loss diverged or validation "
                f"accuracy stayed below {100 * FAILED_BELOW:g}%), {versus}"
            ),
            kind="decrease",
            unit="% of cells",
            margin=DIVERGENCE_MARGIN,
            effect=eff.failure(*arms, low=HIGH_LR, below=FAILED_BELOW),
            literature=LITERATURE["zero_last"],
            resolution=100 / HIGH_LR_CELLS,
        ),
        _claim(
            "resnet",
            ck.GAMMA_ZERO_LAST_EARLY_LOSS,
            arms,
            claim="Gamma = 0 on the last BN of each residual branch lowers the early training loss at high lr.",
            estimand=(
                f"mean training loss over the first steps at lr {RESNET_EARLY_LR:g} (fixed in advance: the highest "
                "grid lr at which both arms trained in the pilot); "
                "ratio gamma 0 on the last BN / gamma 1"
            ),
            kind="decrease",
            unit="× loss",
            margin=EARLY_LOSS_MARGIN,
            effect=eff.early_loss(*arms, lr=RESNET_EARLY_LR),
            literature=LITERATURE["zero_last"],
            primary=False,
            log_scale=True,
        ),
        accuracy,
        nll,
    )


# The tuned-accuracy claims (each with its test-NLL twin):
# net, key, arm A, arm B, kind, what is claimed, A − B in words, literature.
_TUNED = (
    ("plain", ck.BN_ACCURACY, "relu/before", "relu/none", "increase", "BN improves accuracy.",
     "BN before the activation − no BN", "accuracy"),
    ("plain", ck.BN_PLACEMENT, "relu/before", "relu/after", "increase",
     "BN works better before the activation than after it.", "BN before − BN after the activation", "placement"),
    ("bncnn", ck.BN_ACCURACY, "relu/before", "relu/none", "increase",
     "BN improves accuracy (the source article's net).", "BN before the activation − no BN", "accuracy"),
    ("bncnn", ck.BN_CLASSIFIER, "relu/before+bn1d", "relu/before", "not_higher",
     "BN1d before the classifier does not help (among nets with BN in the conv blocks).",
     "BN before the activation with BN1d − without BN1d", "classifier"),
)  # fmt: skip


def claims2() -> tuple[Claim, ...]:
    """Every claim of design 2, primary ones first, in page order (the controls: ``_controls``)."""
    (accuracy, accuracy_nll), (placement, placement_nll), *bncnn = (
        _tuned(net, key, a, b, kind=kind, claim=claim, versus=versus, literature=LITERATURE[lit])
        for net, key, a, b, kind, claim, versus, lit in _TUNED
    )
    interaction = _claim(
        "plain",
        ck.ACTIVATION_INTERACTION,
        (*eff.activation_arms("none", "plain:"), *eff.activation_arms("before", "plain:")),
        claim="With BN, the choice of activation matters less.",
        estimand=(
            "spread (best − worst) of the tuned test accuracy of relu, "
            f"{', '.join(OTHER_ACTIVATIONS)} (each on its own grid), without BN − with BN before the activation"
        ),
        kind="increase",
        unit="points",
        margin=ACC_MARGIN,
        effect=eff.interaction("plain:", eff.RECORDED, edge=True),
        literature=LITERATURE["activation"],
    )
    everything = (
        accuracy,
        *_plain_lr_claims(),
        placement,
        interaction,
        *_resnet_claims(),
        *(primary for primary, _ in bncnn),
        accuracy_nll,
        placement_nll,
        *(nll for _, nll in bncnn),
    )
    return tuple(sorted(everything, key=lambda c: not c.primary))  # stable: page order within each


def catalogue(design: int) -> tuple[Claim, ...]:
    """The claims of ``design`` (1: the article's 2-conv net, ``_catalogue.claims``; 2: ``claims2``)."""
    if design not in DESIGNS:
        raise ValueError(f"unknown findings design {design}; choose one of: {', '.join(map(str, DESIGNS))}")
    return design1_claims() if design == 1 else claims2()
