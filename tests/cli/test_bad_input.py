"""Every bad input to ``bnsearch run``: exit code 2, one ``error:`` line that says what is wrong
and what would be right, no traceback, and no storage created or study changed.

(``report`` / ``export --study`` are not on this branch yet; their "no such study" case belongs
with those commands.)"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import optuna
import pytest
from typer.testing import CliRunner

from bnsearch.cli import app


@dataclass(frozen=True)
class Bad:
    args: Callable[[Path], list[str]]  # run options (given tmp_path); --storage is added unless present
    message: str  # a part of the one error line


def _file(name: str, content: bytes | str) -> Callable[[Path], Path]:
    def make(d: Path) -> Path:
        p = d / "inputs" / name
        p.parent.mkdir(exist_ok=True)
        p.write_bytes(content.encode() if isinstance(content, str) else content)
        return p

    return make


def _npz(name: str, **arrays: np.ndarray) -> Callable[[Path], Path]:
    def make(d: Path) -> Path:
        p = d / "inputs" / name
        p.parent.mkdir(exist_ok=True)
        np.savez(p, **arrays)
        return p

    return make


_x = np.zeros((30, 8, 8), dtype=np.float32)
_y = np.repeat(np.arange(3), 10)

CASES: dict[str, Bad] = {
    "unknown-strategy": Bad(
        lambda d: ["--strategy", "tpee"], "unknown strategy 'tpee'; choose one of: anneal, cmaes, gp"
    ),
    "unknown-pruner": Bad(lambda d: ["--pruner", "mean"], "unknown pruner 'mean'; choose one of: median"),
    "unknown-dataset": Bad(
        lambda d: ["--dataset", "imagenet"],
        "unknown dataset 'imagenet'; use one of: digits, mnist5k",
    ),
    "unknown-device": Bad(lambda d: ["--device", "tpu"], "unknown device 'tpu'; choose one of: auto, cpu"),
    "unavailable-gpu": Bad(lambda d: ["--device", "cuda:0"], "--device cuda:0: no CUDA GPU is available here"),
    "unavailable-gpu-in-devices": Bad(
        lambda d: ["--workers", "2", "--devices", "cpu,cuda:1"], "no CUDA GPU is available here"
    ),
    "empty-devices-entry": Bad(
        lambda d: ["--workers", "2", "--devices", "cpu,,cpu"],
        "--devices must be a comma-separated list",
    ),
    "zero-trials": Bad(lambda d: ["--trials", "0"], "--trials must be ≥ 1, got 0"),
    "negative-trials": Bad(lambda d: ["--trials", "-3"], "--trials must be ≥ 1, got -3"),
    "zero-epochs": Bad(lambda d: ["--epochs", "0"], "--epochs must be ≥ 1, got 0"),
    "negative-epochs": Bad(lambda d: ["--epochs", "-1"], "--epochs must be ≥ 1, got -1"),
    "zero-workers": Bad(lambda d: ["--workers", "0"], "--workers must be ≥ 1, got 0"),
    "negative-workers": Bad(lambda d: ["--workers", "-2"], "--workers must be ≥ 1, got -2"),
    "zero-pack": Bad(lambda d: ["--pack", "0"], "--pack must be between 1 and 256 trials (or auto), got 0"),
    "word-pack": Bad(lambda d: ["--pack", "many"], "--pack must be auto or a whole number of trials, got 'many'"),
    "zero-batch-size": Bad(lambda d: ["--batch-size", "0"], "--batch-size must be ≥ 1, got 0"),
    "zero-threads": Bad(lambda d: ["--threads", "0"], "--threads must be ≥ 1, got 0"),
    "zero-timeout": Bad(lambda d: ["--timeout", "0"], "--timeout must be > 0 seconds, got 0"),
    "unknown-storage-scheme": Bad(
        lambda d: ["--storage", "redis://localhost/0"],
        "unsupported storage URL 'redis://localhost/0'; use sqlite:///",
    ),
    "storage-without-scheme": Bad(lambda d: ["--storage", str(d / "s.db")], "unsupported storage URL"),
    "sqlite-url-two-slashes": Bad(
        lambda d: ["--storage", "sqlite://s.db"],
        "bad SQLite URL 'sqlite://s.db'; write it as sqlite:///",
    ),
    "unreachable-postgres": Bad(
        lambda d: ["--storage", "postgresql+psycopg://bn:secret@127.0.0.1:9/nodb"],
        "cannot connect to postgresql+psycopg://bn:***@127.0.0.1:9/nodb: connection refused",
    ),
    "missing-db-driver": Bad(lambda d: ["--storage", "mysql+nosuchdriver://u@127.0.0.1/db"], "cannot open storage"),
    "not-a-sqlite-file": Bad(
        lambda d: [
            "--storage",
            f"sqlite:///{_file('notes.db', 'these are my notes, not a database')(d)}",
        ],
        "exists but is not a SQLite database",
    ),
    "storage-is-a-folder": Bad(
        lambda d: ["--storage", f"sqlite:///{_file('keep', '')(d).parent}"],
        "is a folder, not a SQLite database file",
    ),
    "malformed-space": Bad(lambda d: ["--space", str(_file("s.toml", "lr = [1e-4,")(d))], "is not valid TOML"),
    "space-low-above-high": Bad(
        lambda d: ["--space", str(_file("s.toml", "lr = { low = 0.5, high = 0.1 }\n")(d))],
        "lr: low > high (0.5 > 0.1)",
    ),
    "space-unknown-param": Bad(
        lambda d: ["--space", str(_file("s.toml", "dropout = 0.5\n")(d))],
        "unknown parameter 'dropout'; known parameters:",
    ),
    "space-file-missing": Bad(lambda d: ["--space", str(d / "nope.toml")], "cannot read space file"),
    "dataset-not-npz": Bad(
        lambda d: ["--dataset", str(_file("fake.npz", "x,y\n1,2\n")(d))], "not a readable .npz file"
    ),
    "dataset-npz-xy-mismatch": Bad(
        lambda d: ["--dataset", str(_npz("short.npz", x=_x, y=_y[:-5])(d))],
        "x has 30 examples but y has 25",
    ),
    "dataset-npz-no-y": Bad(
        lambda d: ["--dataset", str(_npz("noy.npz", x=_x)(d))],
        "an .npz dataset needs arrays 'x' and 'y'",
    ),
    "dataset-unknown-format": Bad(
        lambda d: ["--dataset", str(_file("data.csv", "1,2,3\n")(d))], "unknown dataset format"
    ),
    "dataset-bad-with-workers": Bad(
        lambda d: ["--workers", "3", "--dataset", str(_npz("short.npz", x=_x, y=_y[:-5])(d))],
        "x has 30 examples but y has 25",
    ),
}


@pytest.mark.parametrize("case", list(CASES.values()), ids=list(CASES))
def test_bad_input_gives_one_error_line_exit_2_and_touches_nothing(tmp_path: Path, case: Bad) -> None:
    args = case.args(tmp_path)
    if "--storage" not in args:
        args += ["--storage", f"sqlite:///{tmp_path / 'new' / 's.db'}"]
    inputs = tmp_path / "inputs"
    before = {p: p.read_bytes() for p in inputs.iterdir() if p.is_file()} if inputs.exists() else {}

    result = CliRunner().invoke(app, ["run", "--dataset", "digits", "--epochs", "1", *args])

    assert result.exit_code == 2, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1, result.output
    assert lines[0].startswith("error: ")
    assert case.message in lines[0]
    assert "Traceback" not in result.output
    assert not (tmp_path / "new").exists()  # no storage created
    assert {p: p.read_bytes() for p in before} == before  # input files untouched
    assert sorted(p.name for p in tmp_path.iterdir()) in ([], ["inputs"])


def test_bad_input_leaves_an_existing_study_unchanged(sqlite_url: str) -> None:
    runner = CliRunner()
    base = [
        "run",
        "--dataset",
        "digits",
        "--epochs",
        "1",
        "--strategy",
        "random",
        "--storage",
        sqlite_url,
    ]
    assert runner.invoke(app, [*base, "--trials", "1"]).exit_code == 0
    name = "digits-random"
    before = optuna.load_study(study_name=name, storage=sqlite_url)
    n, attrs = len(before.trials), before.user_attrs
    for extra in (
        ["--trials", "0"],
        ["--pruner", "x"],
        ["--workers", "0"],
        ["--space", "/nonexistent.toml"],
    ):
        result = runner.invoke(app, [*base, *extra])
        assert result.exit_code == 2 and result.output.startswith("error: "), result.output
    after = optuna.load_study(study_name=name, storage=sqlite_url)
    assert len(after.trials) == n and after.user_attrs == attrs
