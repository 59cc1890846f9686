"""Columns that are not categories: identifiers dropped, many levels pooled, dates read as
dates; decided and fitted on training rows only, said in one line, overridable."""

from __future__ import annotations

import io
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest

from search import run_search
from search.data.columns import MIN_FREQUENCY, Preprocessor, encodings
from tests.conftest import run_cli


def _frame(n: int = 300, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    models = [f"make{m} model{k}" for m in range(6) for k in range(20)]  # 120 names
    start = pd.Timestamp("2015-01-01")
    days = rng.integers(0, 3000, size=n)
    frame = pd.DataFrame(
        {
            "weight": rng.normal(3000, 500, size=n).round(),
            "origin": rng.choice(["usa", "europe", "japan"], size=n),
            "name": rng.choice(models, size=n, p=np.r_[np.full(5, 0.1), np.full(115, 0.5 / 115)]),
            "vin": [f"VIN{i:06d}X" for i in rng.permutation(n)],
            "sold": [(start + pd.Timedelta(days=int(d))).strftime("%Y-%m-%d") for d in days],
        }
    )
    frame["price"] = 20 - frame["weight"] / 500 + days / 1000 + rng.normal(0, 0.5, size=n)
    return frame


def test_each_kind_of_column_is_detected() -> None:
    kinds = encodings(_frame().drop(columns=["price"]))
    assert kinds == {
        "weight": "number",
        "origin": "onehot",
        "name": "frequent",
        "vin": "drop",
        "sold": "date",
    }


def test_words_with_digits_are_not_dates() -> None:
    frame = pd.DataFrame({"room": [f"room {i} b{i % 3}" for i in range(40)] * 2})
    assert encodings(frame)["room"] != "date"


def test_features_shrink_and_follow_the_training_rows_only() -> None:
    """Width: the identifier adds nothing and rare names share one column. The frequent
    levels, the date scaling and the numeric scaling come from the rows fitted on."""
    frame = _frame().drop(columns=["price"])
    train, rest = frame.iloc[:200], frame.iloc[200:]
    pre = Preprocessor().fit(train)
    out = pre.transform(train)
    counts = train["name"].value_counts()
    frequent = int((counts >= MIN_FREQUENCY).sum())
    pooled = int((counts < MIN_FREQUENCY).any())
    assert out.shape[1] == 1 + 3 + frequent + pooled + 5  # number, onehot, frequent, date
    everything = pd.get_dummies(frame[["origin", "name", "vin", "sold"]]).shape[1]
    assert out.shape[1] < everything / 10
    dates = out[:, -5:]
    np.testing.assert_allclose(dates.mean(axis=0), 0.0, atol=1e-9)  # training rows' statistics
    unseen = rest.assign(vin="NEW", name="make9 model99", sold="2031-06-30")
    shifted = pre.transform(unseen)
    assert np.all(np.isfinite(shifted))
    assert shifted[:, -1].min() > dates[:, -1].max()  # days since 1970: later than any seen


def test_the_space_file_overrides_and_the_run_records_the_choice(tmp_path: Path) -> None:
    _frame().to_csv(tmp_path / "cars.csv", index=False)
    (tmp_path / "s.yaml").write_text(
        "study: {name: cars, trials: 1, sampler: random, pruner: none}\n"
        "data:\n  source: cars.csv\n  target: price\n  columns: {origin: drop}\n"
        "validation: {scheme: holdout}\n"
        "params: {depth: 1, width: 8, learning_rate: 0.01, epochs: 2, patience: 1}\n"
        "training: {engine: sequential}\n"
    )
    said = io.StringIO()
    result = run_search(tmp_path / "s.yaml", home=tmp_path / "m", stream=said)
    line = [x for x in said.getvalue().splitlines() if x.startswith("columns: ")]
    assert len(line) == 1
    assert "'vin' dropped (an identifier: " in line[0]
    assert "'origin' dropped (the space says so: data.columns)" in line[0]
    assert "'name' (" in line[0] and "'sold' read as dates" in line[0]
    mlflow.set_tracking_uri(f"sqlite:///{tmp_path / 'm' / 'mlflow.db'}")
    params = mlflow.get_run(result.parent_run_id).data.params
    assert params["data.columns.vin"] == "drop"
    assert params["data.columns.origin"] == "drop"  # the space's choice
    assert params["data.columns.name"] == "frequent"
    assert params["data.columns.sold"] == "date"
    assert "data.columns.weight" not in params  # plain numbers are not listed


@pytest.mark.parametrize(
    ("columns", "message"),
    [
        ("{colour: onehot}", "'colour' is not a column of cars.csv"),
        ("{price: onehot}", "'price' is not a feature column"),
        ("{name: hashed}", "unknown encoding 'hashed'"),
        ("{name: number}", "'name' holds text"),
        (
            "{weight: drop, origin: drop, name: drop, sold: drop}",
            "every feature column of cars.csv would be dropped",
        ),
    ],
)
def test_a_bad_encoding_is_one_line_and_exit_2(tmp_path: Path, columns: str, message: str) -> None:
    _frame().to_csv(tmp_path / "cars.csv", index=False)
    (tmp_path / "s.yaml").write_text(
        "study: {name: cars, trials: 1}\n"
        f"data:\n  source: cars.csv\n  target: price\n  columns: {columns}\n"
    )
    out = run_cli("run", "s.yaml", "--home", "store", cwd=tmp_path, timeout=120)
    assert out.returncode == 2, out.stderr
    lines = [x for x in out.stderr.splitlines() if x.strip()]
    assert len(lines) == 1 and message in lines[0], out.stderr
    assert "s.yaml:5: data.columns" in lines[0]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cars.csv", "s.yaml"]


def test_rows_are_transformed_in_blocks_exactly_as_all_at_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Row chunks, column blocks of numbers and `rows=` give the very numbers of one
    scikit-learn ColumnTransformer over the whole table, with missing values and text."""
    from sklearn.compose import ColumnTransformer

    from search.data import columns

    frame = _frame().drop(columns=["price"])
    rng = np.random.default_rng(1)
    for i in range(5):
        frame[f"x{i}"] = np.where(rng.random(len(frame)) < 0.1, np.nan, rng.normal(size=len(frame)))
    frame["review"] = [" ".join(rng.choice(list("abcdefgh"), size=6)) for _ in range(len(frame))]
    train, rows = frame.iloc[:200], rng.permutation(len(frame))[:150]
    whole = ColumnTransformer(columns._parts(encodings(train)), sparse_threshold=0.0).fit(train)
    monkeypatch.setattr(columns, "CHUNK_ROWS", 7)
    monkeypatch.setattr(columns, "NUMBER_BLOCK", 2)
    pre = Preprocessor().fit(train)
    assert [name for name, _, _ in pre.parts_][:3] == ["num_0", "num_2", "num_4"]
    out = pre.transform(frame)
    assert out.dtype == np.float64 and np.array_equal(out, whole.transform(frame))
    assert np.array_equal(pre.transform(frame, rows), out[rows])
    images = pd.DataFrame(rng.random((40, 9), dtype=np.float32)).rename(columns=str)
    assert Preprocessor().fit(images).transform(images).dtype == np.float32  # no float64 copy


def test_each_dropped_column_is_said_with_its_real_reason(tmp_path: Path) -> None:
    """The space's choice, the identifier rule, a constant and an all-missing column, each
    named for what it is; the constant ones dropped with a warning, not one-hot encoded."""
    from search.prepare import prepare
    from search.space.file import load_space

    frame = _frame().assign(plant="Kyoto", shift=np.nan)
    frame["line"] = 7.0  # one value, on the rows that have one
    frame.loc[::4, "line"] = np.nan
    frame["note"] = frame["origin"]
    frame.to_csv(tmp_path / "cars.csv", index=False)
    (tmp_path / "s.yaml").write_text(
        "data:\n  source: cars.csv\n  target: price\n  columns: {origin: drop, sold: date}\n"
        "  drop_columns: [note]\n"
    )
    prep = prepare(load_space(tmp_path / "s.yaml"))
    said = next(n for n in prep.notes if n.startswith("columns: "))
    assert "'origin' dropped (the space says so: data.columns)" in said
    assert "'note' dropped (the space says so: data.drop_columns)" in said
    assert "'vin' dropped (an identifier: " in said
    assert "'plant' dropped (constant: one value, 'Kyoto')" in said
    assert "'shift' dropped (all missing)" in said
    assert "'line' dropped (constant: one value, 7.0, " in said and " missing)" in said
    assert "'sold' read as dates (year, month, day, weekday, days) (the space says so)" in said
    assert "identifier" not in said.split("'vin'")[0]  # no other column called one
    warning = next(n for n in prep.notes if n.startswith("warning: "))
    assert "'plant'" in warning and "'shift'" in warning and "'line'" in warning
    assert "'origin'" not in warning and "'vin'" not in warning
    # decided once on the training rows: every fold's preprocessing leaves them out alike
    from search.data.dataset import make_preprocessor

    rows = prep.data.X.iloc[prep.split.train]
    for fold in prep.folds:
        pre = make_preprocessor(prep.data.encodings).fit(rows.iloc[fold.train])
        assert {pre.encodings_[c] for c in ("plant", "shift", "line")} == {"drop"}


def test_a_column_constant_in_some_folds_keeps_every_folds_width(tmp_path: Path) -> None:
    """digits' edge pixels are 0 in most rows: constant in some folds, not in others. The
    rule reads the training rows once, so all folds have the same features (a pack of
    folds needs it)."""
    from search.data.dataset import make_preprocessor
    from search.prepare import prepare
    from search.space.file import load_space

    (tmp_path / "s.yaml").write_text("data: {source: digits}\nvalidation: {folds: 5}\n")
    prep = prepare(load_space(tmp_path / "s.yaml"))
    rows = prep.data.X.iloc[prep.split.train]
    per_fold = [rows.iloc[f.train].nunique() <= 1 for f in prep.folds]
    assert any(p.any() for p in per_fold) and not all(p.equals(per_fold[0]) for p in per_fold)
    widths = {
        make_preprocessor(prep.data.encodings).fit(rows.iloc[f.train]).transform(rows).shape[1]
        for f in prep.folds
    }
    assert len(widths) == 1


def test_constant_pixels_of_an_image_are_kept(tmp_path: Path) -> None:
    """A border pixel that is 0 in every image stays: each sample keeps its shape."""
    from search.data.dataset import load_dataset, make_preprocessor
    from search.space.schema import DataSpec

    rng = np.random.default_rng(0)
    x = rng.integers(0, 255, size=(40, 4, 4)).astype(np.float32)
    x[:, 0, :] = 0.0
    np.savez(tmp_path / "px.npz", x=x, y=np.arange(40) % 2)
    data = load_dataset(DataSpec(source=str(tmp_path / "px.npz")), base_dir=tmp_path)
    pre = make_preprocessor(data.encodings).fit(data.X)
    assert pre.transform(data.X).shape == (40, 16)
