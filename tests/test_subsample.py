"""`data.subsample`: the search and its recheck on a stratified share of the training rows,
the champion refitted (and its baseline learned) on every training row; reproducible."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from search.data.dataset import load_dataset
from search.data.foldarrays import FoldArrays
from search.data.split import split_test
from search.errors import DataError
from search.reproduction import reproduce
from search.runner import run_search
from search.selection import refit as refit_module
from search.selection.selector import select
from search.space.schema import DataSpec
from search.trials import context as context_module

SPACE = """
study: {{name: sub, trials: 2, sampler: random, pruner: none, seed: 3}}
data: {{source: digits, subsample: 0.25}}
validation: {{scheme: kfold, folds: 2}}
selection: {{top_k: 1, recheck_folds: 2, bootstrap: 100, ensemble: false, refit: {refit}}}
params: {{depth: 1, width: 32, epochs: 8, patience: 2, learning_rate: 0.005}}
"""


def test_the_subsample_is_a_stratified_share_of_the_training_rows(tmp_path: Path) -> None:
    spec = DataSpec(source="digits", subsample=0.25)
    data = load_dataset(spec, base_dir=tmp_path)
    split = split_test(data, spec)
    full = split_test(data, DataSpec(source="digits"))
    assert split.everything is not None and np.array_equal(split.everything, full.train)
    assert np.array_equal(split.test, full.test)  # the same test split, subsample or not
    assert set(split.train) < set(full.train)
    assert len(split.train) == int(np.ceil(0.25 * len(full.train)))
    shares = np.bincount(data.y[split.train]) / len(split.train)
    np.testing.assert_allclose(shares, np.bincount(data.y[full.train]) / len(full.train), atol=0.01)
    assert np.array_equal(split_test(data, spec).train, split.train)  # seeded
    with pytest.raises(DataError, match="keeps 2 of"):
        split_test(data, DataSpec(source="digits", subsample=0.001))


@pytest.mark.parametrize("refit", ["single", "ensemble"])
def test_the_search_sees_the_subsample_and_the_refit_every_row(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, refit: str
) -> None:
    seen: dict[str, list[int]] = {"search": [], "refit": []}
    fold_arrays = context_module.fold_arrays

    def spy_folds(data: Any, rows: np.ndarray, fold: Any, *rest: Any) -> FoldArrays:
        seen["search"].append(len(rows))
        return fold_arrays(data, rows, fold, *rest)

    engine = refit_module.sequential_engine

    class SpyEngine:  # the refit's members: every training row, in one model or a fold's
        def __init__(self, space: Any) -> None:
            self.real = engine(space)
            self.name = self.real.name

        def train(self, members: Any, data: Any, on_epoch: Any = None) -> Any:
            for m in members:
                seen["refit"].append(len(m.arrays.x_train) + len(m.arrays.x_val))
            return self.real.train(members, data, on_epoch)

    monkeypatch.setattr(context_module, "fold_arrays", spy_folds)
    monkeypatch.setattr(refit_module, "sequential_engine", SpyEngine)
    (tmp_path / "sub.yaml").write_text(SPACE.format(refit=refit))
    run_search(tmp_path / "sub.yaml", home=tmp_path / "m", progress=False)
    final = select("sub", home=tmp_path / "m")
    n_train = 1437  # digits' 1797 rows less the 20% test split
    assert set(seen["search"]) == {int(np.ceil(0.25 * n_train))}
    # the refit's network(s) see every training row: one model, or one a fold over them
    assert seen["refit"] == [n_train] * (1 if refit == "single" else 2)
    assert final.test["accuracy"].value > 0.8
    assert reproduce(final.run_id, home=tmp_path / "m").equal
