"""The pack engine: each member is exactly its own network, trained as it would be alone."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from search.data.dataset import Dataset, load_dataset
from search.data.foldarrays import FoldArrays, fold_arrays
from search.data.folds import make_folds
from search.data.split import split_test
from search.engines.base import Member, Trained
from search.engines.pack.engine import PackEngine
from search.engines.pack.shape import Limits
from search.metrics import scores
from search.params import TrialParams
from search.space.schema import DataSpec, ValidationSpec
from tests.conftest import ROOT

BASE: dict[str, Any] = {
    "depth": 1,
    "widths": [8],
    "activation": "relu",
    "dropout": 0.0,
    "l1": 0.0,
    "l2": 0.0,
    "batch_norm": False,
    "optimizer": "adam",
    "learning_rate": 0.01,
    "batch_size": 16,
    "epochs": 6,
    "patience": 100,
    "precision": "float32",
}
# Every structural difference the pack pads or selects: width, depth, activation,
# optimizer (with its own slots), dropout, L1/L2, batch normalization.
VARIANTS: list[dict[str, Any]] = [
    BASE,
    BASE | {"depth": 3, "widths": [24, 5, 12], "activation": "gelu", "l2": 1e-3},
    BASE | {"depth": 2, "widths": [3, 17], "optimizer": "rmsprop", "momentum": 0.9},
    BASE | {"optimizer": "adamw", "weight_decay": 0.01, "dropout": 0.3, "l1": 1e-3},
    BASE | {"depth": 2, "widths": [9, 9], "optimizer": "nadam", "activation": "elu"},
    BASE | {"optimizer": "sgd", "momentum": 0.9, "activation": "tanh"},
    BASE | {"depth": 2, "widths": [6, 10], "batch_norm": True, "dropout": 0.2},
    # twice the pack's smallest batch: its gradient is summed over two steps of 16 rows
    BASE | {"batch_size": 32, "dropout": 0.25, "widths": [12], "optimizer": "nadam"},
]


def _data(source: str = "iris") -> tuple[Dataset, list[FoldArrays]]:
    spec = DataSpec(source=source)
    data = load_dataset(spec, base_dir=ROOT)
    rows = split_test(data, spec).train
    folds = make_folds(ValidationSpec(folds=3), data.y[rows], classification=True, seed=1)
    return data, [fold_arrays(data, rows, f) for f in folds]


def _members(folds: list[FoldArrays], variants: list[dict[str, Any]]) -> list[Member]:
    return [
        Member(t, i, TrialParams.read(params), 100 * t + i, arrays)
        for t, params in enumerate(variants)
        for i, arrays in enumerate(folds)
    ]


def _train(members: list[Member], data: Dataset, width: int = 0) -> list[Trained]:
    return list(PackEngine(limits=Limits(width=width)).train(members, data))


def _loss(t: Trained) -> float:
    assert t.result is not None, t.error
    return t.result.scores["loss"]


def test_each_member_is_its_own_unpadded_keras_network() -> None:
    """The member's plain Keras model (its own widths and depth, the pack's weights copied
    in) predicts what the engine scored, and is loadable without this package."""
    data, folds = _data()
    for trained in _train(_members(folds, VARIANTS), data):
        model = trained.build() if trained.build else None
        assert model is not None and trained.result is not None
        widths = [layer.units for layer in model.layers if layer.name.startswith("dense_")]
        assert widths == [int(w) for w in trained.member.params.widths]
        x_val, y_val = trained.member.arrays.x_val, trained.member.arrays.y_val
        predicted = np.asarray(model(x_val, training=False))
        expected = scores(data.task, y_val, predicted)
        for name, value in trained.result.scores.items():
            assert value == pytest.approx(expected[name], abs=1e-5), name


def test_padding_is_exact_a_member_trains_as_it_would_in_its_own_shape() -> None:
    """Trained in a pack padded to 32 units and 3 layers, with members of other batch
    sizes, a member ends where it ends alone at its own depth and width class, in steps
    of its own batch size (float tolerance: sums of zeros, sums of partial gradients)."""
    data, folds = _data()
    members = _members(folds[:1], VARIANTS)
    packed = _train(members, data, width=32)
    for member, together in zip(members, packed, strict=True):
        own = max(int(w) for w in member.params.widths)
        alone = _train([member], data, width=own)[0]
        assert _loss(alone) == pytest.approx(_loss(together), rel=1e-4, abs=1e-5)
        assert alone.result and together.result
        assert alone.result.epochs == together.result.epochs


def test_a_member_in_a_pack_of_k_ends_as_in_a_pack_of_one_and_twice_the_same() -> None:
    data, folds = _data()
    members = _members(folds, VARIANTS)
    first, again = _train(members, data, width=32), _train(members, data, width=32)
    assert [_loss(a) for a in first] == [_loss(b) for b in again]  # bit for bit
    for i in (0, 7, 16, 21):
        alone = _train([members[i]], data, width=32)[0]
        assert _loss(alone) == pytest.approx(_loss(first[i]), rel=1e-5, abs=1e-7)


def test_members_stop_early_diverge_and_are_pruned_each_on_its_own() -> None:
    """Early stopping, the NaN guard and the pruner's hook act on one member only; the
    others train on and match their numbers without those neighbours."""
    data, folds = _data()
    runs_on = BASE | {"epochs": 8}
    patient = BASE | {"epochs": 8, "patience": 1, "learning_rate": 0.3}
    diverges = BASE | {"epochs": 8, "learning_rate": 1e30}
    pruned = BASE | {"epochs": 8}
    members = _members(folds[:1], [runs_on, patient, diverges, pruned])

    def hook(member: Member, epoch: int, logs: dict[str, float]) -> bool:
        assert set(logs) >= {"loss", "val_loss", "val_data_loss", "val_accuracy"}
        return member.trial == 3 and epoch == 2

    out = list(PackEngine(limits=Limits(width=8)).train(members, data, hook))
    assert out[0].result and out[0].result.epochs == 8 and out[0].pruned_at == -1
    assert out[1].result and out[1].result.epochs < 8
    assert out[2].result is None and "diverged" in str(out[2].error)
    assert out[3].result and out[3].pruned_at == 2 and out[3].result.epochs == 3
    alone = _train([members[0]], data, width=8)[0]
    assert _loss(alone) == pytest.approx(_loss(out[0]), rel=1e-5)


def test_the_best_epoch_is_restored_per_member() -> None:
    """The weights scored are those of the epoch with the lowest val_data_loss."""
    data, folds = _data("breast_cancer")
    member = _members(folds[:1], [BASE | {"learning_rate": 0.05, "epochs": 15, "widths": [32]}])[0]
    (t,) = _train([member], data)
    assert t.result is not None
    history = t.result.history["val_data_loss"]
    assert t.result.best_epoch == int(np.argmin(history)) + 1
    assert t.result.scores["loss"] == pytest.approx(min(history), rel=1e-4)


def test_members_the_pack_cannot_express_train_one_by_one() -> None:
    data, folds = _data()
    members = _members(folds[:1], [BASE, BASE | {"optimizer": "ftrl"}])
    out = _train(members, data)
    assert "pack.width" in out[0].notes
    assert all(t.result is not None and "pack.width" not in t.notes for t in out[1:])


def test_a_search_with_the_pack_engine_keeps_each_trials_runs(tmp_path: Path) -> None:
    """Trials packed together still get their own Optuna trial and MLflow run tree."""
    import optuna
    from mlflow.tracking import MlflowClient

    from search import run_search
    from search.study import open_storage
    from search.tracking import default_tracking_uri

    space = tmp_path / "p.yaml"
    space.write_text(
        "study: {name: p, trials: 5, sampler: tpe, seed: 3}\n"
        "data: {source: iris, test_size: 0.25}\n"
        "validation: {scheme: kfold, folds: 3}\n"
        "training: {engine: pack, pack_size: 3}\n"
        "params: {depth: {low: 1, high: 3}, width: {low: 4, high: 32}, epochs: 5,"
        " batch_size: {choices: [16, 32]}, optimizer: {choices: [adam, rmsprop]}}\n"
    )
    home = tmp_path / "home"
    result = run_search(space, home=home, progress=False)
    assert result.counts["complete"] + result.counts["pruned"] == 5
    study = optuna.load_study(study_name="p", storage=open_storage(None, home))
    client = MlflowClient(default_tracking_uri(home))
    for trial in study.trials:
        assert trial.state != optuna.trial.TrialState.RUNNING
        run = client.get_run(trial.user_attrs["mlflow_run_id"])
        assert run.info.status in ("FINISHED", "KILLED")
        assert trial.user_attrs["pack.width"] >= 4
        folds = client.search_runs(
            [run.info.experiment_id],
            filter_string=f"tags.mlflow.parentRunId = '{run.info.run_id}'",
        )
        if trial.state == optuna.trial.TrialState.COMPLETE:
            assert len(folds) == 3
            assert run.data.metrics["score"] == pytest.approx(trial.value)


def test_the_pack_engine_refuses_a_hypermodel(tmp_path: Path) -> None:
    from search.engines.choose import make_engine
    from search.errors import SpaceError
    from search.space.file import load_space

    (tmp_path / "hm.py").write_text("def build_model(hp):\n    return None\n")
    space = tmp_path / "s.yaml"
    space.write_text(
        "data: {source: iris}\nmodel: {hypermodel: hm.py:build_model}\ntraining: {engine: pack}\n"
    )
    with pytest.raises(SpaceError) as err:
        make_engine(load_space(space))
    assert err.value.key == "model.hypermodel" and "hypermodel" in str(err.value)
