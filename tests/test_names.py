"""Names that become path parts and MLflow names (a study's: its journal entry, experiment,
artifacts folder and registered model) follow one rule, search.names.name_problem: a
hostile name is one line, exit 2, and nothing is written inside or outside the home."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from search.errors import InputError, SpaceError
from search.names import NAME_LENGTH, name_problem
from search.runner import run_search
from search.space.file import load_space
from tests.conftest import run_cli

HOSTILE = [
    "..",
    "../..",
    "../../escaped",
    "/",
    "/tmp/abs",
    "a/b",
    "a\\b",
    ":",
    "a:b",
    "x" * (NAME_LENGTH + 1),
    "x" * 5000,
    "é",
    "日本語",
    "a\u202eb",  # right-to-left override
    ".hidden",
    ".",
    "-rf",
    "--help",
    " lead",
    "trail ",
    "a b",
    "tab\there",
    "new\nline",
    "",
    "trailing.",
    "CON",
    "nul.txt",
    "a*b?",
]
GOOD = ["default", "iris", "iris-fast_2.v1", "a", "9lives", "x" * NAME_LENGTH, "console"]


@pytest.mark.parametrize("name", [*HOSTILE, "a\0b"])
def test_the_rule_refuses_every_hostile_name(name: str) -> None:
    assert name_problem(name) is not None


@pytest.mark.parametrize("name", GOOD)
def test_the_rule_takes_plain_names(name: str) -> None:
    assert name_problem(name) is None


def test_every_shipped_space_is_named_by_the_rule() -> None:
    for path in sorted(Path("spaces").glob("*.yaml")):
        assert name_problem(load_space(path).name) is None, path


def _tree(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*"))


def _refused(tmp_path: Path, args: list[str]) -> str:
    """Run `search run ... --home DEEP/home` from a folder inside tmp_path; assert exit 2,
    one line, and nothing written anywhere under tmp_path (the home is two levels down,
    so that a climbing name would land inside tmp_path)."""
    work = tmp_path / "a" / "b"
    work.mkdir(parents=True, exist_ok=True)
    before = _tree(tmp_path)
    out = run_cli(*args, "--home", str(work / "home"), cwd=work, timeout=120)
    assert out.returncode == 2, out.stderr[-2000:]
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), lines
    assert _tree(tmp_path) == before  # nothing outside the home, and no home either
    return lines[0]


# through the command line, one of each class (the rule above sees them all)
IN_FILE = ["../..", "/tmp/abs", "a:b", "a\0b", "x" * 5000, "日本語", ".hidden", "new\nline", ""]
IN_FLAG = ["..", "a/b", ":", "é", "-rf", "x" * (NAME_LENGTH + 1)]


@pytest.mark.parametrize("name", IN_FILE)
def test_a_hostile_study_name_in_the_space_file(tmp_path: Path, name: str) -> None:
    work = tmp_path / "a" / "b"
    work.mkdir(parents=True)
    # JSON's string is YAML's double-quoted scalar: NUL and newlines escaped in the file
    (work / "s.yaml").write_text(f"data: {{source: iris}}\nstudy:\n  name: {json.dumps(name)}\n")
    line = _refused(tmp_path, ["run", "s.yaml"])
    assert line.startswith("error: s.yaml:3: study.name: study name "), line


@pytest.mark.parametrize("name", IN_FLAG)
def test_a_hostile_study_flag(tmp_path: Path, name: str) -> None:
    work = tmp_path / "a" / "b"
    work.mkdir(parents=True)
    (work / "s.yaml").write_text("data: {source: iris}\n")
    line = _refused(tmp_path, ["run", "s.yaml", f"--study={name}"])
    assert line.startswith("error: --study "), line


@pytest.mark.parametrize("stem", ["-x", "a b", "é"])
def test_a_file_whose_stem_cannot_name_the_study(tmp_path: Path, stem: str) -> None:
    work = tmp_path / "a" / "b"
    work.mkdir(parents=True)
    (work / f"{stem}.yaml").write_text("data: {source: iris}\n")
    line = _refused(tmp_path, ["run", f"./{stem}.yaml"])
    assert "study.name: the study is named after the file" in line and "set study.name" in line


def test_submit_refuses_a_hostile_study_flag(tmp_path: Path) -> None:
    work = tmp_path / "a" / "b"
    work.mkdir(parents=True)
    (work / "s.yaml").write_text("data: {source: iris}\n")
    line = _refused(tmp_path, ["submit", "s.yaml", "--study", "../.."])
    assert line.startswith("error: --study '../..'"), line


@pytest.mark.parametrize("name", ["../..", "a:b", "é"])
def test_run_search_refuses_a_hostile_study_name(tmp_path: Path, name: str) -> None:
    """The API's `study_name` is held to the same rule, before the home is made."""
    (tmp_path / "s.yaml").write_text("data: {source: iris}\n")
    with pytest.raises(InputError, match="study name") as info:
        run_search(tmp_path / "s.yaml", study_name=name, home=tmp_path / "home", progress=False)
    assert not isinstance(info.value, SpaceError)
    assert _tree(tmp_path) == ["s.yaml"]
