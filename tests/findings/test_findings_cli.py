"""``bnsearch findings`` from the command line: bad input, a study of another design, end to end."""

from __future__ import annotations

import json
from pathlib import Path

import optuna
import pytest
from typer.testing import CliRunner

from bnsearch import keys
from bnsearch.cli import app
from bnsearch.findings import claims


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--datasets", "cifar"], "unknown dataset 'cifar'"),
        (["--seeds", "1"], "--seeds must be ≥ 2"),
        (["--workers", "0"], "--workers must be ≥ 1"),
        (["--pack", "0"], "--pack must be ≥ 1"),
        (["--device", "nosuch"], "unknown device 'nosuch'; choose one of: auto, cpu, cuda, cuda:N, mps"),
    ],
    ids=["dataset", "seeds", "workers", "pack", "device"],
)
def test_bad_input_is_one_line_and_exit_2(args: list[str], message: str, sqlite_url: str) -> None:
    result = CliRunner().invoke(app, ["findings", "--design", "1", "--storage", sqlite_url, *args])
    assert result.exit_code == 2
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0]
    assert "Traceback" not in result.output


def test_a_study_of_another_design_is_refused_before_training(sqlite_url: str) -> None:
    study = optuna.create_study(study_name="findings-digits-s0", storage=sqlite_url, direction="maximize")
    study.set_user_attr(keys.STUDY_CONFIG, {"kind": "findings", "dataset": "digits", "epochs": 99})
    result = CliRunner().invoke(app, ["findings", "--design", "1", "--quick", "--storage", sqlite_url])
    assert result.exit_code == 2
    assert "error: study 'findings-digits-s0' was created with different settings" in result.output
    assert "Traceback" not in result.output
    assert len(study.trials) == 0


@pytest.mark.slow
@pytest.mark.timeout(1200)  # about 4 minutes on 2 quiet cores
def test_quick_run_end_to_end_and_resume(tmp_path: Path) -> None:
    """The real ``--quick`` (digits, 3 seeds): every claim gets a row; a rerun trains nothing."""
    url = f"sqlite:///{tmp_path}/f.db"
    out, js = tmp_path / "findings.html", tmp_path / "findings.json"
    args = ["findings", "--design", "1", "--quick", "--storage", url, "--out", str(out), "--json", str(js)]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    rows = json.loads(js.read_text())
    assert {r["key"] for r in rows} == {c.key for c in claims()}
    assert {r["dataset"] for r in rows} == {"digits"}
    assert all(r["n_seeds"] == 3 for r in rows if r["key"] == "bn_accuracy")
    assert "Holm" in out.read_text()
    again = CliRunner().invoke(app, args)
    assert again.exit_code == 0, again.output
    assert "(0 cells trained now" in again.output


@pytest.mark.slow
@pytest.mark.timeout(1800)  # about 6 minutes with two workers on 2 quiet cores
def test_design_2_quick_run_end_to_end(tmp_path: Path) -> None:
    """The real ``--design 2 --quick`` (digits, one look of 3 seeds, two worker processes): the
    controls head the JSON, the positive one passes (a deep plain net without BN fails at lr
    0.215 where BN trains), every claim carries its look and seeds, and a rerun trains nothing."""
    from bnsearch.findings import catalogue

    url = f"sqlite:///{tmp_path}/f2.db"
    out, js = tmp_path / "findings.html", tmp_path / "findings.json"
    args = ["findings", "--design", "2", "--quick", "--workers", "2", "--storage", url]
    result = CliRunner().invoke(app, [*args, "--out", str(out), "--json", str(js)])
    assert result.exit_code == 0, result.output
    doc = json.loads(js.read_text())
    assert doc["design"] == 2 and [c["key"] for c in doc["controls"]] == ["control_positive", "control_negative"]
    positive = doc["controls"][0]
    assert positive["passed"], positive["reason"]
    assert {r["key"] for r in doc["claims"]} == {c.key for c in catalogue(2)}
    assert all(r["look"] == 1 and r["seeds_used"] == 3 for r in doc["claims"] if r["n_seeds"])
    assert "seeds for 80% power" in result.output
    page = out.read_text()
    assert page.index("<h2>Controls</h2>") < page.index("<h2>Verdicts</h2>")
    again = CliRunner().invoke(app, [*args, "--out", str(out)])
    assert again.exit_code == 0, again.output
    assert "(0 cells trained now" in again.output
