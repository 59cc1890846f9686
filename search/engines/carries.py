"""What a trial asks of an engine, as data: each *feature* (a knob's value beyond the plain
MLP, or a kind of data) is a name an engine either carries or not, and the space file's
key that asks for it. Engines declare the features they carry (`Engine.carries`); `auto`,
the pack's fallback and the docs' table read those declarations.

Features are `kind` or `kind:value` (`optimizer:lion`, `loss:huber`, `per-layer:dropout`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from search.names import ACTIVATIONS, OPTIMIZERS, TASK_LOSSES
from search.params import TrialParams
from search.space.sampling import choices, upper
from search.space.schema import Choice, Range, Space

# what every engine carries without saying: the plain MLP on a table's rows, its knobs at
# any value (widths, depth, dropout, L1/L2, batch norm, batch size, learning rate, the
# early stopping, class weights, schedules)
_WORDS = {
    "hypermodel": ("a KerasTuner hypermodel", "model.hypermodel"),
    "images": ("rows with a sample shape (images)", "data.shape"),
    "conv_blocks": ("convolution blocks", "params.conv_blocks"),
    "precision": ("mixed precision", "training.precision"),
    "max_tokens": ("a searched vocabulary size", "params.max_tokens"),
    "per-layer": ("per-layer {}", "params.{}"),
    "constant": ("the optimizer constant {}", "params.{}"),
    "loss": ("the {} loss", "params.loss"),
    "reduce_lr": ("ReduceLROnPlateau", "params.reduce_lr"),
    "bias_regularizer": ("a bias regularizer", "params.bias_l1"),
    "activity_regularizer": ("an activity regularizer", "params.activity_l1"),
    "optimizer": ("the {} optimizer", "params.optimizer"),
    "activation": ("the {} activation", "params.activation"),
}


def describe(feature: str) -> str:
    """The feature as a person reads it: `per-layer:dropout` -> "per-layer dropout"."""
    kind, _, value = feature.partition(":")
    return _WORDS[kind][0].format(value)


def key_of(feature: str) -> str:
    """The space file's key that asks for the feature (for the error's line)."""
    kind, _, value = feature.partition(":")
    return _WORDS[kind][1].format(value)


def asks(params: TrialParams, *, sample_ndim: int = 1) -> list[str]:
    """The features one trial asks of an engine, in a stable order."""
    out = [f"optimizer:{params.optimizer.lower()}", f"activation:{params.activation}"]
    out += ["hypermodel"] if params.hypermodel is not None else []
    out += ["images"] if sample_ndim > 1 else []
    out += ["conv_blocks"] if params.conv_blocks else []
    out += ["precision"] if params.precision != "float32" else []
    out += ["max_tokens"] if params.max_tokens else []
    per_layer = {"dropout": params.dropouts, "l1": params.l1s, "l2": params.l2s}
    out += [f"per-layer:{name}" for name, values in per_layer.items() if values]
    constants = {"beta_1": params.beta_1, "beta_2": params.beta_2, "epsilon": params.epsilon}
    out += [f"constant:{name}" for name, value in constants.items() if value is not None]
    out += [f"loss:{params.loss}"] if params.loss != "auto" else []
    out += ["reduce_lr"] if params.reduce_lr > 0 else []
    out += ["bias_regularizer"] if params.bias_l1 > 0 or params.bias_l2 > 0 else []
    out += ["activity_regularizer"] if params.activity_l1 > 0 or params.activity_l2 > 0 else []
    return out


def space_asks(space: Space, *, sample_ndim: int = 1) -> dict[str, bool]:
    """The features a trial of this space may ask for, each with whether every trial
    asks for it (a fixed value, or one per layer) or only some (a choice, a range)."""
    p = space.params
    out: dict[str, bool] = {}

    def add(feature: str, every: bool) -> None:
        out[feature] = out.get(feature, False) or every

    for kind in ("optimizer", "activation"):
        values = [
            str(v).lower() if kind == "optimizer" else str(v) for v in choices(getattr(p, kind))
        ]
        for value in values:
            add(f"{kind}:{value}", len(values) == 1)
    if space.model.hypermodel:
        add("hypermodel", True)
    if sample_ndim > 1 or space.data.shape:
        add("images", True)
    if space.training.precision not in ("auto", "float32"):
        add("precision", True)
    _numeric(add, "conv_blocks", p.conv_blocks)
    if p.max_tokens is not None:
        add("max_tokens", not isinstance(p.max_tokens, Range | Choice))
    for name in ("dropout", "l1", "l2"):
        param = getattr(p, name)
        if isinstance(param, Range | Choice) and param.per_layer:
            add(f"per-layer:{name}", True)
    for name in ("beta_1", "beta_2", "epsilon"):
        if getattr(p, name) is not None:
            add(f"constant:{name}", True)
    losses = [str(v) for v in choices(p.loss)]
    for loss in losses:
        if loss != "auto":
            add(f"loss:{loss}", len(losses) == 1)
    _numeric(add, "reduce_lr", p.reduce_lr)
    _numeric(add, "bias_regularizer", p.bias_l1, p.bias_l2)
    _numeric(add, "activity_regularizer", p.activity_l1, p.activity_l2)
    return out


Value = Range | Choice | bool | int | float | str


def _numeric(add: Callable[[str, bool], None], feature: str, *params: Value) -> None:
    """A numeric knob asks for the feature when it can be above 0; every trial does when
    its smallest value is."""
    for param in params:
        if upper(param) > 0:
            low = _lowest(param)
            add(feature, low > 0)


def _lowest(param: Value) -> float:
    if isinstance(param, Range):
        return 0.0 if param.optional else param.low
    if isinstance(param, Choice):
        return min(float(c) for c in param.choices if isinstance(c, int | float))
    return float(param)


def lacking(features: Iterable[str], carries: frozenset[str] | None) -> list[str]:
    """The features an engine that carries `carries` (None: everything) lacks."""
    return [] if carries is None else [f for f in features if f not in carries]


def every_feature() -> list[str]:
    """Every feature a space file can ask for, in the docs' order."""
    from_names = [f"optimizer:{o}" for o in OPTIMIZERS] + [f"activation:{a}" for a in ACTIVATIONS]
    losses = sorted({loss for named in TASK_LOSSES.values() for loss in named} - {"auto"})
    return [
        *from_names,
        *(f"loss:{loss}" for loss in losses),
        *(f"per-layer:{name}" for name in ("dropout", "l1", "l2")),
        *(f"constant:{name}" for name in ("beta_1", "beta_2", "epsilon")),
        "reduce_lr",
        "bias_regularizer",
        "activity_regularizer",
        "conv_blocks",
        "images",
        "max_tokens",
        "precision",
        "hypermodel",
    ]


def carried_table(engines: dict[str, frozenset[str] | None]) -> str:
    """A Markdown table: each feature, its space key, and whether each engine carries it."""
    names = list(engines)
    lines = [
        "| feature | space key | " + " | ".join(names) + " |",
        "| --- | --- | " + " | ".join("---" for _ in names) + " |",
    ]
    for feature in every_feature():
        marks = ["yes" if not lacking([feature], engines[n]) else "no" for n in names]
        lines.append(f"| {describe(feature)} | `{key_of(feature)}` | " + " | ".join(marks) + " |")
    return "\n".join(lines) + "\n"
