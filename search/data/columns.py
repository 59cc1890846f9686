"""What each feature column is, and how it becomes numbers, fitted on training rows only.

A text column is not always a category. Seven encodings, chosen per column from the rows
the preprocessing is fitted on (a fold's training rows; all training rows at refit), or
named in the space file (`data.columns: {name: encoding}`):

- `number`: imputed with the median, standardized (every numeric column);
- `onehot`: one column per level, unknown levels all zeros (text with few levels);
- `frequent`: one-hot of the levels seen on at least `MIN_FREQUENCY` rows, the rarer ones
  pooled into one column (text with many levels: names, codes, free text);
- `date`: year, month, day, weekday and days since 1970, as numbers (text that parses
  as dates);
- `text`: multi-hot of the `max_tokens` words most frequent in the rows fitted on, as
  the Keras course encodes reviews and newswires (text of several words a row);
- `tfidf`: TF-IDF weights of those words instead (named in the space file);
- `drop`: left out: text where nearly every row has its own value (an identifier), a
  column the space file drops, or one with a single value (constant) or none (all
  missing) on the search's training rows (decided once, in search.prepare).

A word the fitted rows never saw has no column: no test or validation row shapes the
vocabulary.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd
from scipy import sparse
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.feature_extraction.text import CountVectorizer, TfidfVectorizer
from sklearn.impute import SimpleImputer
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer, OneHotEncoder, StandardScaler

Part = tuple[str, Any, "str | list[str]"]  # name, transformer, its column(s)
ENCODINGS = ("number", "onehot", "frequent", "date", "text", "tfidf", "drop")
MAX_TOKENS = 10_000  # words in a text column's vocabulary (the course's 10,000)
TEXT_WORDS = 4  # words a value on average: text to read, not a category or a name
WORD = r"(?u)\b\w+\b"  # a word: letters or digits (a word index reads as one too)
FEW_LEVELS = 20  # up to this many levels, every level gets its column
IDENTIFIER_SHARE = 0.95  # this share of rows with a value of their own: an identifier
MIN_FREQUENCY = 5  # rows a level needs for a column of its own under `frequent`
NUMBER_BLOCK = 128  # numeric columns imputed and scaled together (an image: many blocks)
CHUNK_ROWS = 8192  # rows transformed at a time
_DATE_LIKE = re.compile(r"^\s*\d{1,4}\D{1,3}\d{1,2}(\D{1,3}\d{1,4})?")


def encodings(X: pd.DataFrame, chosen: Mapping[str, str] | None = None) -> dict[str, str]:
    """Each column's encoding: the space file's choice, else what its values look like."""
    chosen = chosen or {}
    return {str(c): chosen.get(str(c)) or _detect(X[c]) for c in X.columns}


def _detect(values: pd.Series) -> str:
    if pd.api.types.is_numeric_dtype(values):
        return "number"
    present = values.dropna().astype(str)
    levels = present.nunique()
    if len(present) and _dates(present):
        return "date"
    if levels > FEW_LEVELS and present.str.split().str.len().mean() >= TEXT_WORDS:
        return "text"
    if levels > FEW_LEVELS and levels >= IDENTIFIER_SHARE * len(present):
        return "drop"
    return "frequent" if levels > FEW_LEVELS else "onehot"


def _dates(present: pd.Series) -> bool:
    """Nine in ten values (of the first 200) written like dates and parsed as dates."""
    sample = present.head(200)
    if sample.str.match(_DATE_LIKE).mean() < 0.9:
        return False
    return bool(pd.to_datetime(sample, errors="coerce", format="mixed").notna().mean() >= 0.9)


def date_parts(X: Any) -> np.ndarray:
    """Dates written as text -> year, month, day, weekday, days since 1970 (NaN if none)."""
    frame = pd.DataFrame(X)
    parts = []
    for col in frame.columns:
        when = pd.to_datetime(frame[col].astype(object), errors="coerce", format="mixed")
        days = (when - pd.Timestamp("1970-01-01")).dt.days
        parts += [when.dt.year, when.dt.month, when.dt.day, when.dt.dayofweek, days]
    if not parts:
        return np.empty((len(frame), 0))
    return np.column_stack([p.to_numpy(dtype=float, na_value=np.nan) for p in parts])


def constant_drops(X: pd.DataFrame, chosen: Mapping[str, str]) -> dict[str, str]:
    """`drop` for each column with one value or none in `X` (the search's training rows)
    that `chosen` gives no encoding: decided once, so every fold has the same features."""
    return {str(c): "drop" for c in X.columns if str(c) not in chosen and X[c].nunique() <= 1}


def drop_reason(col: str, X: pd.DataFrame, chosen: Mapping[str, str]) -> str:
    """Why a dropped column is left out: the space said so, all missing, constant, or an
    identifier by the rule."""
    if chosen.get(col) == "drop":
        return "the space says so: data.columns"
    values = X[col]
    if values.notna().sum() == 0:
        return "all missing"
    if values.nunique(dropna=True) <= 1:
        missing = int(values.isna().sum())
        also = f", {missing} missing" if missing else ""
        value = values.dropna().iloc[0]
        return f"constant: one value, {getattr(value, 'item', lambda: value)()!r}{also}"
    return f"an identifier: {values.nunique()} values in {len(values)} rows"


def describe(
    kinds: Mapping[str, str],
    X: pd.DataFrame,
    chosen: Mapping[str, str] | None = None,
    listed: tuple[str, ...] | list[str] = (),
) -> str:
    """One line on the columns that are not plain numbers or few-level categories, each
    with its real reason: the space's choice, or what the training rows show. `listed`:
    the columns `data.drop_columns` leaves out."""
    chosen = chosen or {}
    notes = [f"{col!r} dropped (the space says so: data.drop_columns)" for col in listed]
    for col, kind in kinds.items():
        levels = X[col].nunique()
        said = " (the space says so)" if col in chosen else ""
        if kind == "drop":
            notes.append(f"{col!r} dropped ({drop_reason(col, X, chosen)})")
        elif kind == "frequent":
            notes.append(
                f"{col!r} ({levels} levels) one-hot for levels on {MIN_FREQUENCY}+ rows, "
                f"the rest pooled{said}"
            )
        elif kind == "date":
            notes.append(f"{col!r} read as dates (year, month, day, weekday, days){said}")
        elif kind in ("text", "tfidf"):
            how = "multi-hot" if kind == "text" else "TF-IDF"
            notes.append(f"{col!r} read as text ({how} of the training rows' frequent words){said}")
        elif said:
            notes.append(f"{col!r} encoded as {kind}{said}")
    if not notes:
        return ""
    return "columns: " + "; ".join(notes) + " (set others with data.columns)"


def constant_warning(kinds: Mapping[str, str], X: pd.DataFrame, chosen: Mapping[str, str]) -> str:
    """A warning naming the columns dropped for holding one value or none ("" if none)."""
    gone = [
        f"{col!r} ({drop_reason(col, X, chosen)})"
        for col, kind in kinds.items()
        if kind == "drop" and col not in chosen and X[col].nunique(dropna=True) <= 1
    ]
    if not gone:
        return ""
    return f"warning: {', '.join(gone)} carry no information on the training rows: dropped"


class Preprocessor(TransformerMixin, BaseEstimator):  # type: ignore[misc]
    """Impute, standardize and encode each column by its encoding, decided at `fit` from
    the rows it is fitted on (or given in `chosen`); transforms any rows after, into
    features, a block of rows at a time (no whole-table copy in between)."""

    def __init__(
        self, chosen: Mapping[str, str] | None = None, max_tokens: int = MAX_TOKENS
    ) -> None:
        self.chosen = chosen
        self.max_tokens = max_tokens

    def fit(self, X: pd.DataFrame, y: Any = None) -> Preprocessor:
        self.encodings_ = encodings(X, self.chosen)
        self.parts_ = [
            (name, step.fit(X[cols]), cols)
            for name, step, cols in _parts(self.encodings_, self.max_tokens)
        ]
        first = [_dense(step.transform(X[cols].iloc[:1])) for _, step, cols in self.parts_]
        self.widths_ = [part.shape[1] for part in first]
        self.dtype_ = np.result_type(np.float32, *first)
        return self

    def transform(self, X: pd.DataFrame, rows: np.ndarray | None = None) -> np.ndarray:
        """X's rows (or those at the positions `rows`) as features (float32 when every
        part gives float32, as for float32 images; else float64)."""
        if "parts_" not in vars(self):  # fitted by an earlier version: one ColumnTransformer
            old: np.ndarray = self.transformer_.transform(X if rows is None else X.iloc[rows])
            return old
        n = len(X) if rows is None else len(rows)
        out = np.empty((n, sum(self.widths_)), dtype=self.dtype_)
        for start in range(0, n, CHUNK_ROWS):
            stop = min(n, start + CHUNK_ROWS)
            chunk = X.iloc[start:stop] if rows is None else X.iloc[rows[start:stop]]
            column = 0
            for (_, step, cols), width in zip(self.parts_, self.widths_, strict=True):
                out[start:stop, column : column + width] = _dense(step.transform(chunk[cols]))
                column += width
        return out


def _dense(x: Any) -> np.ndarray:
    out: np.ndarray = x.toarray() if sparse.issparse(x) else np.asarray(x)
    return out


def as_text(values: Any) -> np.ndarray:
    """A text column as strings, a missing value as no words."""
    out: np.ndarray = pd.Series(values).fillna("").astype(str).to_numpy()
    return out


def _vectorizer(kind: str, max_tokens: int) -> Pipeline:
    """Words -> multi-hot (`text`) or TF-IDF (`tfidf`) over the fitted rows' vocabulary."""
    options: dict[str, Any] = {"max_features": max_tokens, "token_pattern": WORD}
    words = (
        CountVectorizer(binary=True, dtype=np.float32, **options)
        if kind == "text"
        else TfidfVectorizer(dtype=np.float32, **options)
    )
    return Pipeline([("text", FunctionTransformer(as_text)), ("words", words)])


def _parts(kinds: Mapping[str, str], max_tokens: int = MAX_TOKENS) -> list[Part]:
    """What turns each kind of column into numbers, in the features' order: numbers (in
    blocks of `NUMBER_BLOCK` columns), one-hot, frequent levels, dates, then one
    vectorizer a text column (each learns its own words from a 1-D column)."""

    def of(kind: str) -> list[str]:
        return [c for c, k in kinds.items() if k == kind]

    def imputed_scaled(strategy: str = "median") -> list[tuple[str, Any]]:
        return [("impute", SimpleImputer(strategy=strategy)), ("scale", StandardScaler())]

    def onehot(**options: Any) -> Pipeline:
        encoder = OneHotEncoder(sparse_output=False, **options)
        impute = SimpleImputer(strategy="most_frequent")
        return Pipeline([("impute", impute), ("onehot", encoder)])

    numbers = of("number")
    frequent = {"min_frequency": MIN_FREQUENCY, "handle_unknown": "infrequent_if_exist"}
    parts: list[Part] = [
        (f"num_{i}", Pipeline(imputed_scaled()), numbers[i : i + NUMBER_BLOCK])
        for i in range(0, len(numbers), NUMBER_BLOCK)
    ]
    parts += [
        ("cat", onehot(handle_unknown="ignore"), of("onehot")),
        ("frequent", onehot(**frequent), of("frequent")),
        (
            "date",
            Pipeline([("parts", FunctionTransformer(date_parts)), *imputed_scaled()]),
            of("date"),
        ),
    ]
    parts += [
        (f"words_{i}", _vectorizer(kind, max_tokens), col)
        for i, (col, kind) in enumerate(kinds.items())
        if kind in ("text", "tfidf")
    ]
    return [part for part in parts if len(part[2])]


def time_problem(values: pd.Series) -> str | None:
    """Why a time column's values do not order rows in time, or None: numbers and
    datetimes order as they are; text must parse as times (in one format) and, since rows
    are sorted by the text, sort as the times it writes (ISO dates do)."""
    if pd.api.types.is_bool_dtype(values):
        return "holds true/false, not times"
    missing = np.flatnonzero(values.isna().to_numpy())
    if len(missing):
        return f"row {missing[0]} has no time ({len(missing)} rows without one)"
    if pd.api.types.is_numeric_dtype(values) or pd.api.types.is_datetime64_any_dtype(values):
        return None
    text = values.astype(str)
    parsed = pd.to_datetime(text, errors="coerce")
    bad = np.flatnonzero(parsed.isna().to_numpy())
    if len(bad):
        return (
            f"row {bad[0]} holds {text.iloc[bad[0]]!r}, not a time in the format of "
            f"{text.iloc[0]!r} ({len(bad)} of {len(text)} rows)"
        )
    order = np.argsort(text.to_numpy(), kind="stable")
    if not parsed.iloc[order].is_monotonic_increasing:
        return "its text does not sort as its times; write them as ISO dates (2024-01-31)"
    return None
