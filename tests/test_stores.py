"""Stores that cannot be reached, and passwords: one line naming the masked URL and the
cause, exit code 2, nothing written anywhere, no password printed or put on a command line."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from search.pool.queue import Queue
from search.pool.workers import STORAGE_ENV, TRACKING_ENV, store_env, worker_args
from search.redact import mask_text
from tests.conftest import run_cli, tiny_space


def _closed_port() -> int:
    with socket.socket() as sock:  # a port nothing listens on
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


SECRET = "s3cr%40t-pw"  # `@` percent-encoded, as URLs need


@pytest.mark.parametrize(
    ("flag", "url"),
    [
        ("--storage", "postgresql+psycopg://bob:{secret}@127.0.0.1:{port}/db"),
        ("--tracking-uri", "http://bob:{secret}@127.0.0.1:{port}"),
        ("--tracking-uri", "postgresql+psycopg://bob:{secret}@127.0.0.1:{port}/db"),
    ],
)
@pytest.mark.parametrize("command", ["run", "submit", "serve", "status", "best", "select"])
def test_an_unreachable_store_is_one_line_and_nothing_written(
    tmp_path: Path, flag: str, url: str, command: str
) -> None:
    url = url.format(secret=SECRET, port=_closed_port())
    space = tiny_space(tmp_path)
    args = {
        "run": ["run", str(space)],
        "submit": ["submit", str(space)],
        "serve": ["serve", "--workers", "1"],
        "status": ["status"],
        "best": ["best", "tiny"],
        "select": ["select", "tiny"],
    }[command]
    out = run_cli(*args, flag, url, "--home", str(tmp_path / "store"), timeout=120)
    assert out.returncode == 2, out.stderr[-2000:]
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1, lines
    assert lines[0].startswith(f"error: {flag} ") and "cannot connect" in lines[0]
    assert "bob:***@127.0.0.1" in lines[0] and "s3cr" not in out.stderr + out.stdout
    assert not (tmp_path / "store").exists()


def test_a_password_sqlalchemy_cannot_parse_is_not_quoted(tmp_path: Path) -> None:
    url = f"postgresql+psycopg://bob:s3cr@t:pw@127.0.0.1:{_closed_port()}/db"
    out = run_cli("status", "--storage", url, "--home", str(tmp_path / "store"))
    assert out.returncode == 2 and "percent-encoded" in out.stderr
    assert "pw@" not in out.stderr and "s3cr" not in out.stderr


def test_masking_covers_passwords_anywhere_in_a_line() -> None:
    text = (
        "failed: postgresql://u:p@ss:w@rd@db:5432/x and http://a:tok@mlflow:5000/api, "
        "'mysql+pymysql://root:hunter2@h/d' sqlite:///a.db https://h/p?password=zz&x=1"
    )
    masked = mask_text(text)
    for secret in ("p@ss:w@rd", "tok", "hunter2", "zz"):
        assert secret not in masked
    assert "u:***@db:5432/x" in masked and "a:***@mlflow:5000" in masked
    assert "sqlite:///a.db" in masked and "root:***@h/d'" in masked


def test_worker_command_lines_carry_no_store_url(tmp_path: Path) -> None:
    url = "postgresql://bob:hunter2@db/x"
    queue = Queue(url, tmp_path, "http://u:tok@mlflow:5000")
    args = worker_args(queue, 5)
    assert not any("hunter2" in a or "tok" in a for a in args)
    assert store_env(queue, url) == {STORAGE_ENV: url, TRACKING_ENV: "http://u:tok@mlflow:5000"}


@pytest.mark.parametrize(
    ("url", "command"),
    [
        ("mysql://bob:hunter2@127.0.0.1/x", "pip install mysqlclient"),
        ("postgresql+psycopg2://bob:hunter2@127.0.0.1/x", "pip install '.[postgres]'"),
    ],
)
def test_a_missing_database_driver_names_the_install_command(
    tmp_path: Path, url: str, command: str
) -> None:
    out = run_cli("status", "--storage", url, "--home", str(tmp_path / "store"))
    assert out.returncode == 2 and len(out.stderr.strip().splitlines()) == 1, out.stderr
    assert command in out.stderr and "hunter2" not in out.stderr
    assert not (tmp_path / "store").exists()


@pytest.mark.parametrize("kind", ["journal", "sqlite"])
def test_optunas_private_names_still_mean_what_the_service_reads(tmp_path: Path, kind: str) -> None:
    """The study's storage and a trial's storage id: Optuna has no public accessor, so
    `search.storage.optuna_private` reads them; this fails when Optuna changes either."""
    import optuna

    from search.storage.optuna_private import storage_of, study_id, trial_id

    if kind == "journal":
        backend = optuna.storages.journal.JournalFileBackend(str(tmp_path / "s.journal"))
        storage: optuna.storages.BaseStorage = optuna.storages.JournalStorage(backend)
    else:
        storage = optuna.storages.RDBStorage(f"sqlite:///{tmp_path / 's.db'}")
    for name in ("a", "b"):
        study = optuna.create_study(storage=storage, study_name=name)
        held = storage_of(study)  # the storage itself, or Optuna's cache around an RDB one
        assert isinstance(held, optuna.storages.BaseStorage)
        assert held.get_study_id_from_name(name) == storage.get_study_id_from_name(name)
        live = [study.ask() for _ in range(3)]
        for t in live:
            study.tell(t, 0.0)
        sid = storage.get_study_id_from_name(name)
        for t, frozen in zip(live, study.get_trials(deepcopy=False), strict=True):
            expected = storage.get_trial_id_from_study_id_trial_number(sid, t.number)
            assert trial_id(t) == trial_id(frozen) == expected
    for summary in optuna.get_all_study_summaries(storage):
        assert study_id(storage, summary) == storage.get_study_id_from_name(summary.study_name)


def test_no_other_module_reads_a_private_name_of_optuna() -> None:
    import ast

    package = Path(__file__).resolve().parents[1] / "search"
    found = []
    for path in package.rglob("*.py"):
        if path.name == "optuna_private.py":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            private_attr = isinstance(node, ast.Attribute) and node.attr in (
                "_storage",
                "_trial_id",
                "_study_id",
                "_cached_frozen_trial",
            )
            private_module = (
                isinstance(node, ast.ImportFrom)
                and any(part.startswith("_") for part in (node.module or "").split(".")[1:])
                and (node.module or "").startswith("optuna")
            )
            if private_attr or private_module:
                found.append(f"{path.name}:{node.lineno}")
    assert found == []
