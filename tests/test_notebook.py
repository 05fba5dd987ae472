"""notebooks/analysis.ipynb runs top to bottom against a small study this test creates."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest
from _synth import make_study, mixed_specs

NOTEBOOK = Path(__file__).resolve().parents[1] / "notebooks" / "analysis.ipynb"


def test_notebook_is_committed_without_outputs() -> None:
    import nbformat

    nb = nbformat.read(NOTEBOOK, as_version=4)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert code and all(not c.outputs and c.execution_count is None for c in code)


def test_notebook_executes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    nbclient = pytest.importorskip("nbclient")
    import nbformat

    # A user's checkout: the notebook in notebooks/, the default database in studies/, no
    # BNSEARCH_* variables. The notebook must open the study updated last and say so.
    for var in ("BNSEARCH_STUDY", "BNSEARCH_STORAGE", "BNSEARCH_REPORT"):
        monkeypatch.delenv(var, raising=False)
    (tmp_path / "studies").mkdir()
    (tmp_path / "notebooks").mkdir()
    url = f"sqlite:///{tmp_path / 'studies' / 'bnsearch.db'}"
    make_study(
        mixed_specs() + [{"bn_placement": "none", "activation": "tanh", "val": (0.3, 0.6)}],
        storage=url,
        name="nb-study",
    )
    # Created later, sorted first, but its trials ended earlier.
    make_study([{"val": (0.5, 0.7)}], storage=url, name="a-older-study")
    # The kernel is a child process: it sees this environment, so it imports this checkout
    # of bnsearch (PYTHONPATH) with this interpreter's packages.
    monkeypatch.setenv(
        "PYTHONPATH",
        os.pathsep.join(p for p in [str(NOTEBOOK.parents[1]), os.environ.get("PYTHONPATH", "")] if p),
    )
    # A kernelspec of our own, so the kernel runs this interpreter even where a system-wide
    # "python3" kernelspec points at another one.
    spec = tmp_path / "jupyter" / "kernels" / "bnsearch-test"
    spec.mkdir(parents=True)
    (spec / "kernel.json").write_text(
        json.dumps(
            {
                "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
                "display_name": "bnsearch test",
                "language": "python",
            }
        )
    )
    monkeypatch.setenv("JUPYTER_PATH", str(tmp_path / "jupyter"))
    nb = nbformat.read(NOTEBOOK, as_version=4)
    nb.cells.append(nbformat.v4.new_code_cell("import sys; print('KERNEL', sys.executable)"))
    client = nbclient.NotebookClient(
        nb,
        timeout=120,
        kernel_name="bnsearch-test",
        resources={"metadata": {"path": str(tmp_path / "notebooks")}},
    )
    client.execute()
    outputs = "".join(
        str(o.get("text", "")) + str(o.get("data", {}).get("text/plain", ""))
        for c in nb.cells
        if c.cell_type == "code"
        for o in c.outputs
    )
    assert "study 'nb-study' (the most recently updated study) in sqlite:///../studies/bnsearch.db" in outputs
    assert f"KERNEL {sys.executable}" in outputs
    assert "not estimable" in outputs
    assert (tmp_path / "notebooks" / "nb-study-report.html").stat().st_size > 1_000_000
