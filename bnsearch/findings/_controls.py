"""The controls of every design-2 run: an effect known to exist must come out ``supported`` (its
95% interval above the control's margin), and two arms that differ only in a label must come out
neither supported nor contradicted.

They are not claims: each is judged on its own at 5% (no Holm family, no looks), per dataset,
with the claims' machinery (``_judge.judge`` on a one-claim list). A control that fails, or
that cannot be estimated, makes the whole run untrustworthy, and says why.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from bnsearch import claims as ck
from bnsearch.findings import _effects as eff
from bnsearch.findings._catalogue import ACC_MARGIN, Claim
from bnsearch.findings._catalogue2 import LITERATURE, TRAINING
from bnsearch.findings._design2 import POSITIVE_CONTROL_LR
from bnsearch.findings._judge import Result, judge
from bnsearch.findings._records import CellRecord

# The pre-registered high lr of the positive control (chosen from the seed-0 pilot: see
# ``_design2.POSITIVE_CONTROL_LR``).
CONTROL_LR = POSITIVE_CONTROL_LR
POSITIVE_MARGIN = 10.0  # accuracy points: the known effect is large, not a fine difference
POSITIVE_ARMS = ("plain:relu/before", "plain:relu/none")
NEGATIVE_ARMS = ("bncnn:relu/before#twin", "bncnn:relu/before")  # same config, another batch-order stream
MUST_BE_SUPPORTED = "must be supported, its interval above the margin"
MUST_NOT_DIFFER = "must be neither supported nor contradicted"


def control_claims(*, lr: float = CONTROL_LR) -> tuple[Claim, Claim]:
    """The positive and the negative control, as claims (judged each on its own at 5%)."""
    return (
        Claim(
            key=ck.CONTROL_POSITIVE,
            claim=f"Positive control: the deep plain net trains at lr {lr:g} with BN and fails without it.",
            estimand=f"validation accuracy at lr {lr:g} (fixed in advance), BN before the activation − no BN",
            network="the deep plain VGG-style CNN (depth ≥ 12)",
            kind="increase",
            unit="points",
            margin=POSITIVE_MARGIN,
            primary=False,
            effect=eff.at_lr(*POSITIVE_ARMS, lr),
            literature=LITERATURE["lr"],
            training=TRAINING,
            expected=ck.SUPPORTED,
            arms=POSITIVE_ARMS,
        ),
        Claim(
            key=ck.CONTROL_NEGATIVE,
            claim="Negative control: two copies of one arm that differ only in a label do not differ.",
            estimand=(
                "test accuracy at each arm's best lr (chosen on validation), the twin of BN before the "
                "activation (its batch order drawn from its label) − the arm itself"
            ),
            network="the article's 2-conv ReLU CNN (32–64 channels)",
            kind="increase",  # two-sided: a difference either way is a false finding
            unit="points",
            margin=ACC_MARGIN,
            primary=False,
            effect=eff.tuned(*NEGATIVE_ARMS, eff.RECORDED),
            literature="No effect exists: the twin differs from its original by seed noise only.",
            training=TRAINING,
            expected=None,
            arms=NEGATIVE_ARMS,
        ),
    )


@dataclass(frozen=True, slots=True)
class ControlResult:
    """One control on one dataset: its judged effect, what it had to show, and whether it did."""

    result: Result  # the control judged on its own at 5%
    requirement: str  # MUST_BE_SUPPORTED or MUST_NOT_DIFFER
    passed: bool
    reason: str  # why the run is untrustworthy when it failed ("" when it passed)

    def to_json(self) -> dict[str, object]:
        return {**self.result.to_json(), "requirement": self.requirement, "passed": self.passed, "reason": self.reason}


@dataclass(frozen=True, slots=True)
class Trust:
    """The controls of a run and what they make of it."""

    trustworthy: bool  # every control passed on every dataset
    reasons: tuple[str, ...]  # one per failed control (empty when trustworthy)
    controls: tuple[ControlResult, ...]


def _check(result: Result) -> ControlResult:
    positive = result.key == ck.CONTROL_POSITIVE
    requirement = MUST_BE_SUPPORTED if positive else MUST_NOT_DIFFER
    name = "positive" if positive else "negative"
    if result.verdict == ck.NOT_ESTIMABLE:
        why = "it could not be estimated (too few seeds with both arms' cells)"
    elif positive and result.verdict != ck.SUPPORTED:
        why = f"it came out {result.verdict}: the run cannot show an effect known to exist"
    elif positive and not result.ci_low > result.margin:
        # Supported means "BN helps at all"; the known effect is a net that trains against one that
        # fails, so a small gain (interval reaching below the margin) is not the effect the control is.
        why = f"its 95% interval reaches below the {result.margin:g}-point margin: not the large effect known to exist"
    elif not positive and result.verdict in (ck.SUPPORTED, ck.CONTRADICTED):
        why = f"it came out {result.verdict}: the run finds a difference between arms that differ only in a label"
    else:
        return ControlResult(result, requirement, passed=True, reason="")
    reason = f"the {name} control failed on {result.dataset} ({requirement}): {why}. {result.sentence}"
    return ControlResult(result, requirement, passed=False, reason=reason)


def check_controls(records: Sequence[CellRecord], *, lr: float = CONTROL_LR) -> Trust:
    """Judge both controls on every dataset of ``records`` (each at 5% on its own) and say
    whether the run can be trusted, with the reason for every failed control.

    A dataset whose records lack a control's cells altogether gets ``not estimable`` for it,
    which fails it: a run without its controls proves nothing about its pipeline.
    """
    datasets = sorted({r.dataset for r in records})
    checked = tuple(_check(r) for r in judge(records, claim_list=control_claims(lr=lr)))
    missing = () if datasets else ("the run has no cells, so no control could be judged",)
    reasons = missing + tuple(c.reason for c in checked if not c.passed)
    return Trust(trustworthy=not reasons, reasons=reasons, controls=checked)
