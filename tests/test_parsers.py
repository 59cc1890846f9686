"""Parsers bounded: a space file's YAML cannot make the loader expand, nest or read past a
small bound, and an array file's header cannot make numpy allocate more than the file
holds; each refusal is one located line (exit 2), found in well under a second."""

from __future__ import annotations

import contextlib
import io
import math
import tracemalloc
import zipfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from search.errors import DataError, SpaceError
from search.prepare import prepare
from search.space.file import load_space, parse_space
from search.space.yamltext import MAX_BYTES, MAX_DEPTH
from tests.conftest import run_cli

HEAD = "data: {source: iris}\n"
FEW_MB = 16 * 1024**2  # far below what any refused input would have cost to read


@contextlib.contextmanager
def _peak() -> Iterator[list[int]]:
    """The most Python and NumPy memory held at once inside the block, in bytes."""
    out: list[int] = []
    tracemalloc.start()
    try:
        yield out
    finally:
        out.append(tracemalloc.get_traced_memory()[1])
        tracemalloc.stop()


def _laughs(levels: int, width: int, *, mapping: bool = False) -> str:
    """Each level `width` aliases of the one before: width ** levels values, in a few
    hundred bytes."""
    text, previous = HEAD + "l0: &l0 [x, x, x, x, x, x, x, x, x]\n", "l0"
    for i in range(1, levels + 1):
        if mapping:
            items = ", ".join(f"k{j}: *{previous}" for j in range(width))
            text += f"l{i}: &l{i} {{{items}}}\n"
        else:
            text += f"l{i}: &l{i} [{', '.join([f'*{previous}'] * width)}]\n"
        previous = f"l{i}"
    return text


HUGE = [
    # (text, the reason, its line): the classes of expansion, self-reference and depth
    (_laughs(9, 9), "aliases expand to over", None),
    (_laughs(6, 10, mapping=True), "aliases expand to over", None),
    (_laughs(30, 2), "aliases expand to over", None),
    (HEAD + "params: &p {width: [*p]}\n", "alias refers to a node that holds it", 2),
    (HEAD + "x: &a [[*a]]\n", "alias refers to a node that holds it", 2),
    (HEAD + "x: " + "[" * 5000 + "]" * 5000 + "\n", f"nested deeper than {MAX_DEPTH}", 2),
    (HEAD + "x: " + "{a: " * 200 + "1" + "}" * 200 + "\n", "nested deeper than", 2),
    (HEAD + "".join(" " * i + f"k{i}:\n" for i in range(100)) + " " * 100 + "v\n", "nested", None),
    (HEAD + "x: [" + "0, " * (MAX_BYTES // 3) + "]\n", "bytes, over the", None),
]


@pytest.mark.parametrize(("text", "reason", "line"), HUGE)
def test_yaml_that_would_expand_or_nest_is_refused_at_once(
    text: str, reason: str, line: int | None
) -> None:
    with _peak() as peak, pytest.raises(SpaceError, match=reason) as info:
        parse_space(text, file="laughs.yaml")
    assert peak[0] < FEW_MB or "bytes, over" in reason
    assert info.value.file == "laughs.yaml"
    assert line is None or info.value.line == line
    if "expand" in reason:  # the line of a node in the file, where the aliases pile up
        assert info.value.line is not None and info.value.line > 2


def test_the_few_hundred_bytes_of_the_issue(tmp_path: Path) -> None:
    path = tmp_path / "lol.yaml"
    path.write_text(_laughs(9, 9))
    assert path.stat().st_size < 1000  # 9 ** 10 values
    with _peak() as peak, pytest.raises(SpaceError, match="aliases expand to over 100,000 values"):
        load_space(path)
    assert peak[0] < FEW_MB


def test_a_file_over_the_size_limit_is_not_read(tmp_path: Path) -> None:
    path = tmp_path / "big.yaml"
    with path.open("wb") as out:  # sparse: the limit is checked before a byte is read
        out.truncate(10 * 1024**3)
    with _peak() as peak, pytest.raises(SpaceError, match=r"10,737,418,240 bytes, over the"):
        load_space(path)
    assert peak[0] < FEW_MB


def test_anchors_within_the_bounds_still_work() -> None:
    space = parse_space(
        HEAD + "params:\n  l1: &reg {low: 0.0001, high: 0.01, log: true}\n  l2: *reg\n",
        file="ok.yaml",
    )
    assert space.params.l2 == space.params.l1


def test_cli_refuses_the_laughs_in_one_line_and_writes_nothing(tmp_path: Path) -> None:
    (tmp_path / "lol.yaml").write_text(_laughs(9, 9))
    out = run_cli("run", "lol.yaml", "--home", "h", cwd=tmp_path, timeout=120)
    assert out.returncode == 2, out.stderr[-2000:]
    (line,) = out.stderr.strip().splitlines()
    assert line.startswith("error: lol.yaml:") and "aliases expand" in line, line
    assert [p.name for p in tmp_path.iterdir()] == ["lol.yaml"]


# ---------------------------------------------------------------- array files


def _npy(array: np.ndarray, shape: tuple[int, ...] | None = None) -> bytes:
    """`array`'s .npy bytes, its header claiming `shape` (forged when given)."""
    out = io.BytesIO()
    header = {"descr": np.lib.format.dtype_to_descr(array.dtype), "fortran_order": False}
    np.lib.format.write_array_header_1_0(out, {**header, "shape": shape or array.shape})
    return out.getvalue() + array.tobytes()


X, Y = np.random.default_rng(0).normal(size=(40, 4)).astype(np.float32), np.arange(40) % 2

FORGED = {
    "huge": (10**10, 4),  # 160 GB claimed: numpy would try to allocate it
    "a row more": (41, 4),  # a file cut short by one row
    "wider": (40, 400),
}


def _space_for(tmp_path: Path, source: str, target: str | None = None) -> Path:
    extra = f", target: {target}" if target else ""
    path = tmp_path / "s.yaml"
    path.write_text(f"data: {{source: {source}{extra}}}\n")
    return path


@pytest.mark.parametrize("forged", list(FORGED))
@pytest.mark.parametrize("member", ["x", "y"])
@pytest.mark.parametrize("compression", [zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED])
def test_an_npz_header_claiming_more_than_the_file_holds(
    tmp_path: Path, forged: str, member: str, compression: int
) -> None:
    shape = FORGED[forged] if member == "x" else (math.prod(FORGED[forged]),)
    with zipfile.ZipFile(tmp_path / "d.npz", "w", compression) as archive:
        archive.writestr("x.npy", _npy(X, shape if member == "x" else None))
        archive.writestr("y.npy", _npy(Y, shape if member == "y" else None))
    with (
        _peak() as peak,
        pytest.raises(DataError, match=rf"array '{member}': its header claims .* holds") as info,
    ):
        prepare(load_space(_space_for(tmp_path, "d.npz")))
    assert peak[0] < FEW_MB  # refused from the header: the claimed size was never allocated
    assert (info.value.key, info.value.line) == ("data.source", 1)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("forged", list(FORGED))
@pytest.mark.parametrize("which", ["source", "target"])
def test_an_npy_header_claiming_more_than_the_file_holds(
    tmp_path: Path, forged: str, which: str
) -> None:
    shape = FORGED[forged]
    (tmp_path / "x.npy").write_bytes(_npy(X, shape if which == "source" else None))
    (tmp_path / "y.npy").write_bytes(_npy(Y, (math.prod(shape),) if which == "target" else None))
    with pytest.raises(DataError, match=r"its header claims .* holds") as info:
        prepare(load_space(_space_for(tmp_path, "x.npy", "y.npy")))
    assert info.value.key == f"data.{which}"


def test_a_torn_npz_is_one_line(tmp_path: Path) -> None:
    np.savez(tmp_path / "d.npz", x=X, y=Y)
    whole = (tmp_path / "d.npz").read_bytes()
    (tmp_path / "d.npz").write_bytes(whole[: len(whole) // 2])
    with pytest.raises(DataError, match="cannot read"):
        prepare(load_space(_space_for(tmp_path, "d.npz")))


def test_an_honest_npz_is_read(tmp_path: Path) -> None:
    np.savez_compressed(tmp_path / "d.npz", x=X, y=Y)
    prep = prepare(load_space(_space_for(tmp_path, "d.npz")))
    assert prep.data.X.shape == (40, 4)


def test_cli_refuses_a_forged_npz_in_one_line(tmp_path: Path) -> None:
    with zipfile.ZipFile(tmp_path / "d.npz", "w") as archive:
        archive.writestr("x.npy", _npy(X, (10**10, 4)))
        archive.writestr("y.npy", _npy(Y))
    _space_for(tmp_path, "d.npz")
    before = sorted(p.name for p in tmp_path.iterdir())
    out = run_cli("run", "s.yaml", "--home", "h", cwd=tmp_path, timeout=120)
    assert out.returncode == 2, out.stderr[-2000:]
    (line,) = out.stderr.strip().splitlines()
    assert line.startswith("error: s.yaml:1: data.source: ") and "header claims" in line, line
    assert sorted(p.name for p in tmp_path.iterdir()) == before
