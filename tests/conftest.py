"""Shared helpers: tiny spaces, real stores in temporary folders."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

ROOT = Path(__file__).resolve().parents[1]

TINY = """
study: {{name: {name}, trials: {trials}, sampler: {sampler}, pruner: none, seed: 3}}
data: {{source: {source}, test_size: 0.25}}
validation: {{scheme: {scheme}, folds: {folds}}}
params:
  depth: {{low: 1, high: 2}}
  width: {{low: 4, high: 16, per_layer: true}}
  dropout: {{low: 0.0, high: 0.2}}
  l2: {{low: 1.0e-5, high: 1.0e-3, log: true, optional: true}}
  learning_rate: 0.01
  batch_size: 32
  epochs: {epochs}
  patience: 2
"""


def tiny_space(
    tmp_path: Path,
    *,
    name: str = "tiny",
    trials: int = 2,
    source: str = "iris",
    scheme: str = "kfold",
    folds: int = 3,
    epochs: int = 3,
    sampler: str = "random",
) -> Path:
    path = tmp_path / f"{name}.yaml"
    path.write_text(
        TINY.format(
            name=name,
            trials=trials,
            source=source,
            scheme=scheme,
            folds=folds,
            epochs=epochs,
            sampler=sampler,
        )
    )
    return path


def run_cli(
    *args: str, cwd: Path = ROOT, env: dict[str, str] | None = None, timeout: int = 600
) -> subprocess.CompletedProcess[str]:
    """`python -m search.cli.main ARGS` as a user runs it, output captured."""
    return subprocess.run(
        [sys.executable, "-m", "search.cli.main", *args],
        cwd=cwd,
        env=env,
        text=True,
        capture_output=True,
        timeout=timeout,
        check=False,
    )


@pytest.fixture
def home(tmp_path: Path) -> Path:
    return tmp_path / "mlruns"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """`SEARCH_TEST_SHUFFLE=SEED`: run the tests in a random order (each test must pass
    whatever ran before it: no test relies on another's leftovers)."""
    seed = os.environ.get("SEARCH_TEST_SHUFFLE")
    if seed:
        import random

        random.Random(int(seed)).shuffle(items)


@contextlib.contextmanager
def mlflow_server(command: str, *args: str, timeout: float = 120.0) -> Iterator[str]:
    """`mlflow ui` or `mlflow server` (with `args`) on a free port of 127.0.0.1, as a user
    starts it; its address once /health answers; the whole process group stopped after."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = int(s.getsockname()[1])
    server = subprocess.Popen(
        [sys.executable, "-m", "mlflow", command, *args, "--host", "127.0.0.1",
         "--port", str(port), "--workers", "1"],
        env=dict(os.environ, MLFLOW_SERVER_ENABLE_JOB_EXECUTION="false"),
        start_new_session=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + timeout
        while True:
            try:
                urllib.request.urlopen(f"{url}/health", timeout=2)
                break
            except OSError:
                if time.time() > deadline or server.poll() is not None:
                    raise AssertionError(f"mlflow {command} did not start") from None
                time.sleep(0.5)
        yield url
    finally:
        os.killpg(server.pid, signal.SIGTERM)  # the whole group: gunicorn/uvicorn workers too
        server.wait(timeout=30)
