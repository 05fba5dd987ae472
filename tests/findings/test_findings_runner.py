"""The runner on a shrunken design: cells become trials, a rerun trains nothing, a killed run
resumes with what is missing; packed cells."""

from __future__ import annotations

import optuna
import pytest

from bnsearch.core.data import DeviceData
from bnsearch.findings import _runner
from bnsearch.findings._design import BN_BEFORE, NO_BN, Cell, FindingsConfig
from bnsearch.findings._train import train_cell, train_cells_packed

SMALL = [Cell(NO_BN, 0.03), Cell(BN_BEFORE, 0.03), Cell(BN_BEFORE, 0.3)]


@pytest.fixture
def small_design(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_runner, "design_cells", lambda: list(SMALL))
    monkeypatch.setattr(_runner, "epochs_for", lambda dataset: 1)


@pytest.mark.usefixtures("small_design")
def test_cells_become_trials_and_a_rerun_trains_nothing(sqlite_url: str) -> None:
    cfg = FindingsConfig(datasets=("digits",), seeds=2, storage=sqlite_url)
    seen: list[str] = []
    summary = _runner.run_experiment(cfg, on_cell=lambda d, s, cell, attrs: seen.append(f"{s}:{cell.key}"))
    assert summary.cells_run == 6 and len(seen) == 6
    assert {r.arm for r in summary.records} == {"relu/none", "relu/before"}
    study = optuna.load_study(study_name="findings-digits-s0", storage=sqlite_url)
    assert {t.user_attrs[_runner.CELL_ATTR] for t in study.trials} == {c.key for c in SMALL}
    again = _runner.run_experiment(cfg)
    assert again.cells_run == 0 and len(again.records) == 6


@pytest.mark.usefixtures("small_design")
def test_an_interrupted_study_is_topped_up_with_the_missing_cells_only(sqlite_url: str) -> None:
    cfg = FindingsConfig(datasets=("digits",), seeds=2, storage=sqlite_url)
    calls = {"n": 0}

    def die_after_two(dataset: str, seed: int, cell: Cell, attrs: dict[str, object]) -> None:
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        _runner.run_experiment(cfg, on_cell=die_after_two)
    assert _runner.check_studies(cfg) == {("digits", 0): 1, ("digits", 1): 3}
    assert _runner.run_experiment(cfg).cells_run == 4


def test_packed_cells_measure_like_single_ones(tiny_digits: DeviceData) -> None:
    cells = [Cell(BN_BEFORE, 0.01), Cell(BN_BEFORE, 0.05)]
    packed = train_cells_packed(cells, tiny_digits, seed=0, epochs=2)
    single = [train_cell(c, tiny_digits, seed=0, epochs=2) for c in cells]
    for p, s in zip(packed, single, strict=True):
        assert not p.diverged and p.epochs_run == 2
        assert abs(p.val_acc - s.val_acc) < 0.05  # same nets, same batches; only float rounding differs
