"""The Kubernetes manifests and the Dockerfile: they parse, they fit together, and the command
they run is one the CLI accepts (no cluster needed)."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import typer.main
import yaml

from bnsearch.cli import app

ROOT = Path(__file__).resolve().parent.parent
K8S = ROOT / "examples" / "kubernetes"


def _docs(name: str) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all((K8S / name).read_text()) if d]


def _one(docs: list[dict[str, Any]], kind: str) -> dict[str, Any]:
    found = [d for d in docs if d["kind"] == kind]
    assert len(found) == 1, f"expected one {kind}, got {len(found)}"
    return found[0]


def parse_cli(argv: list[str]) -> dict[str, Any]:
    """Parse ``bnsearch ARGS`` exactly as the CLI would, without running the command.

    Raises:
        click's UsageError (NoSuchOption, BadParameter, ...) for a command the CLI refuses.
    """
    assert argv[0] == "bnsearch", argv
    group = typer.main.get_command(app)
    ctx = group.make_context("bnsearch", list(argv[1:]))
    sub = group.get_command(ctx, argv[1])
    assert sub is not None, f"no command {argv[1]!r}"
    return dict(sub.make_context(argv[1], list(argv[2:]), parent=ctx).params)


def test_parse_cli_refuses_what_the_cli_refuses() -> None:
    assert parse_cli(["bnsearch", "run", "--max-trials", "5", "--study", "x"])["max_trials"] == 5
    with pytest.raises(Exception, match="No such option: --max-trialz"):
        parse_cli(["bnsearch", "run", "--max-trialz", "5"])
    with pytest.raises(Exception, match="valid integer"):
        parse_cli(["bnsearch", "run", "--max-trials", "five"])


def test_the_indexed_job_runs_a_budgeted_search_on_the_postgres_service() -> None:
    job = _one(_docs("bnsearch-job.yaml"), "Job")
    database = _docs("postgres.yaml")
    spec = job["spec"]
    assert spec["completionMode"] == "Indexed" and spec["parallelism"] >= 2
    (container,) = spec["template"]["spec"]["containers"]
    params = parse_cli(container["command"])
    assert params["max_trials"] and params["study_name"]  # one study, a study-wide budget
    assert params["storage"] is None  # from the environment, below

    env = {e["name"]: e for e in container["env"]}
    ref = env["BNSEARCH_STORAGE"]["valueFrom"]["secretKeyRef"]
    secret = _one(database, "Secret")
    assert secret["metadata"]["name"] == ref["name"]
    url = urlsplit(secret["stringData"][ref["key"]])
    service = _one(database, "Service")
    assert url.scheme == "postgresql+psycopg"
    assert (url.hostname, url.port) == (service["metadata"]["name"], service["spec"]["ports"][0]["port"])

    postgres = _one(database, "Deployment")["spec"]["template"]["spec"]["containers"][0]
    pg_env = {e["name"]: e for e in postgres["env"]}
    assert url.username == pg_env["POSTGRES_USER"]["value"]
    assert url.path == f"/{pg_env['POSTGRES_DB']['value']}"
    assert url.password == secret["stringData"][pg_env["POSTGRES_PASSWORD"]["valueFrom"]["secretKeyRef"]["key"]]


def test_the_dockerfile_installs_the_cli_as_its_entrypoint() -> None:
    text = (ROOT / "Dockerfile").read_text()
    entry = re.search(r"^ENTRYPOINT (\[.*\])$", text, re.M)
    assert entry is not None and yaml.safe_load(entry.group(1)) == ["bnsearch"]
    cmd = re.search(r"^CMD (\[.*\])$", text, re.M)
    assert cmd is not None
    parse_cli(["bnsearch", *[a for a in yaml.safe_load(cmd.group(1)) if a != "--help"]] + ["studies"])
    for copied in re.findall(r"^COPY (.+) \S+$", text, re.M):
        for path in copied.split():
            assert (ROOT / path).exists(), f"Dockerfile copies {path}, which is not in the repository"
    # The torch pin is the one the project is tested with (CI installs torch==2.13.0).
    assert re.search(r"TORCH_VERSION=2\.13\.0", text)


def test_the_slurm_recipe_is_valid_bash_and_runs_bnsearch_run() -> None:
    recipe = ROOT / "examples" / "slurm" / "bnsearch-array.sh"
    subprocess.run(["bash", "-n", str(recipe)], check=True)
    text = recipe.read_text()
    assert 'exec bnsearch run --workers "$workers" --threads "$threads" "$@"' in text
    parse_cli(["bnsearch", "run", "--workers", "2", "--threads", "8", "--study", "bn-tpe", "--max-trials", "400"])
