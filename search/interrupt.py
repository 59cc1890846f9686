"""Ctrl-C that is never lost: remembered as well as raised.

Python discards an exception raised inside a garbage-collection callback, and importing
TensorFlow (which loads JAX) runs such callbacks: a KeyboardInterrupt arriving then would
vanish and the search run to its end. The handler remembers the request; the command
checks it between its steps (`check`) and stops there.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Callable, Iterator

REQUESTED = threading.Event()
# A worker's stop request (`search.pool.worker.StopRequest`), read by the engines at each epoch
# (`search.engines.base.STOP` is this event). Here, in a module without imports of weight: a
# signal handler that imported the training modules ran Keras' import inside the one the
# main thread was in the middle of, and broke it.
STOP = threading.Event()


_DEFERRING = [0, False]  # depth of `deferred` blocks; a request arrived inside one


def postponed() -> bool:
    """For a signal handler: True inside a `deferred` block, where the request is noted
    and raised when the outermost block ends; False where the handler may raise now."""
    if _DEFERRING[0]:
        _DEFERRING[1] = True
        return True
    return False


def _handler(signum: int, frame: object) -> None:
    REQUESTED.set()
    if not postponed():
        raise KeyboardInterrupt


@contextlib.contextmanager
def deferred() -> Iterator[None]:
    """Hold Ctrl-C back for the duration (a write to the journal under its file lock: an
    interrupt between taking and releasing the lock would leave it half released)."""
    _DEFERRING[0] += 1
    try:
        yield
    finally:
        _DEFERRING[0] -= 1
        if _DEFERRING[0] == 0 and _DEFERRING[1]:
            _DEFERRING[1] = False
            raise KeyboardInterrupt


def install() -> None:
    """Handle Ctrl-C (and SIGTERM, which `kill` and service managers send) in this main
    thread: remember it, then raise KeyboardInterrupt, so the command ends its trials and
    runs as it does on Ctrl-C."""
    signal.signal(signal.SIGINT, _handler)
    signal.signal(signal.SIGTERM, _handler)


def settled() -> None:
    """The exit code is decided: a Ctrl-C or SIGTERM from now on changes nothing, and is
    ignored. Not left to a handler: the interpreter puts the default action back in place
    of a Python handler as it shuts down, and a Ctrl-C in that last stretch (TensorFlow's
    teardown) killed the process by the signal, with no message, instead of letting it
    end with the code it had."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)


def ended(main: Callable[[], int]) -> int:
    """Run an entry point's `main` and return its exit code: 130 if a Ctrl-C lands as it
    returns; from then on the code is `settled`."""
    try:
        code = main()
    except KeyboardInterrupt:
        code = 130
    settled()
    return code


def check() -> None:
    """Raise KeyboardInterrupt if Ctrl-C came, even if the first one was swallowed."""
    if REQUESTED.is_set():
        raise KeyboardInterrupt
