"""How many PostgreSQL connections does ``bnsearch run --workers N`` hold?

Runs ``bnsearch run --workers N`` (digits, 1 epoch, random) for each N against a PostgreSQL
server and samples ``pg_stat_activity`` every 0.1 s, counting the connections to the run's
database that are not this script's own. Prints the peak per N and the peak per worker, with
and without ``--max-trials`` (whose lock takes one more pooled connection per process).

    export BNSEARCH_TEST_POSTGRES_URL=$(.ci/postgres.sh start)
    PYTHONPATH=. python benchmarks/connections.py --workers 1 2 4
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import threading
import time
import uuid


def _count(libpq_url: str, stop: threading.Event, peak: list[int]) -> None:
    import psycopg

    with psycopg.connect(libpq_url, autocommit=True) as conn:
        while not stop.is_set():
            row = conn.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()"
            ).fetchone()
            peak[0] = max(peak[0], int(row[0]) if row else 0)
            time.sleep(0.1)


def measure(url: str, workers: int, trials: int, budget: bool) -> int:
    libpq_url = url.replace("postgresql+psycopg://", "postgresql://", 1)
    name = f"conn-{uuid.uuid4().hex[:8]}"
    args = ["--max-trials", str(trials)] if budget else ["--trials", str(trials)]
    cmd = [sys.executable, "-m", "bnsearch", "run", "--dataset", "digits", "--epochs", "1", "--strategy", "random"]
    cmd += ["--storage", url, "--study", name, "--workers", str(workers), "--threads", "1", *args]
    stop, peak = threading.Event(), [0]
    sampler = threading.Thread(target=_count, args=(libpq_url, stop, peak))
    sampler.start()
    try:
        with tempfile.TemporaryDirectory() as cwd:
            subprocess.run(cmd, check=True, cwd=cwd, capture_output=True)
    finally:
        stop.set()
        sampler.join()
    return peak[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default=os.environ.get("BNSEARCH_TEST_POSTGRES_URL"))
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2, 4])
    parser.add_argument("--trials", type=int, default=0, help="trials per run [default: 2 × workers]")
    a = parser.parse_args()
    if not a.url:
        parser.error("no --url and BNSEARCH_TEST_POSTGRES_URL is not set")
    print("workers  budget  peak connections  per worker")
    for n in a.workers:
        for budget in (False, True):
            peak = measure(a.url, n, a.trials or 2 * n, budget)
            print(f"{n:>7}  {'yes' if budget else 'no':>6}  {peak:>16}  {peak / n:>10.1f}", flush=True)


if __name__ == "__main__":
    main()
