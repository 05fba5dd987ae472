"""``CellRecord``: one trained cell as plain data, the input of the claims (no Optuna, no torch)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True, kw_only=True)
class CellRecord:
    dataset: str
    seed: int
    arm: str  # Arm.name, e.g. "relu/before"; design 2: "plain:relu/before" (the net first)
    kind: str  # "grid", "fit" (design 1) or "probe" (design 2: a short stable-lr probe at one lr)
    lr: float
    val_acc: float  # final validation accuracy (chance level when diverged)
    test_acc: float  # test accuracy (chance level when diverged; NaN for a probe: test untouched)
    diverged: bool
    n_test: int  # test examples
    curve: tuple[tuple[int, float], ...] = ()  # (step, val acc with BN recomputed)
    fit_reached: bool | None = None  # fitting cells: the subset was fitted (100% train accuracy)
    fit_train_acc: float | None = None  # fitting cells: training-subset accuracy at the end
    test_nll: float | None = None  # mean test negative log-likelihood (nats) of the final net (None/NaN: diverged)
    early_loss: float | None = None  # mean training loss over the first EARLY_STEPS steps (inf: diverged in them)
