"""The pack engine: many members of the built-in MLP trained together as JAX programs.

Members are grouped by width class and depth; each group is one compiled program
(`search.engines.pack.group`, `search.engines.pack.net`) whose weights are padded to the
group's widest member, and a pack's groups train together, one epoch per round. Members
the pack cannot express (a hypermodel, convolutions, mixed precision, images) are trained by the
sequential engine.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from search.attrs import Trial
from search.data.dataset import Dataset
from search.data.foldarrays import FoldArrays
from search.engines.base import EpochHook, Member, Trained
from search.engines.pack.carried import ACTIVATIONS, CARRIES, OPTIMIZERS
from search.engines.pack.group import Group, run_together
from search.engines.pack.shape import Limits, unpackable, width_class
from search.engines.sequential import SequentialEngine
from search.params import TrialParams
from search.space.sampling import choices
from search.space.schema import Space


def space_limits(space: Space) -> Limits:
    """The space's packable activations and optimizers (members of every depth and width
    class train in programs of their own: a shallow member padded to the deepest would
    compute the layers it does not have)."""
    params = space.params
    return Limits(
        activations=tuple(a for a in map(str, choices(params.activation)) if a in ACTIVATIONS),
        optimizers=tuple(
            o for o in (str(c).lower() for c in choices(params.optimizer)) if o in OPTIMIZERS
        ),
    )


@dataclass
class PackEngine:
    """Trains the members it can express as packs, the others one by one."""

    fallback: SequentialEngine = field(default_factory=SequentialEngine)
    limits: Limits = field(default_factory=Limits)
    name: str = "pack"
    carries: frozenset[str] | None = CARRIES

    def train(
        self, members: Sequence[Member], data: Dataset, on_epoch: EpochHook | None = None
    ) -> Iterator[Trained]:
        done: dict[int, Trained] = {}
        groups = {
            tuple(positions): Group([members[i] for i in positions], data, on_epoch, self.limits)
            for positions in self.groups(members).values()
        }
        for positions, packed in zip(groups, run_together(list(groups.values())), strict=True):
            done.update(zip(positions, packed, strict=True))
        for i, member in enumerate(members):
            if i in done:
                yield done.pop(i)
                continue
            why = unpackable(member.params, member.arrays.x_train.ndim - 1)
            for alone in self.fallback.train([member], data, on_epoch):
                alone.notes[Trial.ENGINE_REASON] = f"the pack does not carry {why}"
                yield alone

    def groups(self, members: Sequence[Member]) -> dict[tuple[int, int, int], list[int]]:
        """Positions of the packable members by program: one per width class and depth
        (batch sizes share one, except under batch normalization, whose statistics are the
        batch's). Limits with a depth (packs recorded before depths had programs of their
        own) put every depth in one program, as they were trained."""
        out: dict[tuple[int, int, int], list[int]] = {}
        for i, m in enumerate(members):
            if unpackable(m.params, m.arrays.x_train.ndim - 1) is None:
                size = m.params.batch_size if m.params.batch_norm else 0
                width = max(self.limits.width, width_class(m.params))
                depth = 0 if self.limits.depth else len(m.params.widths)
                out.setdefault((width, depth, size), []).append(i)
        return out


def replay(record: dict[str, Any], arrays: dict[int, FoldArrays], data: Dataset) -> list[Trained]:
    """Train a recorded pack again: the same members in the same order, each stopped by
    the hook where the pruner stopped it; the numbers are those of the search."""
    members = [
        Member(
            int(m["trial"]),
            int(m["fold"]),
            TrialParams.read(m["params"]),
            int(m["seed"]),
            arrays[int(m["fold"])],
        )
        for m in record["members"]
    ]
    stops = {
        (m.trial, m.fold): int(r["stopped_at"])
        for m, r in zip(members, record["members"], strict=True)
    }

    def hook(member: Member, epoch: int, logs: dict[str, float]) -> bool:
        return stops[(member.trial, member.fold)] == epoch

    limits = Limits(
        width=int(record["width"]),
        depth=int(record.get("depth", 0)),
        activations=tuple(record.get("activations", ())),
        optimizers=tuple(record.get("optimizers", ())),
    )
    return list(PackEngine(limits=limits).train(members, data, hook))
