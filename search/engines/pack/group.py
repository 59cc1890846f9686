"""One program of a pack: the members of one width class and depth, trained epoch by
epoch, and the rounds in which a pack's programs train together.

Each epoch is one call of the group's compiled program (`search.engines.pack.net`): every live
member trains on its own fold's shuffled rows, is validated, and keeps its best weights;
the host then applies each member's early stopping, NaN guard, epoch cap and the pruner's
hook, and a member that stops stops updating. When half the members are done the group is
compacted so that finished members cost nothing.
"""

from __future__ import annotations

import math
import os
import time
from typing import Any

import numpy as np

from search.attrs import Trial
from search.data.dataset import Dataset
from search.data.target import target_scale
from search.engines.base import STOP, EpochHook, FoldResult, Member, StopRule, Trained
from search.engines.pack.device import use_compilation_cache
from search.engines.pack.hyper import epoch_hyper
from search.engines.pack.members import (
    Layers,
    host_output,
    initial_state,
    keras_model,
    packed_rows,
    unpad,
)
from search.engines.pack.plateau import Plateau
from search.engines.pack.shape import Limits, group_shape
from search.errors import TrialFailed
from search.metrics import DATA_LOSS, scores
from search.models.knobs import loss_power, scheduled_rate

LOG_KEYS = ("loss", "{q}", "val_loss", "val_{q}", DATA_LOSS)


class Group:
    """One program of a pack: members of one width class, trained epoch by epoch."""

    def __init__(
        self, members: list[Member], data: Dataset, hook: EpochHook | None, limits: Limits
    ) -> None:
        self.members, self.data, self.hook = members, data, hook
        self.shape, self.folds = group_shape(members, data, limits)
        self.limits = limits
        q = "mae" if data.task == "regression" else "accuracy"
        self.keys = [k.format(q=q) for k in LOG_KEYS]
        n = len(members)
        self.history: list[dict[str, list[float]]] = [{k: [] for k in self.keys} for _ in range(n)]
        self.best = [math.inf] * n
        self.wait = [0] * n
        self.plateaus = {
            i: Plateau(m.params.reduce_lr, m.params.reduce_lr_patience)
            for i, m in enumerate(members)
            if m.params.reduce_lr > 0
        }
        self.pruned = [-1] * n
        self.error: list[Exception | None] = [None] * n
        self.weights: list[Layers | None] = [None] * n
        self.targets = [target_scale(m.params, m.arrays.y_train) for m in members]
        self._record: dict[str, Any] = {}
        # set by start(): the device state, the members' hyperparameters and fold rows
        self.state: Any = None
        self.h: dict[str, Any] = {}
        self.d: Any = None
        self.slot: list[int] = []  # member -> row of the pack (-1: finished)
        self.live: list[bool] = []
        self.epoch, self.epochs, self.started = 0, 0, 0.0

    def start(self) -> None:
        """The pack's starting state on the device; every member live."""
        self.started = time.perf_counter()
        self.state, self.h, self.d = initial_state(self.shape, self.members, self.folds)
        self.slot = list(range(len(self.members)))
        self.live = [True] * len(self.members)
        self.epoch = 0
        self.epochs = max(m.params.epochs for m in self.members)

    @property
    def running(self) -> bool:
        return any(self.live) and self.epoch < self.epochs

    def compute(self) -> np.ndarray:
        """One epoch on the device (any thread): every live member's logs, by pack row."""
        # JAX loads with the compiled program's module, when a pack first trains
        from search.engines.pack.net import epoch_program

        h = epoch_hyper(self.h, self.epoch, self.members)
        self.state, logs = epoch_program(self.shape, self.state, h, self.d)
        return np.asarray(logs, dtype=np.float64)

    def advance(self, logs: np.ndarray) -> None:
        """The host's part of an epoch (the calling thread): each member's stopping rules
        and the hook, then the pack compacted when half its members are done."""
        slot, live = self.slot, self.live
        for i, row in enumerate(slot):
            if row >= 0 and live[i]:
                live[i] = self._after_epoch(i, self.epoch, logs[row])
        self.h["live"] = np.zeros(len(self.h["live"]), dtype=bool)
        for i, row in enumerate(slot):
            if row >= 0 and live[i]:
                self.h["live"][row] = True
        self.epoch += 1
        if self.running and packed_rows(sum(live)) <= len(self.h["live"]) // 2:
            self._compact()

    def finish(self) -> list[Trained]:
        self._collect(self.state, self.slot, [i for i, s in enumerate(self.slot) if s >= 0])
        self._record = self.record()
        share = (time.perf_counter() - self.started) / len(self.members)
        return [self._trained(i, share) for i in range(len(self.members))]

    def record(self) -> dict[str, Any]:
        """The pack as `replay` trains it again: its limits and width, and each member in
        order with the epoch at which the hook stopped it."""
        return {
            **self.limits.as_dict(),
            "width": self.shape.width,
            "members": [
                {
                    "trial": m.trial,
                    "fold": m.fold,
                    "seed": m.seed,
                    "params": m.params.record(),
                    "stopped_at": self.pruned[i],
                }
                for i, m in enumerate(self.members)
            ],
        }

    def _after_epoch(self, i: int, epoch: int, values: np.ndarray) -> bool:
        """Record an epoch of member i; False when it stops here."""
        member, logs = self.members[i], dict(zip(self.keys, map(float, values), strict=True))
        target = self.targets[i]
        if target is not None:  # val_data_loss scales as the member's loss does
            target.logs(logs, loss_power(member.params))
        for k, v in logs.items():
            self.history[i][k].append(v)
        if i in self.plateaus:
            self._plateau(i, logs[DATA_LOSS])
        if not math.isfinite(logs["loss"]):
            self.error[i] = TrialFailed(
                f"training diverged: loss became NaN/inf at epoch {epoch + 1} "
                f"(learning_rate={member.params.learning_rate:.3g})"
            )
            return False
        # Keras' EarlyStopping: better by more than min_delta (the program keeps those weights)
        if logs[DATA_LOSS] + member.params.min_delta < self.best[i]:
            self.best[i], self.wait[i] = logs[DATA_LOSS], 0
        else:
            self.wait[i] += 1
        if self.hook is not None and self.hook(member, epoch, logs):
            self.pruned[i] = epoch
            return False
        stop = self.wait[i] >= member.params.patience and epoch > 0
        return not stop and epoch + 1 < member.params.epochs

    def _plateau(self, i: int, value: float) -> None:
        """ReduceLROnPlateau after member i's epoch: its rate for the next epochs (a
        schedule sets the next epoch's rate anew, as Keras' LearningRateScheduler does)."""
        rates, row = self.h["learning_rate"], self.slot[i]
        current = rates[row]
        if self.members[i].params.schedule != "constant":
            current = scheduled_rate(self.members[i].params, self.epoch)
        rate = self.plateaus[i].after_epoch(value, float(np.float32(current)))
        if rate is not None:
            rates[row] = rate

    def _compact(self) -> None:
        """Drop finished members from the pack (their best weights are copied out first)."""
        import jax

        slot, live = self.slot, self.live
        finished = [i for i, s in enumerate(slot) if s >= 0 and not live[i]]
        self._collect(self.state, slot, finished)
        keep = [i for i in range(len(slot)) if live[i]]
        rows = [slot[i] for i in keep]
        size = packed_rows(len(rows))
        rows += [rows[-1]] * (size - len(rows))  # fillers, never live
        for i in range(len(slot)):
            slot[i] = keep.index(i) if i in keep else -1
        take = np.asarray(rows)  # gathered on the host: a gather on the device compiles
        self.state = jax.device_put(jax.tree.map(lambda a: np.asarray(a)[take], self.state))
        self.h = {k: v[take] for k, v in self.h.items()}
        self.h["live"] = np.arange(size) < len(keep)

    def _collect(self, state: Any, slot: list[int], members: list[int]) -> None:
        if not members:
            return
        best = {k: np.asarray(v) for k, v in state["best"].items()}
        stats = {k: np.asarray(v) for k, v in state["best_stats"].items()}
        for i in members:
            member = self.members[i]
            self.weights[i] = unpad(
                self.shape, member.params, best, stats, slot[i], member.arrays.y_train
            )
            slot[i] = -1

    def _trained(self, i: int, share: float) -> Trained:
        member, weights = self.members[i], self.weights[i]
        if self.error[i] is not None or weights is None:
            return Trained(member, error=self.error[i] or TrialFailed("no weights"))
        arrays = member.arrays
        out = host_output(self.data.task, member.params, weights, arrays.x_val)
        if not np.all(np.isfinite(out)):
            return Trained(member, error=TrialFailed("the model predicts NaN/inf"))
        val = self.history[i][DATA_LOSS]
        best = StopRule().best_epoch(val, member.params.min_delta)
        result = FoldResult(
            index=member.fold,
            scores=scores(self.data.task, arrays.y_val, out),
            best_epoch=best,
            epochs=len(val),
            history=self.history[i],
            fit_s=share,
        )
        data, shape = self.data, self.shape
        return Trained(
            member,
            result=result,
            pruned_at=self.pruned[i],
            build=lambda: keras_model(member.params, weights, data),
            notes={
                Trial.PACK_WIDTH: shape.width,
                Trial.PACK_DEPTH: shape.depth,
                Trial.PACK_TRIALS: sorted({m.trial for m in self.members}),
            },
            pack=self._record,
        )


def run_together(groups: list[Group]) -> list[list[Trained]]:
    """Train the groups of a pack in rounds of one epoch each: the device work of a round
    runs in threads (one group's program uses about one CPU core), the host's part in this
    thread, group by group, so the hook sees the same calls in the same order every time."""
    from concurrent.futures import ThreadPoolExecutor

    use_compilation_cache()
    for group in groups:
        group.start()
    threads = max(1, min(len(groups), os.cpu_count() or 1))
    with ThreadPoolExecutor(threads, thread_name_prefix="pack") as pool:
        active = [g for g in groups if g.running]
        while active:
            if STOP.is_set():
                raise KeyboardInterrupt("stop requested")
            if len(active) == 1:
                logs = [active[0].compute()]
            else:
                logs = list(pool.map(Group.compute, active))
            for group, out in zip(active, logs, strict=True):
                group.advance(out)
            active = [g for g in active if g.running]
    return [g.finish() for g in groups]
