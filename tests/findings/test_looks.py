"""Design 2's looks: the sequential judge on cells, and the driver that adds seeds only to the
arms of undecided claims (on synthetic cells: the training is stood in for, the judging is real)."""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import replace
from typing import Any

import numpy as np
import pytest
from _synth import design2_records

from bnsearch import claims as ck
from bnsearch.findings import _looks
from bnsearch.findings._catalogue2 import catalogue
from bnsearch.findings._design import FindingsConfig
from bnsearch.findings._judge import judge
from bnsearch.findings._records import CellRecord
from bnsearch.findings._runner import RunSummary
from bnsearch.stats import SequentialPlan

PLAN = SequentialPlan(looks=(5, 10, 20))
NOISY = "bncnn:relu/none"  # its accuracy gets seed noise: bncnn's BN-accuracy claim stays open
CLEAR = ck.on_net("plain", ck.BN_ACCURACY)  # plain relu before − none: +3 points on every seed
OPEN = ck.on_net("bncnn", ck.BN_ACCURACY)


def _cells(dataset: str, seed: int, arms: Collection[str] | None = None) -> list[CellRecord]:
    """One seed's cells; ``NOISY``'s accuracies raised to its BN twin's (no true effect) and moved
    by a seed-specific draw (sd 2 points), so bncnn's BN-accuracy claim stays undecided to the cap."""
    shift = 0.005 + float(np.random.default_rng(1000 + seed).normal(0, 0.02))
    out = []
    for r in design2_records(dataset, seed):
        if arms is not None and r.arm not in arms:
            continue
        if r.arm == NOISY and r.kind == "grid" and not r.diverged:
            r = replace(r, val_acc=r.val_acc + shift, test_acc=r.test_acc + shift)
        out.append(r)
    return out


def _by_key(results: Any, dataset: str = "digits") -> dict[str, Any]:
    return {r.key: r for r in results if r.dataset == dataset}


def test_a_decided_claim_keeps_its_look_and_seeds_when_its_arms_get_more() -> None:
    """plain's BN-accuracy claim is decided at look 1 on 5 seeds; 10 seeds of its arms later
    (added for another claim) do not change its look, seeds or interval."""
    five = [r for s in range(5) for r in _cells("digits", s)]
    ten = [r for s in range(10) for r in _cells("digits", s)]
    at5, at10 = _by_key(judge(five, design=2, plan=PLAN)), _by_key(judge(ten, design=2, plan=PLAN))
    assert at5[CLEAR].verdict == ck.SUPPORTED and (at5[CLEAR].look, at5[CLEAR].seeds_used) == (1, 5)
    assert (at10[CLEAR].verdict, at10[CLEAR].look, at10[CLEAR].seeds_used) == (ck.SUPPORTED, 1, 5)
    assert (at10[CLEAR].ci_low, at10[CLEAR].ci_high) == (at5[CLEAR].ci_low, at5[CLEAR].ci_high)
    assert at5[OPEN].verdict == ck.INCONCLUSIVE and at5[OPEN].look == 1
    assert at10[OPEN].look == 2 and at10[OPEN].seeds_used == 10
    assert any("decided at look 1 of 3" in n for n in at10[CLEAR].notes)


def test_a_look_is_judged_only_once_every_undecided_claim_has_its_seeds() -> None:
    """Seeds 5–9 of only some arms (a run stopped inside look 2): the family stays at look 1."""
    recs = [r for s in range(5) for r in _cells("digits", s)]
    recs += [r for s in range(5, 10) for r in _cells("digits", s, arms={"plain:relu/before", "plain:relu/none"})]
    res = _by_key(judge(recs, design=2, plan=PLAN))
    assert res[OPEN].look == 1 and res[OPEN].seeds_used == 5


def test_fixed_sample_judging_is_unchanged_without_a_plan() -> None:
    recs = [r for s in range(5) for r in _cells("digits", s)]
    res = judge(recs, design=2)
    assert all(r.look is None and r.seeds_used is None for r in res)


class _FakeRuns:
    """Stands in for training: cells appear as ``run_experiment`` is asked for them."""

    def __init__(self) -> None:
        self.cells: list[CellRecord] = []
        self.calls: list[tuple[tuple[str, ...], int, tuple[str, ...] | None]] = []

    def run_experiment(self, cfg: FindingsConfig, *, arms: Collection[str] | None = None, **_: Any) -> RunSummary:
        self.calls.append((cfg.datasets, cfg.seeds, None if arms is None else tuple(sorted(arms))))
        have = {(r.dataset, r.seed, r.arm, r.kind, r.lr) for r in self.cells}
        new = [
            r
            for d in cfg.datasets
            for s in range(cfg.seeds)
            for r in _cells(d, s, arms)
            if (r.dataset, r.seed, r.arm, r.kind, r.lr) not in have
        ]
        self.cells += new
        return RunSummary(records=tuple(new), cells_run=len(new), study_names=())

    def read_records(self, cfg: FindingsConfig, plan: SequentialPlan) -> tuple[list[CellRecord], tuple[str, ...]]:
        return list(self.cells), ()


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch) -> _FakeRuns:
    runs = _FakeRuns()
    monkeypatch.setattr(_looks, "run_experiment", runs.run_experiment)
    monkeypatch.setattr(_looks, "read_records", runs.read_records)
    return runs


def test_seeds_are_added_only_for_the_arms_of_undecided_claims(fake: _FakeRuns) -> None:
    cfg = FindingsConfig(datasets=("digits",), design=2, seeds=5)
    lines: list[str] = []
    summary = _looks.run_looks(cfg, PLAN, on_event=lines.append)
    first, *later = fake.calls
    assert first == (("digits",), 5, None)  # the first look: every cell
    assert later, "an undecided claim must get more seeds"
    claims = {c.key: c for c in catalogue(2)}
    for _, seeds, arms in later:
        assert seeds in (10, 20) and arms is not None
        assert set(claims[OPEN].arms) <= set(arms)
    seeds_of = {a: max(r.seed for r in fake.cells if r.arm == a) + 1 for a in {r.arm for r in fake.cells}}
    assert seeds_of[NOISY] == 20  # undecided to the cap
    went_on = {a for r in summary.results if r.primary and (r.look or 0) > 1 for a in claims[r.key].arms}
    stopped = {a for r in summary.results if r.primary and r.look == 1 for a in claims[r.key].arms} - went_on
    assert stopped, "some claims are decided at the first look"
    assert all(seeds_of[a] == 5 for a in stopped)  # no seed beyond the first look for their arms
    res = _by_key(summary.results)
    assert res[OPEN].verdict == ck.INCONCLUSIVE and res[OPEN].look == 3 and res[OPEN].seeds_used == 20
    assert res[CLEAR].look == 1
    assert any("seeds for 80% power" in line for line in lines)
    assert any("undecided" in line and "seeds 5–9" in line for line in lines)


def test_a_second_call_trains_nothing_and_gives_the_same_verdicts(fake: _FakeRuns) -> None:
    cfg = FindingsConfig(datasets=("digits",), design=2, seeds=5)
    once = _looks.run_looks(cfg, PLAN)
    again = _looks.run_looks(cfg, PLAN)
    assert again.cells_run == 0
    assert [(r.key, r.verdict, r.look, r.seeds_used) for r in again.results] == [
        (r.key, r.verdict, r.look, r.seeds_used) for r in once.results
    ]


def test_no_time_is_forecast_off_the_cpu(fake: _FakeRuns, monkeypatch: pytest.MonkeyPatch) -> None:
    """The seconds per cell are CPU measurements: on a GPU the run forecasts no minutes."""
    from bnsearch.findings import _design

    monkeypatch.setattr(_design, "resolve_device", lambda device: device)  # no GPU needed: nothing trains
    lines: list[str] = []
    _looks.run_looks(
        FindingsConfig(datasets=("digits",), design=2, seeds=5, device="cuda"), PLAN, on_event=lines.append
    )
    assert any("no time estimate on cuda" in line for line in lines)
    assert not any(" min" in line or "about" in line for line in lines), lines
    on_cpu: list[str] = []
    _looks.run_looks(FindingsConfig(datasets=("digits",), design=2, seeds=5), PLAN, on_event=on_cpu.append)
    assert any("the first look trains every cell: about" in line for line in on_cpu)
