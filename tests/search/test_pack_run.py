"""End to end: `bnsearch run --pack K` asks K trials at once and trains them as packed models."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pytest
from _synth import one_worker
from optuna.trial import FrozenTrial, TrialState

from bnsearch import keys
from bnsearch.core.data import DeviceData
from bnsearch.core.model import ModelConfig
from bnsearch.core.packed import shape_key
from bnsearch.core.space import SearchSpace, TrialParams
from bnsearch.samplers import strategies
from bnsearch.search.objective import Objective
from bnsearch.search.packing import optimize_packed

FAST = ["--dataset", "digits", "--epochs", "1", "--batch-size", "64", "--threads", "1", "--device", "cpu"]
# One shape (activation and BN fixed), so a pack of 4 trains as one group; lr safe from divergence.
ONE_SHAPE = """
lr = { low = 0.005, high = 0.1, log = true }
activation = "tanh"
bn_placement = "before_activation"
bn_classifier = true
"""


def bnsearch(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "bnsearch", *one_worker(args)], cwd=cwd, capture_output=True, text=True, timeout=300
    )


@pytest.fixture
def one_shape(tmp_path: Path) -> str:
    """A --space file of one shape."""
    space = tmp_path / "space.toml"
    space.write_text(ONE_SHAPE)
    return str(space)


def trials_of(url: str, name: str) -> list[FrozenTrial]:
    return optuna.load_study(study_name=name, storage=url).get_trials()


def _shape(t: FrozenTrial) -> tuple[object, ...]:
    return shape_key(TrialParams(**t.user_attrs[keys.RESOLVED_PARAMS]))


def _assert_packs_consistent(trials: list[FrozenTrial]) -> None:
    """Every trial names its pack; the pack holds it, and only trials of its shape."""
    by_number = {t.number: t for t in trials}
    for t in trials:
        pack = t.user_attrs[keys.PACK_TRIALS]
        assert t.number in pack
        assert {_shape(by_number[n]) for n in pack} == {_shape(t)}
        if t.state != TrialState.FAIL:
            assert [t.intermediate_values[e] for e in sorted(t.intermediate_values)] == t.user_attrs[keys.VAL_ACC_CURVE]
            assert t.user_attrs[keys.WALL_TIME_S] > 0


def test_packed_run_trains_each_trial_on_its_own_and_resumes(tmp_path: Path, sqlite_url: str, one_shape: str) -> None:
    args = ["run", "--strategy", "tpe", "--pack", "4", "--pruner", "none", "--storage", sqlite_url]
    args += ["--space", one_shape, "--study-name", "p", *FAST]
    first = bnsearch(*args, "--trials", "6", cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    trials = trials_of(sqlite_url, "p")
    assert [t.state for t in trials] == [TrialState.COMPLETE] * 6
    assert [t.user_attrs[keys.PACK_TRIALS] for t in trials] == [[0, 1, 2, 3]] * 4 + [[4, 5]] * 2
    assert len({t.user_attrs[keys.TRIAL_SEED] for t in trials}) == 6
    assert len({t.params["lr"] for t in trials}) == 6
    _assert_packs_consistent(trials)

    again = bnsearch(*args, "--trials", "3", cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    assert "resuming study p (6 trials so far)" in again.stdout
    trials = trials_of(sqlite_url, "p")
    assert [t.state for t in trials] == [TrialState.COMPLETE] * 9
    assert trials[6].user_attrs[keys.PACK_TRIALS] == [6, 7, 8]


def test_packed_random_search_samples_what_an_unpacked_one_samples(tmp_path: Path) -> None:
    urls = [f"sqlite:///{tmp_path / f'{k}.db'}" for k in (1, 4)]
    for k, url in zip((1, 4), urls, strict=True):
        r = bnsearch(
            "run", "--strategy", "random", "--trials", "6", "--pack", str(k), "--storage", url, *FAST, cwd=tmp_path
        )
        assert r.returncode == 0, r.stderr
    unpacked, packed = (trials_of(url, "digits-random") for url in urls)
    assert [t.params for t in packed] == [t.params for t in unpacked]
    assert [t.user_attrs[keys.TRIAL_SEED] for t in packed] == [t.user_attrs[keys.TRIAL_SEED] for t in unpacked]
    # The default space has many shapes: a pack of 4 splits into groups of one shape each.
    _assert_packs_consistent(packed)
    assert all(keys.PACK_TRIALS not in t.user_attrs for t in unpacked)


@pytest.mark.slow
@pytest.mark.parametrize("strategy", [s.name for s in strategies()])
def test_every_strategy_runs_packed_with_pruning(
    tmp_path: Path, sqlite_url: str, one_shape: str, strategy: str
) -> None:
    args = ["run", "--strategy", strategy, "--pack", "4", "--trials", "8", "--storage", sqlite_url]
    r = bnsearch(*args, "--space", one_shape, *FAST[:2], "--epochs", "3", *FAST[4:], cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    trials = trials_of(sqlite_url, f"digits-{strategy}")
    assert len(trials) == 8
    assert all(t.state in (TrialState.COMPLETE, TrialState.PRUNED) for t in trials)
    for t in trials:
        if t.state == TrialState.PRUNED:
            assert t.user_attrs[keys.PRUNE_REASON]
    _assert_packs_consistent(trials)


@pytest.mark.slow
def test_two_workers_pack_and_add_exactly_the_asked_trials(tmp_path: Path, sqlite_url: str, one_shape: str) -> None:
    args = ["run", "--workers", "2", "--pack", "3", "--trials", "7", "--storage", sqlite_url, "--space", one_shape]
    r = bnsearch(*args, *FAST, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    trials = trials_of(sqlite_url, "digits-tpe")
    assert len(trials) == 7
    assert len({t.user_attrs[keys.WORKER] for t in trials}) == 2
    assert all(len(t.user_attrs[keys.PACK_TRIALS]) <= 3 for t in trials)
    _assert_packs_consistent(trials)


@pytest.mark.slow
def test_ctrl_c_closes_every_trial_of_the_pack_as_interrupted(tmp_path: Path, sqlite_url: str, one_shape: str) -> None:
    args = ["run", "--pack", "3", "--trials", "3", "--pruner", "none", "--storage", sqlite_url, "--space", one_shape]
    args += ["--study-name", "intr", "--dataset", "digits", "--epochs", "30", "--threads", "1", "--device", "cpu"]
    proc = subprocess.Popen(
        [sys.executable, "-m", "bnsearch", *one_worker(args)],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    end = time.monotonic() + 180
    while time.monotonic() < end:
        try:
            trials = trials_of(sqlite_url, "intr")
        except Exception:  # not created yet
            trials = []
        if len(trials) == 3 and all(t.intermediate_values for t in trials):
            break
        assert proc.poll() is None, proc.communicate()
        time.sleep(0.2)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, (out, err)
    assert "Traceback" not in err
    trials = trials_of(sqlite_url, "intr")
    packed = [t for t in trials if t.number < 3]
    assert [t.state for t in packed] == [TrialState.FAIL] * 3
    assert [t.user_attrs[keys.FAIL_REASON] for t in packed] == ["interrupted"] * 3
    for t in packed:
        assert [t.intermediate_values[e] for e in sorted(t.intermediate_values)] == t.user_attrs[keys.VAL_ACC_CURVE]
    # Interrupted trials are queued again with their params, once each (as Optuna's heartbeat retry).
    retries = [t for t in trials if t.number >= 3]
    assert [t.state for t in retries] == [TrialState.WAITING] * 3
    assert sorted(t.system_attrs["failed_trial"] for t in retries) == [0, 1, 2]
    for t in retries:
        assert t.params == packed[t.system_attrs["failed_trial"]].params


class _PruneNumber(optuna.pruners.BasePruner):
    def __init__(self, number: int) -> None:
        self.number = number

    def prune(self, study: optuna.Study, trial: FrozenTrial) -> bool:
        return trial.number == self.number


def test_a_pruned_trial_is_told_at_once_and_the_pack_goes_on(tiny_digits: DeviceData) -> None:
    space = SearchSpace.default().with_fixed(
        lr=0.05, epochs=3, batch_size=64, activation="tanh", bn_placement="none", bn_classifier=False
    )
    objective = Objective(space=space, data=tiny_digits, root_seed=0, model_cfg=ModelConfig(widths=(8, 16)))
    study = optuna.create_study(direction="maximize", sampler=optuna.samplers.RandomSampler(seed=0))
    study.pruner = _PruneNumber(1)
    told: list[tuple[int, TrialState, int]] = []

    def record(study: optuna.Study, t: FrozenTrial) -> None:
        running = len(study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)))
        told.append((t.number, t.state, running))

    optimize_packed(study, objective, pack=3, n_trials=3, callbacks=[record])
    # Trial 1 is told after its first epoch, while 0 and 2 still train; they finish all 3 epochs.
    assert told[0] == (1, TrialState.PRUNED, 2)
    assert sorted((n, state) for n, state, _ in told[1:]) == [(0, TrialState.COMPLETE), (2, TrialState.COMPLETE)]
    trials = study.get_trials()
    assert sorted(trials[1].intermediate_values) == [1]
    assert trials[1].user_attrs[keys.PRUNE_REASON].startswith("pruned by _PruneNumber after epoch 1")
    for t in (trials[0], trials[2]):
        assert t.state == TrialState.COMPLETE and sorted(t.intermediate_values) == [1, 2, 3]
        assert t.user_attrs[keys.PACK_TRIALS] == [0, 1, 2]
