"""What a person sees while a search runs: a bar over trials, a line per trial, and
`Ticker`, a line every few seconds through the long steps of a selection."""

from __future__ import annotations

import contextlib
import os
import sys
import threading
import time
from collections.abc import Callable
from typing import TextIO

import optuna
from optuna.trial import FrozenTrial, TrialState

from search.attrs import Trial


class Progress:
    """A progress bar over trials with the best score so far, on stderr."""

    def __init__(
        self, total: int | None, metric: str, stream: TextIO, enabled: bool, folds: int = 1
    ) -> None:
        from tqdm import tqdm

        self.metric, self.stream, self.enabled, self.folds = metric, stream, enabled, folds
        self.best = ""
        self._what, self._ticked = "training", 0.0
        self.bar = tqdm(
            total=total,
            unit="trial",
            file=stream,
            disable=not enabled,
            dynamic_ncols=True,
            leave=True,
        )

    def __call__(self, study: optuna.Study, trial: FrozenTrial) -> None:
        if not self.enabled:
            return
        self.bar.update(1)
        value = "" if trial.value is None else f" {self.metric}={trial.value:.4f}"
        spread = trial.user_attrs.get(Trial.SCORE_STD)
        if spread is not None and value and self.folds > 1:  # a holdout has no spread
            value += f"±{spread:.4f}"
        if trial.state == TrialState.PRUNED and trial.last_step is not None:
            step = trial.last_step + 1
            value = f" after fold {step} of {self.folds}" if self.folds > 1 else f" at epoch {step}"
        reason = trial.user_attrs.get(Trial.FAIL_REASON, "")
        secs = trial.duration.total_seconds() if trial.duration else 0.0
        self.bar.write(
            f"trial {trial.number:>3} {trial.state.name:<8}{value} ({secs:.1f}s)"
            + (f" {reason[:120]}" if reason else ""),
            file=self.stream,
        )
        with contextlib.suppress(ValueError):
            self.best = (
                f"best {self.metric}={study.best_value:.4f} (trial {study.best_trial.number})"
            )
            self.bar.set_postfix_str(self.best)

    def fold(self, index: int, total: int) -> None:
        """The live line: which fold of the running trial, and the best score so far."""
        if self.enabled and total > 1:
            self._what = f"fold {index + 1}/{total}"
            self.bar.set_postfix_str(
                f"fold {index + 1}/{total}" + (f", {self.best}" if self.best else "")
            )

    def pack(self, trials: list[int]) -> None:
        """The live line while a pack trains: which trials it holds."""
        if self.enabled and trials:
            span = f"{trials[0]}-{trials[-1]}" if len(trials) > 1 else str(trials[0])
            self._what = f"training trials {span} together"
            self.bar.set_postfix_str(
                f"training trials {span} together" + (f", {self.best}" if self.best else "")
            )

    def epoch(self, epoch: int) -> None:
        """Training goes on: the live line names the epoch (at most once a second)."""
        now = time.monotonic()
        if not self.enabled or now - self._ticked < 1.0:
            return
        self._ticked = now
        self.bar.set_postfix_str(
            f"{self._what}, epoch {epoch + 1}" + (f", {self.best}" if self.best else "")
        )

    def close(self) -> None:
        self.bar.close()


class Ticker:
    """Lines about a long step, at most one every `every` seconds (the first at once)."""

    def __init__(self, stream: TextIO | None = sys.stderr, every: float = 3.0) -> None:
        self.stream, self.every, self._last = stream, every, -float("inf")

    def __call__(self, line: str, *, force: bool = False) -> None:
        now = time.monotonic()
        if self.stream is None or not (force or now - self._last >= self.every):
            return
        self._last = now
        print(line, file=self.stream, flush=True)


Say = Callable[..., None]


class Waiting:
    """A line that counts the seconds of a long silent step (importing TensorFlow), kept
    up to date from a thread; it writes to the terminal even while the step points file
    descriptor 2 elsewhere to hide its libraries' noise."""

    def __init__(self, label: str, enabled: bool = True) -> None:
        self.label, self.enabled = label, enabled
        self._stop = threading.Event()
        self._fd = -1
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._started = 0.0

    def _write(self, text: str) -> None:
        with contextlib.suppress(OSError):
            os.write(self._fd, text.encode())

    def _run(self) -> None:
        while not self._stop.wait(1.0):
            self._write(f"\r{self.label} {time.monotonic() - self._started:.0f} s")

    def _ticks(self) -> bool:
        """Seconds rewrite the line on a terminal; a log file gets the line once."""
        with contextlib.suppress(OSError):
            return os.isatty(self._fd)
        return False

    def __enter__(self) -> Waiting:
        if self.enabled:
            sys.stderr.flush()
            self._fd, self._started = os.dup(2), time.monotonic()
            self._write(self.label)
            if self._ticks():
                self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if not self.enabled:
            return
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()
            self._write(f"\r{self.label}")
        self._write(f" done in {time.monotonic() - self._started:.0f} s\n")
        os.close(self._fd)
