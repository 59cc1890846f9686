"""What differs between Keras' backends: start-up, GPU memory, determinism.

TensorFlow is the default backend (`pip install keras-search` brings it). JAX and PyTorch
work too, chosen the Keras way with `KERAS_BACKEND=jax` (or `torch`) before the first import
of keras: a GPU machine whose image carries JAX but no TensorFlow build for its CUDA runs
the same searches.
"""

from __future__ import annotations

import contextlib
import gc
import logging
import os
import sys
import warnings
from collections.abc import Callable

from search import interrupt
from search.quiet import silenced_stderr

# Applied before the backend's first import (in a worker's environment, or here): a GPU
# that several trials share must not be taken whole by the first process that touches it.
GPU_SHARING_ENV = {
    "TF_FORCE_GPU_ALLOW_GROWTH": "true",
    "XLA_PYTHON_CLIENT_PREALLOCATE": "false",
}


def name() -> str:
    """Keras' backend, without importing Keras in a process that has not yet."""
    keras = sys.modules.get("keras")
    if keras is not None:
        return str(keras.backend.backend())
    return os.environ.get("KERAS_BACKEND", "tensorflow")


def start(verbose: bool = False, configure: Callable[[], None] | None = None) -> None:
    """Import Keras and its backend and run a first op, quietly unless `verbose`.

    `configure` runs between the import and the first op (thread pools and GPU memory can
    only be set there); it receives nothing and may read `name()`. A Ctrl-C meanwhile is
    raised once the libraries are whole (`search.interrupt.deferred`, under this
    package's handlers): an import cut in the middle left TensorFlow half made, and the
    process aborted at exit.
    """
    with interrupt.deferred():
        _start(verbose, configure)


def _start(verbose: bool, configure: Callable[[], None] | None) -> None:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "0" if verbose else "3")
    for key, value in GPU_SHARING_ENV.items():
        os.environ.setdefault(key, value)
    # What is loaded now and what Keras loads lives as long as the process: frozen out of
    # the collector's view, the collections that later imports (MLflow, SQLAlchemy) set off
    # do not walk TensorFlow's objects again.
    gc.freeze()
    with contextlib.nullcontext() if verbose else silenced_stderr():
        import keras

        if configure is not None:
            configure()
        keras.ops.convert_to_numpy(keras.ops.add(keras.ops.zeros(()), 1.0))  # CUDA probing
    gc.freeze()
    logging.getLogger("tensorflow").setLevel(logging.ERROR)
    warnings.filterwarnings("ignore", module="keras")


def configure_worker(threads: int | None, gpu_memory_mb: int | None) -> None:
    """Thread pools of a CPU worker, memory budget of a GPU slot (TensorFlow)."""
    if name() != "tensorflow":
        if threads and name() == "torch":
            import torch

            torch.set_num_threads(threads)
        return
    import tensorflow as tf

    if threads:
        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(1)
    for gpu in tf.config.list_physical_devices("GPU"):
        if gpu_memory_mb:
            tf.config.set_logical_device_configuration(
                gpu, [tf.config.LogicalDeviceConfiguration(memory_limit=gpu_memory_mb)]
            )
        else:
            tf.config.experimental.set_memory_growth(gpu, True)


def deterministic() -> None:
    """Deterministic kernels so that a seeded run can be reproduced exactly.

    TensorFlow needs op determinism switched on; JAX on a CPU is deterministic already
    (on a GPU set XLA_FLAGS=--xla_gpu_deterministic_ops=true before starting).
    """
    backend = name()
    if backend == "tensorflow":
        import tensorflow as tf

        tf.config.experimental.enable_op_determinism()
    elif backend == "torch":
        import torch

        torch.use_deterministic_algorithms(True, warn_only=True)


def quiet_libraries(verbose: bool) -> None:
    """Before Keras, MLflow and Optuna load: their logs at warnings, the backend started,
    figures drawn to files; a Ctrl-C during the loading stops here."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "0" if verbose else "3")
    # MLflow sets its loggers' level from this when it is first imported, here or in a
    # search's tracking process: importing it now only to quiet it would cost 1 s
    # before the first trial.
    os.environ.setdefault("MLFLOW_LOGGING_LEVEL", "WARNING")
    os.environ.setdefault("MPLBACKEND", "Agg")  # the report's figures: files, not windows
    import optuna  # here: after the environment above is set, as MLflow's and TF's imports

    start(verbose)
    interrupt.check()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    logging.getLogger("alembic").setLevel(logging.WARNING)
