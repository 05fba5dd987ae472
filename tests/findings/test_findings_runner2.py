"""The design-2 runner on a shrunken design: grid and probe cells become trials, top_up(arms=...),
a probe bisection resumes after a kill, a study of the other design is refused (library and CLI)."""

from __future__ import annotations

import math

import optuna
import pytest
from typer.testing import CliRunner, Result

from bnsearch import keys
from bnsearch.cli import app
from bnsearch.errors import StudyError
from bnsearch.findings import _design2 as d2
from bnsearch.findings import _runner
from bnsearch.findings._design import FindingsConfig, design_identity
from bnsearch.findings._probe import ProbePoint, largest_stable_lr, next_probe_index

NONE, BEFORE = d2.BNCNN_ARMS[0], d2.BNCNN_ARMS[1]
SMALL = {NONE.name: (0.01, 0.1), BEFORE.name: (0.01,)}
PROBE_GRID = (0.001, 0.01, 0.1, 1.0, 10.0)


@pytest.fixture
def small_design(monkeypatch: pytest.MonkeyPatch) -> None:
    """Two bncnn arms on one or two lrs, one epoch; the no-BN arm probed over five lrs."""

    def cells(arms: object = None) -> list[d2.Cell2]:
        names = SMALL if arms is None else [a for a in SMALL if a in arms]  # type: ignore[operator]
        return [d2.Cell2(d2.arm_by_name(a), lr) for a in names for lr in SMALL[a]]

    monkeypatch.setattr(_runner, "design2_cells", cells)
    monkeypatch.setattr(_runner, "probe_arms", lambda arms=None: (NONE,) if arms is None or NONE.name in arms else ())
    monkeypatch.setattr(_runner, "probe_lrs", lambda: PROBE_GRID)
    monkeypatch.setattr(_runner, "max_probe_cells", lambda: 3)
    monkeypatch.setattr(_runner, "epochs2", lambda dataset: 1)


def _cfg(url: str, **kw: object) -> FindingsConfig:
    return FindingsConfig(datasets=("digits",), seeds=2, storage=url, design=2, **kw)  # type: ignore[arg-type]


@pytest.mark.usefixtures("small_design")
def test_grid_and_probe_cells_become_trials_and_a_rerun_trains_nothing(sqlite_url: str) -> None:
    summary = _runner.run_experiment(_cfg(sqlite_url))
    grid = [r for r in summary.records if r.kind == "grid"]
    probes = [r for r in summary.records if r.kind == "probe"]
    assert len(grid) == 2 * 3 and {r.arm for r in grid} == {NONE.name, BEFORE.name}
    assert all(r.test_nll is not None and r.early_loss is not None for r in grid)
    assert all(r.n_test == 629 for r in grid)  # 35% of digits' 1797 images
    assert probes and all(r.arm == NONE.name and math.isnan(r.test_acc) for r in probes)
    assert summary.study_names == ("findings2-digits-s0", "findings2-digits-s1")
    for seed in (0, 1):
        points = [ProbePoint(lr=r.lr, val_acc=r.val_acc, diverged=r.diverged) for r in probes if r.seed == seed]
        assert len(points) <= 3
        lr, _ = largest_stable_lr(points, PROBE_GRID)  # the bisection finished: the answer is pinned
        assert lr in PROBE_GRID
    again = _runner.run_experiment(_cfg(sqlite_url))
    assert again.cells_run == 0 and len(again.records) == len(summary.records)


@pytest.mark.usefixtures("small_design")
def test_top_up_trains_only_the_given_arms(sqlite_url: str) -> None:
    cfg = _cfg(sqlite_url)
    assert _runner.top_up(cfg, "digits", 0, arms=[BEFORE.name]) == 1  # one grid cell, no probe
    study = optuna.load_study(study_name="findings2-digits-s0", storage=sqlite_url)
    assert {t.user_attrs["arm"] for t in study.trials} == {BEFORE.name}
    assert _runner.top_up(cfg, "digits", 0, arms=[BEFORE.name]) == 0
    assert _runner.top_up(cfg, "digits", 0) >= 3  # the other arm's two grid cells and its probes
    assert _runner.missing_cells(cfg, study) == 0


@pytest.mark.usefixtures("small_design")
def test_a_killed_probe_bisection_resumes_where_it_stopped(sqlite_url: str) -> None:
    cfg = _cfg(sqlite_url)
    calls = {"n": 0}

    def die_after_first_probe(dataset: str, seed: int, cell: d2.Cell2, attrs: dict[str, object]) -> None:
        if cell.kind == "probe":
            calls["n"] += 1
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        _runner.top_up(cfg, "digits", 0, on_cell=die_after_first_probe)
    study = optuna.load_study(study_name="findings2-digits-s0", storage=sqlite_url)
    assert len(_runner.probe_verdicts(study, NONE)) == 1 and _runner.next_probe(study, NONE) is not None
    _runner.top_up(cfg, "digits", 0)
    verdicts = _runner.probe_verdicts(study, NONE)
    # What was stored is exactly what one uninterrupted bisection on these verdicts probes.
    replay: dict[int, bool] = {}
    while (i := next_probe_index(replay, len(PROBE_GRID))) is not None:
        replay[i] = verdicts[i]
    assert replay == verdicts and _runner.next_probe(study, NONE) is None


def _study_with_identity(url: str, name: str, identity: dict[str, object]) -> optuna.Study:
    study = optuna.create_study(study_name=name, storage=url, direction="maximize")
    study.set_user_attr(keys.STUDY_CONFIG, identity)
    return study


def test_a_design_1_study_is_refused_by_a_design_2_run_and_vice_versa(sqlite_url: str) -> None:
    _study_with_identity(sqlite_url, "findings2-digits-s0", {**design_identity("digits"), "seed": 0})
    with pytest.raises(StudyError, match="holds cells of findings design 1, this run is design 2"):
        _runner.check_studies(_cfg(sqlite_url))
    _study_with_identity(sqlite_url, "findings-digits-s0", {**d2.design2_identity("digits"), "seed": 0})
    one = FindingsConfig(datasets=("digits",), seeds=2, storage=sqlite_url)
    with pytest.raises(StudyError, match="holds cells of findings design 2, this run is design 1"):
        _runner.check_studies(one)


def test_the_cli_refuses_a_design_1_study_in_one_line_before_training(sqlite_url: str) -> None:
    study = _study_with_identity(sqlite_url, "findings2-digits-s0", {**design_identity("digits"), "seed": 0})
    result = CliRunner().invoke(app, ["findings", "--design", "2", "--quick", "--storage", sqlite_url])
    assert result.exit_code == 2, result.output
    lines = [ln for ln in result.output.strip().splitlines() if ln.startswith("error:")]
    assert len(lines) == 1 and "design 1" in lines[0] and "--design 1" in lines[0]
    assert "Traceback" not in result.output and len(study.trials) == 0


@pytest.mark.usefixtures("small_design")
def test_cli_design_2_runs_a_tiny_design_end_to_end(sqlite_url: str, tmp_path: object) -> None:
    out = f"{tmp_path}/f.html"
    args = ["findings", "--design", "2", "--datasets", "digits", "--looks", "2", "--storage", sqlite_url, "--out", out]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "findings (design 2)" in result.output and "looks at 2 seeds" in result.output
    assert "the first look trains every cell: about" in result.output
    assert "probe:bncnn:relu/none" in result.output and "grid:bncnn:relu/before:lr=0.01" in result.output
    again = CliRunner().invoke(app, args)
    assert again.exit_code == 0 and "(0 cells trained now" in again.output


@pytest.mark.usefixtures("small_design")
def test_cli_pack_4_stores_the_cells_of_pack_1_and_resumes(tmp_path: object) -> None:
    """The no-BN arm's two grid cells train as one pack; probes and the lone cell one by one."""

    def run(url: str, pack: int) -> Result:
        args = ["findings", "--datasets", "digits", "--looks", "2", "--storage", url, "--out", f"{tmp_path}/f.html"]
        return CliRunner().invoke(app, [*args, "--pack", str(pack)])

    packed_url, single_url = f"sqlite:///{tmp_path}/packed.db", f"sqlite:///{tmp_path}/single.db"
    result = run(packed_url, 4)
    assert result.exit_code == 0, result.output
    assert "on cpu in packs of 4" in result.output
    assert run(single_url, 1).exit_code == 0
    for seed in (0, 1):
        name = f"findings2-digits-s{seed}"
        packed, single = (
            {
                t.user_attrs[_runner.CELL_ATTR]: t.user_attrs
                for t in optuna.load_study(study_name=name, storage=url).trials
            }
            for url in (packed_url, single_url)
        )
        assert packed.keys() == single.keys() and len(packed) >= 3
        for key, attrs in packed.items():
            assert attrs["device"] == "cpu"
            assert attrs["val_acc"] == pytest.approx(single[key]["val_acc"], abs=0.01), key
    again = run(packed_url, 4)
    assert again.exit_code == 0 and "(0 cells trained now" in again.output
