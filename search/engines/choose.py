"""The `auto` rule: which engine trains a space's members (`training.engine`)."""

from __future__ import annotations

import importlib.util

from search.data.dataset import Dataset
from search.engines.base import Engine, stop_rule
from search.engines.carries import carried_table, describe, key_of, lacking, space_asks
from search.engines.pack.carried import CARRIES
from search.engines.pack.device import accelerator_memory
from search.engines.pack.engine import PackEngine, space_limits
from search.engines.sequential import sequential_engine
from search.errors import SpaceError
from search.metrics import DATA_LOSS
from search.names import ONE_FOLD
from search.space.schema import Space

PACK_BYTES = 64 * 2**20  # above this much data, `auto` on a CPU trains one model at a time


def make_engine(space: Space, data_bytes: int = 0, sample_ndim: int = 1) -> Engine:
    """The engine the space's `training.engine` names (see `choose_engine`)."""
    return choose_engine(space, data_bytes, sample_ndim)[0]


def engine_for(space: Space, data: Dataset) -> tuple[Engine, str]:
    """The engine for the space's trials on this data, and why `auto` chose it when it is
    the sequential engine (see `choose_engine`)."""
    return choose_engine(space, data.nbytes, len(data.input_shape or (0,)))


def choose_engine(space: Space, data_bytes: int = 0, sample_ndim: int = 1) -> tuple[Engine, str]:
    """The engine the space's `training.engine` names for data of `data_bytes` whose rows
    have `sample_ndim` axes, and, when `auto` chose the sequential engine, the one line
    that says why; a SpaceError names the key's line."""
    try:
        return _engine(space, data_bytes, sample_ndim)
    except SpaceError as exc:
        raise exc.at_line(space.line_of(exc.key) if exc.key else None) from None


def _engine(space: Space, data_bytes: int, sample_ndim: int) -> tuple[Engine, str]:
    """`auto` packs the built-in MLP where packing was measured to pay (bench/pack.py) and
    the pack carries what every trial of the space asks for (the engines' declarations,
    `search.engines.carries`): on a GPU or TPU, and on a CPU when each trial has several
    folds to pack, unless early stopping follows the objective's metric (the pack follows
    the loss). On a CPU a holdout search (a pack saves no arithmetic and costs
    compilation) and data above `PACK_BYTES` (arithmetic fills the time; a pack holds
    every fold) train sequentially. Trials asking for what the pack lacks train in the
    sequential engine beside the pack, each saying so."""
    choice, sequential = space.training.engine, sequential_engine(space)
    if choice == "sequential":
        return sequential, ""
    asked = space_asks(space, sample_ndim=sample_ndim)
    if choice == "pack":
        _check_forced(space, asked)
        return PackEngine(fallback=sequential, limits=space_limits(space)), ""
    if importlib.util.find_spec("jax") is None:
        return sequential, "JAX is not installed (pip install jax)"
    if stop_rule(space).key != DATA_LOSS:
        return sequential, "the pack stops on the validation loss (objective.early_stopping)"
    always = [f for f in lacking(asked, CARRIES) if asked[f]]
    if always:
        return sequential, f"the pack does not carry {describe(always[0])} ({key_of(always[0])})"
    small_gain = space.validation.scheme in ONE_FOLD or data_bytes > PACK_BYTES
    if small_gain and accelerator_memory() is None:
        why = "a holdout search" if space.validation.scheme in ONE_FOLD else "data this large"
        return sequential, f"{why} on a CPU (a pack saves no arithmetic there)"
    return PackEngine(fallback=sequential, limits=space_limits(space)), ""


def _check_forced(space: Space, asked: dict[str, bool]) -> None:
    """`engine: pack` asked of a space with something the pack cannot carry: refused."""
    if importlib.util.find_spec("jax") is None:
        raise SpaceError(
            "the pack engine needs JAX, which is not installed; run: pip install jax",
            file=space.path,
            key="training.engine",
        )
    if stop_rule(space).key != DATA_LOSS:
        raise SpaceError(
            "the pack engine stops on the validation loss; early_stopping: objective "
            "needs engine: sequential (or auto)",
            file=space.path,
            key="objective.early_stopping",
        )
    lacks = lacking(asked, CARRIES)
    if lacks:
        raise SpaceError(
            f"engine: pack does not carry {describe(lacks[0])}; use engine: sequential "
            "(or auto, which trains such trials in the sequential engine)",
            file=space.path,
            key=key_of(lacks[0]),
        )


def engines_table() -> str:
    """docs/engines.md: what each engine carries, from their declarations."""
    intro = (
        "# What each engine carries\n\n"
        "Generated from the engines' declarations (`search.engines.choose.engines_table`; "
        "tests/test_engines.py fails when this page and the code disagree). With "
        "`training.engine: auto`, a trial asking for a feature the pack does not carry "
        "trains in the sequential engine, and the search says so in one line "
        "(`engine: sequential for trial N: the pack does not carry ...`) and tags its run "
        "`search.engine_reason`; with `engine: pack`, such a space is refused before any "
        "training, naming the key and its line.\n\n"
    )
    return intro + carried_table({"sequential": None, "pack": CARRIES})
