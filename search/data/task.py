"""What a target asks for, as the course teaches it: labels are classes, quantities are a
regression, and a target that could be either is a question for the user.

- text, booleans and categories: classes (binary for two values, multiclass otherwise);
- numbers with a fractional part: a regression;
- whole numbers: class labels, unless they do not look like labels (more distinct values
  than half the rows, a negative value, or codes far beyond the number of values); then
  the intent is ambiguous and the space must say `data.task` (exit 2, before any work);
- a data set whose task is known by construction (`keras:reuters`, `diabetes`, ...)
  keeps it.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from search.errors import DataError

TASKS = ("binary", "multiclass", "regression")
DISTINCT_SHARE = 0.5  # more distinct whole numbers than this share of rows: not labels
CODE_SPAN = 2  # labels are codes 0..k or 1..k: the largest below this times the count


def infer_task(
    y: pd.Series, declared: str, *, where: str, target: str, known: str | None = None
) -> str:
    """The task of target column `y`: `declared` (data.task) unless "auto", then the
    source's `known` task, then what its values say. Raises DataError (data.task or
    data.target) when the values cannot be that task or the intent is ambiguous."""
    numeric = pd.api.types.is_numeric_dtype(y) and not pd.api.types.is_bool_dtype(y)
    if declared == "regression" or (declared == "auto" and known == "regression"):
        if not numeric:
            raise DataError(
                f"task is regression but column {target!r} is "
                f"not numeric (dtype {y.dtype}, e.g. {y.iloc[0]!r})",
                file=where,
                key="data.target",
            )
        return "regression"
    n_unique = int(y.nunique())
    task = declared
    if task == "auto":
        task = known or _from_values(y, numeric, n_unique, where, target)
        if task == "regression":
            return task
        task = "binary" if n_unique == 2 else "multiclass"
    if n_unique < 2:
        raise DataError(f"column {target!r} has a single class", file=where, key="data.target")
    if task == "binary" and n_unique != 2:
        raise DataError(
            f"binary needs 2 classes, {target!r} has {n_unique}", file=where, key="data.task"
        )
    return task


def _from_values(y: pd.Series, numeric: bool, n_unique: int, where: str, target: str) -> str:
    """ "classes" or "regression" from the values alone (see the module's rules)."""
    if not numeric:
        return "classes"
    values = y.to_numpy(dtype=float)
    if not bool(np.all(np.mod(values, 1) == 0)):
        return "regression"
    why = label_doubt(values, n_unique)
    if why:
        raise DataError(
            f"column {target!r} holds whole numbers that may be class labels or a quantity "
            f"({why}); say which: `data.task: multiclass` (classes) or "
            "`data.task: regression`",
            file=where,
            key="data.task",
        )
    return "classes"


def label_doubt(values: np.ndarray, n_unique: int) -> str:
    """Why whole numbers do not look like class labels ("" when they do)."""
    if n_unique <= 2:
        return ""
    if n_unique > DISTINCT_SHARE * len(values):
        return f"{n_unique} distinct values in {len(values)} rows"
    low, high = float(values.min()), float(values.max())
    if low < 0:
        return f"{n_unique} distinct values, some negative (from {low:g})"
    if high >= CODE_SPAN * n_unique and high > 1:
        return f"{n_unique} distinct values spread from {low:g} to {high:g}"
    return ""
