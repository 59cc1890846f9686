"""The task a target asks for, as the course teaches it: labels are classes, quantities
a regression, and a target that could be either is asked about (exit 2, before any work).
Rare classes are named on the start line and stratified as far as they go."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from search.data.dataset import load_dataset
from search.data.task import infer_task
from search.errors import DataError
from search.models.build import HEADS
from search.prepare import prepare
from search.space.file import load_space
from search.space.schema import DataSpec
from tests.conftest import run_cli

RNG = np.random.default_rng(0)


def _infer(values: object, declared: str = "auto", known: str | None = None) -> str:
    return infer_task(pd.Series(values), declared, where="s.yaml", target="y", known=known)


@pytest.mark.parametrize(
    ("values", "task"),
    [
        (["a", "b"] * 20, "binary"),
        ([True, False] * 20, "binary"),
        (list("abc") * 20, "multiclass"),
        ([0, 1] * 20, "binary"),
        ([-1, 1] * 20, "binary"),  # two values are two classes, whatever they are
        (np.arange(300) % 46, "multiclass"),  # the course's 46 topics, integer-coded
        (np.arange(300) % 46 + 1, "multiclass"),  # coded from 1
        (np.arange(300) % 6 + 3, "multiclass"),  # 3..8, like wine quality grades
        ((np.arange(300) % 46).astype(float), "multiclass"),  # whole numbers stored as floats
        (np.linspace(0, 1, 40), "regression"),
        (np.arange(40) * 1.5, "regression"),  # one fraction is enough
    ],
)
def test_labels_are_classes_and_fractions_a_regression(values: object, task: str) -> None:
    assert _infer(values) == task


@pytest.mark.parametrize(
    ("values", "why"),
    [
        (np.arange(50), "50 distinct values in 50 rows"),  # more than half the rows distinct
        (RNG.integers(0, 30, 40), "distinct values in 40 rows"),
        (np.arange(300) % 10 - 5, "some negative"),
        (np.arange(300) % 10 * 1000, "spread from 0 to 9000"),  # not codes: amounts
        (np.arange(300.0) % 10 * 1000, "spread from 0 to 9000"),
    ],
)
def test_whole_numbers_that_may_be_either_are_asked_about(values: object, why: str) -> None:
    with pytest.raises(DataError, match=why) as info:
        _infer(values)
    assert info.value.key == "data.task"
    assert "data.task: multiclass" in str(info.value) and "data.task: regression" in str(info.value)


@pytest.mark.parametrize("values", [np.arange(50), np.arange(300) % 10 * 1000])
def test_a_declared_task_settles_it(values: object) -> None:
    assert _infer(values, "regression") == "regression"
    assert _infer(values, "multiclass") == "multiclass"


@pytest.mark.parametrize(
    ("known", "task"), [("classes", "multiclass"), ("regression", "regression")]
)
def test_a_data_set_known_by_construction_keeps_its_task(known: str, task: str) -> None:
    # 50 distinct whole numbers in 50 rows would be asked about; a known set is not
    assert _infer(np.arange(50), known=known) == task


def test_builtin_and_course_sets_are_known(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from tests.course import write_course_cache

    write_course_cache(tmp_path / "keras" / "datasets")
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras"))
    # diabetes: 214 distinct whole numbers (stored as floats) in 442 rows, a regression
    assert load_dataset(DataSpec(source="diabetes"), base_dir=tmp_path).task == "regression"
    reuters = load_dataset(DataSpec(source="keras:reuters"), base_dir=tmp_path)
    assert reuters.task == "multiclass"
    boston = load_dataset(DataSpec(source="keras:boston_housing"), base_dir=tmp_path)
    assert boston.task == "regression"


def _space(tmp_path: Path, frame: pd.DataFrame, extra: str = "") -> Path:
    frame.to_csv(tmp_path / "d.csv", index=False)
    path = tmp_path / "s.yaml"
    path.write_text(f"data:\n  source: d.csv\n  target: y\n{extra}")
    return path


def test_an_ambiguous_target_is_exit_2_naming_data_task_and_writes_nothing(
    tmp_path: Path,
) -> None:
    frame = pd.DataFrame({"x": RNG.normal(size=60), "y": RNG.integers(100, 100_000, 60)})
    _space(tmp_path, frame)
    before = sorted(p.name for p in tmp_path.iterdir())
    out = run_cli("run", "s.yaml", "--home", str(tmp_path / "home"), cwd=tmp_path, timeout=300)
    assert out.returncode == 2, out.stderr
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and "s.yaml:1: data.task:" in lines[0], lines
    assert "multiclass" in lines[0] and "regression" in lines[0]
    assert sorted(p.name for p in tmp_path.iterdir()) == before


def test_rare_classes_are_named_on_the_start_line(tmp_path: Path) -> None:
    y = np.array([0] * 40 + [1] * 40 + [2] * 4)  # class 2: about 3 training rows, 5 folds
    frame = pd.DataFrame({"x": RNG.normal(size=len(y)), "y": y})
    prep = prepare(load_space(_space(tmp_path, frame, "validation: {folds: 5}\n")))
    note = next(n for n in prep.notes if n.startswith("rare classes"))
    assert "'2' (" in note and "'0'" not in note
    rare = prep.data.y[prep.split.train] == 2
    covered = [int(np.sum(rare[f.val])) for f in prep.folds]
    assert max(covered) == 1  # stratified: never two of its rows in one fold


def test_a_stratified_holdout_names_a_class_with_one_training_row(tmp_path: Path) -> None:
    y = np.array([0] * 30 + [1] * 30 + [2])  # class 2: one training row
    frame = pd.DataFrame({"x": RNG.normal(size=len(y)), "y": y})
    pd.DataFrame({"x": [0.0] * 6, "y": [0, 1, 2] * 2}).to_csv(tmp_path / "t.csv", index=False)
    extra = "  test_source: t.csv\nvalidation: {scheme: holdout}\n"
    with pytest.raises(DataError, match=r"2 training rows of each class; '2' \(1\) has fewer"):
        prepare(load_space(_space(tmp_path, frame, extra)))
    unstratified = "  test_source: t.csv\nvalidation: {scheme: holdout, stratify: false}\n"
    assert len(prepare(load_space(_space(tmp_path, frame, unstratified))).folds) == 1


def test_a_multiclass_inferred_from_many_whole_numbers_says_so(tmp_path: Path) -> None:
    y = np.arange(300) % 25
    frame = pd.DataFrame({"x": RNG.normal(size=len(y)), "y": y})
    prep = prepare(load_space(_space(tmp_path, frame, "validation: {folds: 3}\n")))
    assert prep.data.task == "multiclass" and prep.data.n_classes == 25
    assert any(
        "25 classes; if it is a quantity, set data.task: regression" in n for n in prep.notes
    )


def test_reuters_space_trains_46_softmax_outputs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """spaces/reuters.yaml on integer topics coded 0..45: a multiclass task, so its network
    ends in a softmax over the 46 topics, trained with categorical cross-entropy (the
    integer-coded form)."""
    folder = tmp_path / "keras" / "datasets"
    folder.mkdir(parents=True)
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras"))
    topics = np.arange(46 * 12) % 46
    x = np.empty(len(topics), dtype=object)
    for i, t in enumerate(topics):
        x[i] = [int(w) for w in RNG.integers(10 * t + 10, 10 * t + 30, 8)]
    np.savez(folder / "reuters.npz", x=x, y=topics)
    prep = prepare(load_space(Path(__file__).parents[1] / "spaces" / "reuters.yaml"))
    assert prep.data.task == "multiclass" and prep.data.n_classes == 46
    assert HEADS[prep.data.task] == ("softmax", "sparse_categorical_crossentropy")
