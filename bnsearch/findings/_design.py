"""The designed experiment of ``bnsearch findings``: arms, learning-rate grids, cells, budgets.

An **arm** is one network configuration (activation, BN placement, BN1d before the classifier,
gamma init); a **cell** is an arm trained on one dataset with one seed at one lr. Every cell of
a seed shares that seed's split, batch order and the initial weights of the layers the arms
have in common, so arms are compared in pairs within a seed. Everything here is fixed before
any cell trains: grids, epochs, the convergence target, the margins (in ``_catalogue``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Generic, Protocol, TypeVar

from bnsearch.config import default_storage, resolve_device
from bnsearch.core.data import BUILTIN_DATASETS
from bnsearch.core.space import DEFAULT_BATCH_SIZE, DEFAULT_MOMENTUM, TrialParams
from bnsearch.errors import ConfigError

# Half-decade grid for the ReLU arms: wide enough that nets without BN fail at its top and
# every arm is worse at its bottom, so "the largest lr that trains" is censored only visibly.
MAIN_LRS = (0.003, 0.01, 0.03, 0.1, 0.3, 1.0, 3.0)
# The other activations (placement and activation × BN claims) on a narrower grid (cost).
ACTIVATION_LRS = (0.01, 0.03, 0.1, 0.3, 1.0)
OTHER_ACTIVATIONS = ("leaky_relu", "tanh", "sigmoid")
WEIGHT_DECAY = 5e-4  # on conv/linear weights, every arm
CHECKPOINT_STEPS = 20  # validation every this many SGD steps in the convergence cells
# Validation accuracy (BN statistics recomputed) that counts as converged; set from a pilot
# (seed 0, lr 0.03, both datasets) before the measured runs.
CONVERGENCE_TARGET = 0.92
RECALIBRATION_EXAMPLES = 512  # training examples whose batch statistics replace BN's running ones
FIT_EXAMPLES = 256  # training subset of the overfitting cells
FIT_LR = 0.03  # both arms of the overfitting comparison train at this lr
FIT_MAX_EPOCHS = 60  # passes over the subset before a net that never fits it is given up
# Epochs per dataset: about 320 SGD steps of 32 examples on both (1257 / 3500 training images).
EPOCHS = {"digits": 8, "mnist5k": 3}
DEFAULT_DATASETS = ("digits", "mnist5k")
DEFAULT_SEEDS = 5
QUICK_DATASETS = ("digits",)
QUICK_SEEDS = 3
DEFAULT_PREFIX = "findings"
# Design 2 (_design2) runs: pre-registered looks at 5, 10 and 15 seeds with Pocock spending (the
# sequential driver, _looks, adds seeds only to undecided claims' arms); --quick: digits, one
# look of 3 seeds. Why these: 15 seeds on both datasets is what fits 60 minutes on 2 CPU cores
# when no claim is decided early (about 19 minutes per 5 seeds of every arm); with a first look
# of 5 seeds (t on 4 df) O'Brien-Fleming's first boundary is t >= 44 at the strictest Holm share,
# which no effect crosses, while Pocock's (6.8) lets a large effect stop early, at the price of a
# final boundary of 3.8 instead of 3.3 (bnsearch.stats.sequential_t_bounds).
DEFAULT_DATASETS2 = ("digits", "mnist5k")
DEFAULT_LOOKS2 = (5, 10, 15)
DEFAULT_SEEDS2 = DEFAULT_LOOKS2[0]
QUICK_DATASETS2 = ("digits",)
QUICK_LOOKS2 = (3,)
QUICK_SEEDS2 = QUICK_LOOKS2[0]
DEFAULT_SPENDING = "pocock"  # alpha spending over the looks (bnsearch.stats.SPENDING_KINDS, with '-')


@dataclass(frozen=True, slots=True)
class Arm:
    """One network configuration of the experiment."""

    activation: str
    bn_placement: str  # none, before_activation, after_activation
    bn_classifier: bool = False
    gamma_init: str = "ones"  # ones, zero_last or zeros (ignored without BN)

    @property
    def name(self) -> str:
        """``relu/before``, ``relu/before+bn1d``, ``relu/after/zero_last`` ..."""
        place = {"none": "none", "before_activation": "before", "after_activation": "after"}[self.bn_placement]
        name = f"{self.activation}/{place}" + ("+bn1d" if self.bn_classifier else "")
        return name + ("" if self.gamma_init == "ones" else f"/{self.gamma_init}")

    def records_curve(self, lr: float) -> bool:
        """Whether this arm's grid cell at ``lr`` records a validation curve (convergence)."""
        return self in CONVERGENCE_ARMS

    def params(self, *, lr: float, epochs: int) -> TrialParams:
        bn = self.bn_placement != "none" or self.bn_classifier
        return TrialParams(
            lr=lr,
            weight_decay=WEIGHT_DECAY,
            momentum=DEFAULT_MOMENTUM,
            batch_size=DEFAULT_BATCH_SIZE,
            epochs=epochs,
            activation=self.activation,
            bn_placement=self.bn_placement,
            bn_classifier=self.bn_classifier,
            gamma_init=self.gamma_init if bn else None,
            beta_init="zeros" if bn else None,
        )


NO_BN = Arm("relu", "none")
BN_BEFORE = Arm("relu", "before_activation")
BN_AFTER = Arm("relu", "after_activation")
BN_BEFORE_BN1D = Arm("relu", "before_activation", bn_classifier=True)
# Gamma arms use BN after the activation: there a zero gamma on the last BN outputs beta and
# still gets a gradient; before a ReLU it would output 0, where ReLU's gradient is 0 too.
GAMMA_ZERO_LAST = Arm("relu", "after_activation", gamma_init="zero_last")
GAMMA_ZEROS = Arm("relu", "after_activation", gamma_init="zeros")
MAIN_ARMS = (NO_BN, BN_BEFORE, BN_AFTER, BN_BEFORE_BN1D, GAMMA_ZERO_LAST, GAMMA_ZEROS)
ACTIVATION_ARMS = tuple(Arm(a, p) for a in OTHER_ACTIVATIONS for p in ("none", "before_activation", "after_activation"))
CONVERGENCE_ARMS = (NO_BN, BN_BEFORE)  # their grid cells record validation curves
FIT_ARMS = (NO_BN, BN_BEFORE)


class ArmLike(Protocol):
    """What a cell needs of its arm (design 1's ``Arm``, design 2's ``Arm2``)."""

    @property
    def name(self) -> str: ...

    def params(self, *, lr: float, epochs: int) -> TrialParams: ...

    def records_curve(self, lr: float) -> bool: ...


A = TypeVar("A", bound=ArmLike)


@dataclass(frozen=True, slots=True)
class Cell(Generic[A]):
    """One arm trained on one seed: a grid cell (``kind="grid"``) at ``lr``, or a fitting cell
    (``kind="fit"``, design 1) trained on a small subset until it fits it, or a probe cell
    (``kind="probe"``, design 2) trained a few steps."""

    arm: A
    lr: float
    kind: str = "grid"

    @property
    def key(self) -> str:
        """Stable id, stored on the cell's trial: ``grid:relu/before:lr=0.1``."""
        return f"{self.kind}:{self.arm.name}:lr={self.lr:g}"

    @property
    def checkpoints(self) -> bool:
        """Whether validation is measured every ``CHECKPOINT_STEPS`` steps (convergence)."""
        return self.kind == "grid" and self.arm.records_curve(self.lr)


def design_cells() -> list[Cell]:
    """Every cell of one dataset × seed, in the order they train."""
    cells = [Cell(arm, lr) for arm in MAIN_ARMS for lr in MAIN_LRS]
    cells += [Cell(arm, lr) for arm in ACTIVATION_ARMS for lr in ACTIVATION_LRS]
    cells += [Cell(arm, FIT_LR, kind="fit") for arm in FIT_ARMS]
    return cells


def epochs_for(dataset: str) -> int:
    return EPOCHS.get(dataset, EPOCHS["mnist5k"])


FINDINGS_MODELS = ("bncnn", "plain")  # nets whose BN sits before or after an activation, as the arms say


def design_identity(dataset: str, model: str = "bncnn") -> dict[str, Any]:
    """What makes two runs' cells comparable (stored on each study, compared on resume)."""
    return {
        "kind": "findings",
        "model": model,
        "dataset": dataset,
        "epochs": epochs_for(dataset),
        "main_lrs": list(MAIN_LRS),
        "activation_lrs": list(ACTIVATION_LRS),
        "arms": [a.name for a in (*MAIN_ARMS, *ACTIVATION_ARMS)],
        "weight_decay": WEIGHT_DECAY,
        "batch_size": DEFAULT_BATCH_SIZE,
        "momentum": DEFAULT_MOMENTUM,
        "checkpoint_steps": CHECKPOINT_STEPS,
        "recalibration_examples": RECALIBRATION_EXAMPLES,
        "fit": {"examples": FIT_EXAMPLES, "lr": FIT_LR, "max_epochs": FIT_MAX_EPOCHS},
        "precision": "fp32",
        "widths": [32, 64],
    }


DESIGNS = (1, 2)  # design 1: this module's arms; design 2: _design2


def default_run(design: int, *, quick: bool = False) -> tuple[tuple[str, ...], int]:
    """The datasets and seeds of a run of ``design`` that names neither (``--quick``: the quick ones)."""
    if design == 2:
        return (QUICK_DATASETS2, QUICK_SEEDS2) if quick else (DEFAULT_DATASETS2, DEFAULT_SEEDS2)
    return (QUICK_DATASETS, QUICK_SEEDS) if quick else (DEFAULT_DATASETS, DEFAULT_SEEDS)


@dataclass(frozen=True, slots=True, kw_only=True)
class FindingsConfig:
    """One run of the designed experiment."""

    datasets: tuple[str, ...] = DEFAULT_DATASETS  # built-in names
    seeds: int = DEFAULT_SEEDS  # root seeds 0 .. seeds-1, each a replicate of every cell
    storage: str = field(default_factory=default_storage)  # where the per-seed studies live
    workers: int = 1  # dataset × seed studies trained at the same time, each in its own process
    threads: int | None = None  # torch threads per worker; default: cores / workers
    pack: int = 1  # grid cells of one arm (without a curve) trained together as one packed model
    prefix: str = DEFAULT_PREFIX  # study names: <prefix>-<dataset>-s<seed>
    device: str = "cpu"  # auto, cpu, cuda, cuda:N or mps; every worker trains on it
    model: str = "bncnn"  # one of FINDINGS_MODELS: the net every cell trains (plain at its default depth and width)
    design: int = 1  # one of DESIGNS: 1 (the 2-conv net's arms) or 2 (bncnn, deep plain, resnet)

    @classmethod
    def quick(cls, **kw: Any) -> FindingsConfig:
        """``--quick``: digits with 3 seeds (design 2: its own quick datasets and seeds)."""
        datasets, seeds = default_run(kw.get("design", 1), quick=True)
        return cls(datasets=datasets, seeds=seeds, **kw)

    def validate(self) -> None:
        """Raise ``ConfigError`` naming the first bad option."""
        if self.design not in DESIGNS:
            raise ConfigError(f"--design must be one of: {', '.join(map(str, DESIGNS))}, got {self.design}")
        if not self.datasets:
            raise ConfigError("--datasets is empty; give a comma-separated list, e.g. digits,mnist5k")
        for d in self.datasets:
            if d not in BUILTIN_DATASETS:
                raise ConfigError(
                    f"unknown dataset '{d}' in --datasets; the designed experiment is sized for: "
                    f"{', '.join(BUILTIN_DATASETS)}"
                )
        if len(set(self.datasets)) != len(self.datasets):
            raise ConfigError(f"--datasets names a dataset twice: {','.join(self.datasets)}")
        if self.seeds < 2:
            raise ConfigError(f"--seeds must be ≥ 2 (an interval needs two replicates), got {self.seeds}")
        for opt, value in (("--workers", self.workers), ("--pack", self.pack)):
            if value < 1:
                raise ConfigError(f"{opt} must be ≥ 1, got {value}")
        if self.threads is not None and self.threads < 1:
            raise ConfigError(f"--threads must be ≥ 1, got {self.threads}")
        if not self.prefix.strip() or "/" in self.prefix:
            raise ConfigError(f"--prefix must be a non-empty name without '/', got {self.prefix!r}")
        if self.model not in FINDINGS_MODELS:
            raise ConfigError(
                f"findings --model must be one of: {', '.join(FINDINGS_MODELS)}, got '{self.model}' "
                "(the arms put BN before or after an activation, which a residual block or a user net does not have)"
            )
        if self.design == 2 and self.model != "bncnn":
            raise ConfigError(
                f"--model {self.model} applies to --design 1 only (add --design 1); "
                "design 2 names each arm's net itself"
            )
        resolve_device(self.device)

    def study_name(self, dataset: str, seed: int) -> str:
        """``findings-digits-s0``; ``findings-plain-digits-s0`` for another model; design 2:
        ``findings2-digits-s0``."""
        if self.design == 2:
            return f"{self.prefix}2-{dataset}-s{seed}"
        net = "" if self.model == "bncnn" else f"-{self.model}"
        return f"{self.prefix}{net}-{dataset}-s{seed}"

    @property
    def jobs(self) -> list[tuple[str, int]]:
        """(dataset, seed) pairs, seeds outside: an interrupted run has whole replicates."""
        return [(d, s) for s in range(self.seeds) for d in self.datasets]
