"""Everything a search needs checked before anything is written: the space against its
data (task, knobs, images), the test split, the folds, the sampler and the pruner."""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np
import optuna

from search.data.columns import (
    constant_drops,
    constant_warning,
    describe,
    drop_reason,
    encodings,
)
from search.data.dataset import Dataset, load_dataset, make_preprocessor, shaped
from search.data.folds import Fold, make_folds
from search.data.preflight import preflight
from search.data.split import TestSplit, split_test
from search.errors import DataError, SpaceError
from search.metrics import THRESHOLDED
from search.names import CLASSIFICATION_METRICS, ONE_FOLD, REGRESSION_METRICS, TASK_LOSSES
from search.space.sampling import choices, upper
from search.space.schema import Space
from search.tuners import make_pruner, make_sampler

FEW_CLASSES = 20  # more whole-number classes than this, inferred: the start line says so


@dataclass(frozen=True)
class Prepared:
    """Everything checked before anything is written: data, test split, folds."""

    space: Space
    data: Dataset
    split: TestSplit
    folds: list[Fold]
    sampler: optuna.samplers.BaseSampler
    pruner: optuna.pruners.BasePruner
    columns: dict[str, str] = field(default_factory=dict)  # encodings on the training rows
    notes: list[str] = field(default_factory=list)  # what inference decided, one line each


def prepare(space: Space) -> Prepared:
    """Validate the whole search against its data; raises InputError, writes nothing.

    Every error names the space file, the key and the key's line (or its section's).
    """
    try:
        return _prepare(space)
    except (DataError, SpaceError) as exc:
        raise exc.at_line(space.line_of(exc.key) if exc.key else None) from None


def _check_images(space: Space, data: Dataset, where: str) -> None:
    """Convolution blocks need samples that are images (height, width[, channels])."""
    if upper(space.params.conv_blocks) <= 0:
        return
    shape = data.input_shape
    if shape is None or len(shape) not in (2, 3):
        raise SpaceError(
            f"conv_blocks needs images, and {data.name}'s samples are "
            f"{'rows of features' if not shape or len(shape) < 2 else f'of shape {shape}'}; "
            "use an array source or give a table's pixel layout in data.shape",
            file=where,
            key="params.conv_blocks",
        )


def _check_hypermodel(space: Space, data: Dataset, split: TestSplit, where: str) -> None:
    """Two training rows through the hypermodel: its input takes the columns, its output
    fits the task."""
    # TensorFlow and KerasTuner: loaded only for a hypermodel's space (input errors of
    # other spaces answer without them)
    from search.models.hypermodel import check_head, load_hypermodel

    assert space.model.hypermodel is not None
    hypermodel = load_hypermodel(space.model.hypermodel, space.base_dir, where=where)
    rows = data.X.iloc[split.train]
    pre = make_preprocessor(data.encodings, data.max_tokens).fit(rows)
    x = shaped(data, pre.transform(rows.iloc[:2]))
    check_head(hypermodel, x, data.task, data.n_classes, where)


def _prepare(space: Space) -> Prepared:
    where = space.path or "<space>"
    data = load_dataset(
        space.data,
        base_dir=space.base_dir,
        where=where,
        validation_source=space.validation.source,
    )
    _check_task(space, data.task, where)
    _check_images(space, data, where)
    split = split_test(data, space.data, where=where)
    # a hypermodel's input is written for the data's columns, every one of them (as
    # KerasTuner feeds it): nothing is dropped from under it
    rows = data.X.iloc[split.train]
    constant = {} if space.model.hypermodel else constant_drops(rows, data.encodings)
    data = replace(data, encodings={**data.encodings, **constant})  # the same in every fold
    if space.model.hypermodel:
        _check_hypermodel(space, data, split, where)
    _check_holdout_classes(space, data, split, where)
    folds = _folds(space, data, split, where)
    columns = encodings(rows, data.encodings)
    if all(kind == "drop" for kind in columns.values()):
        why = "; ".join(f"{c!r}: {drop_reason(c, rows, space.data.columns)}" for c in columns)
        raise DataError(
            f"every feature column of {data.name} would be dropped ({why}); name an "
            "encoding for one in data.columns",
            file=where,
            key="data.columns",
        )
    _check_family(space, data, columns, where)
    preflight(space, data, split, folds, columns, where)  # what needs the rows, split
    pruner = make_pruner(space, len(folds))
    said = describe(columns, rows, space.data.columns, space.data.drop_columns)
    found = (_target_note(space, data), _rare_note(space, data, split), said)
    notes = [n for n in (*found, constant_warning(columns, rows, space.data.columns)) if n]
    if split.everything is not None:
        notes.append(
            f"searching on {len(split.train)} of the {len(split.everything)} training rows "
            f"(data.subsample {space.data.subsample:g}); the final model is refitted on all"
        )
    return Prepared(space, data, split, folds, make_sampler(space), pruner, columns, notes)


def _check_family(space: Space, data: Dataset, columns: dict[str, str], where: str) -> None:
    """A searched vocabulary, or the text family, needs a text column; the MLP family has
    no convolution blocks."""
    text = {"text", "tfidf"} & set(columns.values())
    for key, wants in (("params.max_tokens", space.params.max_tokens is not None),
                       ("model.family", space.model.family == "text")):  # fmt: skip
        if wants and not text:
            what = "max_tokens sizes" if key == "params.max_tokens" else "the text family reads"
            raise SpaceError(
                f"{what} a text column's vocabulary, and {data.name} has no text column "
                "(name one with data.columns: {name: text})",
                file=where,
                key=key,
            )
    if space.model.family == "mlp" and upper(space.params.conv_blocks) > 0:
        raise SpaceError(
            "the mlp family has no convolution blocks; say family: cnn",
            file=where,
            key="params.conv_blocks",
        )


def _check_task(space: Space, task: str, where: str) -> None:
    """The objective and the training knobs fit the task the data turned out to be."""
    allowed = REGRESSION_METRICS if task == "regression" else CLASSIFICATION_METRICS
    if space.objective.metric not in allowed:
        raise SpaceError(
            f"metric {space.objective.metric!r} does not fit a {task} task "
            f"(allowed: {', '.join(allowed)})",
            file=where,
            key="objective.metric",
        )
    _check_knobs(space, task, where)
    if space.objective.threshold == "tuned" and (
        task != "binary" or space.objective.metric not in THRESHOLDED
    ):
        raise SpaceError(
            "a tuned threshold needs a binary task and a metric that depends on it "
            f"({', '.join(THRESHOLDED)}); this is {task} with {space.objective.metric}",
            file=where,
            key="objective.threshold",
        )


def _check_holdout_classes(space: Space, data: Dataset, split: TestSplit, where: str) -> None:
    """A stratified holdout puts each class on both sides: each needs 2 training rows."""
    spec = space.validation
    if not data.is_classifier or spec.scheme != "holdout" or not spec.stratify:
        return
    rare = _rare_classes(data, split, 2)
    if rare:
        raise DataError(
            f"a stratified holdout needs 2 training rows of each class; {', '.join(rare[:10])}"
            f"{' ...' if len(rare) > 10 else ''} "
            f"{'has' if len(rare) == 1 else 'have'} fewer; drop or merge "
            f"{'it' if len(rare) == 1 else 'them'}, or set `validation.stratify: false`",
            file=where,
            key="validation.stratify",
        )


def _rare_note(space: Space, data: Dataset, split: TestSplit) -> str:
    """Classes with fewer training rows than the folds, by name: stratified as far as
    they go (search.data.folds refuses only what cannot be split)."""
    spec = space.validation
    if not data.is_classifier:
        return ""
    # a holdout search still rechecks its best trials on k folds
    k = space.selection.recheck_folds
    if spec.scheme not in ONE_FOLD:
        k = max(spec.folds, k)
    rare = _rare_classes(data, split, k)
    if not rare:
        return ""
    shown = ", ".join(rare[:10]) + (f" and {len(rare) - 10} more" if len(rare) > 10 else "")
    return (
        f"rare classes (training rows, fewer than {k} folds): {shown}; stratified as far as "
        "they go, so some folds validate none of their rows"
    )


def refit_folds(prep: Prepared) -> list[Fold]:
    """The validation folds over every training row (`refit: ensemble`): the search's own
    folds, or the same scheme's over all rows when the search used a subsample."""
    if prep.split.everything is None:
        return prep.folds
    every = TestSplit(train=prep.split.everything, test=prep.split.test, seed=prep.split.seed)
    return _folds(prep.space, prep.data, every, prep.space.path or "<space>")


def _folds(space: Space, data: Dataset, split: TestSplit, where: str) -> list[Fold]:
    """The validation scheme's folds of the training rows (`given`: the one part given)."""
    if space.validation.scheme == "given":  # the rows of validation.source, as given
        part = data.parts[split.train] if data.parts is not None else np.zeros(0)
        return [Fold(0, np.flatnonzero(part != 1), np.flatnonzero(part == 1))]
    groups = data.groups[split.train] if data.groups is not None else None
    return make_folds(
        space.validation,
        data.y[split.train],
        classification=data.is_classifier,
        seed=space.data.seed,
        groups=groups,
        where=where,
    )


def _check_knobs(space: Space, task: str, where: str) -> None:
    """Training knobs that fit the task, and one way to change the learning rate."""
    params = space.params
    losses = [str(v) for v in choices(params.loss)]
    wrong = [v for v in losses if v not in TASK_LOSSES[task]]
    if wrong:
        raise SpaceError(
            f"loss {wrong[0]!r} does not fit a {task} task "
            f"(allowed: {', '.join(TASK_LOSSES[task])})",
            file=where,
            key="params.loss",
        )
    if task == "regression" and "balanced" in choices(params.class_weight):
        raise SpaceError(
            "class_weight weighs classes; a regression has none",
            file=where,
            key="params.class_weight",
        )
    scheduled = any(v != "constant" for v in choices(params.schedule))
    if scheduled and upper(params.reduce_lr) > 0:
        raise SpaceError(
            "a schedule sets the learning rate each epoch and would undo ReduceLROnPlateau's "
            "cuts; use one of schedule and reduce_lr",
            file=where,
            key="params.reduce_lr",
        )


def _target_note(space: Space, data: Dataset) -> str:
    """Whole numbers taken for many classes by inference: said, with the other choice."""
    if space.data.task != "auto" or data.task != "multiclass" or len(data.labels) <= FEW_CLASSES:
        return ""
    if not all(isinstance(v, int | float) and float(v).is_integer() for v in data.labels):
        return ""
    target = space.data.target or "target"
    return (
        f"target {target!r}: {data.n_classes} whole-number labels, taken as {data.n_classes} "
        "classes; if it is a quantity, set data.task: regression"
    )


def _rare_classes(data: Dataset, split: TestSplit, k: int) -> list[str]:
    """The classes with fewer training rows than `k` folds, by name, with their rows."""
    counts = np.bincount(data.y[split.train], minlength=data.n_classes)
    return [f"{data.classes[c]!r} ({counts[c]})" for c in np.flatnonzero(counts < k)]
