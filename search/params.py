"""What one trial means: every knob once, with its type, its default and the rule of when it
applies. Engines, the model builder, refit, selection, reproduce and the pool take a
`TrialParams`; nothing else reads a knob by its name.

Its record form (`record()`, read back by `TrialParams.read`) is the flat dict a trial
keeps in its Optuna user attributes, its MLflow `params.json` and a pack's `pack.json`:
the knobs the trial set (sampled, or fixed by its space), never the defaults it left
alone, plus the record's schema version. Records written before the version existed
(schema 1) have the same keys and read the same way.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

from search.names import ADAM_LIKE

SCHEMA = 2  # 1: the records before `schema` was written (the same keys)

# Keras' own default weight decay of each optimizer that has one (AdamW 0.004, Lion and
# Adam's kin none); a trial that leaves `weight_decay` unset trains with it.
KERAS_WEIGHT_DECAY = {"adamw": 0.004}


class TrialParams(BaseModel):
    """One trial's hyperparameters, typed and frozen; unset knobs take these defaults.

    `dropouts`, `l1s` and `l2s` hold one value per hidden layer when the space searched
    them per layer (empty: `dropout`, `l1`, `l2` for every layer); `widths` always has
    one width per layer. `hypermodel` names a KerasTuner hypermodel (`file.py:function`,
    found from `hypermodel_dir`), which then builds the network from its `hp` values.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    # the architecture
    depth: int = Field(default=2, ge=0)
    widths: tuple[int, ...] = (64, 64)
    activation: str = "relu"
    dropout: float = 0.0
    dropouts: tuple[float, ...] = ()
    l1: float = 0.0
    l1s: tuple[float, ...] = ()
    l2: float = 0.0
    l2s: tuple[float, ...] = ()
    batch_norm: bool = False
    bias_l1: float = 0.0  # L1/L2 on the hidden layers' biases (`l1`, `l2`: their kernels)
    bias_l2: float = 0.0
    activity_l1: float = 0.0  # L1/L2 on the hidden layers' outputs
    activity_l2: float = 0.0
    conv_blocks: int = 0  # convolution blocks before the Dense layers (images): a CNN
    filters: int = 32  # the first block's; twice as many in each next block
    kernel_size: int = 3
    pooling: str = "max"  # or average: 2 x 2 after each block
    max_tokens: int | None = None  # words a text column keeps; unset: data.max_tokens
    # the optimizer (unset constants: Keras' own for the optimizer)
    optimizer: str = "adam"
    learning_rate: float = 1e-3
    momentum: float = 0.0  # SGD and RMSprop
    nesterov: bool = False  # SGD
    weight_decay: float | None = None  # AdamW and Lion; unset: KERAS_WEIGHT_DECAY
    beta_1: float | None = None  # Adam and its kin
    beta_2: float | None = None
    epsilon: float | None = None  # every optimizer that has one
    # the training
    batch_size: int = Field(default=32, ge=1)
    epochs: int = Field(default=100, ge=1)
    patience: int = Field(default=10, ge=0)
    min_delta: float = 0.0  # the least change early stopping counts as better
    loss: str = "auto"  # the task's: binary/categorical cross-entropy, MSE
    class_weight: str = "none"  # balanced: rows weighted by the inverse class frequency
    schedule: str = "constant"  # the learning rate over the epochs: cosine, exponential
    lr_decay: float = 0.96  # `exponential`: the factor per epoch
    reduce_lr: float = 0.0  # ReduceLROnPlateau's factor; 0: off
    reduce_lr_patience: int = 5
    precision: str = "float32"  # the Keras dtype policy the trial's models train under
    # a KerasTuner hypermodel instead of the built-in network
    hypermodel: str | None = None
    hypermodel_dir: str | None = None
    hypermodel_compiles: bool = False  # its build compiles: the space's optimizer and loss unused
    hp: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="before")
    @classmethod
    def _widths(cls, data: Any) -> Any:
        """`widths` from `width` x `depth` for a hand-written dict; `depth` from `widths`."""
        if not isinstance(data, Mapping):
            return data
        data = dict(data)
        width = data.pop("width", None)
        if "widths" not in data and width is not None:
            data["widths"] = [width] * int(data.get("depth", 2))
        if "widths" in data and "depth" not in data:
            data["depth"] = len(data["widths"])
        return data

    @model_validator(mode="after")
    def _layers(self) -> TrialParams:
        if len(self.widths) != self.depth:
            raise ValueError(f"{len(self.widths)} widths for depth {self.depth}")
        for name in ("dropouts", "l1s", "l2s"):
            values = getattr(self, name)
            if values and len(values) != self.depth:
                raise ValueError(f"{len(values)} {name} for depth {self.depth}")
        return self

    # ------------------------------------------------------------------ what it means

    def layer_values(self, name: str) -> list[float]:
        """`dropout`, `l1` or `l2` for each hidden layer: the per-layer values when the
        space searched them so, else the one value for every layer."""
        values: tuple[float, ...] = getattr(self, f"{name}s")
        return [float(v) for v in values] if values else [float(getattr(self, name))] * self.depth

    @property
    def keras_weight_decay(self) -> float | None:
        """The weight decay the optimizer applies: the trial's, or Keras' own default."""
        if self.weight_decay is not None:
            return self.weight_decay
        return KERAS_WEIGHT_DECAY.get(self.optimizer.lower())

    @property
    def compiles_own(self) -> bool:
        """A hypermodel that compiles itself: the space's optimizer and loss do not apply."""
        return self.hypermodel is not None and self.hypermodel_compiles

    def set_knobs(self) -> frozenset[str]:
        """The knobs this trial set (sampled, or fixed by its space)."""
        return frozenset(self.model_fields_set)

    # ------------------------------------------------------------------ records

    def record(self) -> dict[str, Any]:
        """The flat JSON form: the knobs the trial set and the record's schema version."""
        return {"schema": SCHEMA, **self.model_dump(mode="json", exclude_unset=True)}

    @classmethod
    def read(cls, record: Mapping[str, Any]) -> TrialParams:
        """A trial's parameters from their record, whichever schema wrote it."""
        values = dict(record)
        version = int(values.pop("schema", 1))
        if version > SCHEMA:
            raise ValueError(
                f"parameters recorded with schema {version}; this version reads up to "
                f"{SCHEMA}: upgrade the package to read them"
            )
        return cls.model_validate(values)

    def with_values(self, **values: Any) -> TrialParams:
        """A copy with these knobs set (and counted as set by the trial)."""
        return type(self).model_validate({**self.model_dump(exclude_unset=True), **values})


def applies(name: str, values: Mapping[str, Any]) -> bool:
    """Whether a knob means anything for a trial with these other values: an optimizer's
    constants for that optimizer only, a schedule's for that schedule, a CNN's for CNNs."""
    optimizer = values.get("optimizer", TrialParams.model_fields["optimizer"].default)
    rules = {
        "momentum": optimizer in ("sgd", "rmsprop"),
        "nesterov": optimizer == "sgd",
        "weight_decay": optimizer in ("adamw", "lion"),
        "beta_1": optimizer in ADAM_LIKE,
        "beta_2": optimizer in ADAM_LIKE,
        "epsilon": optimizer not in ("sgd", "ftrl", "lion"),
        "lr_decay": values.get("schedule") == "exponential",
        "reduce_lr_patience": bool(values.get("reduce_lr")),
        "filters": bool(values.get("conv_blocks")),
        "kernel_size": bool(values.get("conv_blocks")),
        "pooling": bool(values.get("conv_blocks")),
    }
    return bool(rules.get(name, True))


def default(name: str) -> Any:
    """A knob's default (a space file that leaves the knob out gets it)."""
    if name == "width":
        return TrialParams.model_fields["widths"].default[0]
    return TrialParams.model_fields[name].default


# knobs a trial's record leaves out when its space leaves them at their defaults: the
# training knobs beside the architecture, which older records never carried
QUIET_KNOBS = (
    "min_delta",
    "loss",
    "class_weight",
    "schedule",
    "reduce_lr",
    "bias_l1",
    "bias_l2",
    "activity_l1",
    "activity_l2",
    "conv_blocks",
)
