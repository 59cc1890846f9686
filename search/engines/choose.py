"""The `auto` rule: which engine trains a space's members (`training.engine`)."""

from __future__ import annotations

import importlib.util

from search.engines.base import Engine, stop_rule
from search.engines.pack.device import accelerator_memory
from search.engines.pack.engine import PackEngine, space_limits
from search.engines.sequential import sequential_engine
from search.errors import SpaceError
from search.metrics import DATA_LOSS
from search.names import ONE_FOLD
from search.space.schema import Space

PACK_BYTES = 64 * 2**20  # above this much data, `auto` on a CPU trains one model at a time


def make_engine(space: Space, data_bytes: int = 0) -> Engine:
    """The engine the space's `training.engine` names for data of `data_bytes` (see
    `_engine`); a SpaceError names the key's line."""
    try:
        return _engine(space, data_bytes)
    except SpaceError as exc:
        raise exc.at_line(space.line_of(exc.key) if exc.key else None) from None


def _engine(space: Space, data_bytes: int) -> Engine:
    """The engine the space's `training.engine` names.

    `auto` packs the built-in MLP where packing was measured to pay (bench/pack.py): on a
    GPU or TPU, and on a CPU when each trial has several folds to pack, unless early
    stopping follows the objective's metric (the pack follows the loss). On a CPU a
    holdout search (a pack saves no arithmetic and costs compilation) and data above
    `PACK_BYTES` (arithmetic fills the time; a pack holds every fold) train sequentially."""
    choice, sequential = space.training.engine, sequential_engine(space)
    has_jax = importlib.util.find_spec("jax") is not None
    follows_loss = stop_rule(space).key == DATA_LOSS
    if choice == "sequential" or (
        choice == "auto" and (space.model.hypermodel or not has_jax or not follows_loss)
    ):
        return sequential
    if not follows_loss:
        raise SpaceError(
            "the pack engine stops on the validation loss; early_stopping: objective "
            "needs engine: sequential (or auto)",
            file=space.path,
            key="objective.early_stopping",
        )
    small_gain = space.validation.scheme in ONE_FOLD or data_bytes > PACK_BYTES
    if choice == "auto" and small_gain and accelerator_memory() is None:
        return sequential
    if not has_jax:
        raise SpaceError(
            "the pack engine needs JAX, which is not installed; run: pip install jax",
            file=space.path,
            key="training.engine",
        )
    if space.model.hypermodel:
        raise SpaceError(
            "the pack engine trains the built-in MLP only; a hypermodel needs "
            "engine: sequential (or auto)",
            file=space.path,
            key="training.engine",
        )
    return PackEngine(fallback=sequential, limits=space_limits(space))
