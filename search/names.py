"""The words a space file may use: optimizers, activations, losses by task, samplers,
pruners, validation schemes, metrics and their directions, whole-number parameters and
the bounds that catch typos."""

from __future__ import annotations

OPTIMIZERS = (
    "sgd",
    "rmsprop",
    "adam",
    "adamw",
    "nadam",
    "adamax",
    "adagrad",
    "lion",
    "amsgrad",  # Adam with amsgrad=True
    "adadelta",
    "ftrl",
)
PER_LAYER = ("width", "dropout", "l1", "l2")  # may take one value per hidden layer
ADAM_LIKE = ("adam", "adamw", "nadam", "adamax", "amsgrad")  # beta_1, beta_2 apply
# named values of the training knobs (search.models.build, search.engines.sequential)
NAMED = {
    "class_weight": ("none", "balanced"),
    "pooling": ("max", "average"),
    "schedule": ("constant", "cosine", "exponential"),
    "loss": (
        "auto",
        "binary_crossentropy",
        "binary_focal_crossentropy",
        "hinge",
        "squared_hinge",
        "sparse_categorical_crossentropy",
        "categorical_crossentropy",
        "categorical_hinge",
        "mse",
        "mae",
        "huber",
        "log_cosh",
    ),
}
# the losses that fit each task (the head stays the task's: sigmoid, softmax, linear)
TASK_LOSSES = {
    "binary": ("auto", "binary_crossentropy", "binary_focal_crossentropy", "hinge",
               "squared_hinge", "mse"),
    "multiclass": ("auto", "sparse_categorical_crossentropy", "categorical_crossentropy",
                   "categorical_hinge"),
    "regression": ("auto", "mse", "mae", "huber", "log_cosh"),
}  # fmt: skip
ACTIVATIONS = (
    "relu",
    "elu",
    "selu",
    "gelu",
    "tanh",
    "sigmoid",
    "swish",
    "silu",
    "leaky_relu",
    "mish",
    "softplus",
)
SAMPLERS = ("tpe", "random", "gp", "cmaes", "qmc", "grid")
PRUNERS = ("auto", "median", "successive_halving", "hyperband", "wilcoxon", "none")
SCHEMES = ("holdout", "kfold", "repeated_kfold", "group_kfold", "time_series", "given")
ONE_FOLD = ("holdout", "given")  # schemes of a single validation part
TASKS = ("auto", "binary", "multiclass", "regression")
METRICS = {  # name -> direction
    "loss": "minimize",
    "log_loss": "minimize",
    "accuracy": "maximize",
    "roc_auc": "maximize",
    "f1": "maximize",
    "precision": "maximize",
    "recall": "maximize",
    "balanced_accuracy": "maximize",
    "pr_auc": "maximize",
    "mse": "minimize",
    "rmse": "minimize",
    "mae": "minimize",
    "r2": "maximize",
}
CLASSIFICATION_METRICS = (
    "loss",
    "log_loss",
    "accuracy",
    "roc_auc",
    "f1",
    "precision",
    "recall",
    "balanced_accuracy",
    "pr_auc",
)
REGRESSION_METRICS = ("loss", "mse", "rmse", "mae", "r2")
INT_PARAMS = (
    "depth",
    "width",
    "batch_size",
    "epochs",
    "patience",
    "reduce_lr_patience",
    "conv_blocks",
    "filters",
    "kernel_size",
    "max_tokens",
)
# Bounds that catch typos (a width of 1e308, a depth of 1000) before a trial runs out of
# memory; each with the reason a user reads.
LIMITS = {
    "depth": (64, "an MLP deeper than 64 Dense layers does not train without skip connections"),
    "width": (16384, "one 16384 x 16384 Dense layer already holds 1 GiB of float32 weights"),
    "batch_size": (1 << 20, "a batch of over a million rows does not fit in memory"),
    "epochs": (100_000, "early stopping ends a trial long before 100,000 epochs"),
    "patience": (100_000, "patience counts epochs, and no search runs over 100,000"),
    "reduce_lr_patience": (100_000, "it counts epochs, and no search runs over 100,000"),
    "conv_blocks": (16, "each block halves the image: 16 blocks take 65536 pixels to one"),
    "filters": (4096, "doubled in each block, 4096 filters already make GiB-sized kernels"),
    "kernel_size": (64, "a kernel over 64 pixels wide is larger than the course's images"),
    "max_tokens": (1_000_000, "a million words a text column is past any vocabulary"),
}

# A name that becomes part of a path or of an MLflow name (the study's: its journal entry,
# its experiment, its artifacts folder, its registered model): the characters MLflow's
# registry and every filesystem accept, so that no name climbs out of the home.
NAME_CHARS = "letters, digits, `_`, `.` and `-`, starting with a letter or a digit"
NAME_LENGTH = 128
_WINDOWS_DEVICES = {"con", "prn", "aux", "nul"} | {
    f"{p}{i}" for p in ("com", "lpt") for i in range(10)
}


def name_problem(name: str) -> str | None:
    """Why `name` cannot name a study (a path part and an MLflow name), or None if it can."""
    if not name:
        return "a name cannot be empty"
    if len(name) > NAME_LENGTH:
        return f"{len(name)} characters, over the {NAME_LENGTH} a name may have"
    bad = sorted({c for c in name if not (c.isascii() and (c.isalnum() or c in "_.-"))})
    if bad:
        shown = " ".join(ascii(c) for c in bad[:5])
        return f"it holds {shown}; a name is {NAME_CHARS}"
    if not name[0].isalnum():
        return f"it starts with {name[0]!r}; a name is {NAME_CHARS}"
    if name.endswith("."):
        return "it ends with `.`, which some filesystems drop"
    if name.split(".")[0].lower() in _WINDOWS_DEVICES:
        return f"{name.split('.')[0]!r} names a device on Windows"
    return None


def shown_name(name: str) -> str:
    """A name as an error line shows it: escaped, and cut when long."""
    text = ascii(name)
    return text if len(text) <= 60 else text[:48] + "..." + text[-8:]
