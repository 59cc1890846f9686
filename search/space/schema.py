"""Space files: the schema, reading a file, and errors that name the file, key and line.

The checks beyond the schema live in search.space.check; sampling a trial in search.space.sampling.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    model_validator,
)

from search.names import METRICS
from search.params import default
from search.space.yamltext import Loader, line_of

Scalar = bool | int | float | str


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


class Range(_Strict):
    """A numeric range sampled by Optuna."""

    low: float
    high: float
    log: bool = False
    step: float | None = None
    optional: bool = False  # adds a use_<name> switch; off means 0 (L1, L2, dropout)
    per_layer: bool = False  # width only: one value per hidden layer

    @model_validator(mode="after")
    def _check(self) -> Range:
        if self.low > self.high:
            raise ValueError(f"`low <= high` must hold, but got (low={self.low}, high={self.high})")
        if self.log and self.low <= 0:
            raise ValueError(f"a log range needs low > 0, but got low={self.low}")
        if self.step is not None and self.step <= 0:
            raise ValueError(f"step must be > 0, but got step={self.step}")
        if self.step is not None and self.step > self.high - self.low and self.high > self.low:
            raise ValueError(
                f"step {self.step:g} is larger than the range {self.low:g}..{self.high:g}: "
                "only `low` could ever be sampled"
            )
        if self.step is not None and self.log:
            raise ValueError(
                "a range cannot have both `log: true` and a step (Optuna has no "
                "such distribution); drop one of them"
            )
        return self


class Choice(_Strict):
    """A categorical choice."""

    choices: list[Scalar] = Field(min_length=1)
    per_layer: bool = False

    @model_validator(mode="after")
    def _check(self) -> Choice:
        seen: list[Scalar] = []
        for value in self.choices:
            key = (type(value) is bool, value)  # true and 1 are different choices
            if key in [(type(v) is bool, v) for v in seen]:
                raise ValueError(f"{value!r} is listed twice in `choices`")
            seen.append(value)
        return self


def _param_kind(value: Any) -> str:
    if isinstance(value, dict):
        return "choice" if "choices" in value else "range"
    return "fixed"


Param = Annotated[
    Annotated[Range, Tag("range")]
    | Annotated[Choice, Tag("choice")]
    | Annotated[Scalar, Tag("fixed")],
    Discriminator(_param_kind),
]


class Params(_Strict):
    """The hyperparameters; each one fixed, a range or a choice; one left out takes its
    default (`search.params.TrialParams`)."""

    depth: Param = default("depth")
    width: Param = default("width")
    activation: Param = default("activation")
    dropout: Param = default("dropout")
    l1: Param = default("l1")
    l2: Param = default("l2")
    batch_norm: Param = default("batch_norm")
    optimizer: Param = default("optimizer")
    learning_rate: Param = default("learning_rate")
    momentum: Param = default("momentum")
    nesterov: Param = default("nesterov")
    weight_decay: Param | None = None
    beta_1: Param | None = None
    beta_2: Param | None = None
    epsilon: Param | None = None
    batch_size: Param = default("batch_size")
    epochs: Param = default("epochs")
    patience: Param = default("patience")
    min_delta: Param = default("min_delta")
    loss: Param = default("loss")
    class_weight: Param = default("class_weight")
    schedule: Param = default("schedule")
    lr_decay: Param = default("lr_decay")
    reduce_lr: Param = default("reduce_lr")
    reduce_lr_patience: Param = default("reduce_lr_patience")
    bias_l1: Param = default("bias_l1")
    bias_l2: Param = default("bias_l2")
    activity_l1: Param = default("activity_l1")
    activity_l2: Param = default("activity_l2")
    conv_blocks: Param = default("conv_blocks")
    filters: Param = default("filters")
    kernel_size: Param = default("kernel_size")
    pooling: Param = default("pooling")
    max_tokens: Param | None = None


class StudySpec(_Strict):
    name: str | None = None
    sampler: str = "tpe"
    pruner: str = "auto"
    trials: int | None = Field(default=20, ge=1)
    timeout: float | None = Field(default=None, gt=0)
    seed: int = 42
    # center: a new study's first trial is the middle of every range (OSS Vizier's default)
    start: Literal["center", "random"] = "center"


class DataSpec(_Strict):
    source: str
    target: str | None = None
    task: str = "auto"
    test_size: float = Field(default=0.2, gt=0, lt=1)
    seed: int = 42
    group_column: str | None = None
    time_column: str | None = None
    drop_columns: list[str] = Field(default_factory=list)
    # rows whose target is missing: refused (error) or left out before the test split (drop)
    missing_target: Literal["error", "drop"] = "error"
    # encodings of feature columns (search.data.columns): number, onehot, frequent, date, text,
    # tfidf, drop
    columns: dict[str, str] = Field(default_factory=dict)
    # words a text column keeps: the most frequent on the rows the preprocessing is fitted on
    max_tokens: int = Field(default=10_000, ge=1)
    # each sample's shape when a table's columns are an image's pixels (digits: [8, 8])
    shape: list[Annotated[int, Field(ge=1)]] | None = None
    # an image folder's images: resized to [height, width], in rgb or grayscale
    image_size: Annotated[
        list[Annotated[int, Field(ge=1, le=4096)]], Field(min_length=2, max_length=2)
    ] = Field(default_factory=lambda: [64, 64])
    color_mode: Literal["rgb", "grayscale"] = "rgb"
    # the share of the training rows the search and its recheck use (MNIST-sized data);
    # the champion is refitted on every training row
    subsample: float = Field(default=1.0, gt=0, le=1)
    # a file with the source's columns used as the test split, as given (its rows only)
    test_source: str | None = None


class ValidationSpec(_Strict):
    scheme: str = "kfold"
    folds: int = Field(default=5, ge=2)
    repeats: int = Field(default=2, ge=1)
    val_fraction: float = Field(default=0.2, gt=0, lt=1)
    stratify: bool = True
    source: str | None = None  # scheme `given`: a file of validation rows (the data's columns)


class ObjectiveSpec(_Strict):
    metric: str = "loss"
    direction: Literal["minimize", "maximize"] | None = None
    # what early stopping and the restored epoch follow: the validation loss of the
    # predictions, or the objective's metric on the validation rows after each epoch
    early_stopping: Literal["loss", "objective"] = "loss"
    # a binary task's decision threshold: 0.5, or the one that maximizes the metric on the
    # selection's out-of-fold rows (accuracy, f1, balanced_accuracy)
    threshold: Literal["fixed", "tuned"] = "fixed"


class TrainingSpec(_Strict):
    # auto: the pack engine for the built-in MLP when JAX is installed, else sequential
    engine: Literal["auto", "pack", "sequential"] = "auto"
    pack_size: Annotated[int, Field(ge=1)] | Literal["auto"] = "auto"  # trials trained together
    steps_per_execution: Annotated[int, Field(ge=1)] | Literal["auto"] = "auto"
    # auto: float32; mixed precision measured slower for MLPs on an H100 (bench/gpu.py)
    precision: Literal["auto", "float32", "mixed_float16", "mixed_bfloat16"] = "auto"
    verbose: int = Field(default=0, ge=0, le=2)


class ModelSpec(_Strict):
    """The built-in family (`mlp`; `cnn`: convolution blocks first; `text`: a text column's
    words, then the MLP), or a KerasTuner hypermodel: `file.py:build_model`."""

    family: Literal["mlp", "cnn", "text"] | None = None  # unset: what `params` describe
    hypermodel: str | None = None


class SelectionSpec(_Strict):
    """How the final model is chosen, refitted and tested."""

    top_k: int = Field(default=5, ge=1)  # candidates re-evaluated against the winner's curse
    recheck_folds: int = Field(default=5, ge=2)
    refit: Literal["single", "ensemble"] = "single"
    bootstrap: int = Field(default=1000, ge=100)
    champion: bool = True  # register the model and move the alias when it wins
    # an ensemble of the candidates when it beats the chosen one on the recheck's
    # out-of-fold outputs (search.selection.ensemble)
    ensemble: bool = True


class Space(_Strict):
    """A validated, frozen space file."""

    data: DataSpec
    study: StudySpec = StudySpec()
    validation: ValidationSpec = ValidationSpec()
    objective: ObjectiveSpec = ObjectiveSpec()
    params: Params = Params()
    model: ModelSpec = ModelSpec()
    training: TrainingSpec = TrainingSpec()
    selection: SelectionSpec = SelectionSpec()
    path: str | None = Field(default=None, exclude=True)
    text: str = Field(default="", exclude=True, repr=False)
    origin: str | None = Field(default=None, exclude=True)  # folder relative paths start from

    @property
    def name(self) -> str:
        if self.study.name:
            return self.study.name
        return Path(self.path).stem if self.path else "study"

    @property
    def direction(self) -> Literal["minimize", "maximize"]:
        if self.objective.direction is not None:
            return self.objective.direction
        return "maximize" if METRICS.get(self.objective.metric) == "maximize" else "minimize"

    @property
    def base_dir(self) -> Path:
        if self.origin:
            return Path(self.origin)
        return Path(self.path).resolve().parent if self.path else Path.cwd()

    def line_of(self, key: str) -> int | None:
        """The line of `key` (dotted) in the space file, or of its nearest written parent."""
        try:
            root = yaml.compose(self.text, Loader=Loader) if self.text else None
        except yaml.YAMLError:
            return None
        return line_of(root, key.split("."))
