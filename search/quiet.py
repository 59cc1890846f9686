"""Keep TensorFlow's start-up noise (C++ log lines on stderr) out of the user's terminal."""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import warnings
from collections.abc import Callable, Iterator


@contextlib.contextmanager
def silenced_stderr() -> Iterator[None]:
    """Point file descriptor 2 at /dev/null for the duration (C++ writes go there too)."""
    sys.stderr.flush()
    saved = os.dup(2)
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        yield
    finally:
        sys.stderr.flush()
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


def import_tensorflow(verbose: bool = False, configure: Callable[[], None] | None = None) -> None:
    """Import TensorFlow and run a first op, quietly unless `verbose`.

    `configure` runs between the import and the first op: thread pools and GPU memory can
    only be set there.
    """
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "0" if verbose else "3")
    with contextlib.nullcontext() if verbose else silenced_stderr():
        import tensorflow as tf

        if configure is not None:
            configure()
        tf.constant(0.0) + 1.0  # first op: CUDA probing messages happen here
    logging.getLogger("tensorflow").setLevel(logging.ERROR)
    warnings.filterwarnings("ignore", module="keras")
