"""The multi-machine path: Optuna's RDB storage on a real PostgreSQL server.

.ci/run starts one and sets SEARCH_TEST_POSTGRES; elsewhere these tests skip without it,
but under CI=true a missing server is a failure.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

from search.pool.queue import Queue, status, submit
from tests.conftest import ROOT, run_cli

URL = os.environ.get("SEARCH_TEST_POSTGRES")
if not URL:
    if os.environ.get("CI") == "true":
        pytest.fail(
            "CI=true but SEARCH_TEST_POSTGRES is not set: .ci/run starts PostgreSQL", pytrace=False
        )
    pytest.skip("no PostgreSQL server (set SEARCH_TEST_POSTGRES)", allow_module_level=True)

SPACE = """
study: {{name: {name}, trials: {trials}, sampler: tpe, pruner: none}}
data: {{source: iris}}
validation: {{scheme: kfold, folds: 2}}
params: {{depth: 1, width: {{low: 4, high: 8}}, epochs: 2, patience: 1}}
"""


@pytest.fixture
def pg() -> str:
    from sqlalchemy import create_engine, text

    assert URL is not None
    engine = create_engine(URL.replace("postgresql://", "postgresql+psycopg://"))
    with engine.begin() as conn:  # a clean database for each test
        conn.execute(text("DROP SCHEMA public CASCADE"))
        conn.execute(text("CREATE SCHEMA public"))
    engine.dispose()
    return URL


def test_pool_on_postgresql_reaches_exact_budgets(pg: str, tmp_path: Path) -> None:
    for name, trials in (("pa", 3), ("pb", 2)):
        (tmp_path / f"{name}.yaml").write_text(SPACE.format(name=name, trials=trials))
    home = tmp_path / "m"
    queue = Queue.open(pg, home)
    submit(tmp_path / "pa.yaml", queue)
    submit(tmp_path / "pb.yaml", queue)
    serve = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "search.cli.main",
            "serve",
            "--workers",
            "2",
            "--storage",
            pg,
            "--home",
            str(home),
        ],
        cwd=ROOT,
        text=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    password = pg.split("://", 1)[1].split("@")[0].split(":")[1]
    seen: set[int] = set()
    while serve.poll() is None:  # what `ps` shows of the workers, while they run
        for pid, cmdline in _command_lines(exclude=serve.pid):
            seen.add(pid)
            assert f":{password}@" not in cmdline, cmdline
        time.sleep(0.2)
    stdout, stderr = serve.communicate()
    assert serve.returncode == 0, stderr[-3000:]
    assert len(seen) >= 2  # the workers were seen, and their command lines held no password
    assert f":{password}@" not in stdout + stderr  # masked in printed output
    assert ":***@" in stderr
    for name, budget in (("pa", 3), ("pb", 2)):
        trials = optuna.load_study(study_name=name, storage=pg).trials
        assert sum(t.state in (TrialState.COMPLETE, TrialState.PRUNED) for t in trials) == budget
        assert TrialState.RUNNING not in {t.state for t in trials}
    assert {s.name: s.state for s in status(queue)} == {"pa": "finished", "pb": "finished"}


def _command_lines(exclude: int) -> Iterator[tuple[int, str]]:
    """(pid, command line) of every `search.pool.worker` process running now."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == exclude:
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if "search.pool.worker" in cmdline:
            yield int(entry.name), cmdline


def test_json_and_errors_mask_the_password(pg: str, tmp_path: Path) -> None:
    (tmp_path / "pj.yaml").write_text(SPACE.format(name="pj", trials=1))
    home = str(tmp_path / "m")
    out = run_cli(
        "run", str(tmp_path / "pj.yaml"), "--storage", pg, "--home", home, "--json", "--no-select"
    )
    assert out.returncode == 0, out.stderr[-3000:]
    password = pg.split("://", 1)[1].split("@")[0].split(":")[1]
    assert f":{password}@" not in out.stdout + out.stderr
    assert ":***@" in out.stdout  # the storage is named, masked
    wrong = pg.rsplit("/", 1)[0] + "/no_such_database"
    out = run_cli("status", "--storage", wrong, "--home", home)
    assert out.returncode == 2 and f":{password}@" not in out.stderr
    assert len(out.stderr.strip().splitlines()) == 1 and "no_such_database" in out.stderr
