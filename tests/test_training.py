"""The engine seam: what every engine promises the objective, checked on both engines."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import optuna
import pytest

from search.data.dataset import Dataset
from search.data.foldarrays import fold_arrays
from search.data.foldcache import FoldCache
from search.data.folds import make_folds
from search.data.split import split_test
from search.engines.base import Engine, Member
from search.engines.choose import PACK_BYTES, make_engine
from search.engines.pack.engine import PackEngine
from search.engines.sequential import SequentialEngine
from search.space.schema import DataSpec, ValidationSpec
from search.study import open_storage
from tests.conftest import tiny_space
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
    from search.engines.pack.device import accelerator_memory
    from search.space.file import parse_space

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
    # MNIST-sized data on a CPU: one model at a time (a pack holds every fold's rows)
    big = "pack" if accelerator_memory() else "sequential"
    assert make_engine(space("{engine: auto}"), data_bytes=PACK_BYTES + 1).name == big
    assert make_engine(space("{engine: auto}"), data_bytes=PACK_BYTES).name == "pack"
    assert make_engine(space("{engine: pack}"), data_bytes=PACK_BYTES + 1).name == "pack"


def test_folds_beyond_the_memory_budget_are_let_go_and_remade_with_the_same_numbers() -> None:
    data, _ = _data()
    spec = DataSpec(source="iris")
    rows = split_test(data, spec).train
    folds = make_folds(ValidationSpec(folds=3), data.y[rows], classification=True, seed=1)

    def cache(budget: int) -> FoldCache:
        return FoldCache(lambda i, tokens: fold_arrays(data, rows, folds[i], tokens), budget)

    small, large = cache(1), cache(2**30)
    first = small.rows((0, None))
    for c in (small, large):
        handles = [c.fold((i, None)) for i in (0, 1, 2, 0)]
        assert handles[0] is handles[3]  # one handle a fold, whatever its rows' fate
        for h, f in zip(handles, [0, 1, 2, 0], strict=True):
            assert np.array_equal(h.x_train, fold_arrays(data, rows, folds[f]).x_train)
    assert small.made == 4 and large.made == 3  # 0, 1, 2 let 0 go: made again; all kept
    assert np.array_equal(small.rows((0, None)).x_val, first.x_val)


def test_a_search_whose_folds_are_remade_each_trial_scores_the_same(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The memory budget changes what is kept, never a number: the same trials score the
    same with every fold kept and with every fold remade when read."""
    from search import run_search
    from search.data import foldcache
    from search.trials import context

    made: list[FoldCache] = []
    real = FoldCache.__init__

    def spy(self: FoldCache, make: Any, budget: int = foldcache.KEEP_BYTES) -> None:
        real(self, make, budget)
        made.append(self)

    monkeypatch.setattr(FoldCache, "__init__", spy)
    values = []
    for keep in (foldcache.KEEP_BYTES, 0):
        monkeypatch.setattr(context, "KEEP_BYTES", keep)
        monkeypatch.setattr(Dataset, "nbytes", property(lambda self: 0))
        space = tiny_space(tmp_path, name=f"keep{keep}", trials=3, epochs=2)
        text = space.read_text() + "training: {engine: sequential}\n"
        space.write_text(text)
        home = tmp_path / f"m{keep}"
        result = run_search(space, home=home, progress=False)
        study = optuna.load_study(study_name=result.study_name, storage=open_storage(None, home))
        values.append([t.value for t in study.trials])
        assert made[-1].made == (3 if keep else 9)  # 3 folds, or 3 folds x 3 trials
    assert values[0] == values[1] and None not in values[0]
