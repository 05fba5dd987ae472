"""Design 2 of ``bnsearch findings``: BN tested on the nets where its effects can exist.

Three networks, each arm named ``net:activation/placement[+bn1d][/zero_last][#twin]``:

- ``bncnn``: the source article's two-conv net (its claims are the source's), with the
  negative-control twin ``bncnn:relu/before#twin`` (the same net as ``bncnn:relu/before``, its
  batch order drawn from another stream: it differs from the original only by seed noise);
- ``plain``: a deep plain CNN (``PLAIN_DEPTH`` conv layers, no skip path), where nothing but
  normalisation keeps the stack trainable: accuracy, convergence, optimal and largest stable
  lr, placement and the activation interaction;
- ``resnet``: He et al.'s residual net with BN after each conv (``post``), gamma 1 everywhere
  vs gamma 0 on the last BN of each residual branch (Goyal et al.'s ``zero_last``).

Every arm trains on a contiguous sub-range of the 16-point grid ``LRS2`` (``grid_lrs``); the two
plain ReLU arms none/before are also probed for their largest stable lr (``_probe``), one short
run at a time, by bisection. Everything here is fixed before any cell trains and stored on each
study (``design2_identity``).
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Collection, Mapping
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from bnsearch.core.space import DEFAULT_BATCH_SIZE, DEFAULT_MOMENTUM, TrialParams
from bnsearch.findings._design import CHECKPOINT_STEPS, RECALIBRATION_EXAMPLES, WEIGHT_DECAY, Arm, Cell

if TYPE_CHECKING:
    from bnsearch.core.data import Dataset
    from bnsearch.findings._design import FindingsConfig

DESIGN = 2
# 1e-4 … 10, three per decade, rounded to 3 significant digits (16 values).
LRS2 = tuple(float(f"{10 ** (-4 + i / 3):.3g}") for i in range(16))
# Held-out shares: the per-seed sd of design 1 was mostly the sampling error of 15% splits, and
# every claim is a within-seed difference, so a smaller training split costs every arm alike.
# 35% test (digits 629, mnist5k 1750 images) more than doubles the test set; 25% validation
# (449 / 1250) chooses the lr; 40% trains (719 / 2000).
VAL_FRACTION2 = 0.25
TEST_FRACTION2 = 0.35
# Images averaged over k×k pixel blocks before splitting, per dataset: mnist5k at 14×14 costs
# about half as much per cell as at 28×28 (benchmarks/findings_cells.py), which is what fits its
# 5 seeds of every arm into the first look's budget; digits (8×8) as it is.
INPUT_POOL2 = {"mnist5k": 2}
PLAIN_DEPTH = 12  # conv layers of the deep plain net (three stages of 4)
PLAIN_WIDTH = 8  # channels of its first stage (8, 16, 32)
RESNET_DEPTH = 8  # 6n+2 with n = 1 basic block per stage
RESNET_WIDTH = 8  # channels of its first stage (8, 16, 32)
# Conv weights He-initialised (uniform ±√(6/fan_in), the same shared draws scaled) in the deep
# plain net: with PyTorch's default ±1/√fan_in its no-BN arm trained at no lr of the grid (first
# pilot, digits, 2 seeds: chance at all 11 lrs), so BN's effect there would be the init's. bncnn
# (as in design 1) and resnet (BN in both arms: the scale of a conv before BN only moves the
# effective lr) keep the default.
HE_INIT_NETS = ("plain",)
# Epochs per dataset, every net: digits 23 SGD steps of 32 per epoch (230 steps), mnist5k 63 (189; at 2 epochs
# the deep nets reached only 0.6–0.74 on mnist5k at 28×28 in the pilot).
EPOCHS2 = {"digits": 10, "mnist5k": 3}
EARLY_STEPS = 20  # early loss: mean training loss over the first this many SGD steps
# A probe run: PROBE_STEPS SGD steps, stable when validation accuracy reaches chance +
# PROBE_MARGIN. From seed-0/2 calibrations of plain relu/none (digits, mnist5k): at 100 steps the
# no-BN net was erratic below its limit (seed 2, digits: 0.54 at lr 0.01, 0.10 at 0.0215, 0.45
# at 0.0464), so a bisection could be sent down to lrs too slow to count; at 200 steps it read
# 0.74 / 0.37 / 0.67 there and 0.10 at 0.1 (mnist5k seed 0: 0.69 / 0.73 / 0.59, then 0.10).
# A dead net sits at 0.10.
PROBE_STEPS = 200
PROBE_MARGIN = 0.1
# Pre-registered lr of the positive control (plain relu none vs before, validation accuracy at
# this grid lr; the net without BN must fail there and the net with BN train). Chosen from the
# seed-0 pilot with this module's settings (benchmarks/findings_cells.py --pilot-lrs): no BN
# trained at 0.01 (0.853 digits / 0.776 mnist5k) and 0.0464, and sat at chance (0.100) from
# 0.215 up on both datasets; BN reached 0.936 / 0.835 at 0.215, 0.880 / 0.750 at 0.464 and
# 0.240 / 0.586 at 1: 0.215 is the lowest grid lr where no BN fails, with BN far from failing.
POSITIVE_CONTROL_LR = 0.215
# Validation accuracy that counts as converged in the plain net's convergence claim. Design 1's
# 92% is out of reach for the deep plain net without BN on digits: in the --quick run (seeds 0–2,
# 2026-12-07) its curve peaked at 0.82–0.88 at its best lr, so every seed was censored. 75% is
# reached by both arms there; it was chosen from the no-BN arm's curves alone, not from the effect.
CONVERGENCE_TARGET2 = 0.75
# lr of the resnet early-loss comparison (gamma 1 vs zero_last): the highest grid lr at which
# both resnet arms trained on both datasets in the same pilot: at 1 gamma 1 / zero_last reached
# 0.869 / 0.902 (digits) and 0.737 / 0.837 (mnist5k); at 2.15 at most 0.269. No resnet cell's
# loss became NaN up to 4.64: failing resnets sit near chance with a finite loss.
RESNET_EARLY_LR = 1.0

OTHER_ACTIVATIONS2 = ("leaky_relu", "tanh", "sigmoid")
_PLACE_NAMES = {
    "none": "none",
    "before_activation": "before",
    "after_activation": "after",
    "post_activation": "post",
}


@dataclass(frozen=True, slots=True)
class Arm2:
    """One network configuration of design 2."""

    net: str  # bncnn, plain or resnet
    activation: str
    bn_placement: str  # none, before_activation, after_activation; post_activation (resnet)
    bn_classifier: bool = False
    gamma_init: str = "ones"  # ones or zero_last
    twin: bool = False  # the negative control: another batch-order stream, nothing else

    @property
    def name(self) -> str:
        """``plain:relu/before``, ``bncnn:relu/before+bn1d``, ``resnet:relu/post/zero_last`` ..."""
        name = f"{self.net}:{self.activation}/{_PLACE_NAMES[self.bn_placement]}"
        name += "+bn1d" if self.bn_classifier else ""
        name += "" if self.gamma_init == "ones" else f"/{self.gamma_init}"
        return name + ("#twin" if self.twin else "")

    @property
    def has_bn(self) -> bool:
        return self.bn_placement != "none" or self.bn_classifier

    def records_curve(self, lr: float) -> bool:
        """Whether this arm's grid cell at ``lr`` records a validation curve (convergence)."""
        return self in CURVE_ARMS2 and lr <= CURVE_MAX_LR

    def params(self, *, lr: float, epochs: int) -> TrialParams:
        """Design 1's params of the same activation, placement and gamma, with the net's depth and width."""
        depth, width = {"plain": (PLAIN_DEPTH, PLAIN_WIDTH), "resnet": (RESNET_DEPTH, RESNET_WIDTH)}.get(
            self.net, (None, None)
        )
        base = Arm(self.activation, self.bn_placement, self.bn_classifier, self.gamma_init)
        return replace(base.params(lr=lr, epochs=epochs), depth=depth, width=width)


BNCNN_ARMS = (
    Arm2("bncnn", "relu", "none"),
    Arm2("bncnn", "relu", "before_activation"),
    Arm2("bncnn", "relu", "after_activation"),
    Arm2("bncnn", "relu", "before_activation", bn_classifier=True),
    Arm2("bncnn", "relu", "before_activation", twin=True),
)
PLAIN_NONE = Arm2("plain", "relu", "none")
PLAIN_BEFORE = Arm2("plain", "relu", "before_activation")
PLAIN_RELU_ARMS = (PLAIN_NONE, PLAIN_BEFORE, Arm2("plain", "relu", "after_activation"))
PLAIN_ACTIVATION_ARMS = tuple(Arm2("plain", a, p) for a in OTHER_ACTIVATIONS2 for p in ("none", "before_activation"))
RESNET_ARMS = (
    Arm2("resnet", "relu", "post_activation"),
    Arm2("resnet", "relu", "post_activation", gamma_init="zero_last"),
)
ARMS2 = (*BNCNN_ARMS, *PLAIN_RELU_ARMS, *PLAIN_ACTIVATION_ARMS, *RESNET_ARMS)
CURVE_ARMS2 = (PLAIN_NONE, PLAIN_BEFORE)  # their grid cells up to CURVE_MAX_LR record validation curves
CURVE_MAX_LR = 0.1  # curves only up to this lr: the convergence claim reads them at the no-BN arm's best lr
PROBE_ARMS = (PLAIN_NONE, PLAIN_BEFORE)  # probed for their largest stable lr

# Contiguous sub-ranges of LRS2 (first and last index, inclusive) per group of arms, chosen
# from the seed-0 pilot so that each arm's best lr is inside and the cost fits the budget.
_SPANS: dict[str, tuple[int, int]] = {
    "bncnn": (3, 10),  # 1e-3 … 0.215: design 1's bncnn arms were best at 0.003–0.03 and dead by 1
    "plain:relu": (2, 12),  # 4.64e-4 … 1: the positive control's lr is the top
    "plain:other": (3, 10),  # 1e-3 … 0.215: the activation arms (cost)
    "resnet": (5, 14),  # 4.64e-3 … 4.64: gamma zero_last is about high lrs (divergence rate)
    "probe": (0, 15),  # the whole grid
}


def _span_key(arm: Arm2) -> str:
    if arm.net == "plain":
        return "plain:relu" if arm.activation == "relu" else "plain:other"
    return arm.net


def arm_by_name(name: str) -> Arm2:
    """The design-2 arm called ``name``.

    Raises:
        KeyError: no arm of design 2 has that name.
    """
    for arm in ARMS2:
        if arm.name == name:
            return arm
    raise KeyError(f"no design-2 arm named {name!r}; arms: {', '.join(a.name for a in ARMS2)}")


def grid_lrs(arm: str | Arm2) -> tuple[float, ...]:
    """The learning rates the grid cells of ``arm`` (a name or an ``Arm2``) train at, ascending."""
    a = arm_by_name(arm) if isinstance(arm, str) else arm
    lo, hi = _SPANS[_span_key(a)]
    return LRS2[lo : hi + 1]


def probe_lrs() -> tuple[float, ...]:
    """The learning rates the stable-lr probe bisects over, ascending."""
    lo, hi = _SPANS["probe"]
    return LRS2[lo : hi + 1]


class Cell2(Cell[Arm2]):
    """A design-2 cell: an ``Arm2`` at ``lr``, a grid cell (``kind="grid"``, full training) or a
    probe cell (``kind="probe"``, ``PROBE_STEPS`` steps)."""

    __slots__ = ()


def _selected(arms: Collection[str] | None) -> tuple[Arm2, ...]:
    if arms is None:
        return ARMS2
    unknown = sorted(set(arms) - {a.name for a in ARMS2})
    if unknown:
        raise KeyError(f"no design-2 arm named {', '.join(map(repr, unknown))}")
    return tuple(a for a in ARMS2 if a.name in arms)


def design2_cells(arms: Collection[str] | None = None) -> list[Cell2]:
    """The grid cells of one dataset × seed (of ``arms`` only, when given), in training order.
    Probe cells are not listed: which lrs a probe tries depends on its earlier results."""
    return [Cell2(arm, lr) for arm in _selected(arms) for lr in grid_lrs(arm)]


def probe_arms(arms: Collection[str] | None = None) -> tuple[Arm2, ...]:
    """The arms probed for their largest stable lr (of ``arms`` only, when given)."""
    return tuple(a for a in PROBE_ARMS if a in _selected(arms))


def max_probe_cells() -> int:
    """Probe runs one arm needs at most: bisection over the grid's indices with both ends open."""
    return math.ceil(math.log2(len(probe_lrs()) + 1))


def pooled(ds: Dataset, k: int) -> Dataset:
    """``ds`` with each image averaged over ``k``×``k`` pixel blocks (``k`` = 1: as it is)."""
    if k <= 1:
        return ds
    n, c, h, w = ds.x.shape
    x = ds.x[:, :, : h - h % k, : w - w % k].reshape(n, c, h // k, k, w // k, k).mean(axis=(3, 5))
    return replace(ds, x=x.astype(ds.x.dtype))


def epochs2(dataset: str) -> int:
    return EPOCHS2.get(dataset, EPOCHS2["mnist5k"])


def design2_identity(dataset: str) -> dict[str, Any]:
    """What makes two design-2 runs' cells comparable (stored on each study, compared on resume)."""
    return {
        "kind": "findings",
        "design": DESIGN,
        "dataset": dataset,
        "epochs": epochs2(dataset),
        "lrs": list(LRS2),
        "arms": {a.name: [grid_lrs(a)[0], grid_lrs(a)[-1]] for a in ARMS2},
        "probe": {
            "arms": [a.name for a in PROBE_ARMS],
            "lrs": [probe_lrs()[0], probe_lrs()[-1]],
            "steps": PROBE_STEPS,
            "margin": PROBE_MARGIN,
        },
        "nets": {
            "bncnn": {"widths": [32, 64]},
            "plain": {"depth": PLAIN_DEPTH, "width": PLAIN_WIDTH},
            "resnet": {"depth": RESNET_DEPTH, "width": RESNET_WIDTH},
        },
        "he_init": list(HE_INIT_NETS),
        "splits": {"val": VAL_FRACTION2, "test": TEST_FRACTION2},
        "input_pool": INPUT_POOL2.get(dataset, 1),
        "weight_decay": WEIGHT_DECAY,
        "batch_size": DEFAULT_BATCH_SIZE,
        "momentum": DEFAULT_MOMENTUM,
        "checkpoint_steps": CHECKPOINT_STEPS,
        "curves": {"arms": [a.name for a in CURVE_ARMS2], "max_lr": CURVE_MAX_LR},
        "early_steps": EARLY_STEPS,
        "recalibration_examples": RECALIBRATION_EXAMPLES,
        "precision": "fp32",
    }


# Measured seconds per cell, one 1-thread worker of two running at once on this project's
# 2-core machine: (net, dataset) → seconds per grid cell; ("curve", dataset) → the extra of a
# curve cell; ("probe", dataset) → one probe run. From the default run of 2026-12-07 (AMD EPYC
# with AVX-512, fp32, 3,115 cells; the median of each kind's training time, times the share of
# a study's wall time its cells' training took: 1.03 on digits, 1.10 on mnist5k, which adds
# evaluation and storage). Worker start and data loading are not in it (about 2 of the first
# look's 19 minutes).
CELL_SECONDS: dict[tuple[str, str], float] = {
    ("bncnn", "digits"): 0.46,
    ("plain", "digits"): 1.30,
    ("resnet", "digits"): 0.95,
    ("curve", "digits"): 0.18,
    ("probe", "digits"): 1.08,
    ("bncnn", "mnist5k"): 0.87,
    ("plain", "mnist5k"): 1.82,
    ("resnet", "mnist5k"): 1.38,
    ("curve", "mnist5k"): 0.81,
    ("probe", "mnist5k"): 1.91,
}


def job_seconds(
    dataset: str,
    *,
    arms: Collection[str] | None = None,
    cell_seconds: Mapping[tuple[str, str], float] = CELL_SECONDS,
) -> float:
    """Estimated seconds to train every cell of one dataset × seed (of ``arms`` only, when
    given), probes at their most (``max_probe_cells`` per probed arm)."""
    d = dataset if ("plain", dataset) in cell_seconds else "mnist5k"
    total = 0.0
    for cell in design2_cells(arms):
        total += cell_seconds[(cell.arm.net, d)] + (cell_seconds[("curve", d)] if cell.checkpoints else 0.0)
    return total + len(probe_arms(arms)) * max_probe_cells() * cell_seconds[("probe", d)]


def estimate_wall_s(
    cfg: FindingsConfig,
    *,
    seeds: Collection[int] | None = None,
    arms: Collection[str] | None = None,
    cell_seconds: Mapping[tuple[str, str], float] = CELL_SECONDS,
) -> float:
    """Estimated wall seconds of a design-2 run from its cell counts and the measured seconds
    per cell: the dataset × seed jobs (``seeds``: these root seeds instead of ``cfg``'s; ``arms``:
    only their cells) handed in order to ``cfg.workers`` processes, each taking the next job
    when it is free, as ``run_experiment`` does. Cells already trained are not subtracted."""
    seed_list = range(cfg.seeds) if seeds is None else sorted(seeds)
    costs = [job_seconds(d, arms=arms, cell_seconds=cell_seconds) for s in seed_list for d in cfg.datasets]
    free = [0.0] * max(1, min(cfg.workers, len(costs) or 1))
    for cost in costs:
        heapq.heappush(free, heapq.heappop(free) + cost)
    return max(free)
