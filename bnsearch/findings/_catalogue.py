"""The claims ``bnsearch findings`` tests: each with one named estimand, its per-seed effect,
its margin (fixed in advance) and what the literature expects.

The primary claims form one Holm family per dataset; secondary claims are judged each at 5%
and labelled so. Keys and verdict words are ``bnsearch.claims``'s, shared with the report.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from bnsearch import claims as ck
from bnsearch.findings import _effects as eff
from bnsearch.findings import _estimands as est
from bnsearch.findings._design import (
    ACTIVATION_LRS,
    CHECKPOINT_STEPS,
    CONVERGENCE_TARGET,
    FIT_EXAMPLES,
    FIT_LR,
    FIT_MAX_EPOCHS,
    MAIN_LRS,
    OTHER_ACTIVATIONS,
)

ACC_MARGIN = 0.5  # accuracy points: smaller differences are of no practical interest
LR_MARGIN = 2.0  # ratio of learning rates
STEPS_MARGIN = 1.2  # ratio of steps (20%)
# Steps to target are read every CHECKPOINT_STEPS steps: at ~100 steps one checkpoint is a
# factor 1.2, the rounding that a log steps ratio carries (see bnsearch.stats._sd).
STEPS_RESOLUTION = math.log(1 + CHECKPOINT_STEPS / 100)


@dataclass(frozen=True, slots=True)
class Claim:
    """One claim: what is measured, on which nets, how it is judged and what to expect."""

    key: str  # one of bnsearch.claims's keys
    claim: str  # what the article or the literature claims
    estimand: str  # the one quantity measured, named in every verdict
    network: str  # which nets are compared
    kind: str  # increase, decrease, not_higher, not_lower (see bnsearch.stats)
    unit: str  # unit of the reported effect
    margin: float  # in the reported unit (a ratio for ratio units)
    primary: bool
    effect: eff.EffectFn = field(repr=False)
    log_scale: bool = False  # per-seed values are logs of ratios (reported as ratios)
    resolution: float = 0.0  # grid step of a per-seed value (log units when log_scale)
    literature: str = ""
    training: str = ""  # how the compared nets trained, when not the dataset's epochs
    expected: str | None = None  # verdict the literature leads one to expect here (None: no prediction)
    arms: tuple[str, ...] = ()  # design 2: the arms the effect reads (the sequential driver adds seeds to these)

    @property
    def stat_margin(self) -> float:
        return math.log(self.margin) if self.log_scale else self.margin


_ACT_SPAN = f"lr {ACTIVATION_LRS[0]:g}–{ACTIVATION_LRS[-1]:g}"
_RELU = "the 2-conv ReLU CNN (32–64 channels)"
_LITERATURE = {
    "accuracy": (
        "Ioffe & Szegedy 2015 report higher final accuracy with BN (Inception, ImageNet); "
        "Santurkar et al. 2018 and Bjorck et al. 2018 trace BN's gains to the larger learning rates "
        "it tolerates, so with each arm's lr tuned a small net may show little difference."
    ),
    "convergence": (
        "Ioffe & Szegedy 2015: the same accuracy in 14× fewer steps; Bjorck et al. 2018: most of the "
        "speed-up comes from the higher lr BN allows, less at a matched lr."
    ),
    "lr": (
        "Ioffe & Szegedy 2015 and Bjorck et al. 2018: BN lets much higher learning rates train "
        "(it keeps activations bounded); Santurkar et al. 2018: a smoother loss landscape."
    ),
    "gap": (
        "Ioffe & Szegedy 2015: BN regularizes (less need for dropout); Luo et al. 2019: the noise of "
        "batch statistics acts as a regularizer whose strength falls with batch size."
    ),
    "placement": (
        "Ioffe & Szegedy 2015 put BN before the nonlinearity (normalising Wx+b); later practice often "
        "puts it after; no theory predicts a large difference in a net this small."
    ),
    "classifier": (
        "The source article keeps BN out of the classifier input; the papers cited here make no claim "
        "about a BN1d layer there."
    ),
    "gamma": (
        "Goyal et al. 2017 zero the last BN gamma of each residual branch so that every block starts "
        "as the identity through its skip path. This plain net has no skip path: their reason does not "
        "apply. Zeroing every gamma makes the output constant and gives every gamma a zero gradient at "
        "initialisation (checked), a degenerate start any training can only leave through rounding noise."
    ),
    "activation": (
        "Ioffe & Szegedy 2015: BN keeps saturating nonlinearities (sigmoid) out of saturation, so the "
        "choice of activation should matter less with BN."
    ),
}


def claims() -> tuple[Claim, ...]:
    """Every claim, primary ones first, in page order."""
    lr_span = f"lr {MAIN_LRS[0]:g}–{MAIN_LRS[-1]:g}"
    primary = (
        Claim(
            key=ck.BN_ACCURACY,
            claim="BN improves accuracy.",
            estimand="test accuracy at each arm's best lr (chosen on validation), BN before the activation − no BN",
            network=_RELU,
            kind="increase",
            unit="points",
            margin=ACC_MARGIN,
            primary=True,
            effect=eff.tuned("relu/before", "relu/none"),
            literature=_LITERATURE["accuracy"],
            expected=ck.SUPPORTED,
        ),
        Claim(
            key=ck.BN_CONVERGENCE,
            claim="BN speeds up convergence.",
            estimand=(
                f"steps to {CONVERGENCE_TARGET:.0%} validation accuracy (BN statistics recomputed before each "
                f"check, every {CHECKPOINT_STEPS} steps), both at the no-BN arm's best lr; ratio BN / no BN"
            ),
            network=_RELU,
            kind="decrease",
            unit="× steps",
            margin=STEPS_MARGIN,
            primary=True,
            effect=eff.steps("relu/before", "relu/none", matched=True),
            log_scale=True,
            resolution=STEPS_RESOLUTION,
            literature=_LITERATURE["convergence"],
            expected=ck.SUPPORTED,
        ),
        Claim(
            key=ck.BN_HIGHER_LR,
            claim="BN allows higher learning rates.",
            estimand=(
                f"largest lr whose validation accuracy is within {100 * est.WITHIN:g} points of the arm's best "
                f"({lr_span}, half-decade grid); ratio BN / no BN"
            ),
            network=_RELU,
            kind="increase",
            unit="× lr",
            margin=LR_MARGIN,
            primary=True,
            effect=eff.lr_limit("relu/before", "relu/none"),
            log_scale=True,
            resolution=math.log(math.sqrt(10)),
            literature=_LITERATURE["lr"],
            expected=ck.SUPPORTED,
        ),
        Claim(
            key=ck.BN_OVERFITTING,
            claim="BN reduces overfitting.",
            estimand=(
                f"train − test accuracy gap once the net classifies all of a {FIT_EXAMPLES}-example training "
                f"subset right (matched training accuracy, lr {FIT_LR:g}); BN − no BN"
            ),
            network=_RELU,
            kind="decrease",
            unit="points",
            margin=ACC_MARGIN,
            primary=True,
            effect=eff.fit_gap("relu/before", "relu/none"),
            training=f"trained until they fit the subset (at most {FIT_MAX_EPOCHS} epochs)",
            literature=_LITERATURE["gap"],
            expected=ck.SUPPORTED,
        ),
        Claim(
            key=ck.BN_PLACEMENT,
            claim="BN works better before the activation than after it.",
            estimand="test accuracy at each arm's best lr, BN before − BN after the activation",
            network=_RELU,
            kind="increase",
            unit="points",
            margin=ACC_MARGIN,
            primary=True,
            effect=eff.tuned("relu/before", "relu/after"),
            literature=_LITERATURE["placement"],
            expected=ck.SUPPORTED,
        ),
        Claim(
            key=ck.BN_CLASSIFIER,
            claim="BN1d before the classifier does not help (among nets with BN in the conv blocks).",
            estimand="test accuracy at each arm's best lr, BN before the activation with BN1d − without BN1d",
            network=_RELU,
            kind="not_higher",
            unit="points",
            margin=ACC_MARGIN,
            primary=True,
            effect=eff.tuned("relu/before+bn1d", "relu/before"),
            literature=_LITERATURE["classifier"],
            expected=ck.SUPPORTED,
        ),
        Claim(
            key=ck.GAMMA_ZERO_LAST,
            claim="Gamma = 0 on the last BN (Goyal et al.'s trick) trains as well as gamma = 1.",
            estimand="test accuracy at each arm's best lr, BN after the activation, gamma 0 on the last BN − gamma 1",
            network=_RELU,
            kind="not_lower",
            unit="points",
            margin=ACC_MARGIN,
            primary=True,
            effect=eff.tuned("relu/after/zero_last", "relu/after"),
            literature=_LITERATURE["gamma"],
            expected=None,
        ),
        Claim(
            key=ck.ACTIVATION_INTERACTION,
            claim="With BN, the choice of activation matters less.",
            estimand=(
                "spread (best − worst) of the four activations' tuned test accuracy "
                f"(lr {ACTIVATION_LRS[0]:g}–{ACTIVATION_LRS[-1]:g}), without BN − with BN before the activation"
            ),
            network="the 2-conv CNN with relu, leaky_relu, tanh and sigmoid",
            kind="increase",
            unit="points",
            margin=ACC_MARGIN,
            primary=True,
            effect=eff.activation_interaction,
            literature=_LITERATURE["activation"],
            expected=ck.SUPPORTED,
        ),
    )
    secondary = (
        Claim(
            key=ck.BN_ACCURACY_GRID_MEAN,
            claim="BN improves accuracy (averaged over the lr grid: robustness, not tuned accuracy).",
            estimand=f"mean test accuracy over {lr_span}, BN before − no BN",
            network=_RELU,
            kind="increase",
            unit="points",
            margin=ACC_MARGIN,
            primary=False,
            effect=eff.grid_mean("relu/before", "relu/none"),
            literature=_LITERATURE["lr"],
            expected=ck.SUPPORTED,
        ),
        Claim(
            key=ck.BN_LR_WINDOW,
            claim="BN widens the window of learning rates that train.",
            estimand=f"width in decades of the lrs within {100 * est.WITHIN:g} points of the arm's best, BN − no BN",
            network=_RELU,
            kind="increase",
            unit="decades",
            margin=0.5,
            primary=False,
            effect=eff.lr_window("relu/before", "relu/none"),
            resolution=0.5,
            literature=_LITERATURE["lr"],
            expected=ck.SUPPORTED,
        ),
        Claim(
            key=ck.BN_CONVERGENCE_TUNED,
            claim="BN speeds up convergence (each arm at its own best lr).",
            estimand=(
                f"steps to {CONVERGENCE_TARGET:.0%} validation accuracy (BN statistics recomputed), "
                "each arm at its best lr; ratio BN / no BN"
            ),
            network=_RELU,
            kind="decrease",
            unit="× steps",
            margin=STEPS_MARGIN,
            primary=False,
            effect=eff.steps("relu/before", "relu/none", matched=False),
            log_scale=True,
            resolution=STEPS_RESOLUTION,
            literature=_LITERATURE["convergence"],
            expected=ck.SUPPORTED,
        ),
        Claim(
            key=ck.GAMMA_ZEROS,
            claim="Gamma = 0 in every BN layer trains as well as gamma = 1 (degenerate: the output starts constant).",
            estimand="test accuracy at each arm's best lr, BN after the activation, gamma 0 everywhere − gamma 1",
            network=_RELU,
            kind="not_lower",
            unit="points",
            margin=ACC_MARGIN,
            primary=False,
            effect=eff.tuned("relu/after/zeros", "relu/after"),
            literature=_LITERATURE["gamma"],
            expected=ck.CONTRADICTED,
        ),
        *(
            Claim(
                key=ck.per_activation(ck.BN_ACCURACY, a),
                claim=f"BN improves accuracy ({a}).",
                estimand=f"test accuracy at each arm's best lr ({_ACT_SPAN}), BN before − no BN",
                network=f"the 2-conv {a} CNN",
                kind="increase",
                unit="points",
                margin=ACC_MARGIN,
                primary=False,
                effect=eff.tuned(f"{a}/before", f"{a}/none", ACTIVATION_LRS),
                literature=_LITERATURE["activation"] if a == "sigmoid" else _LITERATURE["accuracy"],
                expected=ck.SUPPORTED,
            )
            for a in OTHER_ACTIVATIONS
        ),
        *(
            Claim(
                key=ck.per_activation(ck.BN_PLACEMENT, a),
                claim=f"BN works better before the activation than after it ({a}).",
                estimand=f"test accuracy at each arm's best lr ({_ACT_SPAN}), before − after",
                network=f"the 2-conv {a} CNN",
                kind="increase",
                unit="points",
                margin=ACC_MARGIN,
                primary=False,
                effect=eff.tuned(f"{a}/before", f"{a}/after", ACTIVATION_LRS),
                literature=_LITERATURE["placement"],
                expected=ck.SUPPORTED,
            )
            for a in OTHER_ACTIVATIONS
        ),
    )
    return primary + secondary
