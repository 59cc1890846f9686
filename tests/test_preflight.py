"""The preflight: every rule that needs the data is checked after the rows are read and
before any journal, store or run is written: exit 2, one line naming the file, the right
key and its line, and the folder as it was (issue 37, part 3). Each class of input has
its neighbours here, not only the case that was found."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from search.errors import DataError, SpaceError
from search.prepare import prepare
from search.space.file import load_space
from tests.conftest import run_cli


def _frame(n: int = 40, **extra: object) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    return pd.DataFrame({"a": rng.normal(size=n), "b": rng.normal(size=n), **extra})


def _binary(n: int = 40) -> pd.DataFrame:
    return _frame(n, y=np.arange(n) % 2)


def _write(tmp_path: Path, files: dict[str, pd.DataFrame | str]) -> None:
    for name, content in files.items():
        if isinstance(content, str):
            (tmp_path / name).write_text(content)
        else:
            content.to_csv(tmp_path / name, index=False, sep="\t" if name.endswith("tsv") else ",")


def _expect(tmp_path: Path, space: str, key: str, line: int | None, match: str) -> None:
    """prepare() refuses the space with a located error naming `key` on `line`."""
    (tmp_path / "s.yaml").write_text(space)
    with pytest.raises((DataError, SpaceError), match=match) as info:
        prepare(load_space(tmp_path / "s.yaml"))
    assert (info.value.key, info.value.line) == (key, line), str(info.value)
    assert "\n" not in str(info.value)


HEAD = "data:\n  source: d.csv\n  target: y\n"  # lines 1-3

# ---------------------------------------------------------------- seeds


@pytest.mark.parametrize(
    ("text", "key", "line"),
    [
        ("study:\n  seed: -1\n", "study.seed", 5),
        ("study:\n  seed: 1099511627776\n", "study.seed", 5),
        ("  seed: -5\n", "data.seed", 4),
        ("  seed: 2147483647\n", "data.seed", 4),  # its neighbour, seed + 1, is a seed too
    ],
)
def test_a_seed_no_library_takes(tmp_path: Path, text: str, key: str, line: int) -> None:
    _write(tmp_path, {"d.csv": _binary()})
    _expect(tmp_path, HEAD + text, key, line, r"a seed must lie in \[0, 2147483646\]")


# ---------------------------------------------------------------- column names


@pytest.mark.parametrize(
    ("name", "header", "twice"),
    [
        ("d.csv", "a,b,a,y", "'a'"),
        ("d.csv", "a,a,a,y", "'a'"),
        ("d.csv", "y,b,y", "'y'"),  # the target itself
        ("d.tsv", "a\tb\ta\ty", "'a'"),
    ],
)
def test_a_column_named_twice_is_refused_not_renamed(
    tmp_path: Path, name: str, header: str, twice: str
) -> None:
    sep = "\t" if name.endswith("tsv") else ","
    width = len(header.split(sep))
    rows = "\n".join(sep.join(str((i + j) % 2) for j in range(width)) for i in range(20))
    (tmp_path / name).write_text(header + "\n" + rows + "\n")
    space = f"data:\n  source: {name}\n  target: y\n"
    _expect(tmp_path, space, "data.source", 2, f"column {twice} is named twice in its header")


def test_a_given_file_with_a_column_named_twice(tmp_path: Path) -> None:
    _write(tmp_path, {"d.csv": _binary()})
    (tmp_path / "v.csv").write_text("a,a,y\n1,2,0\n3,4,1\n")
    space = HEAD + "validation:\n  scheme: given\n  source: v.csv\n"
    _expect(tmp_path, space, "validation.source", 6, "column 'a' is named twice")


# ---------------------------------------------------------------- paths


@pytest.mark.parametrize("key", ["data.source", "data.test_source"])
def test_a_symlink_loop_is_called_one(tmp_path: Path, key: str) -> None:
    _write(tmp_path, {"d.csv": _binary()})
    os.symlink(tmp_path / "loop2.csv", tmp_path / "loop.csv")
    os.symlink(tmp_path / "loop.csv", tmp_path / "loop2.csv")
    source = "loop.csv" if key == "data.source" else "d.csv"
    extra = "  test_source: loop.csv\n" if key == "data.test_source" else ""
    space = f"data:\n  source: {source}\n  target: y\n{extra}"
    _expect(tmp_path, space, key, 2 if key == "data.source" else 4, "a symlink loop")


@pytest.mark.parametrize("name", ["loop.npz", "loop.npy", "images", "loop.parquet"])
def test_a_symlink_loop_of_any_kind_of_source(tmp_path: Path, name: str) -> None:
    os.symlink(tmp_path / f"{name}.2", tmp_path / name)
    os.symlink(tmp_path / name, tmp_path / f"{name}.2")
    target = "y.npy" if name.endswith("npy") else "y"
    _expect(
        tmp_path,
        f"data:\n  source: {name}\n  target: {target}\n",
        "data.source",
        2,
        "a symlink loop",
    )


def test_a_dangling_symlink_names_its_target(tmp_path: Path) -> None:
    os.symlink(tmp_path / "gone.csv", tmp_path / "d.csv")
    _expect(tmp_path, HEAD, "data.source", 2, r"a symlink to nothing \(.*gone.csv\)")


def test_a_space_file_in_a_symlink_loop(tmp_path: Path) -> None:
    os.symlink(tmp_path / "b.yaml", tmp_path / "a.yaml")
    os.symlink(tmp_path / "a.yaml", tmp_path / "b.yaml")
    with pytest.raises(SpaceError, match="a symlink loop, not a space file"):
        load_space(tmp_path / "a.yaml")


# ---------------------------------------------------------------- time columns

DAYS = [f"2024-01-{d:02d}" for d in range(1, 31)] + [f"2024-02-{d:02d}" for d in range(1, 11)]


@pytest.mark.parametrize(
    ("times", "match"),
    [
        ([*DAYS[:7], "soon", *DAYS[8:]], "row 7 holds 'soon', not a time"),
        ([*DAYS[:3], None, *DAYS[4:]], "row 3 has no time"),
        ([f"{m}/{d}/2024" for m in (1, 2) for d in range(1, 21)], "does not sort as its times"),
        ([True, False] * 20, "true/false"),
        ([*DAYS[:39], "2024-02-30"], "row 39 holds '2024-02-30'"),
    ],
)
def test_a_time_column_whose_values_are_not_all_times(
    tmp_path: Path, times: list[object], match: str
) -> None:
    _write(tmp_path, {"d.csv": _frame(40, t=times, y=np.arange(40) % 2)})
    space = HEAD + "  time_column: t\nvalidation:\n  scheme: time_series\n  folds: 2\n"
    _expect(tmp_path, space, "data.time_column", 4, match)


@pytest.mark.parametrize(
    "times", [DAYS, list(range(40)), [f"2024-01-01 10:{m:02d}" for m in range(40)]]
)
def test_a_time_column_of_times_is_taken(tmp_path: Path, times: list[object]) -> None:
    _write(tmp_path, {"d.csv": _frame(40, t=times, y=np.arange(40) % 2)})
    (tmp_path / "s.yaml").write_text(
        HEAD
        + "  time_column: t\nvalidation: {scheme: time_series, folds: 2}\nselection: {recheck_folds: 2}\n"
    )
    assert len(prepare(load_space(tmp_path / "s.yaml")).folds) == 2


def test_a_given_test_file_with_a_bad_time(tmp_path: Path) -> None:
    test = _frame(6, t=[*DAYS[:5], "later"], y=[0, 1] * 3)
    _write(tmp_path, {"d.csv": _frame(40, t=DAYS, y=np.arange(40) % 2), "t.csv": test})
    space = HEAD + "  time_column: t\n  test_source: t.csv\n"
    _expect(tmp_path, space, "data.time_column", 4, "time column 't' of t.csv: row 5")


# ---------------------------------------------------------------- classes of given parts


@pytest.mark.parametrize(
    ("labels", "unknown"),
    [(["a", "b", "c"], "'c'"), (["c", "c", "c"], "'c'"), (["a", "d", "e"], "'d'")],
)
def test_a_given_test_file_with_a_class_training_never_has(
    tmp_path: Path, labels: list[str], unknown: str
) -> None:
    train = _frame(40, y=["a", "b"] * 20)
    _write(tmp_path, {"d.csv": train, "t.csv": _frame(3, y=labels)})
    space = HEAD + "  test_source: t.csv\n"
    _expect(tmp_path, space, "data.test_source", 4, f"class {unknown} is in t.csv")


@pytest.mark.parametrize("metric", ["roc_auc", "accuracy", "loss"])
@pytest.mark.parametrize("classes", [2, 3])
def test_a_given_validation_file_of_one_class(tmp_path: Path, metric: str, classes: int) -> None:
    train = _frame(60, y=np.arange(60) % classes)
    _write(tmp_path, {"d.csv": train, "v.csv": _frame(8, y=[1] * 8)})
    space = (
        HEAD + f"objective:\n  metric: {metric}\nvalidation:\n  scheme: given\n  source: v.csv\n"
    )
    if metric == "roc_auc" and classes == 3:
        space = space.replace("roc_auc", "f1")
    _expect(tmp_path, space, "validation.source", 8, r"v.csv holds one class \('1', 8 rows\)")


@pytest.mark.parametrize(
    ("metric", "classes", "part", "absent"),
    [
        ("roc_auc", 2, "test", "'b'"),
        ("pr_auc", 3, "test", "'c'"),
        ("roc_auc", 3, "validation", "'c'"),
        ("pr_auc", 4, "validation", "'c'"),
    ],
)
def test_a_given_part_without_every_class_for_a_metric_that_needs_them(
    tmp_path: Path, metric: str, classes: int, part: str, absent: str
) -> None:
    names = "abcd"[:classes]
    train = _frame(60, y=[names[i % classes] for i in range(60)])
    given = _frame(6, y=["a", "b"] * 3 if classes > 2 else ["a"] * 6)
    metric_lines = f"objective:\n  metric: {metric}\n"  # lines 4-5
    if part == "test":
        space, key, line = HEAD + "  test_source: g.csv\n" + metric_lines, "data.test_source", 4
    else:
        given_lines = "validation:\n  scheme: given\n  source: g.csv\n"  # source: line 8
        space, key, line = HEAD + metric_lines + given_lines, "validation.source", 8
    _write(tmp_path, {"d.csv": train, "g.csv": given})
    _expect(tmp_path, space, key, line, f"g.csv has no row of class {absent}")


def test_a_given_part_without_every_class_is_taken_for_accuracy(tmp_path: Path) -> None:
    _write(tmp_path, {"d.csv": _frame(60, y=np.arange(60) % 3), "g.csv": _frame(6, y=[0, 1] * 3)})
    space = HEAD + "  test_source: g.csv\nvalidation: {scheme: given, source: g.csv}\n"
    (tmp_path / "s.yaml").write_text(space + "objective: {metric: accuracy}\n")
    assert len(prepare(load_space(tmp_path / "s.yaml")).split.test) == 6


# ---------------------------------------------------------------- text columns


@pytest.mark.parametrize("texts", [[""] * 40, ["!!! ..."] * 40, [None] * 39 + ["?"]])
def test_a_text_column_without_a_single_word(tmp_path: Path, texts: list[object]) -> None:
    _write(tmp_path, {"d.csv": _frame(40, note=texts, y=np.arange(40) % 2)})
    space = HEAD + "  columns:\n    note: text\n"
    _expect(tmp_path, space, "data.columns", 4, "text column 'note' of .* not a single word")


def test_a_fold_whose_training_rows_have_no_word(tmp_path: Path) -> None:
    """Time-series folds: the first fold fits on the earliest rows, wordless here."""
    notes = ["-"] * 30 + ["a few words here"] * 10
    _write(tmp_path, {"d.csv": _frame(40, t=DAYS, note=notes, y=np.arange(40) % 2)})
    space = (
        HEAD
        + "  time_column: t\n  columns:\n    note: tfidf\nvalidation: {scheme: time_series, folds: 2}\n"
    )
    _expect(tmp_path, space, "data.columns", 5, "not a single word in its training rows of fold 1")


# ---------------------------------------------------------------- the selection's recheck


@pytest.mark.parametrize(
    ("frame", "extra", "match"),
    [
        # 5 classes of 3 or 4 training rows each, 5 stratified folds: none can be split
        (_frame(25, y=np.arange(25) % 5), "", "largest class has [34] rows"),
        # a regression of 9 training rows, 10 folds
        (_frame(12, y=np.linspace(0, 1, 12)), "  recheck_folds: 10\n", "fewer than the 10"),
    ],
)
def test_recheck_folds_beyond_the_rows_name_the_selection_key(
    tmp_path: Path, frame: pd.DataFrame, extra: str, match: str
) -> None:
    _write(tmp_path, {"d.csv": frame})
    space = (
        HEAD
        + "  test_size: 0.25\nvalidation:\n  scheme: holdout\n  val_fraction: 0.3\n"
        + "selection:\n"
        + (extra or "  recheck_folds: 5\n")
    )
    _expect(tmp_path, space, "selection.recheck_folds", 9, match)


@pytest.mark.parametrize(("n", "rare"), [(40, 4), (60, 3)])
def test_a_rare_class_in_the_recheck_is_stratified_as_far_as_it_goes_and_named(
    tmp_path: Path, n: int, rare: int
) -> None:
    """Fewer rows of a class than the recheck's folds: not refused, said by name."""
    _write(tmp_path, {"d.csv": _frame(n, y=[0] * (n - rare) + [1] * rare)})
    (tmp_path / "s.yaml").write_text(
        HEAD + "  test_size: 0.25\nvalidation:\n  scheme: holdout\n  val_fraction: 0.3\n"
        "selection:\n  recheck_folds: 5\n"
    )
    prep = prepare(load_space(tmp_path / "s.yaml"))
    (note,) = [n for n in prep.notes if n.startswith("rare classes")]
    assert "fewer than 5 folds" in note and "'1' (" in note, note


def test_recheck_folds_beyond_the_groups(tmp_path: Path) -> None:
    _write(tmp_path, {"d.csv": _frame(60, g=np.arange(60) % 8, y=np.arange(60) % 2)})
    space = (
        HEAD + "  group_column: g\nvalidation:\n  scheme: group_kfold\n  folds: 2\n"
        "selection:\n  recheck_folds: 7\n"
    )
    _expect(tmp_path, space, "selection.recheck_folds", 9, "groups are fewer than 7 folds")


# ---------------------------------------------------------------- through the command line

CLI = [
    ({"d.csv": _binary()}, HEAD + "study:\n  seed: -1\n", "s.yaml:5: study.seed: a seed"),
    ({"d.csv": "a,a,y\n1,2,0\n3,4,1\n"}, HEAD, "s.yaml:2: data.source: "),
    (
        {"d.csv": _frame(40, t=[*DAYS[:9], "x", *DAYS[10:]], y=np.arange(40) % 2)},
        HEAD + "  time_column: t\n",
        "s.yaml:4: data.time_column: time column 't' of d.csv: row 9 holds 'x'",
    ),
    (
        {"d.csv": _frame(40, y=["a", "b"] * 20), "t.csv": _frame(2, y=["a", "z"])},
        HEAD + "  test_source: t.csv\n",
        "s.yaml:4: data.test_source: class 'z' is in t.csv",
    ),
    (
        {"d.csv": _binary(), "v.csv": _frame(5, y=[0] * 5)},
        HEAD + "objective: {metric: roc_auc}\nvalidation: {scheme: given, source: v.csv}\n",
        "s.yaml:5: validation.source: v.csv holds one class",
    ),
    (
        {"d.csv": _frame(40, note=["..."] * 40, y=np.arange(40) % 2)},
        HEAD + "  columns: {note: text}\n",
        "s.yaml:4: data.columns: text column 'note'",
    ),
    (
        {"d.csv": _frame(25, y=np.arange(25) % 5)},
        HEAD + "validation: {scheme: holdout, val_fraction: 0.3}\nselection:\n  recheck_folds: 5\n",
        "s.yaml:6: selection.recheck_folds: the selection rechecks",
    ),
]


@pytest.mark.parametrize(("files", "space", "line"), CLI)
def test_cli_preflight_is_one_line_and_writes_nothing(
    tmp_path: Path, files: dict[str, pd.DataFrame | str], space: str, line: str
) -> None:
    _write(tmp_path, {**files, "s.yaml": space})
    before = sorted(p.name for p in tmp_path.iterdir())
    out = run_cli("run", "s.yaml", "--home", "h", cwd=tmp_path, timeout=120)
    assert out.returncode == 2, out.stderr[-2000:]
    (said,) = out.stderr.strip().splitlines()
    assert said.startswith(f"error: {line}"), said
    assert sorted(p.name for p in tmp_path.iterdir()) == before  # no h/, no journal, no db
