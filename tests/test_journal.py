"""A torn or damaged Optuna journal, made by cutting a real journal a real search wrote."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import run_cli, tiny_space


@pytest.fixture(scope="module")
def searched(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A study of two complete trials, its journal and its space file."""
    tmp = tmp_path_factory.mktemp("journal")
    space = tiny_space(tmp, name="torn", trials=2, folds=2, epochs=2)
    home = tmp / "m"
    out = run_cli("run", str(space), "--no-select", "-q", "--home", str(home))
    assert out.returncode == 0, out.stderr[-2000:]
    return space, home


def _copy(searched: tuple[Path, Path], tmp_path: Path) -> Path:
    import shutil

    space, home = searched
    shutil.copytree(home, tmp_path / "m")
    shutil.copy(space, tmp_path / space.name)
    return tmp_path / "m"


@pytest.mark.parametrize("cut", [1, 7, 40])
def test_a_torn_tail_is_backed_up_and_cut_before_anything_is_appended(
    searched: tuple[Path, Path], tmp_path: Path, cut: int
) -> None:
    home = _copy(searched, tmp_path)
    journal = home / "optuna.journal"
    whole = journal.read_bytes()
    journal.write_bytes(whole[:-cut])  # the last record cut short, as a crash leaves it
    lines = whole.splitlines(keepends=True)
    out = run_cli("best", "torn", "--home", str(home))
    assert out.returncode == 0, out.stderr[-2000:]
    warnings = [line for line in out.stderr.splitlines() if "cut short" in line]
    assert len(warnings) == 1 and str(journal) in warnings[0]
    assert f"(line {len(lines)}, {len(lines[-1]) - cut} bytes)" in warnings[0]
    assert journal.read_bytes() == b"".join(lines[:-1])  # back to the last whole record
    (backup,) = home.glob("optuna.journal.torn-*")
    assert backup.read_bytes() == whole[:-cut]
    out = run_cli(
        "run",
        str(tmp_path / "torn.yaml"),
        "--trials",
        "3",  # the study's total: one more than it had
        "--no-select",
        "--json",
        "--home",
        str(home),
    )
    assert out.returncode == 0, out.stderr[-2000:]
    counts = json.loads(out.stdout)["counts"]
    # a trial whose last record was cut looks RUNNING: its dead owner's trial is retried
    assert counts["complete"] == 3 and counts["running"] == 0
    assert all(json.loads(line) for line in journal.read_bytes().splitlines())


@pytest.mark.parametrize("command", ["best", "status", "run"])
def test_damage_in_the_middle_is_one_error_and_nothing_appended(
    searched: tuple[Path, Path], tmp_path: Path, command: str
) -> None:
    home = _copy(searched, tmp_path)
    journal = home / "optuna.journal"
    lines = journal.read_bytes().splitlines(keepends=True)
    lines[3] = lines[3][: len(lines[3]) // 2] + b"\n"
    journal.write_bytes(b"".join(lines))
    before = journal.read_bytes()
    args = {
        "best": ["best", "torn"],
        "status": ["status"],
        "run": ["run", str(tmp_path / "torn.yaml"), "--trials", "1"],
    }[command]
    out = run_cli(*args, "--home", str(home))
    assert out.returncode == 2, out.stderr[-2000:]
    (line,) = out.stderr.strip().splitlines()
    assert line.startswith(f"error: {journal}:4: the Optuna journal is damaged")
    assert journal.read_bytes() == before
    assert not list(home.glob("optuna.journal.torn-*"))
