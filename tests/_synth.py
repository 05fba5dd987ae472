"""Hand-made bnsearch trials for report/findings/analysis tests (no training)."""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import optuna
from optuna.distributions import CategoricalDistribution, FloatDistribution
from optuna.trial import TrialState

from bnsearch import keys
from bnsearch.core.space import ACTIVATIONS, BETA_INITS, BN_PLACEMENTS, GAMMA_INITS

_T0 = dt.datetime(2026, 1, 1, 12, 0, 0)


def make_trial(
    *,
    activation: str = "relu",
    bn_placement: str = "before_activation",
    bn_classifier: bool = False,
    gamma_init: str = "ones",
    lr: float = 0.1,
    val: tuple[float, ...] = (0.5, 0.9),
    train: tuple[float, ...] | None = None,
    state: TrialState = TrialState.COMPLETE,
    prune_reason: str | None = None,
    fail_reason: str | None = None,
    index: int = 0,
) -> optuna.trial.FrozenTrial:
    """A trial as bnsearch's objective would have written it (val/train: per-epoch accuracy)."""
    has_bn = bn_placement != "none" or bn_classifier
    params: dict[str, Any] = {
        "activation": activation,
        "bn_placement": bn_placement,
        "bn_classifier": bn_classifier,
        "lr": lr,
    }
    dists: dict[str, Any] = {
        "activation": CategoricalDistribution(ACTIVATIONS),
        "bn_placement": CategoricalDistribution(BN_PLACEMENTS),
        "bn_classifier": CategoricalDistribution((False, True)),
        "lr": FloatDistribution(1e-4, 10.0, log=True),
    }
    if has_bn:
        params.update(gamma_init=gamma_init, beta_init="zeros")
        dists.update(
            gamma_init=CategoricalDistribution(GAMMA_INITS),
            beta_init=CategoricalDistribution(BETA_INITS),
        )
    train = train if train is not None else tuple(min(1.0, v + 0.02) for v in val)
    resolved = {
        **params,
        "weight_decay": 1e-4,
        "momentum": 0.9,
        "batch_size": 128,
        "epochs": len(val),
    }
    if not has_bn:
        resolved.update(gamma_init=None, beta_init=None)
    attrs: dict[str, Any] = {
        keys.RESOLVED_PARAMS: resolved,
        keys.VAL_ACC_CURVE: list(val),
        keys.TRAIN_ACC_CURVE: list(train),
        keys.TRAIN_LOSS_CURVE: [2.0 - v for v in train],
        keys.EPOCHS_RUN: len(val),
        keys.WALL_TIME_S: 0.5 * len(val),
        keys.DEVICE: "cpu",
    }
    if prune_reason:
        attrs[keys.PRUNE_REASON] = prune_reason
    if fail_reason:
        attrs[keys.FAIL_REASON] = fail_reason
    start = _T0 + dt.timedelta(seconds=10 * index)
    trial = optuna.trial.FrozenTrial(
        number=index,
        trial_id=index,
        state=state,
        value=val[-1] if state == TrialState.COMPLETE else None,
        datetime_start=start,
        datetime_complete=start + dt.timedelta(seconds=len(val)) if state != TrialState.RUNNING else None,
        params=params,
        distributions=dists,
        user_attrs=attrs,
        system_attrs={},
        intermediate_values={i + 1: v for i, v in enumerate(val)},
    )
    trial._validate()
    return trial


def make_study(specs: list[dict[str, Any]], *, storage: str | None = None, name: str = "synth") -> optuna.Study:
    """A maximize study holding one trial per spec (``make_trial`` keyword arguments)."""
    study = optuna.create_study(direction="maximize", storage=storage, study_name=name)
    study.set_user_attr(keys.STUDY_STRATEGY, "random")
    study.set_user_attr(keys.STUDY_DATASET, "digits")
    study.set_user_attr(keys.STUDY_CONFIG, {"dataset": "digits"})
    for i, spec in enumerate(specs):
        study.add_trial(make_trial(index=i, **spec))
    return study


def mixed_specs() -> list[dict[str, Any]]:
    """A small study with complete, pruned, diverged, failed trials and conditional params."""
    return [
        {"val": (0.6, 0.9)},
        {"bn_placement": "none", "val": (0.4, 0.8)},
        {
            "bn_placement": "after_activation",
            "gamma_init": "zeros",
            "activation": "tanh",
            "val": (0.5, 0.85),
        },
        {
            "val": (0.2,),
            "state": TrialState.PRUNED,
            "prune_reason": "pruned by MedianPruner after epoch 1",
        },
        {
            "bn_placement": "none",
            "lr": 3.0,
            "val": (),
            "state": TrialState.PRUNED,
            "prune_reason": "diverged: training loss became NaN or infinite in epoch 1",
        },
        {"val": (0.3,), "state": TrialState.FAIL, "fail_reason": "RuntimeError: boom"},
        {"bn_classifier": True, "bn_placement": "none", "val": (0.7, 0.95)},
    ]


def findings_records(dataset: str, seed: int, *, bn_gain: float, seed_shift: float, n_test: int = 270) -> list[Any]:
    """Every cell of one seed of the designed experiment: a flat accuracy landscape, BN before the
    activation ``bn_gain`` above the rest, everything moved by ``seed_shift`` (a seed effect that
    pairing must cancel)."""
    import math

    from bnsearch.findings._design import design_cells
    from bnsearch.findings._records import CellRecord

    out = []
    for cell in design_cells():
        gain = bn_gain if cell.arm.name == "relu/before" else 0.0
        acc = 0.9 + seed_shift + gain + 0.001 * math.log10(cell.lr)  # best at the largest lr
        curve = tuple((s, min(1.0, 0.5 + s / 200)) for s in range(20, 320, 20)) if cell.checkpoints else ()
        out.append(
            CellRecord(
                dataset=dataset,
                seed=seed,
                arm=cell.arm.name,
                kind=cell.kind,
                lr=cell.lr,
                val_acc=acc,
                test_acc=acc,
                diverged=False,
                n_test=n_test,
                curve=curve,
                fit_reached=True if cell.kind == "fit" else None,
                fit_train_acc=1.0 if cell.kind == "fit" else None,
            )
        )
    return out


def one_worker(args: Sequence[str]) -> list[str]:
    """A ``bnsearch run`` command line that keeps one worker unless it names ``--workers`` or
    ``--seed``: the default ``--workers auto`` starts one worker per idle core, so the same test
    would start two on a quiet machine and one on a busy one (in-process runs: conftest)."""
    args = list(args)
    if "run" in args[:1] and "--workers" not in args and "--seed" not in args:
        args += ["--workers", "1"]
    return args


def run_bnsearch(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """``python -m bnsearch ARGS`` in ``cwd`` (one worker, as ``one_worker``), output captured."""
    return subprocess.run(
        [sys.executable, "-m", "bnsearch", *one_worker(args)],
        cwd=cwd,
        capture_output=True,
        text=True,
        env={**os.environ, "COLUMNS": "200"},
        timeout=240,
    )


# Design 2: the spec's grid LRS2 (1e-4 … 10, three per decade, 3 significant digits).
LRS2 = tuple(float(f"{10 ** (k / 3 - 4):.3g}") for k in range(16))


@dataclass(frozen=True)
class Arm2:
    """A synthetic design-2 arm: accuracy peaks at ``best_lr`` and falls 2 points a decade from
    it; every lr above ``max_lr`` diverges (grid and probe alike)."""

    peak: float
    best_lr: float = 0.0464
    max_lr: float = 10.0
    early: float = 1.0  # early training loss at lr 1e-4 (it grows with the lr)


DESIGN2_ARMS = {
    "plain:relu/none": Arm2(0.92, max_lr=0.1),
    "plain:relu/before": Arm2(0.95, max_lr=4.64),
    "plain:relu/after": Arm2(0.94, max_lr=4.64),
    "plain:leaky_relu/none": Arm2(0.92, max_lr=0.1),
    "plain:leaky_relu/before": Arm2(0.95),
    "plain:tanh/none": Arm2(0.88, max_lr=0.1),
    "plain:tanh/before": Arm2(0.94),
    "plain:sigmoid/none": Arm2(0.80, max_lr=0.1),
    "plain:sigmoid/before": Arm2(0.93),
    "resnet:relu/post": Arm2(0.95, max_lr=0.464, early=1.2),
    "resnet:relu/post/zero_last": Arm2(0.95, max_lr=2.15, early=0.6),
    "bncnn:relu/none": Arm2(0.94),
    "bncnn:relu/before": Arm2(0.945),
    "bncnn:relu/before+bn1d": Arm2(0.945),
    "bncnn:relu/before#twin": Arm2(0.945),
}


def _bisected(stable: Callable[[int], bool], n: int) -> dict[int, bool]:
    """The grid indices a bisection for the largest stable lr tries, and their verdicts."""
    tried = {0: stable(0), n - 1: stable(n - 1)}
    lo, hi = 0, n - 1
    if tried[lo] and not tried[hi]:
        while hi - lo > 1:
            mid = (lo + hi) // 2
            tried[mid] = stable(mid)
            lo, hi = (mid, hi) if tried[mid] else (lo, mid)
    return tried


def design2_records(
    dataset: str, seed: int, arms: Mapping[str, Arm2] = DESIGN2_ARMS, *, seed_shift: float = 0.0, n_test: int = 1000
) -> list[Any]:
    """Every grid and probe cell of one seed of design 2 on ``arms`` (``seed_shift`` moves every
    arm alike: a seed effect that pairing must cancel)."""
    import math
    from functools import partial

    from bnsearch.findings._records import CellRecord

    out = []
    for name, arm in arms.items():
        cell = partial(CellRecord, dataset=dataset, seed=seed, arm=name, n_test=n_test)
        for lr in LRS2:
            diverged = lr > arm.max_lr
            acc = 0.1 if diverged else arm.peak + seed_shift - 0.02 * abs(math.log10(lr / arm.best_lr))
            grid = cell(kind="grid", lr=lr, val_acc=acc, test_acc=acc, diverged=diverged)
            curve = tuple((s, min(1.0, acc * s / 200)) for s in range(20, 320, 20))
            early = math.inf if diverged else arm.early * (1 + math.log10(lr / 1e-4))
            out.append(replace(grid, curve=curve, test_nll=None if diverged else 0.05 + (1 - acc), early_loss=early))
        tried = _bisected(lambda i, arm=arm: LRS2[i] <= arm.max_lr, len(LRS2))
        out += [
            cell(kind="probe", lr=LRS2[i], val_acc=0.6 if ok else 0.1, test_acc=0.6 if ok else 0.1, diverged=not ok)
            for i, ok in sorted(tried.items())
        ]
    return out
