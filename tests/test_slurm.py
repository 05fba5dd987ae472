"""The SLURM recipe (``examples/slurm/bnsearch-array.sh``) on a real one-node SLURM cluster.

``.ci/slurm.sh`` starts munged, slurmctld and slurmd on 127.0.0.1 in a throw-away folder; the
tests submit the recipe as a job array against a journal file and against the test PostgreSQL,
and check the study. Skipped with the reason where SLURM cannot start here; never in CI.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import optuna
import pytest
from optuna.trial import FrozenTrial, TrialState

from bnsearch import keys
from bnsearch.search.budget import counted_trials
from bnsearch.storages import ENV_GRACE_PERIOD, ENV_HEARTBEAT_INTERVAL, open_storage

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parent.parent
RECIPE = ROOT / "examples" / "slurm" / "bnsearch-array.sh"
QUICK = ("--dataset", "digits", "--epochs", "1", "--strategy", "random", "--pruner", "none")


def _in_ci() -> bool:
    return os.environ.get("CI", "").lower() in ("1", "true", "yes")


@pytest.fixture(scope="module")
def slurm_env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """The environment for sbatch/squeue/scancel against a fresh one-node cluster."""
    folder = tmp_path_factory.mktemp("slurm")
    start = subprocess.run(
        [str(ROOT / ".ci" / "slurm.sh"), "start", str(folder)], capture_output=True, text=True, timeout=120
    )
    if start.returncode != 0:
        problem = f"SLURM cannot start here: {start.stderr.strip() or start.stdout.strip()}"
        if _in_ci():
            pytest.fail(f"CI must run the SLURM tests: {problem}")
        pytest.skip(problem)
    conf = start.stdout.strip().split("=", 1)[1]
    env = {**os.environ, "SLURM_CONF": conf}
    # The tasks run `bnsearch` from this interpreter's environment, with this checkout importable.
    env["PATH"] = f"{Path(shutil.which('python') or 'python').parent}:{env['PATH']}"
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH", "")) if p)
    yield env
    subprocess.run([str(ROOT / ".ci" / "slurm.sh"), "stop", str(folder)], capture_output=True, timeout=60)


def _storage(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> str:
    if backend == "postgresql":
        return str(request.getfixturevalue("postgres_url"))
    return f"journal:///{tmp_path / 'studies' / 'bnsearch.log'}"  # journal:////abs/path.log


def _sbatch(env: dict[str, str], tmp_path: Path, *args: str, wait: bool) -> subprocess.Popen[str]:
    cmd = ["sbatch", "--parsable", "--array=0-2", "--cpus-per-task=1", f"--output={tmp_path}/task-%a.out"]
    return subprocess.Popen(
        [*cmd, *(("--wait",) if wait else ()), str(RECIPE), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=tmp_path,
        env=env,
    )


def _outputs(tmp_path: Path) -> str:
    return "\n".join(f"--- {p.name}\n{p.read_text()}" for p in sorted(tmp_path.glob("task-*.out")))


def _trials(url: str, name: str) -> list[FrozenTrial]:
    return optuna.load_study(study_name=name, storage=open_storage(url, create=False, heartbeat=False)).trials


@pytest.mark.parametrize("backend", ["journal", "postgresql"])
def test_job_array_adds_exactly_max_trials(
    backend: str, slurm_env: dict[str, str], tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    url = _storage(backend, tmp_path, request)
    name = f"slurm-{uuid.uuid4().hex[:8]}"
    env = {**slurm_env, "BNSEARCH_STORAGE": url}
    job = _sbatch(env, tmp_path, *QUICK, "--study", name, "--max-trials", "7", wait=True)
    out, err = job.communicate(timeout=600)
    logs = _outputs(tmp_path)
    assert job.returncode == 0, f"{out}\n{err}\n{logs}"
    assert logs.count("1 worker(s), 1 thread(s) each") == 3
    assert logs.count("of --max-trials 7)") == 3 and "Traceback" not in logs, logs
    trials = _trials(url, name)
    assert len(trials) == 7, logs
    assert {t.state for t in trials} <= {TrialState.COMPLETE, TrialState.PRUNED}
    assert len({t.user_attrs[keys.WORKER] for t in trials}) >= 2, logs  # the tasks shared the work


def _mid_trial(t: FrozenTrial) -> bool:
    """Running, with at least 20 of its 30 epochs still to go when the stop reaches it."""
    return t.state == TrialState.RUNNING and 1 <= len(t.intermediate_values) <= 10 and keys.WORKER in t.user_attrs


@pytest.mark.parametrize("how", ["scancel", "kill-9"])
def test_a_task_stopped_mid_trial_has_its_trial_retried(
    how: str, slurm_env: dict[str, str], tmp_path: Path, postgres_url: str
) -> None:
    """One array task stopped mid-trial: by ``scancel`` (SLURM sends SIGTERM: bnsearch closes
    the trial as interrupted and queues it again) or by SIGKILL to its bnsearch process (what the
    OOM killer or a lost node does: the trial is failed by heartbeat and queued again). Another
    task retries it, and the study still ends at exactly --max-trials."""
    name = f"slurm-{how}-{uuid.uuid4().hex[:8]}"
    env = {**slurm_env, "BNSEARCH_STORAGE": postgres_url, ENV_HEARTBEAT_INTERVAL: "1", ENV_GRACE_PERIOD: "3"}
    # Learning rates that never diverge: a diverging trial ends within a few steps, and the
    # victim must still be training when it is stopped. 30 epochs: on a quiet machine 8 epochs
    # of digits took 3 s, less than scancel took to reach the task (the trial had finished).
    space = tmp_path / "calm.toml"
    space.write_text("lr = { low = 0.005, high = 0.05, log = true }\n")
    long_trials = ("--dataset", "digits", "--epochs", "30", "--strategy", "random", "--pruner", "none")
    long_trials += ("--space", str(space))
    # Enough trials left after the stop that the other tasks still start some once the
    # stopped trial's heartbeat is stale (grace 3 s): that is when a SIGKILLed trial is retried.
    job = _sbatch(env, tmp_path, *long_trials, "--study", name, "--max-trials", "12", wait=True)
    victim = None
    end = time.monotonic() + 300
    while victim is None and time.monotonic() < end and job.poll() is None:
        try:
            victim = next((t for t in _trials(postgres_url, name) if _mid_trial(t)), None)
        except Exception:  # the study does not exist yet
            pass
        time.sleep(0.2)
    assert victim is not None, _outputs(tmp_path)
    pid = int(victim.user_attrs[keys.WORKER].rsplit(":", 1)[1])
    if how == "scancel":
        task_env = dict(
            line.split("=", 1) for line in Path(f"/proc/{pid}/environ").read_text().split("\0") if "=" in line
        )
        task = f"{task_env['SLURM_ARRAY_JOB_ID']}_{task_env['SLURM_ARRAY_TASK_ID']}"
        subprocess.run(["scancel", task], check=True, env=slurm_env, timeout=30)
    else:
        os.kill(pid, signal.SIGKILL)

    job.communicate(timeout=600)
    logs = _outputs(tmp_path)
    assert job.returncode != 0, logs  # sbatch --wait reports the stopped task
    if how == "scancel":
        assert "CANCELLED" in logs and "interrupted by SIGTERM" in logs, logs
    trials = _trials(postgres_url, name)
    dead = next(t for t in trials if t.number == victim.number)
    assert dead.state == TrialState.FAIL, logs
    assert dead.user_attrs.get(keys.FAIL_REASON) == ("interrupted" if how == "scancel" else None)
    retries = [t for t in trials if t.system_attrs.get("failed_trial") == victim.number]
    assert len(retries) == 1 and retries[0].params == dead.params, logs
    assert retries[0].state == TrialState.COMPLETE, logs
    assert retries[0].user_attrs[keys.WORKER] != dead.user_attrs[keys.WORKER]  # another task ran it
    assert counted_trials(trials) == 12 and len(trials) == 13, logs  # the retry took the stopped trial's place
    assert not [t.number for t in trials if t.state in (TrialState.RUNNING, TrialState.WAITING)], logs
