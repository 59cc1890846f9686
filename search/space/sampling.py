"""Sampling a space: one trial's parameters, the space's center, the grid."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from search.names import INT_PARAMS, PER_LAYER
from search.params import QUIET_KNOBS, TrialParams, applies, default
from search.space.schema import Choice, Params, Range, Scalar

if TYPE_CHECKING:
    import optuna


def upper(param: Range | Choice | Scalar) -> float:
    """The largest value a numeric parameter can take."""
    if isinstance(param, Range):
        return param.high
    if isinstance(param, Choice):
        return max(float(c) for c in param.choices if isinstance(c, int | float))
    return float(param)


def choices(param: Range | Choice | Scalar) -> tuple[Scalar, ...]:
    """The values a categorical parameter can take (a fixed one: itself)."""
    if isinstance(param, Choice):
        return tuple(param.choices)
    return () if isinstance(param, Range) else (param,)


def suggest(params: Params, trial: optuna.Trial) -> TrialParams:
    """Resolve every hyperparameter for one trial (per-layer widths as `widths`; per-layer
    dropout, l1, l2 as `dropouts`, `l1s`, `l2s`)."""
    out: dict[str, Any] = {}
    for name in Params.model_fields:
        param = getattr(params, name)
        if name == "width" or param is None or _per_layer(param):
            continue
        out[name] = _suggest_one(trial, name, param)
    width = params.width
    if _per_layer(width):
        out["widths"] = [_suggest_one(trial, f"width_{i}", width) for i in range(out["depth"])]
    else:
        out["widths"] = [_suggest_one(trial, "width", width)] * out["depth"]
    for name in PER_LAYER[1:]:
        param = getattr(params, name)
        if _per_layer(param):
            layers = range(out["depth"])
            out[f"{name}s"] = [_suggest_one(trial, f"{name}_{i}", param) for i in layers]
    return _applied(params, out)


def _per_layer(param: Range | Choice | Scalar | None) -> bool:
    return isinstance(param, Range | Choice) and param.per_layer


def _applied(params: Params, out: dict[str, Any]) -> TrialParams:
    """Only the parameters that apply to the trial's choices; the training knobs the space
    leaves at their defaults are not listed (the trial takes the defaults)."""
    quiet = {name for name in QUIET_KNOBS if getattr(params, name) == default(name)}
    return TrialParams.model_validate(
        {k: v for k, v in out.items() if applies(k, out) and k not in quiet}
    )


def _suggest_one(trial: optuna.Trial, name: str, param: Range | Choice | Scalar) -> Any:
    base = name.split("_")[0] if name.startswith("width_") else name
    if isinstance(param, Choice):
        return trial.suggest_categorical(name, list(param.choices))  # type: ignore[arg-type]
    if not isinstance(param, Range):
        return int(param) if base in INT_PARAMS else param
    if param.optional and not trial.suggest_categorical(f"use_{name}", [True, False]):
        return 0.0
    if base in INT_PARAMS:
        return trial.suggest_int(
            name, int(param.low), int(param.high), step=int(param.step or 1), log=param.log
        )
    return trial.suggest_float(name, param.low, param.high, step=param.step, log=param.log)


def center(params: Params) -> dict[str, Any]:
    """The middle of every searched parameter, named as `suggest` names them.

    A range's midpoint (geometric for `log: true`; the lower middle of a step grid; whole
    numbers for integer parameters); the middle of numeric choices, the first of other
    choices (as KerasTuner's `hp.Choice` defaults to its first value); `optional` ranges
    switched on.
    """
    out: dict[str, Any] = {}
    depth = params.depth
    n_layers = int(_center_of("depth", depth)) if isinstance(depth, Range | Choice) else depth
    for name in Params.model_fields:
        param = getattr(params, name)
        if not isinstance(param, Range | Choice):
            continue
        names = [name]
        if param.per_layer:
            names = [f"{name}_{i}" for i in range(int(n_layers))]
        for key in names:
            if isinstance(param, Range) and param.optional:
                out[f"use_{key}"] = True
            out[key] = _center_of(name, param)
    return out


def _center_of(name: str, param: Range | Choice) -> Any:
    if isinstance(param, Choice):
        values = list(param.choices)
        if all(isinstance(v, int | float) and not isinstance(v, bool) for v in values):
            return sorted(values)[(len(values) - 1) // 2]  # type: ignore[type-var]
        return values[0]
    if param.step is not None:  # the lower middle of the grid low, low + step, ... <= high
        mid = param.low + (int((param.high - param.low) / param.step) // 2) * param.step
    elif param.log:
        mid = math.sqrt(param.low * param.high)
    else:
        mid = (param.low + param.high) / 2
    return round(mid) if name in INT_PARAMS else mid  # whole bounds keep it in range


def grid_space(params: Params) -> dict[str, list[Any]]:
    """The search space the grid sampler enumerates (validated beforehand)."""
    grid: dict[str, list[Any]] = {}
    for name in Params.model_fields:
        value = getattr(params, name)
        if isinstance(value, Choice):
            grid[name] = list(value.choices)
        elif isinstance(value, Range):
            step = value.step or 1
            count = round((value.high - value.low) / step) + 1
            values = [value.low + i * step for i in range(count)]
            grid[name] = [int(v) for v in values] if name in INT_PARAMS else values
    return grid
