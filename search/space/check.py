"""The checks of a space file beyond its schema: names, ranges, bounds, combinations."""

from __future__ import annotations

import difflib
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from search.errors import InputError, SpaceError
from search.names import (
    ACTIVATIONS,
    INT_PARAMS,
    LIMITS,
    METRICS,
    NAMED,
    OPTIMIZERS,
    PER_LAYER,
    PRUNERS,
    SAMPLERS,
    SCHEMES,
    TASKS,
    name_problem,
    shown_name,
)
from search.space.schema import Choice, Params, Range, Scalar, Space
from search.space.yamltext import line_of

MAX_SEED = 2**31 - 2  # the data seed's neighbour (seed + 1) is a seed too


def check_semantics(space: Space, file: str, root: yaml.Node | None) -> None:
    def fail(key: str, msg: str) -> None:
        raise SpaceError(msg, file=file, key=key, line=line_of(root, key.split(".")))

    checks: list[tuple[str, Any, tuple[str, ...]]] = [
        ("study.sampler", space.study.sampler, SAMPLERS),
        ("study.pruner", space.study.pruner, PRUNERS),
        ("validation.scheme", space.validation.scheme, SCHEMES),
        ("data.task", space.data.task, TASKS),
        ("objective.metric", space.objective.metric, tuple(METRICS)),
    ]
    for key, value, allowed in checks:
        if value not in allowed:
            near = difflib.get_close_matches(str(value), allowed, n=1)
            hint = f"; did you mean `{near[0]}`?" if near else ""
            fail(key, f"unknown value {value!r}{hint} (allowed: {', '.join(allowed)})")
    for key, seed in (("study.seed", space.study.seed), ("data.seed", space.data.seed)):
        if not 0 <= seed <= MAX_SEED:  # numpy, scikit-learn, Optuna and TensorFlow take these
            fail(key, f"a seed must lie in [0, {MAX_SEED}] (numpy's and TensorFlow's), got {seed}")
    named = _study_name_problem(space, file)
    if named:
        fail("study.name", named)
    if (space.validation.scheme == "given") != (space.validation.source is not None):
        fail(
            "validation.source" if space.validation.source else "validation.scheme",
            "validation rows given in a file need both `scheme: given` and `source: FILE`",
        )
    if space.validation.scheme == "group_kfold" and not space.data.group_column:
        fail("data.group_column", "validation scheme `group_kfold` needs `data.group_column`")
    for name in Params.model_fields:
        _check_param(
            name, getattr(space.params, name), lambda msg, n=name: fail(f"params.{n}", msg)
        )
    if space.study.sampler == "grid":
        _check_grid(space, fail)


def _study_name_problem(space: Space, file: str) -> str | None:
    """The study's name (study.name, else the file's stem) is a path part and an MLflow
    name: one rule, search.names.name_problem."""
    if space.study.name is not None:
        problem = name_problem(space.study.name)
        return f"study name {shown_name(space.study.name)}: {problem}" if problem else None
    if file == "<space>":  # text read in memory: the name is given when it runs
        return None
    stem = Path(file).stem
    problem = name_problem(stem)
    if problem is None:
        return None
    return f"the study is named after the file, {shown_name(stem)}: {problem}; set study.name"


def checked_study_name(space: Space, given: str | None) -> str:
    """The name a study runs under (`given`, else the space's), checked by the one rule
    before anything is written (a file's stem was checked when it was read)."""
    chosen = given if given is not None else space.study.name
    problem = name_problem(chosen) if chosen is not None else None
    if problem:
        raise InputError(f"study name {shown_name(str(chosen))}: {problem}")
    return chosen or space.name


def _values(param: Range | Choice | Scalar) -> list[Any]:
    if isinstance(param, Range):
        return [param.low, param.high]
    if isinstance(param, Choice):
        return list(param.choices)
    return [param]


def _check_param(name: str, param: Range | Choice | Scalar | None, fail: Any) -> None:
    if param is None:  # unset: Keras' default
        return
    values = _values(param)
    if isinstance(param, Range | Choice) and param.per_layer and name not in PER_LAYER:
        fail(f"`per_layer` is only allowed on {', '.join(f'`{n}`' for n in PER_LAYER)}")
    if isinstance(param, Range) and param.optional and name not in ("l1", "l2", "dropout"):
        fail("`optional` is only allowed on `l1`, `l2` and `dropout`")
    names = {"activation": ACTIVATIONS, "optimizer": OPTIMIZERS, **NAMED}
    if name in names:  # Keras' names are lower case: `ReLU` is refused there too
        _check_names(name, param, values, names[name], fail)
        return
    if name in ("batch_norm", "nesterov"):
        if any(not isinstance(v, bool) for v in values):
            fail(f"{name} must be true/false or a choice of them, got {values}")
        return
    _check_number(name, param, values, fail)


def _check_names(
    name: str, param: Range | Choice | Scalar, values: list[Any], allowed: Any, fail: Any
) -> None:
    if isinstance(param, Range):
        fail(f"{name} must be a name or a choice of names, not a range")
    for v in values:
        if v not in allowed:
            near = difflib.get_close_matches(str(v).lower(), allowed, n=1)
            hint = f"; did you mean `{near[0]}`?" if near else ""
            fail(f"unknown {name} {v!r}{hint} (allowed: {', '.join(allowed)})")


def _check_number(name: str, param: Range | Choice | Scalar, values: list[Any], fail: Any) -> None:
    """A numeric parameter: numbers, whole where they count, inside their bounds."""
    if any(isinstance(v, bool) or not isinstance(v, int | float) for v in values):
        fail(f"{name} must be a number, a range or a choice of numbers, got {values}")
    if name in INT_PARAMS:
        if any(float(v) != int(v) for v in values) or (
            isinstance(param, Range) and param.step is not None and param.step != int(param.step)
        ):
            fail(f"{name} takes whole numbers, got {values}")
        least = 0 if name in ("patience", "conv_blocks") else 1  # 0 blocks: the MLP alone
        if any(v < least for v in values):
            fail(f"{name} must be >= {least}, got {values}")
        bound, why = LIMITS[name]
        if any(v > bound for v in values):
            fail(f"{name} must be <= {bound:,}, got {max(values):g}: {why}")
    elif name == "dropout":
        if any(not 0 <= v < 1 for v in values):
            fail(f"dropout must lie in [0, 1), got {values}")
    elif name in (
        "l1",
        "l2",
        "weight_decay",
        "momentum",
        "min_delta",
        "bias_l1",
        "bias_l2",
        "activity_l1",
        "activity_l2",
    ):
        if any(v < 0 for v in values):
            fail(f"{name} must be >= 0, got {values}")
    elif name in ("beta_1", "beta_2", "lr_decay", "reduce_lr") and any(
        not 0 <= v < 1 or (name == "lr_decay" and v == 0) for v in values
    ):
        fail(f"{name} must lie in {'(0, 1)' if name == 'lr_decay' else '[0, 1)'}, got {values}")
    elif name == "epsilon" and any(v <= 0 for v in values):
        fail(f"epsilon must be > 0, got {values}")
    elif name == "learning_rate" and any(v <= 0 or not math.isfinite(v) for v in values):
        fail(f"learning_rate must be > 0, got {values}")


def _check_grid(space: Space, fail: Callable[[str, str], None]) -> None:
    """What the grid sampler can enumerate: the space file's choices and stepped ranges."""
    if space.model.hypermodel:
        fail(
            "study.sampler",
            "the grid sampler enumerates the space file's params; a hypermodel's hp.* values "
            "are not among them (use random, tpe, qmc, gp or cmaes)",
        )
    for name in Params.model_fields:
        value = getattr(space.params, name)
        if isinstance(value, Range) and (value.step is None or value.optional):
            fail(
                f"params.{name}",
                "the grid sampler needs choices or a range with a step (and no `optional`)",
            )
        if isinstance(value, Range | Choice) and value.per_layer:
            fail(f"params.{name}", "the grid sampler cannot search per-layer values")
