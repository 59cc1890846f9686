"""Data sources, task inference, the test split and per-fold preprocessing."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from search.data.dataset import load_dataset, make_preprocessor
from search.data.split import split_test
from search.errors import DataError
from search.space.schema import DataSpec


def _csv(tmp_path: Path, frame: pd.DataFrame, name: str = "d.csv") -> Path:
    path = tmp_path / name
    frame.to_csv(path, index=False)
    return path


def _load(tmp_path: Path, **spec: object) -> object:
    return load_dataset(DataSpec(**spec), base_dir=tmp_path, where="s.yaml")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("source", "task", "n_classes"),
    [
        ("breast_cancer", "binary", 2),
        ("digits", "multiclass", 10),
        ("iris", "multiclass", 3),
        ("wine", "multiclass", 3),
        ("diabetes", "regression", 0),
    ],
)
def test_builtin_sets_infer_their_task(
    tmp_path: Path, source: str, task: str, n_classes: int
) -> None:
    data = load_dataset(DataSpec(source=source), base_dir=tmp_path)
    assert data.task == task
    assert data.n_classes == n_classes
    assert len(data.y) == len(data.X)


def test_csv_with_text_target_and_categoricals(tmp_path: Path) -> None:
    frame = pd.DataFrame(
        {
            "x": [1.0, 2.0, np.nan, 4.0] * 5,
            "c": ["a", "b", None, "a"] * 5,
            "y": ["no", "yes", "no", "yes"] * 5,
        }
    )
    data = load_dataset(DataSpec(source=str(_csv(tmp_path, frame)), target="y"), base_dir=tmp_path)
    assert data.task == "binary" and data.classes == ("no", "yes")
    assert set(data.X.columns) == {"x", "c"}


def test_parquet_source(tmp_path: Path) -> None:
    frame = pd.DataFrame({"x": np.arange(30.0), "y": np.arange(30.0) * 1.5})
    path = tmp_path / "d.parquet"
    frame.to_parquet(path)
    data = load_dataset(DataSpec(source=str(path), target="y"), base_dir=tmp_path)
    assert data.task == "regression"


@pytest.mark.parametrize(
    ("frame", "spec", "match"),
    [
        (None, {"source": "nope.csv", "target": "y"}, r"s.yaml: data.source: no such data file"),
        (
            pd.DataFrame({"x": [1, 2], "y": [0, 1]}),
            {"target": "label"},
            r"data.target: column 'label' not found",
        ),
        (
            pd.DataFrame({"x": [1, 2, 3], "y": ["a", "b", "c"]}),
            {"target": "y", "task": "regression"},
            r"task is regression but column 'y' is not numeric",
        ),
        (
            pd.DataFrame({"x": [1, 2, 3, 4], "y": [0.0, np.nan, 1.0, 0.0]}),
            {"target": "y"},
            r"has 1 missing \(NaN\) values, first at rows \[1\]",
        ),
        (pd.DataFrame({"x": [1, 2, 3], "y": [1, 1, 1]}), {"target": "y"}, "a single class"),
        (
            pd.DataFrame({"x": [1, 2, 3], "y": [0, 1, 2]}),
            {"target": "y", "task": "binary"},
            "binary needs 2 classes",
        ),
        (
            pd.DataFrame({"x": [1, 2], "y": [0, 1]}),
            {"target": "y", "group_column": "g"},
            "data.group_column: column 'g' not found",
        ),
    ],
)
def test_bad_data_is_refused_with_file_and_column(
    tmp_path: Path, frame: pd.DataFrame | None, spec: dict[str, object], match: str
) -> None:
    if frame is not None:
        spec = {"source": str(_csv(tmp_path, frame)), **spec}
    with pytest.raises(DataError, match=match):
        _load(tmp_path, **spec)


def test_test_split_is_seeded_stratified_and_disjoint(tmp_path: Path) -> None:
    spec = DataSpec(source="breast_cancer", test_size=0.2, seed=11)
    data = load_dataset(spec, base_dir=tmp_path)
    a, b = split_test(data, spec), split_test(data, spec)
    assert np.array_equal(a.test, b.test) and a.digest() == b.digest()
    assert not set(a.train) & set(a.test)
    assert len(a.train) + len(a.test) == len(data.y)
    overall, held = data.y.mean(), data.y[a.test].mean()
    assert abs(overall - held) < 0.02  # stratified: class balance kept
    other = split_test(data, DataSpec(source="breast_cancer", test_size=0.2, seed=12))
    assert other.digest() != a.digest()


def test_group_split_keeps_groups_out_of_the_test_rows(tmp_path: Path) -> None:
    frame = pd.DataFrame(
        {"x": np.arange(60.0), "g": np.repeat(np.arange(20), 3), "y": np.tile([0, 1], 30)}
    )
    spec = DataSpec(source=str(_csv(tmp_path, frame)), target="y", group_column="g")
    data = load_dataset(spec, base_dir=tmp_path)
    split = split_test(data, spec)
    assert data.groups is not None
    assert not set(data.groups[split.train]) & set(data.groups[split.test])
    assert "g" not in data.X.columns


def test_time_split_holds_out_the_latest_rows(tmp_path: Path) -> None:
    frame = pd.DataFrame({"t": np.arange(50)[::-1], "x": np.arange(50.0), "y": np.arange(50.0)})
    spec = DataSpec(
        source=str(_csv(tmp_path, frame)), target="y", time_column="t", task="regression"
    )
    data = load_dataset(spec, base_dir=tmp_path)
    split = split_test(data, spec)
    assert split.train.max() < split.test.min()


def test_fingerprint_changes_with_one_value(tmp_path: Path) -> None:
    frame = pd.DataFrame({"x": np.arange(20.0), "y": [0, 1] * 10})
    a = _load(tmp_path, source=str(_csv(tmp_path, frame)), target="y")
    frame.loc[3, "x"] = 3.5
    b = _load(tmp_path, source=str(_csv(tmp_path, frame, "e.csv")), target="y")
    assert a.fingerprint != b.fingerprint  # type: ignore[attr-defined]


def test_preprocessor_uses_training_statistics_only() -> None:
    X = pd.DataFrame(
        {"x": [0.0, 2.0, np.nan, 100.0], "c": ["a", "b", np.nan, "z"]}, dtype=object
    ).astype({"x": float})
    pre = make_preprocessor().fit(X.iloc[:3])
    out = pre.transform(X)
    # median of the training rows (1.0) fills the gap; mean/std from training rows only
    assert out[:3, 0].mean() == pytest.approx(0.0)
    assert out[3, 0] > 10  # the unseen extreme value is not part of the statistics
    assert out.shape[1] == 1 + 2  # "a", "b" one-hot; "z" unseen at fit time is ignored
    assert out[3, 1:].sum() == 0
