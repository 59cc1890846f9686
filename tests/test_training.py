"""The engine seam: what every engine promises the objective, checked on both engines."""

from __future__ import annotations

from typing import Any

import pytest

from search.fitting import SequentialEngine
from search.pack import PackEngine
from search.training import Engine, Member, make_engine
from tests.test_pack import BASE, _data, _members

ENGINES = {"sequential": lambda: SequentialEngine(steps_per_execution=4), "pack": PackEngine}
MIXED: list[dict[str, Any]] = [
    BASE | {"batch_size": 32, "epochs": 3},
    BASE | {"optimizer": "lion", "epochs": 3},  # the pack hands it to the sequential engine
    BASE | {"batch_size": 16, "epochs": 3, "widths": [4, 4], "depth": 2},
]


@pytest.mark.parametrize("name", list(ENGINES))
def test_an_engine_yields_one_result_per_member_in_the_order_given(name: str) -> None:
    data, folds = _data()
    members = _members(folds[:2], MIXED)
    engine: Engine = ENGINES[name]()
    out = list(engine.train(members, data))
    assert [(t.member.trial, t.member.fold) for t in out] == [(m.trial, m.fold) for m in members]
    for t in out:
        assert t.result is not None and t.result.index == t.member.fold
        assert t.result.epochs == 3 and len(t.result.history["val_data_loss"]) == 3
        assert t.build is not None and t.build().count_params() > 0


@pytest.mark.parametrize("name", list(ENGINES))
def test_the_hook_sees_every_epoch_of_every_member_and_stops_only_its_member(name: str) -> None:
    data, folds = _data()
    members = _members(folds[:1], [BASE | {"epochs": 4}, BASE | {"epochs": 4}])
    seen: list[tuple[int, int]] = []

    def hook(member: Member, epoch: int, logs: dict[str, float]) -> bool:
        seen.append((member.trial, epoch))
        return member.trial == 0 and epoch == 1

    out = list(ENGINES[name]().train(members, data, hook))
    assert sorted(seen) == [(0, 0), (0, 1), (1, 0), (1, 1), (1, 2), (1, 3)]
    assert out[0].pruned_at == 1 and out[0].result and out[0].result.epochs == 2
    assert out[1].pruned_at == -1 and out[1].result and out[1].result.epochs == 4


def test_the_sequential_engine_trains_nothing_the_consumer_no_longer_wants() -> None:
    """A trial pruned after its first fold: the folds after it are never fitted."""
    data, folds = _data()
    members = _members(folds, [BASE | {"epochs": 2}])
    epochs: list[int] = []

    def hook(member: Member, epoch: int, logs: dict[str, float]) -> bool:
        epochs.append(member.fold)
        return False

    for _ in SequentialEngine(steps_per_execution=4).train(members, data, hook):
        break
    assert set(epochs) == {0}


def test_make_engine_follows_the_space_file(tmp_path: Any) -> None:
    from search.jaxdevice import accelerator_memory
    from search.spacefile import parse_space

    def space(training: str, scheme: str = "kfold") -> Any:
        text = f"data: {{source: iris}}\nvalidation: {{scheme: {scheme}}}\n"
        return parse_space(text + f"training: {training}\n")

    assert make_engine(space("{engine: auto}")).name == "pack"
    assert make_engine(space("{engine: pack}")).name == "pack"
    assert make_engine(space("{engine: sequential}")).name == "sequential"
    # one member per holdout trial: packed on an accelerator only
    holdout = "pack" if accelerator_memory() else "sequential"
    assert make_engine(space("{engine: auto}", "holdout")).name == holdout
    assert make_engine(space("{engine: pack}", "holdout")).name == "pack"
