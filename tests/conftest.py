"""Shared fixtures: tiny data on the CPU, a temporary SQLite URL, and a network guard."""

from __future__ import annotations

import os
import signal
import socket
from pathlib import Path

import numpy as np
import pytest
import torch

from bnsearch.core.cpu import flush_denormals
from bnsearch.core.data import DeviceData, Splits, load_dataset, split_dataset, to_device

# As every entry point does, and before any tensor work, so that all of torch's threads get
# it: training in the tests computes what it computes under `bnsearch run`.
flush_denormals()


def pytest_report_header(config: pytest.Config) -> str:
    from bnsearch.core.train import NATIVE_BF16_ENV, bf16_supported

    override = os.environ.get(NATIVE_BF16_ENV)
    path = "bf16" if bf16_supported("cpu") else "fp32"
    how = f"{NATIVE_BF16_ENV}={override}" if override is not None else "detected"
    return f"bnsearch: --precision auto trains in {path} on this CPU ({how}; {torch.backends.cpu.get_cpu_capability()})"


@pytest.fixture(autouse=True)
def _no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fail fast on any connection that leaves this machine (tests must not download)."""
    real_connect = socket.socket.connect

    def guarded(self: socket.socket, address: object) -> object:
        host = address[0] if isinstance(address, tuple) else address
        if isinstance(host, str) and host not in ("127.0.0.1", "localhost", "::1") and self.family != socket.AF_UNIX:
            raise RuntimeError(f"test tried to reach the network: {address!r}")
        return real_connect(self, address)  # type: ignore[arg-type]

    monkeypatch.setattr(socket.socket, "connect", guarded)


@pytest.fixture(autouse=True)
def _one_worker_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    """In-process ``bnsearch run`` without ``--workers`` starts one worker, as before ``auto``
    became the default: on an idle CI machine ``auto`` would spawn a process per core in
    every small CLI test. tests/search/test_auto_workers.py tests ``auto`` itself."""
    import bnsearch.search.workers as workers

    monkeypatch.setattr(workers, "auto_workers", lambda *_a, **_k: 1)


@pytest.fixture(scope="session", autouse=True)
def _torch_threads() -> None:
    torch.set_num_threads(2)


@pytest.fixture(scope="session", autouse=True)
def _ctrl_c_reaches_python() -> None:
    """Tests send Ctrl-C (SIGINT) to this process and to subprocesses. A shell that starts
    pytest in the background (``cmd &`` in a script, nohup) makes SIGINT ignored, which
    Python and every child inherit: the interrupt would then never arrive and such a test
    would hang. Python's own handler here means children start with the default again."""
    if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)


@pytest.fixture(scope="session")
def digits_splits() -> Splits:
    return split_dataset(load_dataset("digits"), seed=0)


@pytest.fixture(scope="session")
def tiny_digits(digits_splits: Splits) -> DeviceData:
    """About 300 stratified 8×8 training images (plus val/test) as CPU tensors."""
    s = digits_splits
    rng = np.random.default_rng(0)
    keep = np.sort(rng.choice(len(s.train_y), size=300, replace=False))
    small = Splits(
        train_x=s.train_x[keep],
        train_y=s.train_y[keep],
        val_x=s.val_x,
        val_y=s.val_y,
        test_x=s.test_x,
        test_y=s.test_y,
        mean=s.mean,
        std=s.std,
        num_classes=s.num_classes,
    )
    return to_device(small, "cpu")


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 's.db'}"


POSTGRES_URL_ENV = "BNSEARCH_TEST_POSTGRES_URL"  # set by .ci/run (and .ci/postgres.sh for you)


def _postgres_problem(url: str | None) -> str | None:
    """Why the test PostgreSQL server cannot be used, or None when it can."""
    if not url:
        return f"{POSTGRES_URL_ENV} is not set; start a server with: export {POSTGRES_URL_ENV}=$(.ci/postgres.sh start)"
    try:
        import psycopg

        libpq_url = url.replace("postgresql+psycopg://", "postgresql://", 1)
        with psycopg.connect(libpq_url, connect_timeout=5):
            return None
    except Exception as e:  # driver missing, server down, bad credentials: all "not usable"
        first_line = str(e).strip().splitlines()[0] if str(e).strip() else repr(e)
        return f"PostgreSQL at {url} is unreachable: {first_line}"


@pytest.fixture
def postgres_url() -> str:
    """URL of the test PostgreSQL server: skipped locally when none runs, a failure in CI."""
    url = os.environ.get(POSTGRES_URL_ENV)
    problem = _postgres_problem(url)
    if problem is not None:
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail(f"CI must run the PostgreSQL tests: {problem}")
        pytest.skip(problem)
    assert url is not None
    return url
