"""TrialParams + task -> compiled Keras model. The architecture lives here only."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import keras
import numpy as np

from search.models.hypermodel import OptunaHyperParameters, build, load_hypermodel
from search.models.knobs import loss_of
from search.params import TrialParams

# Output layer and loss follow the task, as every Keras course teaches.
HEADS: dict[str, tuple[str, str]] = {
    "binary": ("sigmoid", "binary_crossentropy"),
    "multiclass": ("softmax", "sparse_categorical_crossentropy"),
    "regression": ("linear", "mse"),
}


@keras.saving.register_keras_serializable(package="search")
class HostGlorotUniform(keras.initializers.Initializer):  # type: ignore[misc]
    """Glorot uniform drawn with NumPy (seeded by `keras.utils.set_random_seed`).

    JAX compiles its random ops anew for every kernel shape, most of the cost of building
    a model whose widths the search varies; drawing on the host and copying does not
    compile. TensorFlow keeps Keras' own initializer.
    """

    def __call__(self, shape: tuple[int, ...], dtype: Any = None) -> Any:
        # Keras' fans: a convolution's kernel counts its receptive field
        receptive = int(np.prod(shape[:-2])) if len(shape) > 2 else 1
        fan_in, fan_out = (
            (shape[-2] * receptive, shape[-1] * receptive)
            if len(shape) >= 2
            else (shape[0], shape[0])
        )
        limit = float(np.sqrt(6.0 / max(1, fan_in + fan_out)))
        values = np.random.uniform(-limit, limit, size=shape).astype("float32")
        return keras.ops.cast(values, dtype or "float32")


def _kernel_initializer() -> keras.initializers.Initializer | str:
    return "glorot_uniform" if keras.backend.backend() == "tensorflow" else HostGlorotUniform()


def build_model(
    params: TrialParams,
    *,
    n_features: int | tuple[int, ...],
    task: str,
    n_classes: int = 0,
    steps_per_execution: int = 1,
    metrics: list[str] | None = None,
) -> keras.Model:
    """An MLP: [Dense -> (BatchNorm) -> activation -> (Dropout)] x depth -> task head; a
    sample shape of several axes (an image) is flattened first, after `conv_blocks`
    convolution blocks when the trial has them (a CNN)."""
    shape = _shape(n_features)
    inputs = keras.Input(shape=shape, name="features")
    blocks = params.conv_blocks
    x = _convolutions(inputs, shape, params, blocks) if blocks else inputs
    x = keras.layers.Flatten(name="flatten")(x) if len(shape) > 1 else x
    x = _dense_layers(x, params)
    activation, loss = HEADS[task]
    units = n_classes if task == "multiclass" else 1
    outputs = keras.layers.Dense(
        units,
        activation=activation,
        kernel_initializer=_kernel_initializer(),
        name="output",
        dtype="float32",
    )(x)
    model = keras.Model(inputs, outputs, name="mlp")
    model.compile(
        optimizer=make_optimizer(params),
        loss=loss if params.loss == "auto" else params.loss,
        metrics=metrics,
        steps_per_execution=steps_per_execution,
    )
    return model


def make_model(
    params: TrialParams,
    *,
    n_features: int | tuple[int, ...],
    task: str,
    n_classes: int = 0,
    steps_per_execution: int = 1,
    metrics: list[str] | None = None,
) -> keras.Model:
    """The built-in MLP, or the space's KerasTuner hypermodel with the trial's values;
    `n_features` is the number of features, or each sample's shape."""
    keras.config.set_dtype_policy(params.precision)
    if params.hypermodel is None:
        return build_model(
            params,
            n_features=n_features,
            task=task,
            n_classes=n_classes,
            steps_per_execution=steps_per_execution,
            metrics=metrics,
        )
    hypermodel = load_hypermodel(params.hypermodel, Path(params.hypermodel_dir or "."))
    model = build(hypermodel, OptunaHyperParameters(fixed=params.hp))
    if not model.built:  # `keras.Sequential()` without an `Input`: built on a sample row
        model(np.zeros((1, *_shape(n_features)), dtype="float32"))
    if not model.compiled:  # a build function that leaves compiling to us
        model.compile(
            optimizer=make_optimizer(params),
            loss=loss_of(params, task),
            metrics=metrics,
            steps_per_execution=steps_per_execution,
        )
    return model


CATEGORICAL = (
    "categorical_crossentropy",
    "categorical_focal_crossentropy",
    "kl_divergence",
    "categorical_hinge",
)


def keras_targets(model: keras.Model, y: np.ndarray, n_classes: int) -> np.ndarray:
    """The labels as the model's loss wants them: class codes, or one-hot rows for a
    categorical (not sparse) loss, as KerasTuner's guide compiles with."""
    loss = getattr(model, "loss", None)
    name = getattr(loss, "name", None) or getattr(loss, "__name__", None) or str(loss)
    if n_classes and str(name).lower() in CATEGORICAL:
        onehot: np.ndarray = np.eye(n_classes, dtype="float32")[y.astype(int)]
        return onehot
    return y


def _dense_layers(x: keras.KerasTensor, params: TrialParams) -> keras.KerasTensor:
    """[Dense -> (BatchNorm) -> activation -> (Dropout)] for each hidden layer, each with
    its own width and (per layer or shared) dropout and L1/L2."""
    l1s, l2s = params.layer_values("l1"), params.layer_values("l2")
    dropouts = params.layer_values("dropout")
    bias = _regularizer(params.bias_l1, params.bias_l2)
    activity = _regularizer(params.activity_l1, params.activity_l2)
    for i, width in enumerate(params.widths):
        x = keras.layers.Dense(
            int(width),
            kernel_initializer=_kernel_initializer(),
            kernel_regularizer=_regularizer(l1s[i], l2s[i]),
            bias_regularizer=None if params.batch_norm else bias,
            activity_regularizer=activity,
            use_bias=not params.batch_norm,
            name=f"dense_{i}",
        )(x)
        if params.batch_norm:
            x = keras.layers.BatchNormalization(name=f"batch_norm_{i}")(x)
        x = keras.layers.Activation(params.activation, name=f"act_{i}")(x)
        if dropouts[i] > 0:
            x = keras.layers.Dropout(dropouts[i], name=f"dropout_{i}")(x)
    return x


def _convolutions(
    inputs: keras.KerasTensor, shape: tuple[int, ...], params: TrialParams, blocks: int
) -> keras.KerasTensor:
    """[Conv2D -> pooling] x blocks, as the course's convnets: `filters` in the first block,
    twice as many in each next one, `kernel_size` square kernels ("same" padding), 2 x 2
    max or average pooling while the image is larger than one pixel."""
    x = keras.layers.Reshape((*shape, 1), name="channels")(inputs) if len(shape) == 2 else inputs
    pool = keras.layers.MaxPooling2D if params.pooling == "max" else keras.layers.AveragePooling2D
    size = min(shape[:2])
    for b in range(blocks):
        x = keras.layers.Conv2D(
            params.filters * 2**b,
            params.kernel_size,
            padding="same",
            activation=params.activation,
            kernel_initializer=_kernel_initializer(),
            name=f"conv_{b}",
        )(x)
        if size > 1:
            x = pool(2, padding="same", name=f"pool_{b}")(x)
            size = (size + 1) // 2
    return x


def _shape(n_features: int | tuple[int, ...]) -> tuple[int, ...]:
    return (n_features,) if isinstance(n_features, int) else tuple(int(d) for d in n_features)


def _regularizer(l1: float, l2: float) -> keras.regularizers.Regularizer | None:
    if l1 > 0 and l2 > 0:
        return keras.regularizers.L1L2(l1=l1, l2=l2)
    if l1 > 0:
        return keras.regularizers.L1(l1)
    if l2 > 0:
        return keras.regularizers.L2(l2)
    return None


def make_optimizer(params: TrialParams) -> keras.optimizers.Optimizer:
    """The trial's optimizer with Keras' own defaults for what the space leaves unset."""
    name, lr = params.optimizer.lower(), params.learning_rate
    constants = {"beta_1": params.beta_1, "beta_2": params.beta_2, "epsilon": params.epsilon}
    extra = {k: v for k, v in constants.items() if v is not None}
    if name == "sgd":
        return keras.optimizers.SGD(
            lr,
            momentum=params.momentum,
            nesterov=params.nesterov,
        )
    if name == "rmsprop":
        return keras.optimizers.RMSprop(lr, momentum=params.momentum, **extra)
    if name in ("adamw", "lion"):
        cls = keras.optimizers.AdamW if name == "adamw" else keras.optimizers.Lion
        return cls(lr, weight_decay=params.keras_weight_decay, **extra)
    if name == "amsgrad":
        return keras.optimizers.Adam(lr, amsgrad=True, **extra)
    if name == "ftrl":
        return keras.optimizers.Ftrl(lr)
    classes = {
        "adam": keras.optimizers.Adam,
        "nadam": keras.optimizers.Nadam,
        "adamax": keras.optimizers.Adamax,
        "adagrad": keras.optimizers.Adagrad,
        "adadelta": keras.optimizers.Adadelta,
    }
    return classes[name](lr, **extra)


def build_state(model: keras.Model, x: np.ndarray, y: np.ndarray) -> None:
    """Create the optimizer's, the metrics' and the loss's variables before `fit`.

    Keras' TensorFlow trainer, without a distribution strategy, leaves them to the first
    trace of the train step, and a `tf.function` that creates variables is traced twice
    (once to create them, once more without). Building them first, from the shape of one
    row, is what the trainer does itself under a strategy and on JAX: one trace instead
    of two (bench/model_cost.py), results the same to the bit.
    """
    build = getattr(model, "_symbolic_build", None)  # Keras 3's own pre-build, not public
    if build is not None and keras.backend.backend() == "tensorflow":
        build(data_batch=(x[:1], y[:1], None))
    elif model.optimizer is not None and not model.optimizer.built:
        model.optimizer.build(model.trainable_variables)
