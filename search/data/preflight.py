"""The checks that need the rows, made once they are read and split and before anything
is written: the classes of the parts given in files, a vocabulary in every text column
for every fold, and the selection's recheck folds against the rows and classes."""

from __future__ import annotations

import re
from collections.abc import Mapping

import numpy as np

from search.data.columns import WORD, as_text
from search.data.dataset import Dataset
from search.data.folds import Fold, make_folds
from search.data.split import TestSplit
from search.errors import DataError
from search.names import ONE_FOLD
from search.space.schema import Space, ValidationSpec


def preflight(
    space: Space,
    data: Dataset,
    split: TestSplit,
    folds: list[Fold],
    columns: Mapping[str, str],
    where: str,
) -> None:
    """Raise DataError (file, the key, its line) for what would fail a trial or the
    selection later, or would score nothing."""
    check_given_classes(space, data, split, where)
    check_words(data, split, folds, columns, where)
    check_recheck_folds(space, data, split, where)


# metrics that are NaN unless every class has a row (macro AUC, average precision)
EVERY_CLASS = ("roc_auc", "pr_auc")


def check_given_classes(space: Space, data: Dataset, split: TestSplit, where: str) -> None:
    """A given test part holds only classes the training rows have (the model cannot
    predict another); a given validation part holds two classes or more (one class
    scores nothing, and a model that always says it wins); with a metric that needs
    every class, each given part holds every class."""
    if not data.is_classifier or data.parts is None:
        return
    test = data.parts == 2
    test_key = "data.test_source" if space.data.test_source else "data.source"
    test_name = space.data.test_source or f"{space.data.source}'s test part"
    if test.any():
        known = set(np.unique(data.y[split.train]).tolist())
        unknown = sorted(set(np.unique(data.y[test]).tolist()) - known)
        if unknown:
            rows = int(np.isin(data.y[test], unknown).sum())
            raise DataError(
                f"class {data.classes[unknown[0]]!r} is in {test_name} ({rows} rows with "
                f"{len(unknown)} such classes) and never in the training rows; the model "
                "cannot predict a class it never saw",
                file=where,
                key=test_key,
            )
    validation = data.parts == 1
    if validation.any() and len(np.unique(data.y[validation])) < 2:
        cls = data.classes[int(data.y[validation][0])]
        raise DataError(
            f"{space.validation.source} holds one class ({cls!r}, {int(validation.sum())} rows); "
            "a validation part needs two classes or more to tell them apart",
            file=where,
            key="validation.source",
        )
    metric = space.objective.metric
    if metric not in EVERY_CLASS:
        return
    for part, name, key in ((validation, str(space.validation.source), "validation.source"),
                            (test, test_name, test_key)):  # fmt: skip
        absent = sorted(set(range(data.n_classes)) - set(np.unique(data.y[part]).tolist()))
        if part.any() and absent:
            raise DataError(
                f"{name} has no row of class {data.classes[absent[0]]!r} ({len(absent)} of "
                f"{data.n_classes} classes absent); {metric} is undefined without every class",
                file=where,
                key=key,
            )


def check_words(
    data: Dataset, split: TestSplit, folds: list[Fold], columns: Mapping[str, str], where: str
) -> None:
    """Each text column has a word in the rows every fold fits its vocabulary on (else
    every trial fails: "empty vocabulary")."""
    word = re.compile(WORD)
    for column, kind in columns.items():
        if kind not in ("text", "tfidf"):
            continue
        values = as_text(data.X[column].to_numpy()[split.train])
        has = np.fromiter((word.search(v) is not None for v in values), bool, len(values))
        empty = [f.index for f in folds if not has[f.train].any()]
        if not has.any() or empty:
            which = "training rows" if not has.any() else f"training rows of fold {empty[0] + 1}"
            raise DataError(
                f"text column {column!r} of {data.name} holds not a single word in its "
                f"{which}; a {kind} encoding needs words (name another in data.columns)",
                file=where,
                key="data.columns",
            )


def check_recheck_folds(space: Space, data: Dataset, split: TestSplit, where: str) -> None:
    """The selection's recheck (search.selection.recheck: the scheme's k-fold on the
    training rows, `selection.recheck_folds` of them) fits the rows, classes and groups."""
    spec = space.validation
    scheme = "kfold" if spec.scheme in ONE_FOLD else spec.scheme
    k = space.selection.recheck_folds
    check = ValidationSpec(scheme=scheme, folds=k, repeats=1, stratify=spec.stratify)
    groups = data.groups[split.train] if data.groups is not None else None
    try:
        make_folds(
            check,
            data.y[split.train],
            classification=data.is_classifier,
            seed=space.data.seed + 1,
            groups=groups,
            where=where,
        )
    except DataError as exc:
        reason = exc.reason.split("; lower")[0]
        raise DataError(
            f"the selection rechecks the best trials on {k} `{scheme}` folds of the "
            f"training rows: {reason}; lower selection.recheck_folds",
            file=where,
            key="selection.recheck_folds",
        ) from None
